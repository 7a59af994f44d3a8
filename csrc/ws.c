/* The WebSocket protocol handler (RFC 6455).
 *
 * Frames are parsed here, in place in the connection's read buffer. wslay
 * (what h2o uses) was the first choice and was measured: its frame layer
 * copies every byte into a 4 KiB buffer inside its context, one per
 * connection (10,000 idle WebSockets cost 7.9 KiB each with it, against a
 * 60 MB target for all of them), and unmasks a byte at a time; its event
 * layer's send queue is single-threaded and copies each message, while the
 * hosts send from any thread through the engine's writer, and it checks
 * text only once a whole message has arrived, where RFC 6455 8.1 wants it
 * failed as soon as its bytes cannot be UTF-8. So all of it is here:
 * headers and the minimal length encoding, masked client frames, no
 * reserved bits (no extension is negotiated yet), known opcodes, control
 * frames of at most 125 bytes and never fragmented, the continuation rules
 * with control frames interleaved, incremental UTF-8 of text, close codes,
 * the message size limit, pongs for pings, and the closing handshake. */
#define _GNU_SOURCE
#include "ws.h"
#include "wsdeflate.h"
#include "utf8.h"
#include "util.h"
#include "wskey.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define READ_BUDGET 4

enum {
  OP_CONT = 0,
  OP_TEXT = 1,
  OP_BINARY = 2,
  OP_CLOSE = 8,
  OP_PING = 9,
  OP_PONG = 10
};

typedef struct {
  piston__h1 *h;
  /* the frame being received */
  bool in_frame, fin;
  uint8_t op;
  uint64_t left;
  uint8_t mask[4];
  uint64_t masked; /* payload bytes unmasked so far */
  /* the data message being received */
  bool in_msg;
  bool compressed;            /* its first frame had RSV1 */
  piston__inflater *inflater; /* permessage-deflate, made on first use */
  piston__wsmsg *msg;
  size_t cap;
  piston__utf8 utf8;
  /* the control frame being received */
  uint8_t ctl[125];
  size_t ctl_len;
  bool close_received;
  bool closing_timer; /* waiting (TIMER_LINGER) for the peer's close */
  bool heard;         /* a frame arrived since the keep-alive timer was set */
  bool ping_out;      /* our keep-alive ping waits for an answer */
} piston__wsconn;

static const piston__proto ws_proto;

static piston__wsconn *ws_of(piston__conn *c) {
  return piston__h1_of(c)->ws;
}

/* ---- frames out ---- */

int piston__ws_frame(piston__outq *q, int opcode, const void *pre, size_t plen,
                     const void *data, size_t len) {
  uint64_t n = (uint64_t)plen + len;
  char *p = piston__outq_reserve(q, 10 + n);
  if (!p)
    return PISTON_ENOMEM;
  size_t h = 2;
  p[0] = (char)(0x80 | opcode); /* FIN, no extension bits */
  if (n < 126) {
    p[1] = (char)n;
  } else if (n <= 0xffff) {
    p[1] = 126;
    p[2] = (char)(n >> 8);
    p[3] = (char)n;
    h = 4;
  } else {
    p[1] = 127;
    for (int i = 0; i < 8; i++)
      p[2 + i] = (char)(n >> (56 - 8 * i));
    h = 10;
  }
  if (plen)
    memcpy(p + h, pre, plen);
  if (len)
    memcpy(p + h + plen, data, len);
  piston__outq_commit(q, h + n);
  return 0;
}

bool piston__ws_code_valid(int code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

/* Loop thread: a close frame of ours, unless one was sent already (by the
 * host, posted or direct, or by us). */
static void send_close(piston__wsconn *ws, int code) {
  piston__conn *c = &ws->h->conn;
  piston_req *r = ws->h->req;
  pthread_mutex_lock(&r->lock);
  bool sent = r->ws_close_sent;
  r->ws_close_sent = true;
  if (!r->ws_code)
    r->ws_code = code;
  pthread_mutex_unlock(&r->lock);
  if (sent)
    return;
  unsigned char be[2] = {(unsigned char)(code >> 8), (unsigned char)code};
  if (piston__ws_frame(&c->out, OP_CLOSE, be, code ? 2 : 0, NULL, 0) != 0) {
    piston__conn_close(c);
    return;
  }
  piston__conn_mark_dirty(c);
}

/* The session ends from our side with code: the close frame goes out,
 * then the connection closes (the server closes TCP first, RFC 6455
 * 7.1.1); nothing more is read. */
static void fail(piston__wsconn *ws, int code) {
  send_close(ws, code);
  if (ws->h->conn.state == CONN_OPEN)
    piston__conn_finish(&ws->h->conn);
}

/* ---- frames in ---- */

/* A frame's header, parsed from p[0, avail): its length (*hl) and verdict.
 * Returns 0 with *hl == 0 if the header is not all there yet, else 0 or a
 * close code. */
static int frame_begins(piston__wsconn *ws, const uint8_t *p, size_t avail,
                        size_t *hl) {
  *hl = 0;
  if (avail < 2)
    return 0;
  bool fin = p[0] & 0x80, masked = p[1] & 0x80;
  uint8_t rsv = (p[0] >> 4) & 7, op = p[0] & 0x0F;
  uint64_t len = p[1] & 0x7F;
  size_t n = 2 + (len == 126 ? 2 : len == 127 ? 8 : 0) + (masked ? 4 : 0);
  if (avail < n)
    return 0;
  const uint8_t *q = p + 2;
  if (len == 126) {
    len = (uint64_t)q[0] << 8 | q[1];
    q += 2;
    if (len < 126)
      return 1002; /* lengths use the shortest encoding (5.2) */
  } else if (len == 127) {
    len = 0;
    for (int i = 0; i < 8; i++)
      len = len << 8 | q[i];
    q += 8;
    if (len < 65536 || (len >> 63))
      return 1002;
  }
  *hl = n;
  if (!masked)
    return 1002; /* clients mask */
  /* RSV1 marks a compressed message when permessage-deflate was agreed,
   * on a message's first frame only (RFC 7692 6); no other bit has a
   * meaning */
  bool compressed =
      rsv == 4 && ws->h->req->ws_pmd.on && (op == OP_TEXT || op == OP_BINARY);
  if (rsv && !compressed)
    return 1002;
  memcpy(ws->mask, q, 4);
  if (op >= OP_CLOSE) {
    if (op > OP_PONG || len > 125 || !fin)
      return 1002; /* control frames are short and whole (5.5) */
    ws->ctl_len = 0;
  } else if (op == OP_CONT) {
    if (!ws->in_msg)
      return 1002;
  } else if (op == OP_TEXT || op == OP_BINARY) {
    if (ws->in_msg)
      return 1002; /* a new message inside a fragmented one */
    ws->in_msg = true;
    ws->compressed = compressed;
    ws->utf8 = (piston__utf8){0, 0x80, 0xBF};
    if (!ws->msg && !(ws->msg = malloc(sizeof *ws->msg + (ws->cap = 4096))))
      return 1011;
    ws->msg->len = 0;
    ws->msg->opcode = op;
  } else {
    return 1002; /* a reserved opcode */
  }
  if (op < OP_CLOSE) {
    uint64_t max =
        (uint64_t)ws->h->conn.io.loop->srv->opt[PISTON_OPT_WS_MAX_MESSAGE];
    if (len > max - ws->msg->len)
      return 1009; /* refused from its header, before it is buffered */
  }
  ws->in_frame = true;
  ws->op = op;
  ws->fin = fin;
  ws->left = len;
  ws->masked = 0;
  return 0;
}

/* Unmasks p[0, n) in place: the key rotates with the payload offset, and
 * whole words go eight bytes at a time. */
static void unmask(piston__wsconn *ws, uint8_t *p, size_t n) {
  uint8_t key[8];
  for (int i = 0; i < 8; i++)
    key[i] = ws->mask[(ws->masked + (uint64_t)i) % 4];
  size_t i = 0;
  if (n >= 8) {
    uint64_t k;
    memcpy(&k, key, 8);
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      memcpy(&w, p + i, 8);
      w ^= k;
      memcpy(p + i, &w, 8);
    }
  }
  for (; i < n; i++)
    p[i] ^= key[i % 8];
  ws->masked += n;
}

/* Message bytes as the host gets them (decompressed). */
static int plain_append(void *ud, const uint8_t *p, size_t n) {
  piston__wsconn *ws = ud;
  piston__wsmsg *m = ws->msg;
  if (m->opcode == OP_TEXT && !piston__utf8_feed(&ws->utf8, p, n))
    return 1007;
  if (ws->compressed &&
      m->len + n >
          (uint64_t)ws->h->conn.io.loop->srv->opt[PISTON_OPT_WS_MAX_MESSAGE])
    return 1009; /* what it inflates to counts, not what was sent */
  if (m->len + n > ws->cap) {
    size_t cap = ws->cap;
    while (cap < m->len + n)
      cap *= 2;
    piston__wsmsg *g = realloc(m, sizeof *m + cap);
    if (!g)
      return 1011;
    ws->msg = m = g;
    ws->cap = cap;
  }
  memcpy(m->data + m->len, p, n);
  m->len += n;
  return 0;
}

static int msg_append(piston__wsconn *ws, const uint8_t *p, size_t n) {
  if (!ws->compressed)
    return plain_append(ws, p, n);
  if (!ws->inflater &&
      !(ws->inflater = piston__inflater_new(ws->h->req->ws_pmd.client_bits)))
    return 1011;
  return piston__inflate(ws->inflater, p, n, plain_append, ws);
}

static int on_close_frame(piston__wsconn *ws) {
  int code = 1005; /* a close frame without a code */
  if (ws->ctl_len == 1)
    return 1002;
  if (ws->ctl_len >= 2) {
    code = ws->ctl[0] << 8 | ws->ctl[1];
    if (!piston__ws_code_valid(code))
      return 1002;
    piston__utf8 u = {0, 0x80, 0xBF};
    if (!piston__utf8_feed(&u, ws->ctl + 2, ws->ctl_len - 2) ||
        !piston__utf8_complete(&u))
      return 1007;
  }
  ws->close_received = true;
  piston_req *r = ws->h->req;
  pthread_mutex_lock(&r->lock);
  if (!r->ws_code) {
    r->ws_code = code;
    if (ws->ctl_len > 2) {
      r->ws_reason_len = (uint8_t)(ws->ctl_len - 2);
      memcpy(r->ws_reason, ws->ctl + 2, r->ws_reason_len);
    }
  }
  pthread_mutex_unlock(&r->lock);
  /* echo the code, as RFC 6455 5.5.1 suggests; then our side is done */
  send_close(ws, code == 1005 ? 0 : code);
  piston__conn_finish(&ws->h->conn);
  return 0;
}

/* A ping or pong for a host that asked for them (piston_ws_control_events):
 * a message like the others, so that it keeps its place among them. 0 or a
 * close code. */
static int control_event(piston__wsconn *ws) {
  piston_req *r = ws->h->req;
  if (!atomic_load(&r->ws_control))
    return 0;
  piston__wsmsg *m = malloc(sizeof *m + ws->ctl_len);
  if (!m)
    return 1011;
  m->opcode = ws->op;
  m->len = ws->ctl_len;
  memcpy(m->data, ws->ctl, ws->ctl_len);
  piston__req_ws_deliver(r, m);
  return 0;
}

/* A frame's last byte has arrived. 0 or a close code. */
static int frame_ends(piston__wsconn *ws) {
  piston__conn *c = &ws->h->conn;
  ws->in_frame = false;
  switch (ws->op) {
  case OP_PING:
    if (ws->h->req->ws_close_sent)
      return 0; /* nothing may follow our close */
    if (piston__ws_frame(&c->out, OP_PONG, ws->ctl, ws->ctl_len, NULL, 0) != 0)
      return 1011;
    piston__conn_mark_dirty(c);
    return control_event(ws);
  case OP_PONG: return control_event(ws);
  case OP_CLOSE: return on_close_frame(ws);
  default: break;
  }
  if (!ws->fin)
    return 0;
  if (ws->compressed) {
    /* a compressed message with no payload at all made no inflater yet */
    if (!ws->inflater &&
        !(ws->inflater = piston__inflater_new(ws->h->req->ws_pmd.client_bits)))
      return 1011;
    int code = piston__inflate_end(ws->inflater, false, plain_append, ws);
    if (code)
      return code;
    if (ws->h->req->ws_pmd.client_nct) {
      /* no context to keep: no inflater held between messages */
      piston__inflater_free(ws->inflater);
      ws->inflater = NULL;
    }
  }
  if (ws->msg->opcode == OP_TEXT && !piston__utf8_complete(&ws->utf8))
    return 1007; /* the message ends inside a character */
  ws->in_msg = false;
  piston__wsmsg *m = ws->msg;
  ws->msg = NULL;
  /* a small message should not pin its buffer's unused room */
  if (ws->cap - m->len > 4096) {
    piston__wsmsg *fit = realloc(m, sizeof *m + m->len);
    if (fit)
      m = fit;
  }
  piston__req_ws_deliver(ws->h->req, m);
  return 0;
}

/* Parses what the read buffer holds, in place. */
static void parse(piston__wsconn *ws) {
  piston__conn *c = &ws->h->conn;
  piston_req *r = ws->h->req;
  while (c->state == CONN_OPEN && !ws->close_received && !r->reading_paused &&
         c->rpos < c->rlen) {
    uint8_t *p = (uint8_t *)c->rbuf + c->rpos;
    size_t avail = c->rlen - c->rpos;
    int code = 0;
    if (!ws->in_frame) {
      size_t hl;
      code = frame_begins(ws, p, avail, &hl);
      if (code == 0 && hl == 0)
        break; /* the rest of the header has yet to arrive */
      c->rpos += (uint32_t)hl;
      p += hl;
      avail -= hl;
      ws->heard = true;
    }
    if (code == 0 && avail > 0 && ws->left > 0) {
      size_t n = ws->left < avail ? (size_t)ws->left : avail;
      unmask(ws, p, n);
      if (ws->op >= OP_CLOSE) {
        memcpy(ws->ctl + ws->ctl_len, p, n);
        ws->ctl_len += n;
      } else {
        code = msg_append(ws, p, n);
      }
      ws->left -= n;
      c->rpos += (uint32_t)n;
    }
    if (code == 0 && ws->left == 0)
      code = frame_ends(ws);
    if (code) {
      fail(ws, code);
      return;
    }
  }
  /* room for the next read: drop what was parsed, keep a partial header */
  if (c->rpos == c->rlen) {
    c->rpos = c->rlen = 0;
  } else if (c->rpos > 0) {
    memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
    c->rlen -= c->rpos;
    c->rpos = 0;
  }
}

/* ---- the connection layer's ops ---- */

static void ws_run(piston__conn *c) {
  piston__wsconn *ws = ws_of(c);
  piston_req *r = ws->h->req;
  int budget = READ_BUDGET;
  if (r->abort_requested) {
    /* the host ended the session abruptly (piston_ws_abort): no close
     * frame, nothing more out */
    piston__conn_close(c);
    return;
  }
  if (r->ws_close_sent && !ws->closing_timer && c->state == CONN_OPEN) {
    /* our close is out (the host's): the peer has a while to answer */
    ws->closing_timer = true;
    piston__conn_timer(c, TIMER_LINGER);
  }
  while (c->state == CONN_OPEN) {
    parse(ws);
    if (c->state != CONN_OPEN || ws->close_received || r->reading_paused ||
        !c->readable)
      break;
    if (budget-- == 0) {
      piston__conn_mark_pending(c);
      break;
    }
    int n = piston__conn_read(c);
    if (n == -2)
      return;
    if (n == 0) {
      /* the peer went without a close frame (1006), or after its close
       * while ours was on its way */
      piston__conn_close(c);
      return;
    }
    if (n < 0)
      break;
  }
  if (c->state == CONN_OPEN && c->rlen == 0)
    piston__conn_rbuf_release(c);
  if (c->out.pending)
    piston__conn_mark_dirty(c);
}

static void ws_flushed(piston__conn *c, bool sent) {
  (void)sent;
  piston__req_update_pressure(ws_of(c)->h->req);
}

/* The keep-alive timer, when the option is on and nothing else (the
 * closing handshake's wait) holds the slot. */
static void arm_ping(piston__wsconn *ws) {
  piston__conn *c = &ws->h->conn;
  if (c->io.loop->srv->opt[PISTON_OPT_WS_PING_MS] > 0 && !ws->closing_timer &&
      c->state == CONN_OPEN) {
    ws->heard = false;
    piston__conn_timer(c, TIMER_WS_PING);
  }
}

static void ws_timeout(piston__conn *c, int kind) {
  piston__wsconn *ws = ws_of(c);
  if (kind != TIMER_WS_PING) {
    piston__conn_close(c); /* the peer did not answer our close in time */
    return;
  }
  if (ws->heard) {
    ws->ping_out = false; /* the client spoke: it is there */
  } else if (ws->ping_out) {
    fail(ws, 1011); /* silent through a whole ping period, as uvicorn */
    return;
  } else if (!ws->h->req->ws_close_sent) {
    if (piston__ws_frame(&c->out, OP_PING, NULL, 0, NULL, 0) != 0) {
      piston__conn_close(c);
      return;
    }
    ws->ping_out = true;
    piston__conn_mark_dirty(c);
  }
  arm_ping(ws);
}

static void ws_stop(piston__conn *c) {
  /* graceful stop: 1001, going away; the peer's close (or the linger
   * timer) then ends the connection */
  piston__wsconn *ws = ws_of(c);
  send_close(ws, 1001);
  ws->closing_timer = true;
  piston__conn_timer(c, TIMER_LINGER);
}

static bool ws_idle(const piston__conn *c) {
  (void)c; /* a WebSocket is never a keep-alive connection to close */
  return false;
}

static void ws_closing(piston__conn *c) {
  piston_req *r = ws_of(c)->h->req;
  if (r->ws_unsub)
    r->ws_unsub(r); /* its subscriptions end with it */
  pthread_mutex_lock(&r->lock);
  if (!r->ws_code)
    r->ws_code = 1006; /* gone without a closing handshake */
  pthread_mutex_unlock(&r->lock);
  piston__req_detach(r);
  piston__h1_closing(c);
}

void piston__ws_free(void *p) {
  piston__wsconn *ws = p;
  if (!ws)
    return;
  piston__inflater_free(ws->inflater);
  free(ws->msg);
  free(ws);
}

static const piston__proto ws_proto = {
    .run = ws_run,
    .flushed = ws_flushed,
    .timeout = ws_timeout,
    .stop = ws_stop,
    .idle = ws_idle,
    .closing = ws_closing,
    .destroy = piston__h1_destroy,
};

void piston__ws_start(piston__h1 *h) {
  piston__conn *c = &h->conn;
  piston__wsconn *ws = calloc(1, sizeof *ws);
  if (!ws) {
    piston__conn_close(c);
    return;
  }
  ws->h = h;
  h->ws = ws;
  /* no timer while open, unless the keep-alive ping is on: a WebSocket may
   * be quiet for as long as it likes */
  piston__h1_hand_over(h, &ws_proto, UPGRADE_WS_OPEN);
  arm_ping(ws);
  /* bytes behind the head are the first frames */
  if (c->rpos < c->rlen) {
    memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
    c->rlen -= c->rpos;
    c->rpos = 0;
  } else {
    c->rlen = c->rpos = 0;
  }
  piston__conn_mark_pending(c);
}

/* ---- the opening handshake (RFC 6455 4.2.1) ---- */

int piston_ws_handshake(const piston_req *r) {
  /* hosts ask on every request: without an Upgrade field (llhttp noted
   * one while parsing) there is nothing to scan */
  if (!r->has_upgrade || !piston__req_lists_token(r, "upgrade", 7, "websocket"))
    return 0;
  piston_str m = piston_req_method(r);
  if (m.len != 3 || memcmp(m.ptr, "GET", 3) != 0 || r->minor < 1 ||
      !piston__req_lists_token(r, "connection", 10, "upgrade"))
    return 400;
  piston_str key = piston_req_header(r, "sec-websocket-key", 17);
  if (!key.ptr || !piston__ws_key_valid(key.ptr, key.len))
    return 400;
  piston_str v = piston_req_header(r, "sec-websocket-version", 21);
  if (!v.ptr || v.len != 2 || memcmp(v.ptr, "13", 2) != 0)
    return 426;
  return 101;
}
