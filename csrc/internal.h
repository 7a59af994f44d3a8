/* Structures shared by the engine's files. Nothing here is public: the
 * bindings see only piston.h. Names shared across files are piston__. */
#ifndef PISTON_INTERNAL_H
#define PISTON_INTERNAL_H

#include "fileserve.h"
#include "outq.h"
#include "piston.h"

#include <llhttp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define PISTON_MAX_LISTENERS 16

/* ---- server ---- */

typedef enum { LISTEN_TCP, LISTEN_UNIX, LISTEN_FD } piston__listen_kind;

typedef struct {
  piston__listen_kind kind;
  char *host;    /* TCP */
  int port;      /* TCP: requested, then the one bound */
  char *path;    /* UNIX */
  int shared_fd; /* UNIX and FD: one socket for every loop, else -1 */
  bool bound;    /* TCP: a loop has bound it; later loops join it */
  bool own_fd;   /* close shared_fd with the server */
} piston__listen_spec;

typedef struct {
  char *method; /* NULL: GET and HEAD */
  char *path;
  size_t path_len;
  char *status_line; /* "HTTP/1.1 200 OK\r\n" */
  size_t status_line_len;
  char *fields; /* "Name: v\r\n...Content-Length: n\r\n" */
  size_t fields_len;
  char *body;
  size_t body_len;
  int status;
} piston__fixed_route;

typedef struct {
  char *prefix;
  size_t prefix_len;
  piston__mount mount;
} piston__dir_route;

struct piston_server {
  int64_t opt[PISTON_OPT__COUNT];
  piston_request_cb on_request;
  void *on_request_ud;
  piston_batch_cb on_batch;
  void *on_batch_ud;
  piston_client_error_cb on_client_error;
  void *on_client_error_ud;
  piston_conn_closed_cb on_conn_closed;
  void *on_conn_closed_ud;
  piston__listen_spec listen[PISTON_MAX_LISTENERS];
  size_t nlisten;
  piston__fixed_route *fixed;
  size_t nfixed;
  piston__dir_route *dirs;
  size_t ndirs;
  pthread_mutex_t lock; /* guards the ports learnt by the first loop */
  atomic_int nloops;
};

/* ---- timers: one list per timeout kind. Every entry of a list has the
 * same duration, so appending keeps each list sorted by deadline and
 * expiry only looks at the heads. ---- */

typedef enum {
  TIMER_NONE = -1,
  TIMER_HEAD,
  TIMER_BODY,
  TIMER_IDLE,
  TIMER_WRITE,
  TIMER_LINGER,
  TIMER_HANDLER, /* the host holds a request it has not started answering */
  TIMER__COUNT
} piston__timer_kind;

typedef struct piston__conn piston__conn;

typedef struct {
  piston__conn *head, *tail;
} piston__timer_list;

/* ---- loop ---- */

typedef enum { TAG_CONN, TAG_LISTENER, TAG_INBOX, TAG_TIMER } piston__tag;

typedef struct {
  uint8_t tag;
  int fd;
  bool shared; /* not ours to close when shared with other loops */
  bool in_epoll;
} piston__listener;

struct piston_loop {
  piston_server *srv;
  int epfd;
  uint8_t inbox_tag, timer_tag; /* epoll data points here */
  int evfd, tfd;
  piston__listener listeners[PISTON_MAX_LISTENERS];
  size_t nlisteners;
  bool accepting;

  size_t nconns;
  uint64_t now_ms;
  piston__timer_list timers[TIMER__COUNT];
  uint64_t timer_armed_ms; /* 0: disarmed */

  piston__conn *pending; /* conns needing conn_run this pass */
  piston__conn *dirty;   /* conns with output to flush this pass */
  bool dispatched;       /* a request reached the host this pass */

  pthread_mutex_t inbox_lock;
  piston_req *inbox; /* posts from other threads, LIFO */
  atomic_int stop_requested;
  atomic_int close_idle_requested;
  atomic_int stop_deadline_ms;
  bool stopping;
  uint64_t stop_at_ms;
  bool stopped;

  piston__conn *dead;        /* closed this pass, freed at its end */
  piston__conn *all;         /* every open connection */
  uint64_t accept_resume_ms; /* accept paused (fd limit) until then */

  char **rbuf_free; /* spare read buffers, so idle conns need none */
  size_t nrbuf_free;
};

/* ---- connections ---- */

typedef enum {
  CONN_IDLE,    /* between requests, no byte of the next yet */
  CONN_HEAD,    /* reading a request head */
  CONN_ACTIVE,  /* a request is with the host or being answered */
  CONN_CLOSING, /* flushing the last response, then close */
  CONN_LINGER,  /* write side shut; draining input before close */
  CONN_CLOSED,  /* freed at the end of the poll pass */
} piston__conn_state;

struct piston__conn {
  uint8_t tag; /* TAG_CONN: first, as epoll data points here */
  uint8_t state;
  bool readable, writable, peer_eof;
  bool rdhup; /* epoll saw the peer's FIN: read to EOF, no shortcuts */
  bool in_pending, in_dirty;
  bool parse_paused; /* llhttp stopped at the end of a message */
  bool broken;       /* framing error: never reuse */
  int fd;
  atomic_int local_port; /* learnt on the first ask; 0: not yet, -1: none */
  piston_loop *loop;
  llhttp_t parser;
  char *rbuf;
  uint32_t rlen, rpos; /* bytes in rbuf; bytes handed to llhttp */
  piston_req *req;     /* the request being read or answered */
  piston_req *spare;   /* a finished request kept for reuse */
  piston__outq out;
  int reject_status; /* set by parse callbacks to reject with this status */
  uint32_t served;
  bool hosted;          /* a request of this connection reached the host */
  uint64_t id;          /* requests answered on this connection */
  uint32_t keep;        /* rbuf bytes the current head occupies */
  bool abort_requested; /* the host aborted the exchange */
  piston__conn *pending_next, *dirty_next;
  piston__conn *aprev, *anext; /* the loop's list of all connections */
  piston__conn *tprev, *tnext;
  uint64_t deadline_ms;
  int8_t timer;
  struct sockaddr_storage peer;
  socklen_t peer_len;
};

/* ---- requests ---- */

typedef struct {
  uint32_t name_off, name_len, value_off, value_len;
} piston__hdr;

typedef enum { RESP_NONE, RESP_STARTED, RESP_ENDED } piston__resp_state;

/* What other threads ask the loop to do for a request. */
enum {
  POST_OUTPUT = 1,
  POST_END = 2,
  POST_RESUME = 4,
  POST_ABORT = 8,
};

struct piston_req {
  atomic_int refs;
  piston_loop *loop;
  piston__conn *conn; /* NULL once detached (client gone) */
  pthread_mutex_t lock;

  /* The head, as offsets into base (the connection's read buffer). If the
   * connection needs its buffer back while the handle lives, the request
   * takes the buffer (owned_base) and the connection gets a new one. */
  const char *base;
  char *owned_base;
  uint32_t method_off, method_len, target_off, target_len;
  uint32_t path_off, path_len, query_off, query_len;
  uint32_t version_off, version_len;
  piston__hdr *hdrs;
  uint32_t nhdrs, hdrcap;
  piston__hdr hdr_inline[16];
  int8_t minor;
  bool host_seen_twice, in_value;
  uint32_t nhost;
  int64_t content_length;
  bool is_head;
  bool native; /* answered by a native route; the body is discarded */
  bool keepalive;

  /* body, guarded by lock */
  char *body;
  size_t body_len, body_cap, body_pos;
  uint64_t body_total;
  bool body_done, body_too_big, expect_continue, discard_body;
  bool reading_paused; /* the engine stopped reading: buffer full */
  bool headers_done, url_done;
  bool hdr_open;

  /* response */
  uint8_t resp;    /* as the host sees it (guarded by lock) */
  bool loop_ended; /* the loop has queued the end: only the loop's view
                      decides when the connection moves on, so bytes still
                      in the post queue are never left behind */
  int status;
  bool chunked, no_body, close_after;
  int64_t resp_left; /* -1: no Content-Length */
  uint64_t resp_bytes;

  /* the peer, copied at the start of each request so that it outlives the
   * connection; formatted on first use */
  union {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
  } peer;
  char peer_text[46];
  int peer_port;
  bool peer_done;
  uint64_t conn_id;

  /* events */
  piston_req_event_cb ev_cb;
  void *ev_ud;
  void *userdata;
  bool closed;              /* the client is gone (guarded by lock) */
  bool want_drain;          /* a write reported pressure (guarded by lock) */
  atomic_ullong out_queued; /* bytes queued on the connection, for writers */

  /* posts from other threads (guarded by lock) */
  piston__outq post;
  unsigned post_flags;
  piston_req *inbox_next; /* guarded by the loop's inbox_lock */
  bool in_inbox;
};

/* thread of the loop currently inside a poll pass, NULL otherwise */
extern _Thread_local piston_loop *piston__current_loop;

/* loop.c */
void piston__loop_post(piston_loop *loop, piston_req *req);
void piston__loop_wake(piston_loop *loop);

/* loop.c */
void piston__loop_conn_closed(piston_loop *loop);
char *piston__rbuf_get(piston_loop *loop);
void piston__rbuf_put(piston_loop *loop, char *buf);
uint32_t piston__rbuf_size(const piston_server *srv);

/* timer.c */
void piston__timers_expire(piston_loop *loop);
void piston__timers_arm(piston_loop *loop);
uint64_t piston__now_ms(void);

/* conn.c */
void piston__conn_accepted(piston_loop *loop, int fd,
                           const struct sockaddr_storage *peer, socklen_t len);
void piston__conn_on_io(piston__conn *c, uint32_t events);
void piston__conn_run(piston__conn *c);
void piston__conn_flush(piston__conn *c);
void piston__conn_mark_pending(piston__conn *c);
void piston__conn_mark_dirty(piston__conn *c);
void piston__conn_close(piston__conn *c);
void piston__conn_timeout(piston__conn *c, int kind);
void piston__conn_stop(piston__conn *c); /* graceful stop: no more reuse */
bool piston__conn_is_idle(const piston__conn *c);
void piston__conn_request_done(piston__conn *c);
void piston__conn_reject(piston__conn *c, int status);
void piston__timer_set(piston__conn *c, int kind);

/* parse.c */
extern const llhttp_settings_t piston__parser_settings;

/* request.c */
piston_req *piston__req_new(piston_loop *loop, piston__conn *c);
void piston__req_reset(piston_req *req, piston__conn *c);
void piston__req_free(piston_req *req);
int piston__req_body_append(piston_req *req, const char *p, size_t n);
void piston__req_notify(piston_req *req, int events);
void piston__req_detach(piston_req *req); /* the client is gone */
void piston__req_apply_post(piston_req *req);

/* response.c */
int piston__resp_error(piston__outq *q, int status, bool head_only);
int piston__resp_simple(piston__outq *q, int status, const char *extra,
                        bool keep, bool head_only);
int piston__head_begin(piston__outq *q, int status);
void piston__req_update_pressure(piston_req *req);
void piston__access_log(piston_req *req);

/* server.c */
bool piston__valid_header(const piston_header *h);

/* router.c */
bool piston__route(piston__conn *c, piston_req *req);

/* status.c */
const char *piston__status_line(int status, size_t *len);
const char *piston__reason(int status);

/* date.c: "Date: <IMF-fixdate>\r\n", 37 bytes, cached per thread */
#define PISTON_DATE_LINE_LEN 37
const char *piston__date_line(void);

/* log */
void piston__log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static inline piston_str piston__slice(const char *base, uint32_t off,
                                       uint32_t len) {
  return (piston_str){base ? base + off : NULL, len};
}

#endif
