/* The writer: the host's calls that put bytes on the wire (responses, and
 * the 100 Continue a body read may owe), from any thread. Status line and
 * headers serialised once into the output queue, Content-Length or chunked
 * framing, HEAD/204/304 without a body, and the pressure signal that makes
 * fast writers wait.
 *
 * piston__wbegin() is the one place that decides where a call's bytes go. On
 * the loop's thread inside a poll pass they go straight into the connection's
 * queue. Anywhere else they go into the request's post queue (under its
 * lock) and the request is posted to the loop, whose inbox hands it back to
 * apply_post() here, which moves them over. */
#define _GNU_SOURCE
#include "cache.h"
#include "cachecap.h"
#include "http1.h"
#include "util.h"
#include "writer.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ---- where a call's bytes go ---- */

/* Lock held: direct only if nothing posted earlier is still waiting, so
 * that bytes keep their order. */
void piston__wplace(piston_req *r, piston__wctx *w) {
  w->req = r;
  w->conn = r->conn;
  w->direct = piston__current_loop == r->loop && r->postq.pending == 0 &&
              r->post_flags == 0;
  w->q = w->direct ? piston__req_sink(r) : &r->postq;
}

int piston__wbegin(piston_req *r, piston__wctx *w) {
  pthread_mutex_lock(&r->lock);
  if (r->closed || !r->conn) {
    pthread_mutex_unlock(&r->lock);
    return PISTON_ECLOSED;
  }
  piston__wplace(r, w);
  return 0;
}

static const piston__post_ops post_ops;

/* Lock released: have the loop act on what the call queued, now (direct)
 * or from its inbox. */
void piston__wsubmit(piston__wctx *w, unsigned flags) {
  piston_req *r = w->req;
  if (w->direct) {
    if (flags & POST_END)
      piston__req_loop_end(r);
    if (flags & POST_ABORT)
      r->abort_requested = true;
    piston__conn_mark_dirty(w->conn);
    if (flags)
      piston__conn_mark_pending(w->conn);
  } else {
    piston__loop_post(r->loop, &r->post, &post_ops);
  }
}

/* Unlocks; returns rc, or 1 when the queue is over its high-water mark. */
int piston__wend(piston__wctx *w, unsigned flags, int rc) {
  piston_req *r = w->req;
  uint64_t high = (uint64_t)r->loop->srv->opt[PISTON_OPT_WRITE_HIGH_WATER];
  uint64_t queued = w->direct ? w->q->pending
                              : r->postq.pending + atomic_load(&r->out_queued);
  /* an ended response has nothing more to wait for; a WebSocket has */
  int pressure = rc == 0 && queued > high &&
                 (r->resp != RESP_ENDED || r->upgrade != UPGRADE_NONE);
  if (pressure)
    r->want_drain = true;
  if (!w->direct)
    r->post_flags |= flags | POST_OUTPUT;
  piston__cwaiter *woken = r->cache_woken; /* a miss this response filled */
  r->cache_woken = NULL;
  pthread_mutex_unlock(&r->lock);
  piston__cache_wake(woken);
  if ((flags & POST_END) && rc == 0)
    piston__req_access_log(r); /* outside the lock: it reads the peer */
  piston__wsubmit(w, flags);
  return rc < 0 ? rc : pressure;
}

/* ---- the body: reads may owe the client a 100 Continue ---- */

static const char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* Lock held: an informational head for an HTTP/2 stream, kept as fields
 * beside those before it (each begins with its :status) until the handler
 * submits them, ahead of the final head (h2.c). */
static int info_h2(piston_req *r, int status, const piston_header *h,
                   size_t nh) {
  char code[4];
  snprintf(code, sizeof code, "%03d", status);
  int rc = piston__h2_field_add(&r->h2_info, &r->h2_info_len, &r->h2_info_cap,
                                ":status", 7, code, 3);
  for (size_t i = 0; rc == 0 && i < nh; i++)
    rc = piston__h2_field_add(&r->h2_info, &r->h2_info_len, &r->h2_info_cap,
                              h[i].name.ptr, h[i].name.len, h[i].value.ptr,
                              h[i].value.len);
  return rc;
}

int64_t piston_req_body_read(piston_req *r, void *buf, size_t len) {
  pthread_mutex_lock(&r->lock);
  size_t avail = r->body_len - r->body_pos;
  int64_t rc;
  unsigned flags = 0;
  bool owe_continue = false;
  if (r->body_too_big) {
    rc = PISTON_ETOOBIG;
  } else if (avail == 0) {
    if (r->body_done) {
      rc = 0;
    } else if (r->closed || !r->conn) {
      rc = PISTON_ECLOSED;
    } else {
      rc = PISTON_EAGAIN;
      /* the client waits for our go-ahead before it sends the body */
      owe_continue = r->expect_continue && r->resp == RESP_NONE;
      if (owe_continue)
        r->expect_continue = false;
    }
  } else {
    size_t n = avail < len ? avail : len;
    memcpy(buf, r->body + r->body_pos, n);
    r->body_pos += n;
    r->body_taken += n;
    rc = (int64_t)n;
    if (r->h2)
      flags |= POST_RESUME; /* the stream's window grows by what was read */
    if (r->reading_paused &&
        r->body_len - r->body_pos <=
            (uint64_t)r->loop->srv->opt[PISTON_OPT_BODY_HIGH_WATER] / 2) {
      r->reading_paused = false;
      flags |= POST_RESUME;
    }
  }
  if ((!owe_continue && !flags) || !r->conn) {
    pthread_mutex_unlock(&r->lock);
    return rc;
  }
  piston__wctx w;
  piston__wplace(r, &w);
  if (owe_continue &&
      (r->h2 ? info_h2(r, 100, NULL, 0)
             : piston__outq_append(w.q, continue_line,
                                   sizeof continue_line - 1)) == 0)
    flags |= POST_OUTPUT;
  if (!w.direct)
    r->post_flags |= flags;
  pthread_mutex_unlock(&r->lock);
  piston__wsubmit(&w, flags);
  return rc;
}

/* ---- posts ---- */

static piston_req *req_of_post(piston__post *p) {
  return (piston_req *)(void *)((char *)p - offsetof(piston_req, post));
}

static void post_hold(piston__post *p) {
  atomic_fetch_add(&req_of_post(p)->refs, 1); /* the inbox's reference */
}

/* Loop thread: carry out what other threads posted for this request. */
static void post_apply(piston__post *p) {
  piston_req *r = req_of_post(p);
  pthread_mutex_lock(&r->lock);
  unsigned flags = r->post_flags;
  r->post_flags = 0;
  piston__conn *c = r->conn;
  bool live = c && !r->closed;
  int rc = 0;
  if (live && r->postq.pending)
    rc = piston__outq_move(piston__req_sink(r), &r->postq);
  else
    piston__outq_clear(&r->postq);
  pthread_mutex_unlock(&r->lock);
  if (live) {
    if (rc != 0 || (flags & POST_ABORT))
      r->abort_requested = true;
    if (flags & POST_END)
      piston__req_loop_end(r);
    piston__conn_mark_pending(c);
    piston__conn_mark_dirty(c);
  }
  piston_req_release(r);
}

static const piston__post_ops post_ops = {.hold = post_hold,
                                          .apply = post_apply};

/* ---- serialising ---- */

static bool name_is(piston_str n, const char *lower, size_t len) {
  return n.len == len && strncasecmp(n.ptr, lower, len) == 0;
}

static bool has_token(piston_str v, const char *tok) {
  size_t tl = strlen(tok);
  for (size_t i = 0; i + tl <= v.len; i++)
    if (strncasecmp(v.ptr + i, tok, tl) == 0)
      return true;
  return false;
}

static int parse_length(piston_str v, int64_t *out) {
  if (v.len == 0 || v.len > 18)
    return -1;
  int64_t n = 0;
  for (size_t i = 0; i < v.len; i++) {
    if (v.ptr[i] < '0' || v.ptr[i] > '9')
      return -1;
    n = n * 10 + (v.ptr[i] - '0');
  }
  *out = n;
  return 0;
}

/* An HTTP/2 stream's head: kept as fields for the handler to submit
 * (h2.c); no reason phrase, no framing headers but Content-Length. */
static int start_h2(piston_req *r, int status, const piston_header *h,
                    size_t nh, int64_t cl, bool host_date) {
  char code[4];
  snprintf(code, sizeof code, "%03d", status);
  r->h2_head_len = 0;
  int rc = piston__h2_field_add(&r->h2_head, &r->h2_head_len, &r->h2_head_cap,
                                ":status", 7, code, 3);
  if (rc == 0 && !host_date) {
    const char *d = piston__date_line(); /* "Date: ...\r\n" */
    rc = piston__h2_field_add(&r->h2_head, &r->h2_head_len, &r->h2_head_cap,
                              "date", 4, d + 6, PISTON_DATE_LINE_LEN - 8);
  }
  for (size_t i = 0; rc == 0 && i < nh; i++) {
    if (name_is(h[i].name, "content-length", 14) ||
        (name_is(h[i].name, "date", 4) && h[i].value.len == 0) ||
        piston__cache_field_is_ours(h[i].name))
      continue;
    rc = piston__h2_field_add(&r->h2_head, &r->h2_head_len, &r->h2_head_cap,
                              h[i].name.ptr, h[i].name.len, h[i].value.ptr,
                              h[i].value.len);
  }
  if (rc == 0 && cl >= 0 && status != 204 && status != 304) {
    char len[24];
    int n = snprintf(len, sizeof len, "%" PRId64, cl);
    rc = piston__h2_field_add(&r->h2_head, &r->h2_head_len, &r->h2_head_cap,
                              "content-length", 14, len, (size_t)n);
  }
  if (rc != 0)
    return rc;
  r->chunked = false;
  r->close_after = false; /* the stream ends, not the connection */
  r->resp = RESP_STARTED;
  r->status = status;
  if (r->no_body)
    r->resp_left = -1;
  return 0;
}

/* Content-Length or Transfer-Encoding, unless the host's Content-Length
 * was written in its place. */
static char *put_framing(char *p, const piston_req *r, int status, int64_t cl,
                         bool cl_written) {
  if (cl_written)
    return p;
  if (r->resp_left >= 0 && (status != 304 || cl >= 0))
    p += sprintf(p, "Content-Length: %" PRId64 "\r\n", r->resp_left);
  else if (r->chunked)
    p += sprintf(p, "Transfer-Encoding: chunked\r\n");
  return p;
}

/* forced_len >= 0: the body's length (resp_send), unless the host gave a
 * Content-Length. */
/* reason: NULL for the standard phrase. */
static int start_locked(piston__wctx *w, int status, const piston_str *reason,
                        const piston_header *h, size_t nh, int64_t forced_len) {
  piston_req *r = w->req;
  if (reason) { /* RFC 9112: HTAB, SP, VCHAR, obs-text */
    for (size_t i = 0; i < reason->len; i++) {
      unsigned char ch = (unsigned char)reason->ptr[i];
      if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
        return PISTON_EINVAL;
    }
  }
  if (r->resp != RESP_NONE)
    return PISTON_ESTATE;
  piston__alog_capture(r, h, nh);
  if (status < 200 || status > 999)
    return PISTON_EINVAL;
  int64_t cl = forced_len;
  bool host_date = false, host_close = false, host_ka = false;
  bool host_conn = false;
  size_t need = 0;
  for (size_t i = 0; i < nh; i++) {
    if (!piston__valid_header(&h[i]))
      return PISTON_EINVAL;
    need += h[i].name.len + h[i].value.len + 4;
    if (name_is(h[i].name, "content-length", 14)) {
      int64_t v;
      /* the host's own Content-Length wins over the length of the body
       * given to resp_send: a longer body is cut to it (write_locked), a
       * shorter one ends the connection (end_locked), as when streamed */
      if (parse_length(h[i].value, &v) != 0)
        return PISTON_EINVAL;
      cl = v;
    } else if (name_is(h[i].name, "connection", 10)) {
      host_close = has_token(h[i].value, "close");
      host_conn = true;
    } else if (name_is(h[i].name, "date", 4)) {
      host_date = true; /* an empty one: no Date at all (piston.h) */
    } else if (name_is(h[i].name, "keep-alive", 10)) {
      host_ka = true;
    }
  }
  bool bodyless_status = status == 204 || status == 304;
  r->no_body = r->is_head || bodyless_status;
  r->chunked = false;
  r->resp_left = -1;
  if (cl >= 0 && status != 204) {
    r->resp_left = cl;
  } else if (!r->no_body) {
    if (r->minor >= 1)
      r->chunked = true;
    else
      r->close_after = true; /* HTTP/1.0: the body ends with the connection */
  }
  if (host_close)
    r->close_after = true;
  /* a stopping loop still answers the pipelined requests it has read:
   * only the last one says close */
  bool keep = r->keepalive && !r->close_after &&
              (!r->loop->stopping ||
               atomic_load_explicit(&r->more_buffered, memory_order_relaxed));
  if (!keep)
    r->close_after = true;
  if (r->cache_lead &&
      piston__cache_capture_start(w, status, reason, h, nh, keep, cl) == 1)
    return 0; /* a stale response went out in its place */

  if (r->h2)
    return start_h2(r, status, h, nh, cl, host_date);

  int style = (int)r->loop->srv->opt[PISTON_OPT_HEAD_STYLE];
  size_t sl_len;
  const char *sl = piston__status_line(status, &sl_len);
  if (reason)
    sl_len = 15 + reason->len; /* "HTTP/1.1 NNN " reason CRLF */
  char *p =
      piston__outq_reserve(w->q, sl_len + PISTON_DATE_LINE_LEN + need + 160);
  if (!p)
    return PISTON_ENOMEM;
  char *s = p;
  if (reason) {
    p += sprintf(p, "HTTP/1.1 %03d ", status);
    memcpy(p, reason->ptr, reason->len);
    p += reason->len;
    *p++ = '\r';
    *p++ = '\n';
  } else {
    memcpy(p, sl, sl_len);
    p += sl_len;
  }
  if (!host_date && style == 0) {
    memcpy(p, piston__date_line(), PISTON_DATE_LINE_LEN);
    p += PISTON_DATE_LINE_LEN;
  }
  /* node's style sends the host's Connection as given when it says what
   * the engine does anyway (keep-alive, or close), and then no Keep-Alive */
  bool pass_conn = style != 0 && host_conn && keep != host_close;
  bool cl_written = false;
  for (size_t i = 0; i < nh; i++) {
    /* the host's Content-Length keeps its place (once); the rest of framing
     * and connection management is the engine's */
    if (name_is(h[i].name, "content-length", 14) && !cl_written &&
        status != 204) {
      p += sprintf(p, "Content-Length: %" PRId64 "\r\n", cl);
      cl_written = true;
      continue;
    }
    if (name_is(h[i].name, "content-length", 14) ||
        name_is(h[i].name, "transfer-encoding", 17) ||
        (name_is(h[i].name, "connection", 10) && !pass_conn) ||
        (name_is(h[i].name, "keep-alive", 10) && style == 0) ||
        (name_is(h[i].name, "date", 4) && h[i].value.len == 0) ||
        piston__cache_field_is_ours(h[i].name))
      continue;
    p = piston__field_put(p, &h[i]);
  }
  if (!host_date && style != 0) {
    memcpy(p, piston__date_line(), PISTON_DATE_LINE_LEN);
    p += PISTON_DATE_LINE_LEN;
  }
  if (style == 0)
    p = put_framing(p, r, status, cl, cl_written);
  if (pass_conn) {
    ; /* the host's, in its place */
  } else if (!keep) {
    p += sprintf(p, "Connection: close\r\n");
  } else if (r->minor == 0 || style != 0) {
    p += sprintf(p, "Connection: keep-alive\r\n");
    if (style == 1 && !host_ka)
      p += sprintf(p, "Keep-Alive: timeout=%" PRId64 "\r\n",
                   r->loop->srv->opt[PISTON_OPT_IDLE_TIMEOUT_MS] / 1000);
  }
  if (style != 0)
    p = put_framing(p, r, status, cl, cl_written);
  *p++ = '\r';
  *p++ = '\n';
  piston__outq_commit(w->q, (size_t)(p - s));
  r->resp = RESP_STARTED;
  r->status = status;
  if (r->no_body)
    r->resp_left = -1; /* nothing is sent, so nothing can be short */
  return 0;
}

/* Lock held: how much of len fits in the Content-Length the host announced.
 * A host that writes more gets what it announced sent and the rest dropped,
 * then the connection closes (as gunicorn and waitress do): the client
 * trusts the length, so the bytes beyond it would be read as the next
 * response. The write itself succeeds, so that every host ends the
 * response the same way; the app's mistake is logged once. */
static size_t fit_length(piston_req *r, size_t len) {
  if (r->resp_left < 0 || (uint64_t)r->resp_left >= len)
    return len;
  if (!r->overflowed) {
    piston_str m = piston_req_method(r), p = piston_req_path(r);
    piston__log("response body longer than its Content-Length: %.*s %.*s: "
                "sent the %" PRIu64 " bytes announced, dropped the rest, "
                "closing",
                (int)m.len, m.ptr, (int)(p.len > 256 ? 256 : p.len), p.ptr,
                r->resp_bytes + (uint64_t)r->resp_left);
    r->overflowed = true;
  }
  r->close_after = true;
  return (size_t)r->resp_left;
}

static int write_locked(piston__wctx *w, const void *data, size_t len) {
  piston_req *r = w->req;
  if (r->resp != RESP_STARTED)
    return PISTON_ESTATE;
  if (r->no_body || len == 0)
    return 0;
  len = fit_length(r, len);
  if (len == 0)
    return 0;
  if (r->resp_left >= 0)
    r->resp_left -= (int64_t)len;
  r->resp_bytes += len;
  if (r->cache_cap)
    piston__cache_capture_body(r, data, len);
  if (!r->chunked)
    return piston__outq_append(w->q, data, len);
  char *p = piston__outq_reserve(w->q, len + 24);
  if (!p)
    return PISTON_ENOMEM;
  int n = sprintf(p, "%zx\r\n", len);
  memcpy(p + n, data, len);
  memcpy(p + n + len, "\r\n", 2);
  piston__outq_commit(w->q, (size_t)n + len + 2);
  return 0;
}

static int end_locked(piston__wctx *w, const piston_header *t, size_t nt) {
  piston_req *r = w->req;
  if (r->resp != RESP_STARTED)
    return PISTON_ESTATE;
  if (r->h2) {
    r->h2_trailers_len = 0;
    for (size_t i = 0; i < nt; i++) {
      if (!piston__valid_header(&t[i]))
        return PISTON_EINVAL;
      int rc = piston__h2_field_add(
          &r->h2_trailers, &r->h2_trailers_len, &r->h2_trailers_cap,
          t[i].name.ptr, t[i].name.len, t[i].value.ptr, t[i].value.len);
      if (rc != 0)
        return rc;
    }
  } else if (r->chunked) {
    size_t need = 5;
    for (size_t i = 0; i < nt; i++) {
      if (!piston__valid_header(&t[i]))
        return PISTON_EINVAL;
      need += t[i].name.len + t[i].value.len + 4;
    }
    char *p = piston__outq_reserve(w->q, need);
    if (!p)
      return PISTON_ENOMEM;
    char *s = p;
    memcpy(p, "0\r\n", 3);
    p += 3;
    for (size_t i = 0; i < nt; i++) {
      p += sprintf(p, "%.*s: %.*s\r\n", (int)t[i].name.len, t[i].name.ptr,
                   (int)t[i].value.len, t[i].value.ptr);
    }
    memcpy(p, "\r\n", 2);
    p += 2;
    piston__outq_commit(w->q, (size_t)(p - s));
  }
  if (r->resp_left > 0)
    r->close_after = true; /* short body: the framing is broken, close */
  r->resp = RESP_ENDED;
  if (r->cache_lead)
    piston__cache_capture_end(r, r->resp_left <= 0 && nt == 0);
  return 0;
}

int piston_resp_inform(piston_req *r, int status, const piston_header *h,
                       size_t nh) {
  if (status < 100 || status > 199 || status == 101)
    return PISTON_EINVAL;
  ptrdiff_t need = piston__fields_size(h, nh);
  if (need < 0)
    return PISTON_EINVAL;
  piston__wctx w;
  int rc = piston__wbegin(r, &w);
  if (rc < 0)
    return rc;
  if (r->resp != RESP_NONE || r->upgrade != UPGRADE_NONE)
    return piston__wend(&w, 0, PISTON_ESTATE);
  if (r->h2) {
    rc = info_h2(r, status, h, nh);
    if (rc == 0 && status == 100)
      r->expect_continue = false; /* the client has its go-ahead */
    return piston__wend(&w, 0, rc);
  }
  /* HTTP/1.0 knows no 1xx */
  if (r->minor == 0)
    return piston__wend(&w, 0, 0);
  size_t sl_len;
  const char *sl = piston__status_line(status, &sl_len);
  char *p = piston__outq_reserve(w.q, sl_len + (size_t)need + 2);
  if (!p)
    return piston__wend(&w, 0, PISTON_ENOMEM);
  char *s = p;
  memcpy(p, sl, sl_len);
  p += sl_len;
  for (size_t i = 0; i < nh; i++)
    p = piston__field_put(p, &h[i]);
  *p++ = '\r';
  *p++ = '\n';
  piston__outq_commit(w.q, (size_t)(p - s));
  if (status == 100)
    r->expect_continue = false; /* the client has its go-ahead */
  return piston__wend(&w, 0, 0);
}

int piston_resp_start(piston_req *r, int status, const piston_header *h,
                      size_t nh) {
  piston__wctx w;
  int rc = piston__wbegin(r, &w);
  if (rc < 0)
    return rc;
  rc = start_locked(&w, status, NULL, h, nh, -1);
  return piston__wend(&w, 0, rc);
}

int piston_resp_start_reason(piston_req *r, int status, const char *reason,
                             size_t reason_len, const piston_header *h,
                             size_t nh) {
  if (!reason && reason_len)
    return PISTON_EINVAL;
  piston_str rs = {reason ? reason : "", reason_len};
  piston__wctx w;
  int rc = piston__wbegin(r, &w);
  if (rc < 0)
    return rc;
  rc = start_locked(&w, status, &rs, h, nh, -1);
  return piston__wend(&w, 0, rc);
}

int piston_resp_write(piston_req *r, const void *data, size_t len) {
  piston__wctx w;
  int rc = piston__wbegin(r, &w);
  if (rc < 0)
    return rc;
  rc = write_locked(&w, data, len);
  return piston__wend(&w, 0, rc);
}

int piston_resp_sendfile(piston_req *r, int fd, off_t off, size_t len) {
  piston__wctx w;
  int rc = piston__wbegin(r, &w);
  if (rc < 0)
    return rc;
  if (r->resp != RESP_STARTED) {
    rc = PISTON_ESTATE;
  } else if (off < 0) {
    rc = PISTON_EINVAL;
  } else if (!r->no_body && (len = fit_length(r, len)) > 0) {
    int dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dupfd < 0) {
      rc = PISTON_ESYS;
    } else {
      if (r->resp_left >= 0)
        r->resp_left -= (int64_t)len;
      r->resp_bytes += len;
      piston__cache_capture_fail(r);
      char hex[24];
      int n = r->chunked ? sprintf(hex, "%zx\r\n", len) : 0;
      if ((n && piston__outq_append(w.q, hex, (size_t)n) != 0) ||
          piston__outq_append_file(w.q, dupfd, (uint64_t)off, len) != 0 ||
          (n && piston__outq_append(w.q, "\r\n", 2) != 0))
        rc = PISTON_ENOMEM;
    }
  }
  return piston__wend(&w, 0, rc);
}

int piston_resp_end(piston_req *r, const piston_header *t, size_t nt) {
  piston__wctx w;
  int rc = piston__wbegin(r, &w);
  if (rc < 0)
    return rc;
  rc = end_locked(&w, t, nt);
  return piston__wend(&w, rc == 0 ? POST_END : 0, rc);
}

int piston_resp_send(piston_req *r, int status, const piston_header *h,
                     size_t nh, const void *body, size_t len) {
  return piston_resp_send_reason(r, status, NULL, 0, h, nh, body, len);
}

int piston_resp_send_reason(piston_req *r, int status, const char *reason,
                            size_t reason_len, const piston_header *h,
                            size_t nh, const void *body, size_t len) {
  if (!reason && reason_len)
    return PISTON_EINVAL;
  piston_str rs = {reason, reason_len};
  piston__wctx w;
  int rc = piston__wbegin(r, &w);
  if (rc < 0)
    return rc;
  rc = start_locked(&w, status, reason ? &rs : NULL, h, nh, (int64_t)len);
  if (rc == 0)
    rc = write_locked(&w, body, len);
  if (rc == 0)
    rc = end_locked(&w, NULL, 0);
  return piston__wend(&w, rc == 0 ? POST_END : 0, rc);
}

void piston_resp_abort(piston_req *r) {
  piston__wctx w;
  if (piston__wbegin(r, &w) < 0)
    return;
  int rc = 0;
  bool ends_now = r->resp == RESP_NONE;
  if (r->resp == RESP_NONE) {
    if (r->h2) {
      /* a stream's 500; the connection goes on */
      static const piston_header text = {{"Content-Type", 12},
                                         {"text/plain; charset=utf-8", 25}};
      static const char body[] = "Internal Server Error\n";
      rc = start_h2(r, 500, &text, 1, sizeof body - 1, false);
      if (rc == 0 && !r->is_head)
        rc = piston__outq_append(w.q, body, sizeof body - 1);
    } else {
      r->keepalive = false;
      r->close_after = true;
      rc = piston__h1_simple(w.q, 500, NULL, false, r->is_head);
    }
    r->status = 500;
    r->resp = RESP_ENDED;
  } else if (r->resp == RESP_STARTED || r->upgrade == UPGRADE_RAW ||
             r->upgrade == UPGRADE_RAW_OPEN) {
    /* mid-body there is no way to signal failure but closing, nor on a
     * stream the host took over (piston.h: abort closes it); POST_ABORT
     * has the connection run this pass (direct) or on the post */
    piston__wend(&w, POST_ABORT, rc);
    return;
  }
  piston__wend(&w, ends_now ? POST_END : 0,
               rc); /* after an end: nothing to do */
}

void piston_resp_reset(piston_req *r) {
  piston__wctx w;
  if (piston__wbegin(r, &w) < 0)
    return;
  if (r->resp == RESP_ENDED && r->upgrade == UPGRADE_NONE) {
    piston__wend(&w, 0, 0); /* answered already: nothing to undo */
    return;
  }
  bool ends_now = r->resp == RESP_NONE && r->upgrade == UPGRADE_NONE;
  if (ends_now) {
    r->keepalive = false;
    r->close_after = true;
    r->resp = RESP_ENDED; /* the exchange is over; no status was sent */
  }
  /* POST_ABORT: the connection closes once its queue is out (HTTP/1) or
   * the stream is reset (HTTP/2), as after piston_resp_abort mid-body */
  piston__wend(&w, POST_ABORT | (ends_now ? POST_END : 0), 0);
}

int piston_resp_started(const piston_req *r) {
  return r->resp != RESP_NONE;
}
