/* The HTTP/1.1 protocol handler: the first handler of every connection.
 * llhttp (parse.c) records a request's head into an exchange and pauses;
 * the handler then routes it (router.c: native routes) or hands it to the
 * host, one request at a time, and keeps the connection alive or closes
 * it when the response is done. Owned by http1.c. */
#ifndef PISTON_HTTP1_H
#define PISTON_HTTP1_H

#include "req.h"

#include <llhttp.h>

/* IDLE: between requests, no byte of the next yet. HEAD: reading a head.
 * ACTIVE: a request is with the host or a native route, being answered. */
typedef enum { H1_IDLE, H1_HEAD, H1_ACTIVE } piston__h1_state;

/* Why llhttp stopped short of the buffer's end. */
typedef enum { H1_RUNNING, H1_AT_HEAD, H1_AT_END } piston__h1_pause;

typedef struct {
  piston__conn conn; /* first: the connection this handler runs */
  uint8_t state;
  uint8_t paused;  /* piston__h1_pause */
  bool head_ready; /* parse.c recorded a head that awaits dispatch */
  bool broken;     /* framing error: never reuse */
  bool hosted;     /* a request of this connection reached the host */
  llhttp_t parser;
  piston_req *req;   /* the request being read or answered */
  piston_req *spare; /* a finished request kept for reuse */
  void *ws;          /* the WebSocket handler's state, once it took over */
  void *h2;          /* the HTTP/2 handler's, likewise (h2.c) */
  bool fin_sent;     /* raw: the host's direction is shut (our FIN is out) */
  int reject_status; /* set by parse callbacks to reject with this status */
  /* llhttp's name and reason of the parse error being rejected (static
   * strings), for the client-error callback; NULL for the engine's own */
  const char *err_name, *err_reason;
  /* the read buffer's bytes llhttp was given when the request failed
   * [err_off, err_end) and where it stopped (err_pos), for the same
   * callback; err_data false when the rejection had none (a timeout) */
  bool err_data;
  uint32_t err_off, err_pos, err_end;
  uint32_t served;
  uint32_t keep; /* rbuf bytes the current head occupies */
} piston__h1;

static inline piston__h1 *piston__h1_of(piston__conn *c) {
  return (piston__h1 *)(void *)c;
}

/* http1.c: the accept entry the server installs for its loops */
void piston__h1_accept(piston_loop *loop, int fd,
                       const struct sockaddr_storage *peer, socklen_t len,
                       bool tls);
/* An engine-made response on q: status, Date, a text/plain body that is
 * the reason phrase, extra header lines (may be NULL) and Connection:
 * close unless keep. */
int piston__h1_simple(piston__outq *q, int status, const char *extra, bool keep,
                      bool head_only);

/* The HTTP/1.1 handler's own ops, for a handler that took the connection
 * over and shares its memory (ws.c): let go of the exchange and the spare,
 * tell the host; free the allocation. */
void piston__h1_closing(piston__conn *c);
void piston__h1_destroy(piston__conn *c);
/* Gives the connection to proto for the exchange h->req, whose upgrade
 * state becomes open (UPGRADE_WS_OPEN, UPGRADE_RAW_OPEN); no timer runs
 * from then on (the new handler sets its own). */
void piston__h1_hand_over(piston__h1 *h, const piston__proto *proto,
                          int open_state);

/* router.c: an HTTP/2 stream's head for an engine-made answer: :status,
 * date, then the fields given as HTTP/1.1 lines ("Name: v\r\n"...). */
int piston__h2_native_head(piston_req *r, int status, const char *lines,
                           size_t n);

/* parse.c */
extern const llhttp_settings_t piston__parser_settings;

/* router.c: answers req from a native route if one matches (or with a
 * 404/405 when no host is there to ask). Returns true if it did. */
bool piston__route(piston__h1 *h, piston_req *req);
/* The same for any exchange on c: an HTTP/2 stream's answer is left as its
 * fields and body (req->h2_head, h2_out) for the HTTP/2 handler. */
bool piston__route_exchange(piston__conn *c, piston_req *req);

#endif
