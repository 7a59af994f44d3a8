/* The HTTP/1.1 protocol handler: reads a connection's requests through
 * llhttp (parse.c records each head and pauses), dispatches each to a
 * native route or the host once llhttp_execute has returned, and keeps the
 * connection for the next request or closes it.
 *
 * One request at a time: when a message is complete the parser pauses, and
 * the next pipelined request is parsed only once this one's response has
 * ended. Responses that end within one poll pass are flushed together. */
#define _GNU_SOURCE
#include "h2.h"
#include "http1.h"
#include "metrics.h"
#include "trust.h"
#include "util.h"
#include "ws.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reads per connection per pass, so one fast client cannot starve others. */
#define READ_BUDGET 4

static const piston__proto h1_proto;

static const piston_server *srv_of(const piston__h1 *h) {
  return h->conn.io.loop->srv;
}

/* Every move of the handler's state passes here. */
static void set_state(piston__h1 *h, piston__h1_state to) {
  assert((h->state == H1_IDLE && to == H1_HEAD) ||
         (h->state == H1_HEAD && to == H1_ACTIVE) ||
         (h->state == H1_ACTIVE && (to == H1_IDLE || to == H1_HEAD)));
  assert(h->conn.state == CONN_OPEN);
  h->state = (uint8_t)to;
}

void piston__h1_accept(piston_loop *loop, int fd,
                       const struct sockaddr_storage *peer, socklen_t len,
                       bool tls) {
  piston__h1 *h = calloc(1, sizeof *h);
  if (!h) {
    close(fd);
    return;
  }
  h->state = H1_IDLE;
  llhttp_init(&h->parser, HTTP_REQUEST, &piston__parser_settings);
  h->parser.data = h;
  if (piston__conn_init(&h->conn, loop, fd, peer, len, &h1_proto) < 0) {
    free(h);
    return;
  }
  /* a trusted proxy's connection opens with its PROXY header; anyone
   * else's is a direct client's, whose bytes are HTTP from the first */
  if (loop->srv->opt[PISTON_OPT_PROXY_PROTOCOL] &&
      piston__trust_peer(loop->srv->trust, (const struct sockaddr *)peer))
    h->conn.proxy_wait = true;
  if (tls && piston__tls_attach(&h->conn, loop->srv->tls) < 0) {
    piston__conn_close(&h->conn); /* freed at the end of the pass */
    return;
  }
  /* the head timeout runs from accept: a client that connects and says
   * nothing is closed silently when it expires */
  piston__conn_timer(&h->conn, TIMER_HEAD);
}

/* ---- engine-made responses ---- */

static const char plain_type[] = "Content-Type: text/plain; charset=utf-8\r\n";

int piston__h1_simple(piston__outq *q, int status, const char *extra, bool keep,
                      bool head_only) {
  const char *reason = piston__reason(status);
  if (!reason)
    reason = "Error";
  size_t sl_len;
  const char *sl = piston__status_line(status, &sl_len);
  size_t rlen = strlen(reason);
  size_t cap = sl_len + PISTON_DATE_LINE_LEN + sizeof plain_type +
               (extra ? strlen(extra) : 0) + rlen + 96;
  char *p = piston__outq_reserve(q, cap);
  if (!p)
    return PISTON_ENOMEM;
  int n = snprintf(p, cap, "%s%s%s%sContent-Length: %zu\r\n%s\r\n%s%s", sl,
                   piston__date_line(), plain_type, extra ? extra : "",
                   rlen + 1, keep ? "" : "Connection: close\r\n",
                   head_only ? "" : reason, head_only ? "" : "\n");
  piston__outq_commit(q, (size_t)n);
  return 0;
}

/* node:http's own rejections (PISTON_OPT_HEAD_STYLE 1 and 2): a status
 * line and Connection: close, nothing else; node's phrase for 413. */
static int h1_bare(piston__outq *q, int status) {
  const char *reason =
      status == 413 ? "Payload Too Large" : piston__reason(status);
  char *p = piston__outq_reserve(q, 96);
  if (!p)
    return PISTON_ENOMEM;
  int n = snprintf(p, 96, "HTTP/1.1 %03d %s\r\nConnection: close\r\n\r\n",
                   status, reason ? reason : "Error");
  piston__outq_commit(q, (size_t)n);
  return 0;
}

/* ---- the request leaving the connection ---- */

/* The current request leaves the connection. If the host still holds it,
 * the head slices must stay valid: the request takes the read buffer. */
static void drop_req(piston__h1 *h) {
  piston__conn *c = &h->conn;
  piston_req *r = h->req;
  h->req = NULL;
  if (!r)
    return;
  if (atomic_load(&r->refs) == 1 && !h->spare) {
    h->spare = r; /* nobody else holds it: reuse for the next request */
    return;
  }
  /* Pipelined bytes behind the head move to a fresh buffer, copied before
   * the request is released: the host may free it (and the buffer) on
   * another thread the moment our reference goes. */
  bool give = c->rbuf && r->base == c->rbuf;
  uint32_t left = c->rlen - c->rpos;
  char *fresh = NULL;
  if (give && left > 0 && c->state != CONN_CLOSED) {
    fresh = piston__bufpool_get(&c->io.loop->rbufs);
    if (fresh)
      memcpy(fresh, c->rbuf + c->rpos, left);
    else
      h->broken = true;
  }
  pthread_mutex_lock(&r->lock);
  r->conn = NULL;
  if (give)
    r->owned_base = c->rbuf;
  pthread_mutex_unlock(&r->lock);
  piston_req_release(r);
  if (give) {
    c->rbuf = fresh;
    c->rlen = fresh ? left : 0;
    c->rpos = 0;
  }
}

/* ---- timers ---- */

/* With the handler timeout on: whether the host holds r without having
 * started its response, and whether the client waits for the 100 Continue
 * that the host's first body read sends. The host changes both from any
 * thread, hence the lock (taken only when the timeout is on). */
static bool host_owes_response(const piston__h1 *h, piston_req *r,
                               bool *owes_continue) {
  *owes_continue = false;
  if (srv_of(h)->opt[PISTON_OPT_HANDLER_TIMEOUT_MS] <= 0 || r->native ||
      r->loop_ended)
    return false;
  pthread_mutex_lock(&r->lock);
  bool owed = r->resp == RESP_NONE;
  *owes_continue = owed && r->expect_continue;
  pthread_mutex_unlock(&r->lock);
  return owed;
}

/* The timer the connection's state calls for.
 *
 * While the host holds a request there is one timer slot for two limits.
 * The body timeout runs while the engine waits on the client for body
 * bytes: a slow upload is the client's fault (408), and the app cannot
 * answer before it has the body it is reading. The handler timeout runs
 * while the wait is on the host: the body is complete, or reading paused
 * because the host has not consumed what is buffered, or the client waits
 * for a 100 Continue that the host's first read would send. Each switch
 * from body to handler starts the handler timeout afresh (a list's entries
 * must share one duration from the moment they are set), so it bounds one
 * uninterrupted stretch in which only the host can make progress. */
static void restore_timer(piston__h1 *h) {
  piston__conn *c = &h->conn;
  int kind = TIMER_NONE;
  if (c->state == CONN_CLOSING) {
    kind = TIMER_WRITE;
  } else if (c->state == CONN_LINGER) {
    kind = TIMER_LINGER;
  } else {
    switch (h->state) {
    case H1_IDLE: kind = TIMER_IDLE; break;
    case H1_HEAD:
      return; /* runs from the first byte; progress does not extend it */
    case H1_ACTIVE: {
      piston_req *r = h->req;
      if (!r)
        break;
      bool owes_continue;
      bool owed = host_owes_response(h, r, &owes_continue);
      if (!r->body_done && (!r->reading_paused || r->discard_body) &&
          !owes_continue)
        kind = TIMER_BODY;
      else if (owed)
        kind = TIMER_HANDLER;
      break;
    }
    }
  }
  if (c->out.pending && !c->writable)
    kind = TIMER_WRITE;
  if (kind != c->io.timer || kind == TIMER_BODY || kind == TIMER_WRITE)
    piston__conn_timer(c, kind);
}

/* ---- the engine answering in the host's place ---- */

/* Tells the host of a rejection; offer: the host may take the connection
 * and answer it itself (piston_loop_client_error_take). Returns whether it
 * did. */
static bool report_client_error(piston__h1 *h, int status, bool offer) {
  const piston_server *srv = srv_of(h);
  if (!srv->on_client_error)
    return false;
  char addr[46];
  int port;
  piston__conn *c = &h->conn;
  piston__conn_peer_text(c, addr, sizeof addr, &port);
  piston_loop *l = c->io.loop;
  l->cerr_name = h->err_name;
  l->cerr_reason = h->err_reason;
  l->cerr_h1 = offer ? h : NULL;
  l->cerr_taken = NULL;
  l->cerr_conn = c->id;
  if (h->err_data && c->rbuf) {
    l->cerr_data = c->rbuf + h->err_off;
    l->cerr_len = h->err_end - h->err_off;
    l->cerr_parsed = h->err_pos - h->err_off;
  }
  srv->on_client_error(l, status, addr, port, srv->on_client_error_ud);
  bool taken = l->cerr_taken != NULL;
  l->cerr_name = l->cerr_reason = NULL;
  l->cerr_h1 = NULL;
  l->cerr_taken = NULL;
  l->cerr_data = NULL;
  l->cerr_len = l->cerr_parsed = 0;
  l->cerr_conn = 0;
  h->err_name = h->err_reason = NULL;
  h->err_data = false;
  return taken;
}

piston_req *piston_loop_client_error_take(piston_loop *l) {
  piston__h1 *h = l->cerr_h1;
  if (!h)
    return NULL;
  l->cerr_h1 = NULL; /* one taker */
  piston__conn *c = &h->conn;
  piston_req *r = h->req;
  if (!r) {
    r = h->spare;
    h->spare = NULL;
    if (!r && !(r = piston__req_new(c)))
      return NULL;
    h->req = r;
  }
  /* only the engine held it (report_client_error's offer): a fresh
   * exchange that is a raw stream from the start, with no head of its own */
  assert(atomic_load(&r->refs) == 1);
  piston__req_reset(r, c);
  r->resp = RESP_ENDED; /* no HTTP response: the host writes its own */
  r->upgrade = UPGRADE_RAW;
  r->loop_ended = true;
  atomic_fetch_add(&r->refs, 1); /* the host's reference */
  l->cerr_taken = r;
  return r;
}

/* The host took a rejected connection: it is the host's raw stream now. */
static void host_answers(piston__h1 *h) {
  piston__conn *c = &h->conn;
  /* the host had the buffered bytes as the error's; only what the client
   * sends from now on is the stream's */
  c->rlen = c->rpos = 0;
  if (c->peer_eof) {
    /* the client ended already: its stream has no byte to come */
    pthread_mutex_lock(&h->req->lock);
    h->req->body_done = true;
    pthread_mutex_unlock(&h->req->lock);
  }
  piston__raw_start(h);
  /* node's socket stays as long as the listener leaves it; here the
   * keep-alive timeout bounds it, so that a host doing nothing cannot hold
   * the connection */
  if (c->state == CONN_OPEN)
    piston__conn_timer(c, TIMER_IDLE);
}

/* The host held r past the handler timeout without starting a response.
 * One line, because the app's own logs cannot tell that the client got an
 * answer from the engine rather than from the app. */
static void log_handler_timeout(const piston__h1 *h, const piston_req *r) {
  piston_str m = piston_req_method(r), p = piston_req_path(r);
  piston__log("handler timeout: %.*s %.*s not answered within %lld ms: sent "
              "503",
              (int)m.len, m.ptr, (int)(p.len > 256 ? 256 : p.len), p.ptr,
              (long long)srv_of(h)->opt[PISTON_OPT_HANDLER_TIMEOUT_MS]);
}

/* Answers with an engine error instead of the host, then closes. host_late:
 * the error is the host's fault (a handler timeout), so it is not reported
 * as a client error, and a host that started its response in the meantime
 * (posted from its thread, not applied yet) keeps it. */
static void engine_answer(piston__h1 *h, int status, bool host_late) {
  piston__conn *c = &h->conn;
  piston_req *r = h->req;
  int resp = r ? piston__req_engine_answers(r, status) : RESP_NONE;
  if (host_late && resp != RESP_NONE) {
    restore_timer(h);
    return;
  }
  h->broken = true;
  if (resp == RESP_STARTED) {
    /* the host already started a response: too late for a status */
    piston__conn_close(c);
    return;
  }
  if (resp == RESP_NONE) {
    if (r && atomic_load(&r->refs) > 1)
      piston__req_notify(r, PISTON_EV_CLOSED |
                                (host_late ? PISTON_EV_TIMEOUT : 0));
    /* the host may answer only a request it never saw, and not a timeout:
     * a slowloris flood is answered here, costing the host nothing per
     * attacker (its listener still hears of each) */
    bool offer =
        !host_late && status != 408 && (!r || atomic_load(&r->refs) == 1);
    if (host_late) {
      log_handler_timeout(h, r);
    } else if (report_client_error(h, status, offer)) {
      if (srv_of(h)->mslot)
        piston__metrics_reject(srv_of(h)->mslot, status);
      host_answers(h);
      return;
    }
    if (srv_of(h)->mslot)
      piston__metrics_reject(srv_of(h)->mslot, status);
    if (r)
      piston__req_access_log(r); /* engine answers are logged too */
    bool bare = !host_late && srv_of(h)->opt[PISTON_OPT_HEAD_STYLE] != 0;
    if ((bare ? h1_bare(&c->out, status)
              : piston__h1_simple(&c->out, status, NULL, false,
                                  r && r->is_head)) != 0) {
      piston__conn_close(c);
      return;
    }
  }
  /* RESP_ENDED: the host's full answer is queued; just do not go on */
  piston__conn_finish(c);
}

static void reject(piston__h1 *h, int status) {
  engine_answer(h, status, false);
}

static int parse_error_status(llhttp_t *p, llhttp_errno_t err) {
  /* llhttp reports a bad line ending after the version with the same code
   * as an unsupported version; only the latter is a 505 */
  const char *why = llhttp_get_error_reason(p);
  if (err == HPE_INVALID_VERSION && why &&
      strcmp(why, "Invalid HTTP version") == 0)
    return 505;
  return 400;
}

/* ---- one request's course ---- */

/* The head is parsed (parse.c paused llhttp there): a native route answers
 * it, or the host gets it. */
static void dispatch(piston__h1 *h) {
  piston__conn *c = &h->conn;
  piston_req *r = h->req;
  set_state(h, H1_ACTIVE);
  piston__conn_timer(c, r->content_length != 0 ? TIMER_BODY : TIMER_NONE);
  if (r->has_upgrade && piston__h2_upgrade(h)) {
    drop_req(h); /* now stream 1, copied: HTTP/1.1 is done with it */
    return;
  }
  if (piston__route(h, r))
    return;
  atomic_fetch_add(&r->refs, 1); /* the host's reference */
  h->hosted = true;
  c->io.loop->dispatched = true;
  if (r->cache_parked)
    return; /* waits on another request's miss (cache.c) */
  const piston_server *srv = srv_of(h);
  srv->on_request(r, srv->on_request_ud);
}

/* The response is out of our hands and the request fully read: keep the
 * connection for the next request, or close it. */
static void request_done(piston__h1 *h) {
  piston__conn *c = &h->conn;
  piston_req *r = h->req;
  assert(h->state == H1_ACTIVE && r && r->loop_ended);
  /* After the client's FIN, requests it sent before it are still answered
   * (a FIN ends only its sending direction), and so are, once the loop
   * stops, the pipelined requests already read (as node:http answers
   * them); the connection closes once none is left. */
  bool nothing_left = c->rpos == c->rlen;
  bool reuse = r->keepalive && !r->close_after && !h->broken &&
               !(c->peer_eof && nothing_left) &&
               !(c->io.loop->stopping && nothing_left);
  h->served++;
  drop_req(h);
  if (!reuse) {
    piston__conn_finish(c);
    return;
  }
  llhttp_resume(&h->parser);
  h->paused = H1_RUNNING;
  uint32_t left = c->rlen - c->rpos;
  if (left == 0) {
    c->rlen = 0;
    piston__conn_rbuf_release(c);
    set_state(h, H1_IDLE);
  } else {
    memmove(c->rbuf, c->rbuf + c->rpos, left);
    c->rlen = left;
    c->rpos = 0;
    set_state(h, H1_HEAD);
  }
  h->keep = 0;
  piston__conn_timer(c, h->state == H1_IDLE ? TIMER_IDLE : TIMER_HEAD);
}

static void parse(piston__h1 *h) {
  piston__conn *c = &h->conn;
  uint32_t start = c->rpos;
  for (;;) {
    start = c->rpos;
    llhttp_errno_t err =
        llhttp_execute(&h->parser, c->rbuf + c->rpos, c->rlen - c->rpos);
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
      c->rpos = (uint32_t)(llhttp_get_error_pos(&h->parser) - c->rbuf);
      if (h->paused == H1_AT_END && h->req) /* before dispatch: see stop */
        atomic_store_explicit(&h->req->more_buffered, c->rpos < c->rlen,
                              memory_order_relaxed);
      if (err == HPE_PAUSED_UPGRADE) {
        /* llhttp stops after a request that asked for an upgrade. One the
         * host took has left HTTP/1.1 before this point (ws.c); one it
         * answered as plain HTTP leaves the connection HTTP/1.1, and the
         * next request is parsed as such. */
        llhttp_resume_after_upgrade(&h->parser);
        continue;
      }
    } else if (err == HPE_OK) {
      c->rpos = c->rlen;
    } else {
      int status = h->reject_status ? h->reject_status
                                    : parse_error_status(&h->parser, err);
      if (!h->reject_status) {
        h->err_name = llhttp_errno_name(err);
        h->err_reason = llhttp_get_error_reason(&h->parser);
      }
      h->reject_status = 0;
      const char *at = llhttp_get_error_pos(&h->parser);
      h->err_data = true;
      h->err_off = start;
      h->err_end = c->rlen;
      h->err_pos = at && at >= c->rbuf + start && at <= c->rbuf + c->rlen
                       ? (uint32_t)(at - c->rbuf)
                       : start;
      reject(h, status);
      return;
    }
    if (!h->head_ready)
      break;
    /* Dispatch outside llhttp's callbacks; then, if llhttp paused at the
     * head, parse on into the body behind it. */
    h->head_ready = false;
    bool body_follows = h->paused == H1_AT_HEAD;
    if (body_follows) {
      h->paused = H1_RUNNING;
      llhttp_resume(&h->parser);
    }
    dispatch(h);
    if (c->state != CONN_OPEN || !body_follows)
      break;
  }
  if (c->state != CONN_OPEN)
    return;
  piston_req *r = h->req;
  if (h->state == H1_HEAD || (h->state == H1_IDLE && c->rlen > 0)) {
    /* the head is still incomplete: keep all of it, and hold it to the
     * limits a complete one would have been checked against */
    if (h->state == H1_IDLE)
      set_state(h, H1_HEAD);
    const piston_server *srv = srv_of(h);
    bool in_url = r && !r->url_done;
    if (c->rlen > (uint64_t)srv->opt[PISTON_OPT_MAX_HEAD_SIZE] ||
        c->rlen == piston__conn_rbuf_size(c)) {
      /* llhttp took all it was given: the limit is the engine's */
      h->err_data = true;
      h->err_off = start;
      h->err_pos = h->err_end = c->rlen;
      reject(h, in_url ? 414 : 431);
    }
    return;
  }
  if (!r || h->state != H1_ACTIVE)
    return;
  if (r->headers_done && c->rpos == c->rlen && h->paused == H1_RUNNING) {
    /* everything after the head was body, now copied out: reuse the room */
    c->rlen = c->rpos = h->keep;
  }
  if (r->body_len > 0 || r->body_done)
    piston__req_notify(r, PISTON_EV_BODY);
  restore_timer(h);
}

/* The client ended within a head the host never saw: llhttp's verdict on
 * the end (HPE_INVALID_EOF_STATE) goes to the host as a rejection with
 * status 0, for nothing is sent: it may answer it itself, as node:http's
 * parser.finish() has its 'clientError' listener do. Returns whether it
 * took the connection. */
static bool eof_in_head(piston__h1 *h) {
  piston_req *r = h->req;
  if (h->state != H1_HEAD || !r || atomic_load(&r->refs) != 1 ||
      !srv_of(h)->on_client_error)
    return false;
  llhttp_errno_t err = llhttp_finish(&h->parser);
  if (err == HPE_OK)
    return false;
  h->err_name = llhttp_errno_name(err);
  h->err_reason = llhttp_get_error_reason(&h->parser);
  if (!report_client_error(h, 0, true))
    return false;
  host_answers(h);
  return true;
}

static void on_eof(piston__h1 *h) {
  piston__conn *c = &h->conn;
  piston_req *r = h->req;
  if (h->state == H1_ACTIVE && r && r->body_done)
    return; /* a half-close after a full request: still answer it */
  if (c->out.pending && h->state != H1_ACTIVE) {
    /* responses already made (a pipelined batch) still go out */
    piston__conn_finish(c);
    return;
  }
  if (eof_in_head(h))
    return;
  piston__conn_close(c);
}

/* ---- the connection layer's ops ---- */

/* Whether the connection is HTTP/2's: 1 if ALPN chose h2 or the client
 * began with the HTTP/2 preface (h2c with prior knowledge), 0 if it speaks
 * HTTP/1.1, -1 while its first bytes are a part of the preface. Only a
 * connection's start can tell. */
static int speaks_h2(piston__h1 *h) {
  piston__conn *c = &h->conn;
  int64_t mode = srv_of(h)->opt[PISTON_OPT_HTTP2];
  if (h->served || h->req || mode == 0)
    return 0;
  if (c->tlsinfo) {
    piston__tlsinfo *ti = c->tlsinfo;
    if (ti->len[PISTON_TLSI_ALPN] == 2 &&
        memcmp(ti->data + ti->off[PISTON_TLSI_ALPN], "h2", 2) == 0)
      return 1;
  }
  if (c->rlen == 0 || mode < 2)
    return 0;
  size_t n = c->rlen < PISTON_H2_PREFACE_LEN ? c->rlen : PISTON_H2_PREFACE_LEN;
  if (memcmp(c->rbuf, PISTON_H2_PREFACE, n) != 0)
    return 0;
  if (n == PISTON_H2_PREFACE_LEN)
    return 1;
  return c->peer_eof ? 0 : -1; /* wait for the rest of it */
}

static void h1_run(piston__conn *c) {
  piston__h1 *h = piston__h1_of(c);
  int budget = READ_BUDGET;
  for (;;) {
    if (c->state != CONN_OPEN || h->h2 || c->proto != &h1_proto)
      return; /* closed, HTTP/2's since an Upgrade: h2c, or the host's */
    piston_req *r = h->req;
    if (r && r->abort_requested) {
      /* The host gave up mid-response: what it wrote so far still goes out
       * (as node:http sends it before a socket.destroy()), then the close
       * is the only signal left that the body is cut. */
      h->broken = true;
      piston__conn_finish(c);
      return;
    }
    if (h->state == H1_ACTIVE && r && r->loop_ended) {
      /* an upgrade the host took: once the request's message is parsed
       * whole, the connection is the new handler's */
      if (r->upgrade == UPGRADE_WS && h->paused == H1_AT_END) {
        piston__ws_start(h);
        return;
      }
      if (r->upgrade == UPGRADE_RAW && h->paused == H1_AT_END) {
        piston__raw_start(h);
        return;
      }
      if (r->body_done) {
        request_done(h);
        continue;
      }
      if (!r->discard_body) {
        /* answered before the body was read: read and drop the rest, unless
         * the client still waits for 100-continue (it may never send it) */
        if (r->expect_continue) {
          h->broken = true;
          request_done(h);
          continue;
        }
        pthread_mutex_lock(&r->lock);
        r->discard_body = true;
        r->body_len = r->body_pos = 0;
        bool was_paused = r->reading_paused;
        r->reading_paused = false;
        pthread_mutex_unlock(&r->lock);
        if (was_paused)
          restore_timer(h);
      }
    }
    int v2 = h->state != H1_ACTIVE ? speaks_h2(h) : 0;
    if (v2 > 0) {
      piston__h2_start(h);
      return;
    }
    if (v2 == 0 && h->paused == H1_RUNNING && c->rpos < c->rlen) {
      parse(h);
      continue;
    }
    if (h->paused != H1_RUNNING)
      break;
    if (c->peer_eof) {
      /* everything the client sent before its FIN has been parsed */
      on_eof(h);
      if (c->state != CONN_OPEN)
        return;
      break;
    }
    if (!c->readable)
      break;
    if (r && r->reading_paused)
      break;
    if (budget-- == 0) {
      piston__conn_mark_pending(c); /* more next pass */
      break;
    }
    int n = piston__conn_read(c);
    if (n == -2)
      return; /* closed */
    if (n > 0) {
      if (h->state == H1_IDLE) {
        set_state(h, H1_HEAD);
        if (c->io.timer != TIMER_HEAD)
          piston__conn_timer(c, TIMER_HEAD);
      }
      continue;
    }
    if (n == 0)
      continue; /* peer_eof: handled above, once the buffer is parsed */
    break;
  }
  if (!h->req)
    piston__conn_rbuf_release(c); /* idle: give the buffer back */
  /* reading may have resumed (the host consumed its buffered body) with no
   * byte arriving yet: the wait is on the client again, the body timeout's */
  if (c->io.timer == TIMER_HANDLER)
    restore_timer(h);
  if (c->out.pending)
    piston__conn_mark_dirty(c);
}

static void h1_flushed(piston__conn *c, bool sent) {
  piston__h1 *h = piston__h1_of(c);
  /* A response that starts brings output, so every start passes here: from
   * then on the handler timeout no longer applies. */
  if (c->state == CONN_OPEN &&
      ((sent && c->io.timer == TIMER_WRITE) || c->io.timer == TIMER_HANDLER))
    restore_timer(h);
  if (h->req)
    piston__req_update_pressure(h->req);
}

static void h1_timeout(piston__conn *c, int kind) {
  piston__h1 *h = piston__h1_of(c);
  switch (h->state) {
  case H1_HEAD: reject(h, 408); return;
  case H1_ACTIVE:
    if (kind == TIMER_BODY && h->req) {
      reject(h, 408); /* closes if a response has started */
      return;
    }
    if (kind == TIMER_HANDLER && h->req) {
      engine_answer(h, 503, true); /* as Go's http.TimeoutHandler */
      return;
    }
    break;
  default: break;
  }
  piston__conn_close(c);
}

/* A keep-alive connection waiting for its next request, with nothing
 * buffered or arriving. */
static bool h1_idle(const piston__conn *c) {
  const piston__h1 *h = (const piston__h1 *)(const void *)c;
  return h->state == H1_IDLE && h->served > 0 && !c->readable && c->rlen == 0 &&
         c->out.pending == 0;
}

static void h1_stop(piston__conn *c) {
  /* Only a keep-alive connection with nothing to read is idle. A connection
   * accepted but not read yet has a request on its way: it gets its answer
   * (with Connection: close), or the head timeout. The rest see the loop
   * stopping when their response ends. */
  if (h1_idle(c))
    piston__conn_close(c);
}

void piston__h1_closing(piston__conn *c) {
  piston__h1 *h = piston__h1_of(c);
  if (h->req) {
    /* the host waits for PISTON_EV_CLOSED while its exchange is open, and
     * on a stream it took over whose raw handler has not started yet */
    if (!h->req->loop_ended || h->req->upgrade == UPGRADE_RAW)
      piston__req_detach(h->req);
    drop_req(h);
  }
  if (h->spare)
    piston__req_free(h->spare);
  h->spare = NULL;
  const piston_server *srv = srv_of(h);
  if (h->hosted && srv->on_conn_closed)
    srv->on_conn_closed(c->io.loop, c->id, srv->on_conn_closed_ud);
}

void piston__h1_hand_over(piston__h1 *h, const piston__proto *proto,
                          int open_state) {
  piston_req *r = h->req;
  assert(r && r->loop_ended && r->upgrade + 1 == open_state);
  h->conn.proto = proto;
  pthread_mutex_lock(&r->lock);
  r->upgrade = (uint8_t)open_state;
  pthread_mutex_unlock(&r->lock);
  piston__conn_timer(&h->conn, TIMER_NONE);
}

void piston__h1_destroy(piston__conn *c) {
  piston__h1 *h = piston__h1_of(c);
  piston__ws_free(h->ws);
  piston__h2_free(h->h2);
  free(h);
}

static const piston__proto h1_proto = {
    .run = h1_run,
    .flushed = h1_flushed,
    .timeout = h1_timeout,
    .stop = h1_stop,
    .idle = h1_idle,
    .closing = piston__h1_closing,
    .destroy = piston__h1_destroy,
};
