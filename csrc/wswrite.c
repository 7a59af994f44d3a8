/* The writer's upgrade calls: accepting or refusing a WebSocket opening
 * handshake, sending messages and the close, taking received messages; and
 * a raw byte stream taken over by the host.
 * Like the response calls they may come from any thread and go through
 * the writer's one direct-or-posted decision (writer.h). */
#define _GNU_SOURCE
#include "util.h"
#include "writer.h"
#include "ws.h"
#include "wskey.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Headers the host may not add to a 101: the engine's own. */
static bool engine_field(piston_str n) {
  static const char *const own[] = {
      "connection",     "upgrade",           "sec-websocket-accept",
      "content-length", "transfer-encoding", "sec-websocket-extensions"};
  for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
    if (n.len == strlen(own[i]) && strncasecmp(n.ptr, own[i], n.len) == 0)
      return true;
  return false;
}

int piston_ws_accept(piston_req *r, const piston_header *h, size_t nh) {
  if (piston_ws_handshake(r) != 101)
    return PISTON_EINVAL;
  ptrdiff_t need = piston__fields_size(h, nh);
  if (need < 0)
    return PISTON_EINVAL;
  piston_str key = piston_req_header(r, "sec-websocket-key", 17);
  char accept[PISTON_WS_ACCEPT_LEN + 1];
  piston__ws_accept_value(key.ptr, key.len, accept);
  /* extensions are the engine's: permessage-deflate when it is on */
  piston__pmd pmd = {.on = false};
  char ext[160] = "";
  if (r->loop->srv->opt[PISTON_OPT_WS_DEFLATE]) {
    const char *vals[8];
    size_t lens[8], nv = 0;
    for (size_t i = 0; i < piston_req_header_count(r) && nv < 8; i++) {
      piston_header f = piston_req_header_at(r, i);
      if (f.name.len == 24 &&
          strncasecmp(f.name.ptr, "sec-websocket-extensions", 24) == 0) {
        vals[nv] = f.value.ptr;
        lens[nv++] = f.value.len;
      }
    }
    if (!piston__pmd_negotiate(vals, lens, nv, &pmd, ext, sizeof ext))
      pmd.on = false;
  }
  size_t ext_len = pmd.on ? strlen(ext) : 0;
  need += ext_len ? (ptrdiff_t)ext_len + 28 : 0;
  piston__wctx w;
  int rc = piston__wbegin(r, &w);
  if (rc < 0)
    return rc;
  if (r->resp != RESP_NONE)
    return piston__wend(&w, 0, PISTON_ESTATE);
  static const char head[] = "HTTP/1.1 101 Switching Protocols\r\n"
                             "Upgrade: websocket\r\n"
                             "Connection: Upgrade\r\n"
                             "Sec-WebSocket-Accept: ";
  char *p =
      piston__outq_reserve(w.q, sizeof head + PISTON_WS_ACCEPT_LEN + need + 4);
  if (!p)
    return piston__wend(&w, 0, PISTON_ENOMEM);
  char *s = p;
  memcpy(p, head, sizeof head - 1);
  p += sizeof head - 1;
  memcpy(p, accept, PISTON_WS_ACCEPT_LEN);
  p += PISTON_WS_ACCEPT_LEN;
  *p++ = '\r';
  *p++ = '\n';
  for (size_t i = 0; i < nh; i++)
    if (!engine_field(h[i].name))
      p = piston__field_put(p, &h[i]);
  if (ext_len) {
    piston_header e = {{"Sec-WebSocket-Extensions", 24}, {ext, ext_len}};
    p = piston__field_put(p, &e);
  }
  *p++ = '\r';
  *p++ = '\n';
  piston__outq_commit(w.q, (size_t)(p - s));
  r->status = 101;
  r->resp = RESP_ENDED; /* the HTTP exchange is over; the session begins */
  r->upgrade = UPGRADE_WS;
  r->ws_pmd = pmd;
  return piston__wend(&w, POST_END, 0);
}

int piston_ws_refuse(piston_req *r) {
  static const piston_header version[] = {
      {{"Sec-WebSocket-Version", 21}, {"13", 2}}};
  static const char bad[] = "Bad Request\n", upgrade[] = "Upgrade Required\n";
  if (piston_ws_handshake(r) == 426)
    return piston_resp_send(r, 426, version, 1, upgrade, sizeof upgrade - 1);
  return piston_resp_send(r, 400, NULL, 0, bad, sizeof bad - 1);
}

/* wbegin, then whether frames may still be sent on r: 0, PISTON_ESTATE or
 * PISTON_ECLOSED with the lock held (w->req set), or PISTON_ECLOSED with
 * it free and w->req NULL (the client is gone). */
static int begin_send(piston_req *r, piston__wctx *w) {
  w->req = NULL;
  if (piston__wbegin(r, w) < 0)
    return PISTON_ECLOSED;
  if (r->upgrade != UPGRADE_WS && r->upgrade != UPGRADE_WS_OPEN)
    return PISTON_ESTATE;
  return r->ws_close_sent ? PISTON_ECLOSED : 0;
}

int piston_ws_send(piston_req *r, int opcode, const void *data, size_t len) {
  bool control = opcode == PISTON_WS_PING || opcode == PISTON_WS_PONG;
  if ((opcode != PISTON_WS_TEXT && opcode != PISTON_WS_BINARY && !control) ||
      (len && !data) || (control && len > 125))
    return PISTON_EINVAL;
  piston__wctx w;
  int rc = begin_send(r, &w);
  if (rc == PISTON_ECLOSED && !w.req)
    return rc;
  if (rc == 0 && control) {
    /* control frames are never compressed (RFC 7692 6.1) */
    rc = piston__ws_frame(w.q, opcode, NULL, 0, data, len);
  } else if (rc == 0) {
    /* compressed when negotiated and worth it; uncompressed otherwise (a
     * message at a time, RFC 7692 6) */
    size_t zlen = 0;
    const uint8_t *z = r->ws_pmd.on && len >= PISTON__PMD_MIN
                           ? piston__pmd_deflate(&r->ws_pmd, data, len, &zlen)
                           : NULL;
    if (z && zlen < len)
      rc = piston__ws_frame(w.q, opcode | PISTON__WS_RSV1, NULL, 0, z, zlen);
    else
      rc = piston__ws_frame(w.q, opcode, NULL, 0, data, len);
  }
  return piston__wend(&w, 0, rc);
}

int piston__ws_queue_frame(piston_req *r, const void *frame, size_t len) {
  piston__wctx w;
  int rc = begin_send(r, &w);
  if (!w.req)
    return 0;
  uint64_t limit =
      16 * (uint64_t)r->loop->srv->opt[PISTON_OPT_WRITE_HIGH_WATER];
  uint64_t queued = w.direct ? w.conn->out.pending
                             : r->postq.pending + atomic_load(&r->out_queued);
  int sent = rc == 0 && queued < limit;
  if (sent)
    rc = piston__outq_append(w.q, frame, len);
  piston__wend(&w, 0, rc);
  return sent && rc == 0;
}

int piston_ws_close(piston_req *r, int code, const char *reason, size_t len) {
  if ((code && !piston__ws_code_valid(code)) || len > 123 ||
      (len && (!reason || !code)))
    return PISTON_EINVAL;
  piston__wctx w;
  int rc = begin_send(r, &w);
  if (rc == PISTON_ECLOSED && !w.req)
    return rc;
  if (rc == PISTON_ECLOSED)
    return piston__wend(&w, 0, 0); /* closing already: nothing to add */
  unsigned char be[2] = {(unsigned char)(code >> 8), (unsigned char)code};
  if (rc == 0)
    rc = piston__ws_frame(w.q, 8, be, code ? 2 : 0, reason, len);
  if (rc == 0) {
    r->ws_close_sent = true;
    if (!r->ws_code)
      r->ws_code = code ? code : 1005;
  }
  /* POST_OUTPUT as a flag: the handler runs and starts waiting for the
   * peer's answer */
  return piston__wend(&w, rc == 0 ? POST_OUTPUT : 0, rc);
}

int piston_ws_abort(piston_req *r) {
  piston__wctx w;
  int rc = piston__wbegin(r, &w);
  if (rc < 0)
    return rc;
  if (r->upgrade != UPGRADE_WS && r->upgrade != UPGRADE_WS_OPEN)
    return piston__wend(&w, 0, PISTON_ESTATE);
  /* nothing may be sent after it, a close frame least of all */
  r->ws_close_sent = true;
  if (!r->ws_code)
    r->ws_code = 1006;
  /* the handler (or, before the hand-over, the HTTP/1.1 one) closes the
   * connection when it runs next */
  piston__wend(&w, POST_ABORT, 0);
  /* publishes skip it from now on, and numbers of subscribers leave it out
   * before the connection has closed */
  piston__ws_unsubscribe_all(r);
  return 0;
}

void piston_ws_control_events(piston_req *r, int on) {
  atomic_store(&r->ws_control, on != 0);
}

uint64_t piston_ws_buffered(const piston_req *cr) {
  piston_req *r = (piston_req *)cr; /* the lock only */
  pthread_mutex_lock(&r->lock);
  uint64_t n = 0;
  if (r->conn && !r->closed) {
    /* the connection's queue is the loop's: read directly only there */
    n = r->postq.pending + (piston__current_loop == r->loop
                                ? r->conn->out.pending
                                : atomic_load(&r->out_queued));
  }
  pthread_mutex_unlock(&r->lock);
  return n;
}

int piston_ws_recv(piston_req *r, int *opcode, const void **data, size_t *len) {
  pthread_mutex_lock(&r->lock);
  free(r->ws_taken);
  r->ws_taken = NULL;
  piston__wsmsg *m = r->ws_head;
  unsigned flags = 0;
  int rc;
  if (m) {
    r->ws_head = m->next;
    if (!r->ws_head)
      r->ws_tail = NULL;
    r->ws_queued -= m->len;
    r->ws_taken = m;
    *opcode = m->opcode;
    *data = m->data;
    *len = m->len;
    rc = 1;
    if (r->reading_paused &&
        r->ws_queued <=
            (uint64_t)r->loop->srv->opt[PISTON_OPT_BODY_HIGH_WATER] / 2) {
      r->reading_paused = false;
      flags |= POST_RESUME;
    }
  } else {
    rc = r->closed || !r->conn ||
                 (r->upgrade != UPGRADE_WS && r->upgrade != UPGRADE_WS_OPEN)
             ? PISTON_ECLOSED
             : 0;
  }
  if (!flags || !r->conn) {
    pthread_mutex_unlock(&r->lock);
    return rc;
  }
  piston__wctx w;
  piston__wplace(r, &w);
  if (!w.direct)
    r->post_flags |= flags;
  pthread_mutex_unlock(&r->lock);
  piston__wsubmit(&w, flags);
  return rc;
}

piston_str piston_ws_close_reason(const piston_req *r) {
  pthread_mutex_lock((pthread_mutex_t *)&r->lock);
  piston_str s = {r->ws_reason, r->ws_reason_len};
  pthread_mutex_unlock((pthread_mutex_t *)&r->lock);
  return s;
}

int piston_ws_close_code(const piston_req *r) {
  pthread_mutex_lock((pthread_mutex_t *)&r->lock);
  int code = r->ws_code;
  pthread_mutex_unlock((pthread_mutex_t *)&r->lock);
  return code;
}

/* ---- a raw stream the host took over ---- */

int piston_raw_takeover(piston_req *r) {
  piston__wctx w;
  int rc = piston__wbegin(r, &w);
  if (rc < 0)
    return rc;
  if (r->resp != RESP_NONE || r->upgrade != UPGRADE_NONE)
    return piston__wend(&w, 0, PISTON_ESTATE);
  /* The body buffer now carries the stream; an unread request body (an
   * upgrade request has none) would be read as its first bytes. */
  r->body_len = r->body_pos = 0;
  r->body_done = false;
  r->expect_continue = false;
  r->resp = RESP_ENDED; /* no HTTP response: the host writes its own */
  r->upgrade = UPGRADE_RAW;
  return piston__wend(&w, POST_END, 0);
}

/* wbegin, then whether raw bytes may still be written on r (lock held on
 * 0 and PISTON_ESTATE; on PISTON_ECLOSED held only if w->req is set). */
static int begin_raw(piston_req *r, piston__wctx *w) {
  w->req = NULL;
  if (piston__wbegin(r, w) < 0)
    return PISTON_ECLOSED;
  if (r->upgrade != UPGRADE_RAW && r->upgrade != UPGRADE_RAW_OPEN)
    return PISTON_ESTATE;
  return r->raw_shut ? PISTON_ECLOSED : 0;
}

int piston_raw_write(piston_req *r, const void *data, size_t len) {
  if (len && !data)
    return PISTON_EINVAL;
  piston__wctx w;
  int rc = begin_raw(r, &w);
  if (!w.req)
    return rc;
  if (rc == 0 && len)
    rc = piston__outq_append(w.q, data, len);
  return piston__wend(&w, 0, rc);
}

int piston_raw_shutdown(piston_req *r) {
  piston__wctx w;
  int rc = begin_raw(r, &w);
  if (!w.req)
    return rc;
  if (rc == PISTON_ECLOSED)
    return piston__wend(&w, 0, 0); /* already shut */
  if (rc == 0)
    r->raw_shut = true;
  /* a flag, so that the connection runs and flushes, then shuts */
  return piston__wend(&w, rc == 0 ? POST_OUTPUT : 0, rc);
}
