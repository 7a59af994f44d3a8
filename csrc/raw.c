/* The raw protocol handler: the byte stream of a connection whose host took
 * it over after an upgrade request or a CONNECT (piston_raw_takeover), for
 * protocols the engine does not speak. Client bytes go into the exchange's
 * body buffer (with its backpressure: reading pauses while the host has not
 * taken them); the host's bytes leave through the writer as they are. */
#define _GNU_SOURCE
#include "util.h"
#include "ws.h"

#include <string.h>

#define READ_BUDGET 4

static const piston__proto raw_proto;

/* Moves what the read buffer holds to the host's side. */
static bool hand_over(piston__conn *c, piston_req *r) {
  uint32_t n = c->rlen - c->rpos;
  if (n == 0)
    return true;
  if (piston__req_body_append(r, c->rbuf + c->rpos, n) != 0) {
    piston__conn_close(c);
    return false;
  }
  c->rlen = c->rpos = 0;
  return true;
}

static void raw_run(piston__conn *c) {
  piston__h1 *h = piston__h1_of(c);
  piston_req *r = h->req;
  int budget = READ_BUDGET;
  bool arrived = false;
  if (r->abort_requested) {
    /* piston_resp_abort: what the host queued still goes out, then the
     * connection closes (as a socket.destroy() after a write) */
    piston__conn_finish(c);
    return;
  }
  while (c->state == CONN_OPEN && c->readable && !c->peer_eof &&
         !r->reading_paused) {
    if (budget-- == 0) {
      piston__conn_mark_pending(c);
      break;
    }
    int n = piston__conn_read(c);
    if (n == -2)
      return;
    if (n < 0)
      break;
    if (n == 0) {
      pthread_mutex_lock(&r->lock);
      r->body_done = true; /* the client shut its direction */
      pthread_mutex_unlock(&r->lock);
      arrived = true;
      break;
    }
    if (!hand_over(c, r))
      return;
    arrived = true;
  }
  piston__conn_rbuf_release(c);
  if (arrived)
    piston__req_notify(r, PISTON_EV_BODY);
  if (c->state == CONN_OPEN && c->peer_eof && h->fin_sent) {
    piston__conn_close(c); /* both directions have ended */
    return;
  }
  if (c->state == CONN_OPEN && (r->raw_shut || c->out.pending))
    piston__conn_mark_dirty(c);
}

static void raw_flushed(piston__conn *c, bool sent) {
  (void)sent;
  piston__h1 *h = piston__h1_of(c);
  piston_req *r = h->req;
  piston__req_update_pressure(r);
  if (c->state != CONN_OPEN || !r->raw_shut || c->out.pending || h->fin_sent)
    return;
  /* the host is done and what it queued is out: its FIN follows, and the
   * client's bytes are still read (a half-close, as net.Socket's end()),
   * until the client ends too */
  piston__conn_shut_write(c);
  h->fin_sent = true;
  if (c->peer_eof)
    piston__conn_close(c);
}

static void raw_timeout(piston__conn *c, int kind) {
  (void)kind;
  piston__conn_close(c);
}

static void raw_stop(piston__conn *c) {
  (void)c; /* the host's stream: it ends it, or the stop's deadline does */
}

static bool raw_idle(const piston__conn *c) {
  (void)c;
  return false;
}

static void raw_closing(piston__conn *c) {
  piston__req_detach(piston__h1_of(c)->req);
  piston__h1_closing(c);
}

static const piston__proto raw_proto = {
    .run = raw_run,
    .flushed = raw_flushed,
    .timeout = raw_timeout,
    .stop = raw_stop,
    .idle = raw_idle,
    .closing = raw_closing,
    .destroy = piston__h1_destroy,
};

void piston__raw_start(piston__h1 *h) {
  piston__conn *c = &h->conn;
  piston_req *r = h->req;
  piston__h1_hand_over(h, &raw_proto, UPGRADE_RAW_OPEN);
  /* bytes behind the head are the stream's first */
  if (!hand_over(c, r))
    return;
  if (r->body_len > r->body_pos)
    piston__req_notify(r, PISTON_EV_BODY);
  piston__conn_mark_pending(c);
}
