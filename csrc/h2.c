/* The HTTP/2 handler (see h2.h).
 *
 * Input: the read buffer goes to nghttp2_session_mem_recv whole; its
 * callbacks build each stream's request (head, body) and queue it, and the
 * requests are handed to the host once mem_recv has returned, as the
 * HTTP/1.1 handler dispatches after llhttp returns.
 *
 * Output: the writer (response.c) leaves a stream's response head in the
 * request (piston__h2_fields) and its body in the request's own queue
 * (h2_out, the exchange's sink), from the loop or from any thread through
 * the inbox. Before each flush (prepare), this handler submits the heads,
 * resumes the streams that have more body, gives the window back for the
 * body the host has read, and lets nghttp2 write frames into the
 * connection's queue, up to the write high-water mark at a time.
 *
 * Flow control is nghttp2's, with the window given back only for what the
 * host has read: a host that reads slowly shrinks the client's window, as
 * a slow reader pauses reading on HTTP/1.1. */
#define _GNU_SOURCE
#include "h2.h"
#include "util.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Resets a client may cause (by RST_STREAM, or by frames that make us
 * reset) and frames without payload (empty DATA, an empty CONTINUATION...)
 * it may send per window before the connection is closed with
 * ENHANCE_YOUR_CALM: CVE-2023-44487 (rapid reset) and CVE-2019-9518. */
#define RESET_BUDGET 200
#define EMPTY_BUDGET 200
#define BUDGET_WINDOW_MS 10000
#define MAX_STREAMS 100

typedef struct piston__h2s piston__h2s;
typedef struct piston__h2 piston__h2;

/* One stream: its exchange and what the handler did for it so far. */
struct piston__h2s {
  piston__h2s *next, *prev; /* the session's streams */
  piston__h2s *ready_next;  /* heads complete, to be dispatched */
  piston__h2 *s;
  int32_t id;
  piston_req *req; /* the handler's reference */
  char *head;      /* the request's head text (becomes req->owned_base) */
  uint32_t head_len, head_cap;
  uint32_t method_off, method_len, path_off, path_len, authority_off,
      authority_len;
  uint64_t acked; /* body bytes given back to the window */
  int reject;     /* a status the engine answers instead of the host */
  bool queued, dispatched, submitted, deferred, eof, reset, closed;
  bool late; /* the reject is the handler timeout's: the host's fault */
  bool cut;  /* timed out: reset once its answer is out */
  /* the stream's body or handler timeout, in the loop's timer lists as a
   * connection's are (only its timeout op is ever called) */
  piston__io tio;
};

struct piston__h2 {
  piston__h1 *h;
  nghttp2_session *ss;
  piston__h2s *streams, *ready, **ready_tail;
  size_t nstreams;
  uint32_t resets, empties;
  uint64_t budget_from_ms;
  bool goaway;    /* a GOAWAY went out: no new streams, close when done */
  bool peer_gone; /* the client's FIN came: it completes no stream more */
  bool hosted;
};

static piston__h2 *h2_of(piston__conn *c) {
  return piston__h1_of(c)->h2;
}

static const piston_server *srv_of(const piston__h2 *s) {
  return s->h->conn.io.loop->srv;
}

/* ---- streams ---- */

static void stream_timeout(piston__io *io, int kind);
static const piston__io_ops stream_timer_ops = {.timeout = stream_timeout};

static piston__h2s *stream_new(piston__h2 *s, int32_t id) {
  piston__conn *c = &s->h->conn;
  piston__h2s *st = calloc(1, sizeof *st);
  piston_req *r = st ? piston__req_new(c) : NULL;
  if (!r) {
    free(st);
    return NULL;
  }
  piston__req_reset(r, c);
  r->h2 = true;
  r->minor = 1; /* HTTP/1.1's semantics where the writer asks */
  r->keepalive = true;
  r->content_length = -1;
  st->s = s;
  st->id = id;
  st->req = r;
  st->tio.timer = TIMER_NONE;
  st->tio.loop = c->io.loop;
  st->tio.ops = &stream_timer_ops;
  st->next = s->streams;
  if (s->streams)
    s->streams->prev = st;
  s->streams = st;
  s->nstreams++;
  return st;
}

static void stream_free(piston__h2s *st) {
  piston__h2 *s = st->s;
  piston__timer_set(&st->tio, TIMER_NONE);
  if (st->prev)
    st->prev->next = st->next;
  else
    s->streams = st->next;
  if (st->next)
    st->next->prev = st->prev;
  s->nstreams--;
  piston_req *r = st->req;
  if (r) {
    if (!r->loop_ended || !st->eof)
      piston__req_detach(r);
    pthread_mutex_lock(&r->lock);
    r->conn = NULL;
    pthread_mutex_unlock(&r->lock);
    if (!r->owned_base)
      free(st->head);
    piston_req_release(r);
  } else {
    free(st->head);
  }
  free(st);
  piston__conn *c = &s->h->conn;
  if (s->nstreams == 0 && c->state == CONN_OPEN && !s->goaway)
    piston__conn_timer(c, TIMER_IDLE); /* the keep-alive wait begins */
}

/* Appends bytes to the stream's head text; its offset, or -1 (no memory). */
static int64_t head_put(piston__h2s *st, const uint8_t *p, size_t n) {
  if (st->head_cap - st->head_len < n) {
    size_t cap = st->head_cap ? st->head_cap : 512;
    while (cap - st->head_len < n)
      cap *= 2;
    char *grown = realloc(st->head, cap);
    if (!grown)
      return -1;
    st->head = grown;
    st->head_cap = (uint32_t)cap;
  }
  memcpy(st->head + st->head_len, p, n);
  st->head_len += (uint32_t)n;
  return st->head_len - (int64_t)n;
}

static int add_field(piston__h2s *st, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen) {
  piston_req *r = st->req;
  int64_t max = srv_of(st->s)->opt[PISTON_OPT_MAX_HEADERS];
  if (r->nhdrs >= (uint64_t)max) {
    st->reject = 431;
    return 0;
  }
  if (r->nhdrs == r->hdrcap) {
    uint32_t ncap = r->hdrcap * 2;
    piston__hdr *grown = malloc(ncap * sizeof *grown);
    if (!grown)
      return -1;
    memcpy(grown, r->hdrs, r->nhdrs * sizeof *grown);
    if (r->hdrs != r->hdr_inline)
      free(r->hdrs);
    r->hdrs = grown;
    r->hdrcap = ncap;
  }
  int64_t no = head_put(st, name, nlen), vo = head_put(st, value, vlen);
  if (no < 0 || vo < 0)
    return -1;
  r->hdrs[r->nhdrs++] =
      (piston__hdr){(uint32_t)no, (uint32_t)nlen, (uint32_t)vo, (uint32_t)vlen};
  return 0;
}

/* The head is complete: the request's views point into its text. */
static void finish_head(piston__h2s *st, bool end_stream) {
  piston_req *r = st->req;
  /* :authority stands for Host (RFC 9113 8.3.1) for hosts that read Host */
  if (st->authority_len && !piston_req_header(r, "host", 4).ptr) {
    r->base = st->head;
    if (add_field(st, (const uint8_t *)"host", 4,
                  (const uint8_t *)st->head + st->authority_off,
                  st->authority_len) < 0)
      st->reject = 503;
  }
  r->base = st->head;
  r->owned_base = st->head; /* the request frees it */
  r->method_off = st->method_off;
  r->method_len = st->method_len;
  r->target_off = st->path_off;
  r->target_len = st->path_len;
  piston__req_split_target(r);
  r->is_head =
      st->method_len == 4 && !memcmp(st->head + st->method_off, "HEAD", 4);
  piston_str cl = piston_req_header(r, "content-length", 14);
  if (end_stream) {
    r->content_length = 0;
    r->body_done = true;
  } else if (cl.ptr) {
    /* nghttp2 checked it is digits and will hold DATA to it */
    r->content_length = strtoll(cl.ptr, NULL, 10);
  }
  int64_t max_body = srv_of(st->s)->opt[PISTON_OPT_MAX_BODY_SIZE];
  if (max_body > 0 && r->content_length > max_body)
    st->reject = 413;
  /* Expect as on HTTP/1.1: the host's first read of the body (or its
   * piston_resp_inform) sends the 100, as a HEADERS frame */
  piston_str expect = piston_req_header(r, "expect", 6);
  if (expect.ptr) {
    if (expect.len != 12 || strncasecmp(expect.ptr, "100-continue", 12) != 0)
      st->reject = 417;
    r->expect_continue = !end_stream && r->content_length != 0;
  }
  r->headers_done = r->url_done = true;
}

/* ---- nghttp2's callbacks: input ---- */

static piston__h2s *stream_of(nghttp2_session *ss, int32_t id) {
  return nghttp2_session_get_stream_user_data(ss, id);
}

static void over_budget(piston__h2 *s, uint32_t *count, uint32_t budget) {
  uint64_t now = s->h->conn.io.loop->now_ms;
  if (now - s->budget_from_ms > BUDGET_WINDOW_MS) {
    s->budget_from_ms = now;
    s->resets = s->empties = 0;
  }
  if (++*count > budget && !s->goaway) {
    piston__debug("HTTP/2: connection %llu over its reset or empty-frame "
                  "budget: GOAWAY",
                  (unsigned long long)s->h->conn.id);
    nghttp2_session_terminate_session(s->ss, NGHTTP2_ENHANCE_YOUR_CALM);
    s->goaway = true;
  }
}

static int on_begin_headers(nghttp2_session *ss, const nghttp2_frame *f,
                            void *ud) {
  piston__h2 *s = ud;
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0; /* trailers: not exposed to the host */
  piston__h2s *st = stream_new(s, f->hd.stream_id);
  if (!st)
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  nghttp2_session_set_stream_user_data(ss, f->hd.stream_id, st);
  return 0;
}

static int on_header(nghttp2_session *ss, const nghttp2_frame *f,
                     const uint8_t *name, size_t nlen, const uint8_t *value,
                     size_t vlen, uint8_t flags, void *ud) {
  (void)flags;
  (void)ud;
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0;
  piston__h2s *st = stream_of(ss, f->hd.stream_id);
  if (!st || st->reject)
    return 0;
  /* the head's size, as on HTTP/1.1: names, values and their separators */
  if (st->head_len + nlen + vlen + 4 >
      (uint64_t)srv_of(st->s)->opt[PISTON_OPT_MAX_HEAD_SIZE]) {
    st->reject = 431;
    return 0;
  }
  if (nlen > 0 && name[0] == ':') {
    int64_t off = head_put(st, value, vlen);
    if (off < 0)
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (nlen == 7 && !memcmp(name, ":method", 7)) {
      st->method_off = (uint32_t)off;
      st->method_len = (uint32_t)vlen;
    } else if (nlen == 5 && !memcmp(name, ":path", 5)) {
      st->path_off = (uint32_t)off;
      st->path_len = (uint32_t)vlen;
      if (vlen > (uint64_t)srv_of(st->s)->opt[PISTON_OPT_MAX_URL_SIZE])
        st->reject = 414;
    } else if (nlen == 10 && !memcmp(name, ":authority", 10)) {
      st->authority_off = (uint32_t)off;
      st->authority_len = (uint32_t)vlen;
    }
    return 0; /* :scheme: nghttp2 checked it is there */
  }
  return add_field(st, name, nlen, value, vlen) < 0
             ? NGHTTP2_ERR_CALLBACK_FAILURE
             : 0;
}

static int on_data_chunk(nghttp2_session *ss, uint8_t flags, int32_t id,
                         const uint8_t *data, size_t len, void *ud) {
  (void)flags;
  (void)ud;
  piston__h2s *st = stream_of(ss, id);
  if (!st || !st->req)
    return 0;
  piston_req *r = st->req;
  r->body_total += len;
  int64_t max_body = srv_of(st->s)->opt[PISTON_OPT_MAX_BODY_SIZE];
  if (max_body > 0 && r->body_total > (uint64_t)max_body) {
    if (!st->reject)
      st->reject = 413;
    nghttp2_session_consume(ss, id, len); /* dropped: give it back */
    return 0;
  }
  if (r->discard_body || st->reject) {
    nghttp2_session_consume(ss, id, len);
    return 0;
  }
  if (piston__req_body_append(r, (const char *)data, len) != 0)
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  if (st->tio.timer == TIMER_BODY)
    piston__timer_set(&st->tio, TIMER_BODY); /* progress: it starts over */
  return 0;
}

static void queue_ready(piston__h2 *s, piston__h2s *st) {
  st->queued = true;
  st->ready_next = NULL;
  *s->ready_tail = st;
  s->ready_tail = &st->ready_next;
}

static int on_frame_recv(nghttp2_session *ss, const nghttp2_frame *f,
                         void *ud) {
  piston__h2 *s = ud;
  piston__h2s *st = f->hd.stream_id ? stream_of(ss, f->hd.stream_id) : NULL;
  bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
  switch (f->hd.type) {
  case NGHTTP2_HEADERS:
    if (!st)
      break;
    if (f->headers.cat == NGHTTP2_HCAT_REQUEST) {
      finish_head(st, end);
      queue_ready(s, st);
    } else if (end && st->req) { /* trailers end the body */
      pthread_mutex_lock(&st->req->lock);
      st->req->body_done = true;
      pthread_mutex_unlock(&st->req->lock);
      if (st->dispatched)
        piston__req_notify(st->req, PISTON_EV_BODY);
    }
    break;
  case NGHTTP2_DATA:
    if (f->hd.length == 0 && !end)
      over_budget(s, &s->empties, EMPTY_BUDGET);
    if (!st || !st->req)
      break;
    if (end) {
      pthread_mutex_lock(&st->req->lock);
      st->req->body_done = true;
      pthread_mutex_unlock(&st->req->lock);
    }
    if (st->dispatched && (f->hd.length > 0 || end))
      piston__req_notify(st->req, PISTON_EV_BODY);
    break;
  case NGHTTP2_RST_STREAM: over_budget(s, &s->resets, RESET_BUDGET); break;
  case NGHTTP2_CONTINUATION:
    if (f->hd.length == 0)
      over_budget(s, &s->empties, EMPTY_BUDGET);
    break;
  default: break;
  }
  return 0;
}

static int on_stream_close(nghttp2_session *ss, int32_t id, uint32_t code,
                           void *ud) {
  (void)code;
  (void)ud;
  piston__h2s *st = stream_of(ss, id);
  if (!st)
    return 0;
  nghttp2_session_set_stream_user_data(ss, id, NULL);
  if (st->queued && !st->dispatched) {
    st->closed = true; /* reset before its dispatch: dispatch_ready frees it */
    return 0;
  }
  stream_free(st);
  return 0;
}

static int on_invalid_frame(nghttp2_session *ss, const nghttp2_frame *f,
                            int err, void *ud) {
  (void)ss;
  (void)f;
  (void)err;
  piston__h2 *s = ud;
  over_budget(s, &s->resets, RESET_BUDGET); /* each costs a reset */
  return 0;
}

/* ---- output ---- */

/* nghttp2's view of fields kept by piston__h2_field_add (no copies: they
 * live until the request lock is let go, and nghttp2 copies at submit). */
static size_t fields_nv(const char *buf, size_t len, nghttp2_nv *nv,
                        size_t cap) {
  size_t n = 0, off = 0;
  while (off + 8 <= len && n < cap) {
    uint32_t nl, vl;
    memcpy(&nl, buf + off, 4);
    memcpy(&vl, buf + off + 4, 4);
    nv[n].name = (uint8_t *)buf + off + 8;
    nv[n].namelen = nl;
    nv[n].value = (uint8_t *)buf + off + 8 + nl;
    nv[n].valuelen = vl;
    nv[n].flags = NGHTTP2_NV_FLAG_NONE;
    n++;
    off += 8 + nl + vl;
  }
  return n;
}

/* The body of a stream's response, from its queue. Deferred while the host
 * has not written more; the end once it ended (trailers then follow in
 * their own HEADERS). Nothing is copied here: the frame's payload stays in
 * the queue until send_data puts it in the connection's. */
static ssize_t read_body(nghttp2_session *ss, int32_t id, uint8_t *buf,
                         size_t length, uint32_t *flags,
                         nghttp2_data_source *src, void *ud) {
  (void)buf;
  (void)ud;
  piston__h2s *st = src->ptr;
  piston_req *r = st->req;
  pthread_mutex_lock(&r->lock);
  piston__outq *q = &r->h2_out;
  size_t n = q->pending < length ? (size_t)q->pending : length;
  bool ended = n == q->pending && r->loop_ended;
  bool trailers = ended && r->h2_trailers_len > 0;
  if (!ended && n == 0) {
    st->deferred = true;
    pthread_mutex_unlock(&r->lock);
    return NGHTTP2_ERR_DEFERRED;
  }
  *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  if (ended) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    st->eof = true;
    if (trailers) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      nghttp2_nv nv[64];
      size_t nn = fields_nv(r->h2_trailers, r->h2_trailers_len, nv, 64);
      nghttp2_submit_trailer(ss, id, nv, nn);
    }
  }
  pthread_mutex_unlock(&r->lock);
  return (ssize_t)n;
}

/* A DATA frame read_body sized: its header and payload go into the
 * connection's queue in one piece, the payload copied once on its way
 * (bytes from the stream's queue, a file's with pread), not first into
 * nghttp2's frame buffer and then again into the queue. Waits (nghttp2
 * keeps the frame) while the queue is over its high-water mark. */
static int send_data(nghttp2_session *ss, nghttp2_frame *f,
                     const uint8_t *framehd, size_t length,
                     nghttp2_data_source *src, void *ud) {
  (void)ss;
  piston__h2 *s = ud;
  piston__conn *c = &s->h->conn;
  assert(f->data.padlen == 0); /* no padding is ever chosen */
  if (c->out.pending >= (uint64_t)srv_of(s)->opt[PISTON_OPT_WRITE_HIGH_WATER])
    return NGHTTP2_ERR_WOULDBLOCK;
  char *p = piston__outq_reserve(&c->out, 9 + length);
  if (!p)
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  memcpy(p, framehd, 9);
  piston__h2s *st = src->ptr;
  piston_req *r = st->req;
  pthread_mutex_lock(&r->lock);
  piston__outq *q = &r->h2_out;
  assert(q->pending >= length);
  for (size_t n = 0; n < length;) {
    char *dst = p + 9 + n;
    int fd;
    uint64_t off;
    size_t len;
    if (piston__outq_front(q, &fd, &off, &len) == 1) {
      size_t want = len < length - n ? len : length - n;
      ssize_t got = pread(fd, dst, want, (off_t)off);
      if (got <= 0) {
        pthread_mutex_unlock(&r->lock);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
      }
      len = (size_t)got;
    } else {
      const char *from = piston__outq_gather(q, dst, length - n, &len);
      if (from != dst)
        memcpy(dst, from, len);
    }
    piston__outq_consume(q, len);
    n += len;
  }
  pthread_mutex_unlock(&r->lock);
  piston__outq_commit(&c->out, 9 + length);
  return 0;
}

/* An answer of the engine's own (413, 414, 431, a timeout's 408 or 503)
 * to one stream. */
static void stream_reject(piston__h2 *s, piston__h2s *st) {
  piston_req *r = st->req;
  int status = st->reject;
  bool late = st->late;
  st->reject = 0;
  st->late = false;
  if (piston__req_engine_answers(r, status) != RESP_NONE) {
    /* a host that started (from its thread) in the meantime keeps its
     * response, as on HTTP/1.1; otherwise a status is too late */
    if (!late) {
      st->reset = true;
      nghttp2_submit_rst_stream(s->ss, NGHTTP2_FLAG_NONE, st->id,
                                NGHTTP2_INTERNAL_ERROR);
    }
    return;
  }
  if (late) {
    piston_str m = piston_req_method(r), p = piston_req_path(r);
    piston__log("handler timeout: %.*s %.*s (HTTP/2 stream %" PRId32
                ") not answered within %lld ms: sent 503",
                (int)m.len, m.ptr, (int)(p.len > 256 ? 256 : p.len), p.ptr,
                st->id,
                (long long)srv_of(s)->opt[PISTON_OPT_HANDLER_TIMEOUT_MS]);
  }
  const char *reason = piston__reason(status);
  pthread_mutex_lock(&r->lock);
  piston__outq_clear(&r->h2_out);
  (void)!piston__outq_append(&r->h2_out, reason, strlen(reason));
  (void)!piston__outq_append(&r->h2_out, "\n", 1);
  r->status = status;
  pthread_mutex_unlock(&r->lock);
  char code[4];
  snprintf(code, sizeof code, "%03d", status);
  nghttp2_nv nv[] = {
      {(uint8_t *)":status", (uint8_t *)code, 7, 3, NGHTTP2_NV_FLAG_NONE},
      {(uint8_t *)"content-type", (uint8_t *)"text/plain; charset=utf-8", 12,
       25, NGHTTP2_NV_FLAG_NONE},
  };
  nghttp2_data_provider prd = {.source.ptr = st, .read_callback = read_body};
  nghttp2_submit_response(s->ss, st->id, nv, 2, &prd);
  st->submitted = true;
  r->discard_body = true;
  if (st->dispatched && atomic_load(&r->refs) > 1)
    piston__req_notify(r, PISTON_EV_CLOSED | (late ? PISTON_EV_TIMEOUT : 0));
}

/* The stream's timer, as restore_timer in http1.c sets a connection's: the
 * body timeout while the stream waits on the client for body bytes (its
 * windows open), the handler timeout while the wait is on the host (the
 * body is complete, or the host has not read what fills the window, or
 * the client waits for the 100 Continue the host's first read sends);
 * each switch starts it afresh. */
static void stream_timer(piston__h2 *s, piston__h2s *st) {
  piston_req *r = st->req;
  const piston_server *srv = srv_of(s);
  int kind = TIMER_NONE;
  if (r && st->dispatched && !st->reset && !st->reject && !st->cut) {
    bool owed = false, owes_continue = false;
    if (srv->opt[PISTON_OPT_HANDLER_TIMEOUT_MS] > 0 && !r->native &&
        !r->loop_ended) {
      pthread_mutex_lock(&r->lock);
      owed = r->resp == RESP_NONE;
      owes_continue = owed && r->expect_continue;
      pthread_mutex_unlock(&r->lock);
    }
    bool window_open =
        nghttp2_session_get_stream_local_window_size(s->ss, st->id) > 0 &&
        nghttp2_session_get_local_window_size(s->ss) > 0;
    if (!r->body_done && !r->discard_body && window_open && !owes_continue &&
        srv->opt[PISTON_OPT_BODY_TIMEOUT_MS] > 0)
      kind = TIMER_BODY;
    else if (owed)
      kind = TIMER_HANDLER;
  }
  if (kind != st->tio.timer)
    piston__timer_set(&st->tio, kind);
}

/* A stream's timer expired: the engine answers it in the host's place. A
 * stalled body gets the 408 HTTP/1.1 gets while no response has started
 * (nginx resets it, PROTOCOL_ERROR; a status tells the client why), else
 * a reset; a host that never answers, the handler timeout's 503. Either
 * way the stream is then reset once its answer is out (prepare), so its
 * slot is free for the next. */
static void stream_timeout(piston__io *io, int kind) {
  piston__h2s *st =
      (piston__h2s *)(void *)((char *)io - offsetof(piston__h2s, tio));
  if (st->reset || st->reject || !st->req)
    return;
  piston__debug("HTTP/2: connection %llu stream %" PRId32 ": %s timeout",
                (unsigned long long)st->s->h->conn.id, st->id,
                kind == TIMER_BODY ? "body" : "handler");
  st->cut = true;
  if (!st->req->loop_ended) { /* else only the body is waited for */
    st->reject = kind == TIMER_BODY ? 408 : 503;
    st->late = kind == TIMER_HANDLER;
  }
  piston__conn_mark_dirty(&st->s->h->conn);
}

static bool session_done(piston__h2 *s);

/* Submits the 1xx heads the host queued for st (lock held): each begins
 * with its :status, and all go out before the final head. */
static void submit_info(piston__h2 *s, piston__h2s *st) {
  piston_req *r = st->req;
  nghttp2_nv nv[128];
  size_t nn = fields_nv(r->h2_info, r->h2_info_len, nv, 128);
  size_t from = 0;
  for (size_t i = 1; i <= nn; i++) {
    if (i < nn && !(nv[i].namelen == 7 && !memcmp(nv[i].name, ":status", 7)))
      continue;
    nghttp2_submit_headers(s->ss, NGHTTP2_FLAG_NONE, st->id, NULL, nv + from,
                           i - from, NULL);
    from = i;
  }
  r->h2_info_len = 0;
}

/* Frames into the connection's queue, a high-water mark at a time: the
 * rest waits for the socket, in nghttp2. False: c was closed. */
static bool send_frames(piston__h2 *s, piston__conn *c) {
  uint64_t high = (uint64_t)srv_of(s)->opt[PISTON_OPT_WRITE_HIGH_WATER];
  while (c->out.pending < high) {
    const uint8_t *data;
    ssize_t n = nghttp2_session_mem_send(s->ss, &data);
    if (n <= 0)
      break;
    if (piston__outq_append(&c->out, data, (size_t)n) != 0) {
      piston__conn_close(c);
      return false;
    }
  }
  return true;
}

/* Loop thread, before each flush: what the hosts queued becomes frames. */
static void h2_prepare(piston__conn *c) {
  piston__h2 *s = h2_of(c);
  for (piston__h2s *st = s->streams; st; st = st->next) {
    piston_req *r = st->req;
    if (!r || !st->dispatched)
      continue;
    if (st->reject) {
      stream_reject(s, st);
      continue;
    }
    pthread_mutex_lock(&r->lock);
    uint64_t taken = r->body_taken;
    bool started = r->resp != RESP_NONE && !st->submitted;
    bool more = r->h2_out.pending > 0 || r->loop_ended;
    bool abort = r->abort_requested && !st->reset;
    if (r->h2_info_len && !st->submitted && !st->reset)
      submit_info(s, st);
    nghttp2_nv nv[128];
    size_t nn = 0;
    if (started)
      nn = fields_nv(r->h2_head, r->h2_head_len, nv, 128);
    bool bodyless = r->no_body;
    pthread_mutex_unlock(&r->lock);
    if (taken > st->acked) {
      nghttp2_session_consume(s->ss, st->id, taken - st->acked);
      st->acked = taken;
    }
    if (abort) {
      /* the host gave up mid-response: the stream, not the connection */
      st->reset = true;
      nghttp2_submit_rst_stream(s->ss, NGHTTP2_FLAG_NONE, st->id,
                                NGHTTP2_INTERNAL_ERROR);
      continue;
    }
    if (started) {
      nghttp2_data_provider prd = {.source.ptr = st,
                                   .read_callback = read_body};
      st->submitted = true;
      if (bodyless)
        st->eof = true;
      nghttp2_submit_response(s->ss, st->id, nv, nn, bodyless ? NULL : &prd);
    } else if (st->deferred && more) {
      st->deferred = false;
      nghttp2_session_resume_data(s->ss, st->id);
    }
  }
  if (!send_frames(s, c))
    return;
  bool blocked = false; /* a response waits for the client's window */
  bool reset = false;
  for (piston__h2s *st = s->streams; st; st = st->next) {
    if (!st->req || !st->dispatched)
      continue;
    piston__req_update_pressure(st->req);
    if (st->eof && !st->reset && !st->req->body_done &&
        (st->cut || s->peer_gone)) {
      /* the response is out whole, the request's body is not in and
       * will not be waited for (its timeout): the client may stop
       * sending it (RFC 9113 8.1: NO_ERROR), and the slot is free; after
       * the client's FIN the body can no longer come at all */
      st->reset = reset = true;
      nghttp2_submit_rst_stream(s->ss, NGHTTP2_FLAG_NONE, st->id,
                                s->peer_gone ? NGHTTP2_CANCEL
                                             : NGHTTP2_NO_ERROR);
    }
    stream_timer(s, st);
    if (st->submitted && !st->eof && !st->deferred && !st->reset &&
        (nghttp2_session_get_stream_remote_window_size(s->ss, st->id) <= 0 ||
         nghttp2_session_get_remote_window_size(s->ss) <= 0)) {
      if (s->peer_gone) {
        /* after its FIN the client sends no WINDOW_UPDATE: it cannot
         * take this response any more */
        st->reset = reset = true;
        nghttp2_submit_rst_stream(s->ss, NGHTTP2_FLAG_NONE, st->id,
                                  NGHTTP2_CANCEL);
      } else {
        blocked = true;
      }
    }
  }
  if (reset && !send_frames(s, c))
    return;
  /* a client that holds its window shut is a client that does not read:
   * the write timeout, as for a full socket on HTTP/1.1 */
  if (blocked && c->io.timer != TIMER_WRITE)
    piston__conn_timer(c, TIMER_WRITE);
  else if (!blocked && c->io.timer == TIMER_WRITE && c->out.pending == 0)
    piston__conn_timer(c, s->nstreams ? TIMER_NONE : TIMER_IDLE);
  if (session_done(s))
    piston__conn_finish(c); /* GOAWAY sent and every stream done */
}

/* ---- the connection layer's ops ---- */

static void dispatch_ready(piston__h2 *s) {
  piston__h2s *st = s->ready;
  s->ready = NULL;
  s->ready_tail = &s->ready;
  piston__conn *c = &s->h->conn;
  const piston_server *srv = srv_of(s);
  while (st) {
    piston__h2s *next = st->ready_next;
    st->ready_next = NULL;
    if (st->closed) { /* reset by the client before its dispatch */
      stream_free(st);
      st = next;
      continue;
    }
    st->dispatched = true;
    piston_req *r = st->req;
    if (st->reject) {
      piston__conn_mark_dirty(c);
    } else if (!piston__route_exchange(c, r)) {
      atomic_fetch_add(&r->refs, 1); /* the host's reference */
      s->hosted = true;
      s->h->hosted = true;
      c->io.loop->dispatched = true;
      if (!r->cache_parked) /* else it waits on another's miss (cache.c) */
        srv->on_request(r, srv->on_request_ud);
    }
    if (r->body_len > 0 || r->body_done)
      piston__req_notify(r, PISTON_EV_BODY);
    st = next;
  }
  piston__conn_mark_dirty(c);
}

static void drop_ready(piston__h2 *s) {
  piston__h2s *st = s->ready;
  s->ready = NULL;
  s->ready_tail = &s->ready;
  while (st) {
    piston__h2s *next = st->ready_next;
    stream_free(st);
    st = next;
  }
}

static void h2_run(piston__conn *c) {
  piston__h2 *s = h2_of(c);
  for (int budget = 16; c->state == CONN_OPEN; budget--) {
    if (c->rpos < c->rlen) {
      ssize_t n = nghttp2_session_mem_recv(
          s->ss, (const uint8_t *)c->rbuf + c->rpos, c->rlen - c->rpos);
      if (n < 0) {
        piston__debug("HTTP/2: connection %llu: %s", (unsigned long long)c->id,
                      nghttp2_strerror((int)n));
        /* a fatal error: GOAWAY (nghttp2 queued one already where the
         * protocol names the code), then the close */
        nghttp2_session_terminate_session(s->ss, n == NGHTTP2_ERR_FLOODED
                                                     ? NGHTTP2_ENHANCE_YOUR_CALM
                                                     : NGHTTP2_PROTOCOL_ERROR);
        s->goaway = true;
        c->rpos = c->rlen = 0;
        piston__conn_mark_dirty(c);
        break;
      }
      c->rpos = c->rlen = 0;
      if (!nghttp2_session_want_read(s->ss)) {
        /* a connection error in this input: nghttp2 queued its GOAWAY;
         * nothing received with it is answered before it */
        s->goaway = true;
        drop_ready(s);
        piston__conn_mark_dirty(c);
        break;
      }
      dispatch_ready(s);
      continue;
    }
    if (c->peer_eof) {
      /* the client's FIN: the streams it finished sending are still
       * answered; those it can no longer complete (a head or a body cut
       * short) end here, the host told as for a client gone */
      s->peer_gone = true;
      for (piston__h2s *st = s->streams; st; st = st->next)
        if (!st->reset &&
            (!st->queued || (!st->req->body_done && !st->submitted))) {
          st->reset = true; /* nghttp2 closes it once the frame is out */
          nghttp2_submit_rst_stream(s->ss, NGHTTP2_FLAG_NONE, st->id,
                                    NGHTTP2_CANCEL);
        }
      piston__conn_mark_dirty(c);
      if (s->nstreams == 0) {
        piston__conn_finish(c);
        return;
      }
      break;
    }
    if (!c->readable)
      break;
    if (budget == 0) {
      piston__conn_mark_pending(c);
      break;
    }
    int n = piston__conn_read(c);
    if (n == -2)
      return;
    if (n < 0)
      break;
  }
  if (c->state != CONN_OPEN)
    return;
  if (c->rlen == 0)
    piston__conn_rbuf_release(c);
  piston__conn_timer(c, s->nstreams ? TIMER_NONE : TIMER_IDLE);
  piston__conn_mark_dirty(c);
}

/* Whether the session is over: GOAWAY sent (or received) and no stream
 * left, with everything written. */
static bool session_done(piston__h2 *s) {
  return !nghttp2_session_want_read(s->ss) &&
         !nghttp2_session_want_write(s->ss) && s->h->conn.out.pending == 0;
}

static void h2_flushed(piston__conn *c, bool sent) {
  piston__h2 *s = h2_of(c);
  if (!sent)
    return;
  if (nghttp2_session_want_write(s->ss))
    piston__conn_mark_dirty(c); /* frames nghttp2 still holds */
  else if (session_done(s) && c->state == CONN_OPEN)
    piston__conn_finish(c);
}

static void h2_timeout(piston__conn *c, int kind) {
  piston__h2 *s = h2_of(c);
  if (kind == TIMER_IDLE && s->nstreams == 0 && !s->goaway) {
    /* idle: say so, then close once the GOAWAY is out */
    nghttp2_session_terminate_session(s->ss, NGHTTP2_NO_ERROR);
    s->goaway = true;
    piston__conn_mark_dirty(c);
    piston__conn_timer(c, TIMER_WRITE);
    return;
  }
  piston__conn_close(c);
}

static void h2_stop(piston__conn *c) {
  /* graceful stop: GOAWAY with the last stream seen; streams in flight
   * finish, then the connection closes (prepare sees nothing left) */
  piston__h2 *s = h2_of(c);
  if (!s->goaway) {
    nghttp2_submit_goaway(s->ss, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(s->ss),
                          NGHTTP2_NO_ERROR, NULL, 0);
    s->goaway = true;
  }
  piston__conn_mark_dirty(c);
}

static bool h2_idle(const piston__conn *c) {
  const piston__h2 *s = piston__h1_of((piston__conn *)c)->h2;
  return s->nstreams == 0 && c->out.pending == 0 && !c->readable;
}

static void h2_closing(piston__conn *c) {
  piston__h2 *s = h2_of(c);
  s->ready = NULL; /* those not dispatched are among the streams */
  s->ready_tail = &s->ready;
  while (s->streams)
    stream_free(s->streams);
  piston__h1_closing(c);
}

void piston__h2_free(void *p) {
  piston__h2 *s = p;
  if (!s)
    return;
  nghttp2_session_del(s->ss);
  free(s);
}

static const piston__proto h2_proto = {
    .run = h2_run,
    .prepare = h2_prepare,
    .flushed = h2_flushed,
    .timeout = h2_timeout,
    .stop = h2_stop,
    .idle = h2_idle,
    .closing = h2_closing,
    .destroy = piston__h1_destroy,
};

/* A server session for h's connection, its SETTINGS queued; NULL when
 * there is no memory. */
static piston__h2 *session_new(piston__h1 *h) {
  piston__conn *c = &h->conn;
  piston__h2 *s = calloc(1, sizeof *s);
  nghttp2_session_callbacks *cb = NULL;
  nghttp2_option *opt = NULL;
  if (!s || nghttp2_session_callbacks_new(&cb) != 0 ||
      nghttp2_option_new(&opt) != 0)
    goto fail;
  s->h = h;
  s->ready_tail = &s->ready;
  s->budget_from_ms = c->io.loop->now_ms;
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
  nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(
      cb, on_invalid_frame);
  nghttp2_session_callbacks_set_send_data_callback(cb, send_data);
  /* the window follows what the host reads (prepare) */
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_stream_reset_rate_limit(opt, RESET_BUDGET,
                                             RESET_BUDGET / 10);
  nghttp2_option_set_max_continuations(opt, 8);
  int rc = nghttp2_session_server_new2(&s->ss, cb, s, opt);
  nghttp2_session_callbacks_del(cb);
  nghttp2_option_del(opt);
  cb = NULL;
  opt = NULL;
  if (rc != 0)
    goto fail;
  const piston_server *srv = c->io.loop->srv;
  int64_t window = srv->opt[PISTON_OPT_BODY_HIGH_WATER];
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, MAX_STREAMS},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE,
       (uint32_t)(window < INT32_MAX ? window : INT32_MAX)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
       (uint32_t)srv->opt[PISTON_OPT_MAX_HEAD_SIZE]},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
  };
  /* the connection's window: a few streams' worth (each holds at most its
   * own window of unread body) */
  if (nghttp2_submit_settings(s->ss, NGHTTP2_FLAG_NONE, iv,
                              sizeof iv / sizeof iv[0]) != 0 ||
      nghttp2_session_set_local_window_size(
          s->ss, NGHTTP2_FLAG_NONE, 0,
          (int32_t)(window * 4 < INT32_MAX ? window * 4 : INT32_MAX)) != 0)
    goto fail;
  return s;
fail:
  if (cb)
    nghttp2_session_callbacks_del(cb);
  if (opt)
    nghttp2_option_del(opt);
  if (s && s->ss)
    nghttp2_session_del(s->ss);
  free(s);
  return NULL;
}

static void take_over(piston__h1 *h, piston__h2 *s) {
  piston__conn *c = &h->conn;
  h->h2 = s;
  c->proto = &h2_proto;
  piston__conn_timer(c, TIMER_HEAD); /* the preface and first frames */
  piston__conn_mark_pending(c);
  piston__conn_mark_dirty(c);
}

void piston__h2_start(piston__h1 *h) {
  piston__h2 *s = session_new(h);
  if (!s) {
    piston__conn_close(&h->conn);
    return;
  }
  take_over(h, s);
}

/* ---- the HTTP/1.1 Upgrade: h2c path (RFC 7540 3.2) ---- */

/* base64url without padding (RFC 7540 3.2.1) into out (room for len * 3 /
 * 4 bytes); the decoded length, or -1 for a character outside it. */
static ssize_t b64url_decode(const char *in, size_t len, uint8_t *out) {
  uint32_t acc = 0;
  int bits = 0;
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    char ch = in[i];
    int v = ch >= 'A' && ch <= 'Z'   ? ch - 'A'
            : ch >= 'a' && ch <= 'z' ? ch - 'a' + 26
            : ch >= '0' && ch <= '9' ? ch - '0' + 52
            : ch == '-' || ch == '+' ? 62
            : ch == '_' || ch == '/' ? 63
            : ch == '='              ? -2
                                     : -1;
    if (v == -2 && i + 2 >= len)
      break; /* padding, tolerated at the end */
    if (v < 0)
      return -1;
    acc = acc << 6 | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (uint8_t)(acc >> bits);
    }
  }
  return (ssize_t)n;
}

/* Fields of an HTTP/1.1 request that are the connection's, not the
 * message's: HTTP/2 has none (RFC 9113 8.2.2). */
static bool hop_field(piston_str n) {
  static const char *const names[] = {"connection",
                                      "upgrade",
                                      "http2-settings",
                                      "keep-alive",
                                      "proxy-connection",
                                      "transfer-encoding",
                                      "te",
                                      "host"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (n.len == strlen(names[i]) && !strncasecmp(n.ptr, names[i], n.len))
      return true;
  return false;
}

/* Stream 1's request, copied from the HTTP/1.1 one that asked for the
 * upgrade; -1: no memory. */
static int upgraded_head(piston__h2s *st, const piston_req *r) {
  piston_str m = piston_req_method(r);
  piston_str t = {r->base + r->target_off, r->target_len};
  piston_str host = piston_req_header(r, "host", 4);
  int64_t mo = head_put(st, (const uint8_t *)m.ptr, m.len);
  int64_t to = head_put(st, (const uint8_t *)t.ptr, t.len);
  int64_t ho = head_put(st, (const uint8_t *)host.ptr, host.len);
  if (mo < 0 || to < 0 || ho < 0)
    return -1;
  st->method_off = (uint32_t)mo;
  st->method_len = (uint32_t)m.len;
  st->path_off = (uint32_t)to;
  st->path_len = (uint32_t)t.len;
  st->authority_off = (uint32_t)ho;
  st->authority_len = (uint32_t)host.len;
  for (size_t i = 0; i < piston_req_header_count(r); i++) {
    piston_header f = piston_req_header_at(r, i);
    if (hop_field(f.name))
      continue;
    char lower[64]; /* HTTP/2 field names are lower case */
    if (f.name.len > sizeof lower)
      return -1;
    for (size_t k = 0; k < f.name.len; k++)
      lower[k] = (char)((f.name.ptr[k] >= 'A' && f.name.ptr[k] <= 'Z')
                            ? f.name.ptr[k] + 32
                            : f.name.ptr[k]);
    if (add_field(st, (const uint8_t *)lower, f.name.len,
                  (const uint8_t *)f.value.ptr, f.value.len) < 0)
      return -1;
  }
  return 0;
}

static const char switching[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                "Connection: Upgrade\r\nUpgrade: h2c\r\n\r\n";

bool piston__h2_upgrade(piston__h1 *h) {
  piston__conn *c = &h->conn;
  piston_req *r = h->req;
  /* h2c only in clear text, when asked for; a request with a body stays
   * HTTP/1.1 (RFC 7540 3.2 leaves it to the server): upgrading it would
   * mean reading the whole body before the switch, buffered without the
   * window that bounds it on HTTP/2, and the next request can use the
   * preface anyway */
  if (c->io.loop->srv->opt[PISTON_OPT_HTTP2] < 2 || c->tls || r->minor < 1 ||
      r->content_length != 0 || !r->body_done ||
      !piston__req_lists_token(r, "upgrade", 7, "h2c") ||
      !piston__req_lists_token(r, "connection", 10, "upgrade") ||
      !piston__req_lists_token(r, "connection", 10, "http2-settings"))
    return false;
  piston_str set = {NULL, 0};
  for (size_t i = 0; i < piston_req_header_count(r); i++) {
    piston_header f = piston_req_header_at(r, i);
    if (f.name.len == 14 && !strncasecmp(f.name.ptr, "http2-settings", 14)) {
      if (set.ptr)
        return false; /* RFC 7540 3.2.1: exactly one */
      set = f.value;
    }
  }
  if (!set.ptr)
    return false;
  uint8_t *payload = malloc(set.len * 3 / 4 + 1);
  ssize_t plen = payload ? b64url_decode(set.ptr, set.len, payload) : -1;
  piston__h2 *s = plen >= 0 ? session_new(h) : NULL;
  piston__h2s *st = s ? stream_new(s, 1) : NULL;
  /* (a server's session keeps no user data given here: set below) */
  bool ok = st &&
            nghttp2_session_upgrade2(s->ss, payload, (size_t)plen, r->is_head,
                                     NULL) == 0 &&
            nghttp2_session_set_stream_user_data(s->ss, 1, st) == 0;
  free(payload);
  if (ok && upgraded_head(st, r) == 0 &&
      piston__outq_append(&c->out, switching, sizeof switching - 1) == 0) {
    finish_head(st, true);
    queue_ready(s, st);
    take_over(h, s);
    dispatch_ready(s);
    return true;
  }
  if (st) {
    s->goaway = true; /* the connection's timer stays HTTP/1.1's */
    stream_free(st);
  }
  if (s)
    piston__h2_free(s);
  /* a malformed HTTP2-Settings: the request is answered on HTTP/1.1 */
  return false;
}
