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
  st->next = s->streams;
  if (s->streams)
    s->streams->prev = st;
  s->streams = st;
  s->nstreams++;
  return st;
}

static void stream_free(piston__h2s *st) {
  piston__h2 *s = st->s;
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

/* The body of a stream's response, from its queue: bytes copied, file
 * ranges read. Deferred while the host has not written more; the end once
 * it ended (trailers then follow in their own HEADERS). */
static ssize_t read_body(nghttp2_session *ss, int32_t id, uint8_t *buf,
                         size_t length, uint32_t *flags,
                         nghttp2_data_source *src, void *ud) {
  (void)ud;
  piston__h2s *st = src->ptr;
  piston_req *r = st->req;
  pthread_mutex_lock(&r->lock);
  piston__outq *q = &r->h2_out;
  size_t n = 0;
  while (n < length && q->pending) {
    int fd;
    uint64_t off;
    size_t len;
    if (piston__outq_front(q, &fd, &off, &len) == 1) {
      size_t want = len < length - n ? len : length - n;
      ssize_t got = pread(fd, buf + n, want, (off_t)off);
      if (got <= 0) {
        pthread_mutex_unlock(&r->lock);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
      }
      piston__outq_consume(q, (size_t)got);
      n += (size_t)got;
    } else {
      char *stage = (char *)buf + n;
      const char *p = piston__outq_gather(q, stage, length - n, &len);
      if (p != stage)
        memcpy(stage, p, len);
      piston__outq_consume(q, len);
      n += len;
    }
  }
  bool ended = q->pending == 0 && r->loop_ended;
  bool trailers = ended && r->h2_trailers_len > 0;
  if (!ended && n == 0) {
    st->deferred = true;
    pthread_mutex_unlock(&r->lock);
    return NGHTTP2_ERR_DEFERRED;
  }
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

/* An answer of the engine's own (413, 414, 431...) to one stream. */
static void stream_reject(piston__h2 *s, piston__h2s *st) {
  piston_req *r = st->req;
  int status = st->reject;
  st->reject = 0;
  if (piston__req_engine_answers(r, status) != RESP_NONE) {
    nghttp2_submit_rst_stream(s->ss, NGHTTP2_FLAG_NONE, st->id,
                              NGHTTP2_INTERNAL_ERROR);
    return;
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
    piston__req_notify(r, PISTON_EV_CLOSED);
}

static bool session_done(piston__h2 *s);

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
    if (s->peer_gone && st->eof && !st->reset && !r->body_done) {
      /* answered, but its body can no longer come: end it */
      st->reset = true;
      nghttp2_submit_rst_stream(s->ss, NGHTTP2_FLAG_NONE, st->id,
                                NGHTTP2_CANCEL);
      continue;
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
  /* frames into the connection's queue, a high-water mark at a time: the
   * rest waits for the socket, in nghttp2 */
  uint64_t high = (uint64_t)srv_of(s)->opt[PISTON_OPT_WRITE_HIGH_WATER];
  while (c->out.pending < high) {
    const uint8_t *data;
    ssize_t n = nghttp2_session_mem_send(s->ss, &data);
    if (n <= 0)
      break;
    if (piston__outq_append(&c->out, data, (size_t)n) != 0) {
      piston__conn_close(c);
      return;
    }
  }
  bool blocked = false; /* a response waits for the client's window */
  for (piston__h2s *st = s->streams; st; st = st->next) {
    if (!st->req || !st->dispatched)
      continue;
    piston__req_update_pressure(st->req);
    if (st->submitted && !st->eof && !st->deferred && !st->reset &&
        (nghttp2_session_get_stream_remote_window_size(s->ss, st->id) <= 0 ||
         nghttp2_session_get_remote_window_size(s->ss) <= 0)) {
      if (s->peer_gone) {
        /* after its FIN the client sends no WINDOW_UPDATE: it cannot
         * take this response any more */
        st->reset = true;
        nghttp2_submit_rst_stream(s->ss, NGHTTP2_FLAG_NONE, st->id,
                                  NGHTTP2_CANCEL);
        piston__conn_mark_dirty(c);
      } else {
        blocked = true;
      }
    }
  }
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

void piston__h2_start(piston__h1 *h) {
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
  h->h2 = s;
  h->conn.proto = &h2_proto;
  piston__conn_timer(c, TIMER_HEAD); /* the preface and first frames */
  piston__conn_mark_pending(c);
  piston__conn_mark_dirty(c);
  return;
fail:
  if (cb)
    nghttp2_session_callbacks_del(cb);
  if (opt)
    nghttp2_option_del(opt);
  if (s && s->ss)
    nghttp2_session_del(s->ss);
  free(s);
  piston__conn_close(c);
}
