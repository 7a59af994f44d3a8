/* The loop layer: one epoll set per thread, timers and the inbox for posts
 * from other threads. It reaches what it watches only through the ops of a
 * piston__io (as redis's ae reaches a file event's rfileProc), and the
 * inbox's items through theirs, so it knows nothing of connections or HTTP.
 * Owned by loop.c (the pass, listeners, inbox, stop) and timer.c. */
#ifndef PISTON_LOOP_H
#define PISTON_LOOP_H

#include "bufpool.h"
#include "logbuf.h"
#include "server.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Timeout kinds. Every entry of a kind's list has the same duration, so
 * appending keeps the list sorted by deadline and expiry looks only at the
 * heads. */
typedef enum {
  TIMER_NONE = -1,
  TIMER_HEAD,
  TIMER_BODY,
  TIMER_IDLE,
  TIMER_WRITE,
  TIMER_LINGER,
  TIMER_HANDLER, /* the host holds a request it has not started answering */
  TIMER_WS_PING, /* a WebSocket's keep-alive ping is due */
  TIMER__COUNT
} piston__timer_kind;

/* epoll data points at one of these tags */
typedef enum { TAG_IO, TAG_LISTENER, TAG_INBOX, TAG_TIMER } piston__tag;

typedef struct piston__io piston__io;

/* What the loop asks of a watched object (a connection). */
typedef struct {
  void (*events)(piston__io *io, uint32_t epoll_events);
  void (*run)(piston__io *io);   /* marked pending: input or work this pass */
  void (*flush)(piston__io *io); /* marked dirty: output to write */
  void (*timeout)(piston__io *io, int kind);
  void (*stop)(piston__io *io);       /* graceful stop begins */
  bool (*idle)(const piston__io *io); /* may close_idle close it now? */
  void (*close)(piston__io *io);      /* at once */
  void (*destroy)(piston__io *io);    /* at the end of its last pass */
} piston__io_ops;

struct piston__io {
  uint8_t tag; /* TAG_IO: first, as epoll data points here */
  bool in_pending, in_dirty;
  bool dead; /* removed from the loop: skip it, free it at the pass end */
  int8_t timer;
  const piston__io_ops *ops;
  piston_loop *loop;
  piston__io *pending_next, *dirty_next;
  piston__io *aprev, *anext; /* the loop's list of every live io */
  piston__io *tprev, *tnext; /* its timer list; the dead list after */
  uint64_t deadline_ms;
};

/* An item posted to a loop's inbox from another thread. hold() runs under
 * the inbox lock when the item is queued (take a reference); apply() runs
 * on the loop thread when it is taken out, and drops that reference. The
 * ops are given with each post and read under the inbox lock: the poster's
 * thread and the loop's never touch them outside it. */
typedef struct piston__post piston__post;
typedef struct {
  void (*hold)(piston__post *p);
  void (*apply)(piston__post *p);
} piston__post_ops;
struct piston__post {
  const piston__post_ops *ops;
  piston__post *next; /* guarded by the loop's inbox_lock */
  bool queued;        /* likewise */
};

typedef struct {
  uint8_t tag;
  int fd;
  bool shared; /* not ours to close when shared with other loops */
  bool in_epoll;
  bool tls; /* its connections speak TLS */
} piston__listener;

struct piston_loop {
  piston_server *srv;
  /* during a client-error callback: piston_loop_client_error()'s */
  const char *cerr_name, *cerr_reason;
  /* and, for an HTTP/1.1 rejection the host may answer itself, its
   * connection (piston_loop_client_error_take), NULL once taken or when it
   * cannot be; the exchange the host took; the bytes llhttp was given
   * (piston_loop_client_error_data) */
  void *cerr_h1;
  piston_req *cerr_taken;
  const char *cerr_data;
  size_t cerr_len, cerr_parsed;
  uint64_t cerr_conn; /* piston_loop_client_error_connection_id()'s */
  int epfd;
  uint8_t inbox_tag, timer_tag; /* epoll data points here */
  int evfd, tfd;
  piston__listener listeners[PISTON_MAX_LISTENERS];
  size_t nlisteners;
  bool accepting;

  size_t nconns;
  size_t tls_handshakes; /* TLS connections not past their handshake */
  uint64_t now_ms;
  struct {
    piston__io *head, *tail;
  } timers[TIMER__COUNT];
  uint64_t timer_ms[TIMER__COUNT]; /* each kind's duration */
  uint64_t timer_armed_ms;         /* 0: disarmed */

  piston__io *pending; /* need their run this pass */
  piston__io *dirty;   /* have output to flush this pass */
  bool dispatched;     /* a request reached the host this pass */

  pthread_mutex_t inbox_lock;
  piston__post *inbox; /* posts from other threads, LIFO */
  atomic_int stop_requested;
  atomic_int close_idle_requested;
  atomic_int stop_deadline_ms;
  atomic_bool stopping; /* read by host threads (a response's keep-alive) */
  uint64_t stop_at_ms;
  bool stopped;

  piston__io *dead;          /* removed this pass, destroyed at its end */
  piston__io *all;           /* every live io */
  uint64_t accept_resume_ms; /* accept paused (fd limit) until then */

  piston__bufpool rbufs; /* read buffers, for the connections' use */
  piston__logbuf alog;   /* access log lines, written once per pass */
};

/* thread of the loop currently inside a poll pass, NULL otherwise */
extern _Thread_local piston_loop *piston__current_loop;

/* loop.c */
/* Watches fd for io (edge-triggered, both directions) and counts it as a
 * connection; 0 or a PISTON_E* code. */
int piston__loop_add(piston_loop *loop, piston__io *io, int fd,
                     const piston__io_ops *ops);
/* io leaves the loop (its fd already closed): its timer stops, it is
 * skipped from now on and destroyed at the end of the pass. */
void piston__loop_remove(piston__io *io);
/* A TLS handshake starts (false: the loop has as many as it may) or ends;
 * accepting pauses and resumes with the count. */
bool piston__loop_handshake_begin(piston_loop *l);
void piston__loop_handshake_done(piston_loop *l);
void piston__io_mark_pending(piston__io *io);
void piston__io_mark_dirty(piston__io *io);
void piston__loop_post(piston_loop *loop, piston__post *p,
                       const piston__post_ops *ops);
void piston__loop_wake(piston_loop *loop);

/* timer.c */
void piston__timer_set(piston__io *io, int kind);
void piston__timers_expire(piston_loop *loop);
void piston__timers_arm(piston_loop *loop);
uint64_t piston__now_ms(void);

#endif
