/* The exchange layer's handle: one request and its response, as the host
 * sees it (piston_req). Its lifetime (a reference count shared by the
 * protocol handler, the host and the loop's inbox), the views of the head,
 * the request body buffer, events, and the exchange's state, which moves
 * only through the transitions below and the writer (response.c). Owned
 * by request.c. */
#ifndef PISTON_REQ_H
#define PISTON_REQ_H

#include "cachestore.h"
#include "conn.h"
#include "wsdeflate.h"
#include "outq.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

typedef struct {
  uint32_t name_off, name_len, value_off, value_len;
} piston__hdr;

/* A WebSocket message received whole, waiting for the host. */
typedef struct piston__wsmsg {
  struct piston__wsmsg *next;
  int opcode;
  size_t len;
  char data[];
} piston__wsmsg;

/* What the exchange became after an upgrade: a WebSocket session (WS: the
 * host queued the 101; WS_OPEN: the WebSocket handler runs the connection)
 * or a raw byte stream the host took over (RAW, then RAW_OPEN once the raw
 * handler runs it). */
typedef enum {
  UPGRADE_NONE,
  UPGRADE_WS,
  UPGRADE_WS_OPEN,
  UPGRADE_RAW,
  UPGRADE_RAW_OPEN
} piston__upgrade_state;

/* The response as the host sees it. NONE -> STARTED -> ENDED, or NONE ->
 * ENDED when the engine answers in the host's place (a native route, an
 * error, a timeout, an abort before the start). */
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
  uint32_t nhost;
  int64_t content_length;
  bool is_head;
  bool has_upgrade; /* an Upgrade field came (llhttp's F_UPGRADE) */
  bool native;      /* answered by a native route; the body is discarded */
  bool keepalive;

  /* body, guarded by lock */
  char *body;
  size_t body_len, body_cap, body_pos;
  uint64_t body_total;
  bool body_done, body_too_big, expect_continue, discard_body;
  /* the engine stopped reading, its buffer full: written under lock, read
   * by the loop without it (hence atomic) */
  atomic_bool reading_paused;
  bool headers_done, url_done;
  bool hdr_open;
  /* the loop has bytes of the next pipelined request behind this one's end
   * (written by the loop, read by writers on any thread) */
  atomic_bool more_buffered;

  /* response */
  uint8_t resp;         /* as the host sees it (guarded by lock) */
  bool loop_ended;      /* the loop has queued the end: only the loop's view
                           decides when the connection moves on, so bytes still
                           in the post queue are never left behind */
  bool abort_requested; /* the host gave up mid-response: close */
  int status;
  bool chunked, no_body, close_after;
  bool overflowed;   /* the host wrote past its Content-Length (logged) */
  int64_t resp_left; /* -1: no Content-Length */
  uint64_t resp_bytes;

  /* upgrades (guarded by lock) */
  uint8_t upgrade;    /* piston__upgrade_state */
  bool raw_shut;      /* raw: the host ended its direction */
  bool ws_close_sent; /* a close frame is queued: nothing may follow it */
  int ws_code;        /* how the session ended (piston_ws_close_code) */
  piston__pmd ws_pmd; /* permessage-deflate, as negotiated at the accept */
  uint8_t ws_reason_len;
  char ws_reason[123]; /* the peer's close reason */
  /* the host takes pings and pongs too (piston_ws_control_events): set
   * from any thread, read by the handler for each control frame */
  atomic_bool ws_control;
  /* topics subscribed to (pubsub.c, guarded by the server's pubsub lock);
   * ws_unsub drops them when the session ends: a pointer, so that the
   * WebSocket handler reaches the writer's pubsub without a call upward */
  void **ws_topics;
  size_t ws_ntopics, ws_ctopics;
  bool ws_topics_closed; /* the session ended: no more subscriptions */
  void (*ws_unsub)(piston_req *req);
  piston__wsmsg *ws_head, *ws_tail; /* received, not taken yet */
  piston__wsmsg *ws_taken;          /* the last one taken, freed next */
  size_t ws_queued;                 /* bytes in ws_head.. */

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
  piston__tlsinfo *tls; /* the connection's, a reference; NULL: plain */
  /* what a trusted proxy said (forwarded.c), for this request only */
  bool fwd_peer;      /* peer replaced by the forwarded client */
  uint8_t fwd_scheme; /* 0: none said, 1: http, 2: https */
  uint32_t fwd_host_off, fwd_host_len; /* into base; len 0: none */
  int fwd_port, fwd_xport; /* the host's own :port; X-Forwarded-Port */
  /* the access log's (accesslog.c): when the request began, and the
   * response headers its format reads, captured at the start */
  uint64_t t_start_ns;
  /* with the host, counted in the server's in-flight figures (router.c
   * sets it; piston__req_inflight_done takes it back, once) */
  atomic_bool inflight;
  char *alog_out;
  size_t alog_out_len, alog_out_cap;

  /* HTTP/2 (h2.c): the exchange is a stream. Its response head and
   * trailers wait here as fields (piston__h2_field_add's format) until the
   * handler submits them, and its body in h2_out, the exchange's sink in
   * place of the connection's queue (all guarded by lock). */
  bool h2;
  char *h2_head, *h2_trailers;
  size_t h2_head_len, h2_head_cap, h2_trailers_len, h2_trailers_cap;
  char *h2_info; /* 1xx heads not submitted yet, each from its :status */
  size_t h2_info_len, h2_info_cap;
  piston__outq h2_out;
  uint64_t body_taken; /* body bytes the host has read: the window's */

  /* events */
  piston_req_event_cb ev_cb;
  void *ev_ud;
  void *userdata;
  bool closed;              /* the client is gone (guarded by lock) */
  bool want_drain;          /* a write reported pressure (guarded by lock) */
  atomic_ullong out_queued; /* bytes queued on the connection, for writers */

  /* the response cache (cache.c, cachecap.c). cache_lead is set before
   * the host sees the request and read by the writer; cache_pend and
   * cache_wait are guarded by the cache's lock, cache_cap by lock.
   * cache_leave (a pointer, so that this layer calls nothing above it)
   * hands a miss this request was filling to the requests waiting on it
   * when the request ends without filling it. */
  bool cache_lead;                  /* its response may fill a miss */
  bool cache_parked;                /* waits on another request's miss */
  struct piston__cpend *cache_pend; /* the miss it fills, until filled */
  piston__cwaiter cache_wait;
  piston__post cache_post;        /* a waiter's wake-up, on its loop */
  struct piston__ccap *cache_cap; /* the response being captured */
  /* waiters the capture's end released, woken once the writer has let go
   * of lock (guarded by lock) */
  piston__cwaiter *cache_woken;
  void (*cache_leave)(piston_req *req);

  /* posts from other threads (guarded by lock) */
  piston__outq postq;
  unsigned post_flags;
  piston__post post; /* the inbox item (response.c applies it) */
};

piston_req *piston__req_new(piston__conn *c);
/* Ready for the next request on c; keeps allocations. */
void piston__req_reset(piston_req *req, piston__conn *c);
void piston__req_free(piston_req *req);
int piston__req_body_append(piston_req *req, const char *p, size_t n);
void piston__req_notify(piston_req *req, int events);
void piston__req_detach(piston_req *req); /* the client is gone */
/* Loop thread, after a flush: tell a waiting writer it may go on. */
void piston__req_update_pressure(piston_req *req);
/* accesslog.c: the exchange has ended (its response is whole, or the
 * engine answered): counted in the metrics, and its line into the loop's
 * log buffer */
void piston__req_access_log(piston_req *req);
/* No longer with the host (ended, or the client gone): out of the
 * in-flight count. Any thread; only the first call counts. */
void piston__req_inflight_done(piston_req *req);
/* accesslog.c: keeps the response headers the log's format reads */
void piston__alog_capture(piston_req *req, const piston_header *h, size_t n);

/* Transitions of the exchange's state made by the engine (the host's own
 * are the writer's). */
/* A native route answered req in full (close: the connection must not be
 * reused). */
void piston__req_native_answered(piston_req *req, int status, bool close);
/* The engine answers in the host's place: returns the state the host had
 * reached; if it was RESP_NONE the exchange is now ended and dead to the
 * host. */
int piston__req_engine_answers(piston_req *req, int status);
/* The loop has queued the response's end (a direct end, or a posted one
 * taken from the inbox). */
void piston__req_loop_end(piston_req *req);
/* Where the exchange's response bytes go on the loop: the connection's
 * queue (HTTP/1.1), or the stream's own (HTTP/2). */
static inline piston__outq *piston__req_sink(piston_req *r) {
  return r->h2 ? &r->h2_out : &r->conn->out;
}
/* Whether some field named name lists tok (comma-separated, any case). */
bool piston__req_lists_token(const piston_req *r, const char *name, size_t nlen,
                             const char *tok);
/* Splits the target into the path and query views (parse.c, h2.c). */
void piston__req_split_target(piston_req *r);
/* HTTP/2 fields, appended to *buf: a u32 name length, a u32 value length,
 * the name in lower case, the value. Fields HTTP/2 forbids (Connection,
 * Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade: RFC 9113
 * 8.2.2) are dropped here, for every host. */
int piston__h2_field_add(char **buf, size_t *len, size_t *cap, const char *name,
                         size_t nlen, const char *value, size_t vlen);
/* forwarded.c: believes a trusted proxy's X-Forwarded-* or Forwarded
 * fields (once, when the head is complete) */
void piston__forwarded_apply(piston_req *req, const piston_server *srv);
/* Loop thread: a WebSocket message for the host (takes msg). */
void piston__req_ws_deliver(piston_req *req, piston__wsmsg *msg);

#endif
