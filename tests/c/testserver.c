/* piston-testserver: a host program on the public API of piston.h, used by
 * the protocol tests (tests/protocol). Every request goes through the host
 * handler (no native routes), and the routes exercise each part of the API:
 * body pulls with PISTON_EV_BODY on the loop thread and from a worker
 * thread, writes with backpressure (PISTON_EV_DRAIN), trailers, sendfile,
 * aborts, handles held until PISTON_EV_CLOSED, and /stats to check from the
 * outside that every handle was released.
 *
 * Ownership rule of this file: every request handle taken in on_request is
 * released exactly once, by whoever finishes it (the loop thread for the
 * loop-side handlers, the worker for the thread-side ones); g_live counts
 * the handles the host still holds. */
#define _GNU_SOURCE
#include "../../csrc/piston.h"
#include "cli.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROG "piston-testserver"
#define CHUNK (64 * 1024)

static atomic_long g_live, g_closed_events, g_requests, g_batches;
static atomic_long g_raw_sunk; /* bytes /raw-shut-first read */
static piston_loop **g_loops;
static piston_server *g_srv;
static size_t g_nloops;
static int g_shutdown_ms = 5000;
static volatile sig_atomic_t g_stopping;

/* ---- small helpers ------------------------------------------------------ */

static int str_eq(piston_str s, const char *lit) {
  size_t n = strlen(lit);
  return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

/* The integer value of key in a query string, or dflt. */
static long long query_int(piston_str q, const char *key, long long dflt) {
  size_t klen = strlen(key);
  size_t i = 0;
  while (i < q.len) {
    size_t end = i;
    while (end < q.len && q.ptr[end] != '&')
      end++;
    if (end - i > klen && memcmp(q.ptr + i, key, klen) == 0 &&
        q.ptr[i + klen] == '=') {
      long long v = 0;
      for (size_t j = i + klen + 1; j < end; j++) {
        if (q.ptr[j] < '0' || q.ptr[j] > '9')
          return dflt;
        v = v * 10 + (q.ptr[j] - '0');
      }
      return v;
    }
    i = end + 1;
  }
  return dflt;
}

/* The raw value of key in a query string (not decoded); ptr NULL if none. */
static piston_str query_str(piston_str q, const char *key) {
  size_t klen = strlen(key);
  size_t i = 0;
  piston_str none = {NULL, 0};
  while (i < q.len) {
    size_t end = i;
    while (end < q.len && q.ptr[end] != '&')
      end++;
    if (end - i > klen && memcmp(q.ptr + i, key, klen) == 0 &&
        q.ptr[i + klen] == '=') {
      piston_str v = {q.ptr + i + klen + 1, end - i - klen - 1};
      return v;
    }
    i = end + 1;
  }
  return none;
}

typedef struct {
  char *ptr;
  size_t len, cap;
} buf_t;

static void buf_add(buf_t *b, const void *p, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n)
      cap *= 2;
    char *np = realloc(b->ptr, cap);
    if (!np) {
      fprintf(stderr, PROG ": out of memory\n");
      abort();
    }
    b->ptr = np;
    b->cap = cap;
  }
  memcpy(b->ptr + b->len, p, n);
  b->len += n;
}

static void buf_str(buf_t *b, piston_str s) {
  buf_add(b, s.ptr, s.len);
}
static void buf_cstr(buf_t *b, const char *s) {
  buf_add(b, s, strlen(s));
}

static void buf_fmt(buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void buf_fmt(buf_t *b, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n > 0)
    buf_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* The body pattern of /big, /chunked and /sendfile: byte k is 'a' + k % 26. */
static void fill_pattern(char *dst, uint64_t offset, size_t n) {
  for (size_t i = 0; i < n; i++)
    dst[i] = (char)('a' + (offset + i) % 26);
}

static const piston_header H_TEXT[] = {
    {{"Content-Type", 12}, {"text/plain", 10}}};

static void release(piston_req *req) {
  atomic_fetch_sub(&g_live, 1);
  piston_req_release(req);
}

static void check(int rc, const char *what) {
  /* PISTON_ECLOSED is the normal outcome of writing to a client that left. */
  if (rc < 0 && rc != PISTON_ECLOSED)
    fprintf(stderr, PROG ": %s: %s (%s)\n", what, piston_strerror(rc),
            piston_err_name(rc));
}

static void send_text(piston_req *req, int status, const char *body) {
  check(piston_resp_send(req, status, H_TEXT, 1, body, strlen(body)),
        "piston_resp_send");
}

static void noop_event(piston_req *req, int events, void *ud) {
  (void)req;
  (void)ud;
  if (events & PISTON_EV_CLOSED)
    atomic_fetch_add(&g_closed_events, 1);
}

/* ---- loop-side handlers: state machines driven by events ----------------
 * The request cb and every event cb run on the loop thread, so no locks.
 * pump() guards against re-entry in case the engine notifies from inside a
 * read or write call. */

enum { K_ECHO, K_BIG, K_CHUNKED, K_NEVER };

typedef struct lstate {
  piston_req *req;
  int kind;
  int pumping, again, done, events;
  buf_t body;           /* K_ECHO */
  uint64_t total, sent; /* K_BIG, K_CHUNKED: bytes */
  size_t chunk;         /* size of each write */
  int started;
} lstate;

static void lstate_finish(lstate *s) {
  if (s->done)
    return;
  s->done = 1;
  piston_req_on_event(s->req, noop_event, NULL);
  piston_req_set_userdata(s->req, NULL);
  release(s->req);
}

static void step_echo(lstate *s) {
  char tmp[16384];
  for (;;) {
    int64_t n = piston_req_body_read(s->req, tmp, sizeof tmp);
    if (n > 0) {
      buf_add(&s->body, tmp, (size_t)n);
      continue;
    }
    if (n == 0) {
      check(piston_resp_send(s->req, 200, H_TEXT, 1, s->body.ptr, s->body.len),
            "echo send");
      lstate_finish(s);
      return;
    }
    if (n == PISTON_EAGAIN) {
      if (s->events & PISTON_EV_CLOSED)
        lstate_finish(s);
      return; /* wait for PISTON_EV_BODY */
    }
    /* ECLOSED, or ETOOBIG (the engine answers 413 itself). */
    if (n != PISTON_ETOOBIG)
      check((int)n, "echo read");
    lstate_finish(s);
    return;
  }
}

/* Writes until done or until a write reports backpressure. */
static void step_writer(lstate *s) {
  char tmp[CHUNK];
  if (s->events & PISTON_EV_CLOSED) {
    lstate_finish(s);
    return;
  }
  while (s->sent < s->total) {
    size_t n = s->chunk;
    if (s->total - s->sent < n)
      n = (size_t)(s->total - s->sent);
    if (n > sizeof tmp)
      n = sizeof tmp;
    if (s->kind == K_BIG)
      fill_pattern(tmp, s->sent, n);
    else /* K_CHUNKED: write i is all one letter */
      memset(tmp, 'a' + (int)((s->sent / s->chunk) % 26), n);
    int rc = piston_resp_write(s->req, tmp, n);
    if (rc < 0) {
      check(rc, "write");
      lstate_finish(s);
      return;
    }
    s->sent += n;
    if (rc == 1 && s->sent < s->total)
      return; /* resume on PISTON_EV_DRAIN */
  }
  check(piston_resp_end(s->req, NULL, 0), "end");
  lstate_finish(s);
}

static void pump(lstate *s) {
  if (s->pumping) {
    s->again = 1;
    return;
  }
  s->pumping = 1;
  do {
    s->again = 0;
    if (s->done)
      break;
    switch (s->kind) {
    case K_ECHO: step_echo(s); break;
    case K_BIG:
    case K_CHUNKED: step_writer(s); break;
    case K_NEVER:
      if (s->events & PISTON_EV_CLOSED)
        lstate_finish(s);
      break;
    }
  } while (s->again && !s->done);
  s->pumping = 0;
  if (s->done) {
    free(s->body.ptr);
    free(s);
  }
}

static void loop_event(piston_req *req, int events, void *ud) {
  (void)ud;
  if (events & PISTON_EV_CLOSED)
    atomic_fetch_add(&g_closed_events, 1);
  lstate *s = piston_req_userdata(req);
  if (!s)
    return;
  s->events |= events;
  pump(s);
}

static void start_loop_handler(piston_req *req, int kind, uint64_t total,
                               size_t chunk) {
  lstate *s = calloc(1, sizeof *s);
  if (!s)
    abort();
  s->req = req;
  s->kind = kind;
  s->total = total;
  s->chunk = chunk ? chunk : 1;
  piston_req_set_userdata(req, s);
  piston_req_on_event(req, loop_event, NULL);
  if (kind == K_BIG) {
    char cl[32];
    snprintf(cl, sizeof cl, "%llu", (unsigned long long)total);
    piston_header h[2] = {
        {{"Content-Type", 12}, {"application/octet-stream", 24}},
        {{"Content-Length", 14}, {cl, strlen(cl)}}};
    check(piston_resp_start(req, 200, h, 2), "start");
  } else if (kind == K_CHUNKED) {
    check(piston_resp_start(req, 200, H_TEXT, 1), "start");
  }
  pump(s);
}

/* ---- thread-side handlers: a worker per request --------------------------
 * Event callbacks only set bits under g_mu and signal; they find the state
 * by id in a registry, so a callback that races with the worker finishing
 * never touches freed memory. */

enum { T_ECHO, T_SLOW, T_BIG };

typedef struct tstate {
  struct tstate *next;
  uintptr_t id;
  piston_req *req;
  int kind;
  int events;
  long long arg;
  pthread_cond_t cv;
} tstate;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static tstate *g_threads;
static uintptr_t g_next_id = 1;

static void thread_event(piston_req *req, int events, void *ud) {
  (void)req;
  if (events & PISTON_EV_CLOSED)
    atomic_fetch_add(&g_closed_events, 1);
  uintptr_t id = (uintptr_t)ud;
  pthread_mutex_lock(&g_mu);
  for (tstate *t = g_threads; t; t = t->next) {
    if (t->id == id) {
      t->events |= events;
      pthread_cond_broadcast(&t->cv);
      break;
    }
  }
  pthread_mutex_unlock(&g_mu);
}

static void tstate_finish(tstate *t) {
  pthread_mutex_lock(&g_mu);
  for (tstate **pp = &g_threads; *pp; pp = &(*pp)->next) {
    if (*pp == t) {
      *pp = t->next;
      break;
    }
  }
  pthread_mutex_unlock(&g_mu);
  release(t->req);
  pthread_cond_destroy(&t->cv);
  free(t);
}

/* Waits until one of the bits in mask is set; returns the bits seen. */
static int twait(tstate *t, int mask) {
  pthread_mutex_lock(&g_mu);
  while (!(t->events & mask))
    pthread_cond_wait(&t->cv, &g_mu);
  int ev = t->events;
  pthread_mutex_unlock(&g_mu);
  return ev;
}

static void tclear(tstate *t, int bits) {
  pthread_mutex_lock(&g_mu);
  t->events &= ~bits;
  pthread_mutex_unlock(&g_mu);
}

/* Sleeps ms milliseconds (a host that answers later, off the loop). */
static void sleep_ms(long long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static void thread_echo(tstate *t) {
  buf_t body = {0};
  char tmp[16384];
  sleep_ms(t->arg); /* ?ms=: answer after the body (and a FIN) arrived */
  for (;;) {
    tclear(t, PISTON_EV_BODY);
    int64_t n = piston_req_body_read(t->req, tmp, sizeof tmp);
    if (n > 0) {
      buf_add(&body, tmp, (size_t)n);
      continue;
    }
    if (n == 0) {
      check(piston_resp_send(t->req, 200, H_TEXT, 1, body.ptr, body.len),
            "echo-thread send");
      break;
    }
    if (n == PISTON_EAGAIN) {
      if (twait(t, PISTON_EV_BODY | PISTON_EV_CLOSED) & PISTON_EV_CLOSED)
        break;
      continue;
    }
    if (n != PISTON_ETOOBIG)
      check((int)n, "echo-thread read");
    break; /* ECLOSED or ETOOBIG */
  }
  free(body.ptr);
}

static void thread_big(tstate *t) {
  static const piston_header ct = {{"Content-Type", 12},
                                   {"application/octet-stream", 24}};
  char cl[32];
  uint64_t total = (uint64_t)t->arg, sent = 0;
  snprintf(cl, sizeof cl, "%llu", (unsigned long long)total);
  piston_header h[2] = {ct, {{"Content-Length", 14}, {cl, strlen(cl)}}};
  char *tmp = malloc(CHUNK);
  if (!tmp)
    abort();
  int rc = piston_resp_start(t->req, 200, h, 2);
  while (rc >= 0 && sent < total) {
    size_t n = CHUNK;
    if (total - sent < n)
      n = (size_t)(total - sent);
    fill_pattern(tmp, sent, n);
    tclear(t, PISTON_EV_DRAIN);
    rc = piston_resp_write(t->req, tmp, n);
    if (rc < 0)
      break;
    sent += n;
    if (rc == 1 &&
        (twait(t, PISTON_EV_DRAIN | PISTON_EV_CLOSED) & PISTON_EV_CLOSED))
      rc = PISTON_ECLOSED;
  }
  if (rc >= 0)
    rc = piston_resp_end(t->req, NULL, 0);
  check(rc, "big-thread");
  free(tmp);
}

static void *worker(void *arg) {
  tstate *t = arg;
  switch (t->kind) {
  case T_ECHO: thread_echo(t); break;
  case T_BIG: thread_big(t); break;
  case T_SLOW: {
    sleep_ms(t->arg);
    send_text(t->req, 200, "slow");
    /* The loop thread dropped its own reference already (see on_request);
     * this drops the one retained for the worker. */
    break;
  }
  }
  tstate_finish(t);
  return NULL;
}

static void start_thread_handler(piston_req *req, int kind, long long arg) {
  tstate *t = calloc(1, sizeof *t);
  if (!t)
    abort();
  pthread_cond_init(&t->cv, NULL);
  t->req = req;
  t->kind = kind;
  t->arg = arg;
  pthread_mutex_lock(&g_mu);
  t->id = g_next_id++;
  t->next = g_threads;
  g_threads = t;
  pthread_mutex_unlock(&g_mu);
  piston_req_on_event(req, thread_event, (void *)t->id);
  if (kind == T_SLOW) {
    /* Exercise retain: the worker holds its own reference and the loop
     * thread drops the original one now. g_live still counts one hold. */
    piston_req_retain(req);
    piston_req_release(req);
  }
  pthread_t th;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&th, &attr, worker, t) != 0) {
    fprintf(stderr, PROG ": pthread_create failed\n");
    piston_resp_abort(req);
    tstate_finish(t);
  }
  pthread_attr_destroy(&attr);
}

/* ---- immediate handlers ------------------------------------------------- */

static void h_headers(piston_req *req) {
  buf_t b = {0};
  size_t n = piston_req_header_count(req);
  for (size_t i = 0; i < n; i++) {
    piston_header h = piston_req_header_at(req, i);
    buf_str(&b, h.name);
    buf_cstr(&b, ": ");
    buf_str(&b, h.value);
    buf_cstr(&b, "\n");
  }
  check(piston_resp_send(req, 200, H_TEXT, 1, b.ptr, b.len), "headers");
  free(b.ptr);
}

static void h_header(piston_req *req) {
  piston_str name = query_str(piston_req_query(req), "name");
  piston_str v = {NULL, 0};
  if (name.ptr)
    v = piston_req_header(req, name.ptr, name.len);
  if (!v.ptr) {
    send_text(req, 404, "none\n");
    return;
  }
  check(piston_resp_send(req, 200, H_TEXT, 1, v.ptr, v.len), "header");
}

static void h_info(piston_req *req) {
  buf_t b = {0};
  int port = -1;
  const char *addr = piston_req_remote_addr(req, &port);
  buf_cstr(&b, "method=");
  buf_str(&b, piston_req_method(req));
  buf_cstr(&b, " target=");
  buf_str(&b, piston_req_target(req));
  buf_cstr(&b, " path=");
  buf_str(&b, piston_req_path(req));
  buf_cstr(&b, " query=");
  buf_str(&b, piston_req_query(req));
  buf_fmt(&b, " minor=%d version=%d remote=%s:%d local=%d cl=%lld",
          piston_req_http_minor(req), piston_req_http_version(req),
          addr ? addr : "(null)", port, piston_req_local_port(req),
          (long long)piston_req_content_length(req));
  check(piston_resp_send(req, 200, H_TEXT, 1, b.ptr, b.len), "info");
  free(b.ptr);
}

/* The client as the engine reports it (a trusted proxy's word applied). */
static void h_client(piston_req *req) {
  buf_t b = {0};
  int port = -1, fport = 0;
  const char *addr = piston_req_remote_addr(req, &port);
  piston_str fh = piston_req_forwarded_host(req, &fport);
  buf_fmt(&b, "remote=%s:%d secure=%d host=%.*s:%d\n", addr, port,
          piston_req_secure(req), (int)fh.len, fh.ptr ? fh.ptr : "", fport);
  check(piston_resp_send(req, 200, H_TEXT, 1, b.ptr, b.len), "client");
  free(b.ptr);
}

/* What the TLS handshake negotiated, one NAME=value line per field (DER
 * fields as their length), and a reload on demand. */
static void h_tls_info(piston_req *req) {
  static const char *const names[] = {
#define NAME_(name, doc) #name,
      PISTON_TLS_INFO_MAP(NAME_)
#undef NAME_
  };
  buf_t b = {0};
  for (int i = 0; i < PISTON_TLSI__COUNT; i++) {
    piston_str v = piston_req_tls(req, (piston_tls_info)i);
    if (i == PISTON_TLSI_PEER_CERT || i == PISTON_TLSI_LOCAL_CERT)
      buf_fmt(&b, "%s=%zu\n", names[i], v.len);
    else
      buf_fmt(&b, "%s=%.*s\n", names[i], (int)v.len, v.ptr);
  }
  check(piston_resp_send(req, 200, H_TEXT, 1, b.ptr, b.len), "tls-info");
  free(b.ptr);
}

static void h_tls_reload(piston_req *req) {
  int rc = piston_server_tls_reload(g_srv);
  char body[600];
  snprintf(body, sizeof body, "%d %s", rc, piston_server_tls_error(g_srv));
  send_text(req, rc == 0 ? 200 : 500, body);
}

/* Hop-by-hop fields a host might set: HTTP/2 forbids them (RFC 9113
 * 8.2.2), so the engine drops them there. */
static void h_hop_headers(piston_req *req) {
  static const piston_header h[] = {
      {{"Connection", 10}, {"keep-alive", 10}},
      {{"Keep-Alive", 10}, {"timeout=5", 9}},
      {{"Upgrade", 7}, {"foo", 3}},
      {{"Proxy-Connection", 16}, {"close", 5}},
      {{"X-Kept", 6}, {"yes", 3}},
  };
  check(piston_resp_send(req, 200, h, 5, "hop\n", 4), "hop-headers");
}

static void h_stats(piston_req *req) {
  char body[256];
  /* This request is itself held while it is answered: leave it out. */
  snprintf(body, sizeof body,
           "live=%ld closed_events=%ld requests=%ld batches=%ld conns=%zu "
           "raw_sunk=%ld",
           atomic_load(&g_live) - 1, atomic_load(&g_closed_events),
           atomic_load(&g_requests), atomic_load(&g_batches),
           piston_loop_connections(piston_req_loop(req)),
           atomic_load(&g_raw_sunk));
  send_text(req, 200, body);
}

static void h_trailers(piston_req *req) {
  static const piston_header tr[] = {{{"X-Checksum", 10}, {"abc", 3}}};
  int rc = piston_resp_start(req, 200, H_TEXT, 1);
  if (rc >= 0)
    rc = piston_resp_write(req, "hello ", 6);
  if (rc >= 0)
    rc = piston_resp_write(req, "trailers", 8);
  if (rc >= 0)
    rc = piston_resp_end(req, tr, 1);
  check(rc, "trailers");
}

/* The host gives Content-Length itself; the engine must not add another. */
static void h_own_length(piston_req *req) {
  static const piston_header h[] = {{{"Content-Length", 14}, {"11", 2}},
                                    {{"X-Custom", 8}, {"yes", 3}}};
  int rc = piston_resp_start(req, 200, h, 2);
  if (rc >= 0)
    rc = piston_resp_write(req, "hello", 5);
  if (rc >= 0)
    rc = piston_resp_write(req, " world", 6);
  if (rc >= 0)
    rc = piston_resp_end(req, NULL, 0);
  check(rc, "own-length");
}

static void h_status(piston_req *req) {
  int code = (int)query_int(piston_req_query(req), "code", 200);
  if (code == 204 || code == 304 || code < 200) {
    check(piston_resp_send(req, code, NULL, 0, NULL, 0), "status");
  } else {
    char body[64];
    snprintf(body, sizeof body, "status %d\n", code);
    send_text(req, code, body);
  }
}

/* Starts a 100-byte response, writes 10 bytes, then aborts: the client must
 * see the connection end early. */
static void h_abort_mid(piston_req *req) {
  static const piston_header h[] = {{{"Content-Length", 14}, {"100", 3}}};
  int rc = piston_resp_start(req, 200, h, 1);
  if (rc >= 0)
    rc = piston_resp_write(req, "0123456789", 10);
  check(rc, "abort-mid");
  if (!piston_resp_started(req))
    fprintf(stderr, PROG ": piston_resp_started is 0 after a start\n");
  piston_resp_abort(req);
}

static int g_file_fd = -1;
static const size_t g_file_size = 1 << 20;

static void h_sendfile(piston_req *req) {
  piston_str q = piston_req_query(req);
  long long off = query_int(q, "off", 0);
  long long len = query_int(q, "len", (long long)g_file_size - off);
  if (off < 0 || len < 0 || (size_t)(off + len) > g_file_size) {
    send_text(req, 400, "bad range\n");
    return;
  }
  char cl[32];
  snprintf(cl, sizeof cl, "%lld", len);
  piston_header h[1] = {{{"Content-Length", 14}, {cl, strlen(cl)}}};
  int rc = piston_resp_start(req, 200, h, 1);
  if (rc >= 0)
    rc = piston_resp_sendfile(req, g_file_fd, (off_t)off, (size_t)len);
  if (rc >= 0)
    rc = piston_resp_end(req, NULL, 0);
  check(rc, "sendfile");
}

/* ---- WebSocket: /ws-echo ------------------------------------------------
 * Accepts a valid handshake (choosing the first subprotocol offered) and
 * echoes every message on the loop thread; a text "close" has the host
 * start the closing handshake, "close-now" closes with 4000 from inside the
 * message callback. An echo that reports pressure stops taking messages
 * until PISTON_EV_DRAIN, so a client that does not read is held back by the
 * engine (it stops reading the socket) rather than queued without bound.
 * An invalid attempt gets the engine's refusal. The handle is released on
 * PISTON_EV_CLOSED. */

static char g_ws_last[160]; /* "code reason" of the last /ws-echo session */
static pthread_mutex_t g_ws_last_lock = PTHREAD_MUTEX_INITIALIZER;

static void ws_event(piston_req *req, int events, void *ud) {
  (void)ud;
  /* userdata: non-NULL while an echo waits for the queue to drain */
  if (events & PISTON_EV_DRAIN)
    piston_req_set_userdata(req, NULL);
  if ((events & (PISTON_EV_MESSAGE | PISTON_EV_DRAIN)) &&
      !piston_req_userdata(req)) {
    int op;
    const void *data;
    size_t len;
    while (piston_ws_recv(req, &op, &data, &len) == 1) {
      int rc = 0;
      if (op == PISTON_WS_TEXT && len == 5 && memcmp(data, "close", 5) == 0)
        check(piston_ws_close(req, 1000, "bye", 3), "ws close");
      else if (op == PISTON_WS_TEXT && len == 9 &&
               memcmp(data, "close-now", 9) == 0)
        check(piston_ws_close(req, 4000, NULL, 0), "ws close");
      else
        rc = piston_ws_send(req, op, data, len);
      if (rc < 0)
        break; /* closing: the rest is not echoed */
      if (rc == 1) {
        piston_req_set_userdata(req, req); /* wait for the drain */
        break;
      }
    }
  }
  if (events & PISTON_EV_CLOSED) {
    /* how it ended, for /ws-last */
    piston_str why = piston_ws_close_reason(req);
    pthread_mutex_lock(&g_ws_last_lock);
    snprintf(g_ws_last, sizeof g_ws_last, "%d %.*s", piston_ws_close_code(req),
             (int)why.len, why.ptr);
    pthread_mutex_unlock(&g_ws_last_lock);
    atomic_fetch_add(&g_closed_events, 1);
    release(req);
  }
}

static void h_ws_last(piston_req *req) {
  char body[160];
  pthread_mutex_lock(&g_ws_last_lock);
  snprintf(body, sizeof body, "%s", g_ws_last);
  pthread_mutex_unlock(&g_ws_last_lock);
  send_text(req, 200, body);
}

static void h_ws_echo(piston_req *req) {
  if (piston_ws_handshake(req) != 101) {
    check(piston_ws_refuse(req), "ws refuse");
    release(req);
    return;
  }
  piston_str proto = piston_req_header(req, "sec-websocket-protocol", 22);
  size_t plen = 0;
  while (proto.ptr && plen < proto.len && proto.ptr[plen] != ',')
    plen++;
  piston_header h[1] = {{{"Sec-WebSocket-Protocol", 22}, {proto.ptr, plen}}};
  piston_req_on_event(req, ws_event, NULL);
  check(piston_ws_accept(req, h, proto.ptr ? 1 : 0), "ws accept");
}

/* Announces Content-Length: 8 and gives 20 bytes: in two writes, in one
 * piston_resp_send (?send=1) or as a file range (?file=1). The client must
 * get the first 8, then the close. */
static void h_overflow(piston_req *req) {
  static const piston_header h[] = {{{"Content-Length", 14}, {"8", 1}}};
  piston_str q = piston_req_query(req);
  int rc;
  if (query_int(q, "send", 0)) {
    rc = piston_resp_send(req, 200, h, 1, "0123456789abcdefghij", 20);
  } else {
    rc = piston_resp_start(req, 200, h, 1);
    if (rc >= 0 && query_int(q, "file", 0))
      rc = piston_resp_sendfile(req, g_file_fd, 0, 20);
    else if (rc >= 0)
      rc = piston_resp_write(req, "012345", 6);
    if (rc >= 0)
      rc = piston_resp_write(req, "6789abcdefghij", 14);
    if (rc >= 0)
      rc = piston_resp_end(req, NULL, 0);
  }
  check(rc, "overflow");
}

/* ---- WebSocket publish/subscribe: /ws-pubsub ------------------------------
 * Text commands: "sub T" and "unsub T" (answered "subscribed T" /
 * "unsubscribed T N"), "pub T MSG" (publishes MSG to T's subscribers but
 * the sender, answered "published N"), "count T" ("subscribers N"),
 * "issub T" ("issub T N"). The session's other calls: "abort"
 * (piston_ws_abort, no answer), "control" (piston_ws_control_events: each
 * ping or pong received is then answered "got ping P" / "got pong P"),
 * "ping P" (a ping with payload P), "flood N" (N binary messages of 64 KiB,
 * then "buffered B" with piston_ws_buffered as it was after them),
 * "buffered" ("buffered B"). */

static int ws_word(const char *d, size_t n, const char *cmd, const char **arg,
                   size_t *alen) {
  size_t cl = strlen(cmd);
  if (n <= cl || memcmp(d, cmd, cl) != 0 || d[cl] != ' ')
    return 0;
  *arg = d + cl + 1;
  *alen = n - cl - 1;
  return 1;
}

static void ws_reply(piston_req *req, const char *fmt, ...) {
  char out[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(out, sizeof out, fmt, ap);
  va_end(ap);
  (void)!piston_ws_send(req, PISTON_WS_TEXT, out, (size_t)n);
}

static void pubsub_event(piston_req *req, int events, void *ud) {
  (void)ud;
  int op;
  const void *data;
  size_t len;
  while ((events & PISTON_EV_MESSAGE) &&
         piston_ws_recv(req, &op, &data, &len) == 1) {
    const char *d = data, *a;
    size_t al;
    if (op == PISTON_WS_PING || op == PISTON_WS_PONG) {
      ws_reply(req, "got %s %.*s", op == PISTON_WS_PING ? "ping" : "pong",
               (int)len, d);
    } else if (len == 5 && memcmp(d, "abort", 5) == 0) {
      check(piston_ws_abort(req), "ws abort");
    } else if (len == 7 && memcmp(d, "control", 7) == 0) {
      piston_ws_control_events(req, 1);
      ws_reply(req, "control on");
    } else if (len == 8 && memcmp(d, "buffered", 8) == 0) {
      ws_reply(req, "buffered %llu",
               (unsigned long long)piston_ws_buffered(req));
    } else if (ws_word(d, len, "ping", &a, &al)) {
      check(piston_ws_send(req, PISTON_WS_PING, a, al), "ws ping");
    } else if (ws_word(d, len, "flood", &a, &al)) {
      static char chunk[64 * 1024];
      char num[16] = "";
      memcpy(num, a, al < sizeof num - 1 ? al : sizeof num - 1);
      int n = atoi(num);
      for (int i = 0; i < n; i++)
        (void)!piston_ws_send(req, PISTON_WS_BINARY, chunk, sizeof chunk);
      ws_reply(req, "buffered %llu",
               (unsigned long long)piston_ws_buffered(req));
    } else if (ws_word(d, len, "issub", &a, &al)) {
      ws_reply(req, "issub %.*s %d", (int)al, a,
               piston_ws_is_subscribed(req, a, al));
    } else if (ws_word(d, len, "sub", &a, &al)) {
      check(piston_ws_subscribe(req, a, al), "subscribe");
      ws_reply(req, "subscribed %.*s", (int)al, a);
    } else if (ws_word(d, len, "unsub", &a, &al)) {
      int was = piston_ws_unsubscribe(req, a, al);
      ws_reply(req, "unsubscribed %.*s %d", (int)al, a, was);
    } else if (ws_word(d, len, "count", &a, &al)) {
      ws_reply(req, "subscribers %zu", piston_ws_subscribers(g_srv, a, al));
    } else if (ws_word(d, len, "pub", &a, &al)) {
      const char *sp = memchr(a, ' ', al);
      size_t tl = sp ? (size_t)(sp - a) : al;
      const char *msg = sp ? sp + 1 : "";
      size_t ml = sp ? al - tl - 1 : 0;
      int n = piston_ws_publish(g_srv, a, tl, PISTON_WS_TEXT, msg, ml, req);
      ws_reply(req, "published %d", n);
    }
  }
  if (events & PISTON_EV_CLOSED) {
    atomic_fetch_add(&g_closed_events, 1);
    release(req);
  }
}

static void h_ws_pubsub(piston_req *req) {
  if (piston_ws_handshake(req) != 101) {
    check(piston_ws_refuse(req), "ws refuse");
    release(req);
    return;
  }
  piston_req_on_event(req, pubsub_event, NULL);
  check(piston_ws_accept(req, NULL, 0), "ws accept");
}

/* ---- WebSocket from another thread: /ws-thread --------------------------
 * The same echo, but every piston_ws_* call is made from a thread of the
 * session's own, so that they all take the posted path (as an ASGI app's
 * calls from outside the engine's pass do): the loop thread only signals
 * it. The thread releases the handle once the session is over. */

typedef struct {
  piston_req *req;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int events; /* signalled, not handled yet */
} wsthread;

static void wsthread_event(piston_req *req, int events, void *ud) {
  (void)req;
  wsthread *t = ud;
  pthread_mutex_lock(&t->mu);
  t->events |= events;
  pthread_cond_signal(&t->cv);
  pthread_mutex_unlock(&t->mu);
}

static void *wsthread_main(void *arg) {
  wsthread *t = arg;
  int closed = 0, waiting_drain = 0;
  while (!closed) {
    pthread_mutex_lock(&t->mu);
    while (!t->events)
      pthread_cond_wait(&t->cv, &t->mu);
    int ev = t->events;
    t->events = 0;
    pthread_mutex_unlock(&t->mu);
    if (ev & PISTON_EV_DRAIN)
      waiting_drain = 0;
    int op;
    const void *data;
    size_t len;
    while (!waiting_drain && piston_ws_recv(t->req, &op, &data, &len) == 1) {
      int rc = 0;
      if (op == PISTON_WS_TEXT && len == 5 && memcmp(data, "close", 5) == 0)
        check(piston_ws_close(t->req, 1000, "bye", 3), "ws close");
      else
        rc = piston_ws_send(t->req, op, data, len);
      if (rc < 0)
        break;
      waiting_drain = rc == 1;
    }
    closed = (ev & PISTON_EV_CLOSED) != 0;
  }
  atomic_fetch_add(&g_closed_events, 1);
  release(t->req);
  pthread_mutex_destroy(&t->mu);
  pthread_cond_destroy(&t->cv);
  free(t);
  return NULL;
}

static void h_ws_thread(piston_req *req) {
  if (piston_ws_handshake(req) != 101) {
    check(piston_ws_refuse(req), "ws refuse");
    release(req);
    return;
  }
  wsthread *t = calloc(1, sizeof *t);
  if (!t)
    abort();
  t->req = req;
  pthread_mutex_init(&t->mu, NULL);
  pthread_cond_init(&t->cv, NULL);
  piston_req_on_event(req, wsthread_event, t);
  pthread_t th;
  if (pthread_create(&th, NULL, wsthread_main, t) != 0)
    abort();
  pthread_detach(th);
  /* the accept too comes from the loop thread here, inside the request
   * callback; everything after it from the session's thread */
  check(piston_ws_accept(req, NULL, 0), "ws accept");
}

/* ---- a raw stream: /raw-echo and CONNECT -----------------------------------
 * The host takes the connection over, answers 101 (an upgrade) or 200 (a
 * CONNECT) itself and echoes every byte; when the client shuts its
 * direction, the host shuts its own. Released on PISTON_EV_CLOSED. */

static void raw_event(piston_req *req, int events, void *ud) {
  (void)ud;
  if (events & PISTON_EV_BODY) {
    char buf[16384];
    int64_t n;
    while ((n = piston_req_body_read(req, buf, sizeof buf)) > 0)
      if (piston_raw_write(req, buf, (size_t)n) < 0)
        break;
    if (n == 0)
      check(piston_raw_shutdown(req), "raw shutdown");
  }
  if (events & PISTON_EV_CLOSED) {
    atomic_fetch_add(&g_closed_events, 1);
    release(req);
  }
}

static void h_raw_echo(piston_req *req, int connect) {
  static const char up[] = "HTTP/1.1 101 Switching Protocols\r\n"
                           "Connection: Upgrade\r\nUpgrade: echo\r\n\r\n";
  static const char tunnel[] = "HTTP/1.1 200 Connection Established\r\n\r\n";
  piston_req_on_event(req, raw_event, NULL);
  check(piston_raw_takeover(req), "raw takeover");
  check(connect ? piston_raw_write(req, tunnel, sizeof tunnel - 1)
                : piston_raw_write(req, up, sizeof up - 1),
        "raw write");
  raw_event(req, PISTON_EV_BODY, NULL); /* bytes that came with the head */
}

/* /raw-abort: the host writes its 101 and "bye", then piston_resp_abort:
 * what it wrote still goes out, then the connection closes and
 * PISTON_EV_CLOSED comes. Aborted in the request callback (before the raw
 * handler runs), or with ?later=1 at the client's first bytes. */
static const char raw_up[] = "HTTP/1.1 101 Switching Protocols\r\n"
                             "Connection: Upgrade\r\nUpgrade: echo\r\n\r\n";

static void raw_abort_event(piston_req *req, int events, void *ud) {
  (void)ud;
  if (events & PISTON_EV_BODY) {
    char buf[256];
    if (piston_req_body_read(req, buf, sizeof buf) > 0) {
      check(piston_raw_write(req, "bye", 3), "raw write");
      piston_resp_abort(req);
    }
  }
  if (events & PISTON_EV_CLOSED) {
    atomic_fetch_add(&g_closed_events, 1);
    release(req);
  }
}

static void h_raw_abort(piston_req *req, int later) {
  piston_req_on_event(req, raw_abort_event, NULL);
  check(piston_raw_takeover(req), "raw takeover");
  check(piston_raw_write(req, raw_up, sizeof raw_up - 1), "raw write");
  if (later)
    return;
  check(piston_raw_write(req, "bye", 3), "raw write");
  piston_resp_abort(req);
}

/* /raw-shut-first: the host writes its 101 and shuts its direction at once,
 * then, from a thread of its own and only after ?hold_ms (the engine stops
 * reading meanwhile), counts what the client sent until its FIN (raw_sunk
 * in /stats): a half-close the host makes first, with the client's bytes
 * and FIN arriving while the host still reads nothing. The thread releases
 * the handle. */
static void raw_sink_event(piston_req *req, int events, void *ud) {
  (void)req;
  (void)ud;
  if (events & PISTON_EV_CLOSED)
    atomic_fetch_add(&g_closed_events, 1);
}

typedef struct {
  piston_req *req;
  long hold_ms;
} sink_t;

static void *raw_sink_main(void *arg) {
  sink_t *t = arg;
  struct timespec ts = {t->hold_ms / 1000, (t->hold_ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
  char buf[16384];
  for (;;) {
    int64_t n = piston_req_body_read(t->req, buf, sizeof buf);
    if (n > 0) {
      atomic_fetch_add(&g_raw_sunk, n);
    } else if (n == PISTON_EAGAIN) {
      struct timespec ms = {0, 1000000L};
      nanosleep(&ms, NULL);
    } else {
      break; /* 0: the client's FIN; or the connection is gone */
    }
  }
  release(t->req);
  free(t);
  return NULL;
}

static void h_raw_shut_first(piston_req *req, long hold_ms) {
  sink_t *t = malloc(sizeof *t);
  if (!t)
    abort();
  t->req = req;
  t->hold_ms = hold_ms;
  piston_req_on_event(req, raw_sink_event, NULL);
  check(piston_raw_takeover(req), "raw takeover");
  check(piston_raw_write(req, raw_up, sizeof raw_up - 1), "raw write");
  check(piston_raw_shutdown(req), "raw shutdown");
  pthread_t th;
  if (pthread_create(&th, NULL, raw_sink_main, t) != 0)
    abort();
  pthread_detach(th);
}

/* 103 Early Hints with a Link, then the answer. */
static void h_early_hints(piston_req *req) {
  static const piston_header link[] = {
      {{"Link", 4}, {"</style.css>; rel=preload; as=style", 35}}};
  check(piston_resp_inform(req, 103, link, 1), "inform");
  send_text(req, 200, "after the hints");
}

/* ---- the response cache's routes ----------------------------------------
 * /c/<anything>?ttl=N[&swr=N][&sie=N][&cc=V][&vary=NAME][&setcookie=1]
 *   [&status=N][&etag=1 (strong) or 2
 * (weak)][&lm=1][&size=N][&chunked=1][&ms=N] answers "call K\n" (K: how many
 * times the host answered a /c/ route, padded with x to size bytes) marked
 * Piston-Cache with those directives, from a thread after ms milliseconds when
 * ms is given; /cache-fail?on=1 makes every /c/ answer a 500 until ?on=0.
 * /cache-calls says K; /cache-stats piston_server_cache_stats;
 * /cache-purge?t=T[&prefix=1] purges through the engine API. */
static atomic_long g_cache_calls;
static atomic_int g_cache_fail;

typedef struct {
  piston_req *req;
  long ms;
} cache_job;

static void cache_answer(piston_req *req) {
  piston_str q = piston_req_query(req);
  long k = atomic_fetch_add(&g_cache_calls, 1) + 1;
  char pc[96], cc[128], vary[64], body[8192];
  piston_header h[8];
  size_t nh = 0;
  h[nh++] = H_TEXT[0];
  long long ttl = query_int(q, "ttl", 5);
  if (ttl > 0) {
    int n = snprintf(pc, sizeof pc, "ttl=%lld", ttl);
    long long swr = query_int(q, "swr", 0), sie = query_int(q, "sie", 0);
    if (swr)
      n += snprintf(pc + n, sizeof pc - (size_t)n, ", swr=%lld", swr);
    if (sie)
      n += snprintf(pc + n, sizeof pc - (size_t)n, ", sie=%lld", sie);
    h[nh++] = (piston_header){{"Piston-Cache", 12}, {pc, (size_t)n}};
  }
  piston_str v = query_str(q, "cc");
  if (v.ptr && v.len < sizeof cc) {
    memcpy(cc, v.ptr, v.len);
    h[nh++] = (piston_header){{"Cache-Control", 13}, {cc, v.len}};
  }
  v = query_str(q, "vary");
  if (v.ptr && v.len < sizeof vary) {
    memcpy(vary, v.ptr, v.len);
    h[nh++] = (piston_header){{"Vary", 4}, {vary, v.len}};
  }
  if (query_int(q, "setcookie", 0))
    h[nh++] = (piston_header){{"Set-Cookie", 10}, {"sid=1", 5}};
  if (query_int(q, "etag", 0) == 1)
    h[nh++] = (piston_header){{"ETag", 4}, {"\"v1\"", 4}};
  else if (query_int(q, "etag", 0) == 2)
    h[nh++] = (piston_header){{"ETag", 4}, {"W/\"v1\"", 6}};
  if (query_int(q, "lm", 0))
    h[nh++] = (piston_header){{"Last-Modified", 13},
                              {"Sun, 06 Nov 1994 08:49:37 GMT", 29}};
  int status = (int)query_int(q, "status", 200);
  if (atomic_load(&g_cache_fail))
    status = 500;
  size_t size = (size_t)query_int(q, "size", 0);
  int n = snprintf(body, sizeof body, "call %ld\n", k);
  if (size > sizeof body)
    size = sizeof body;
  if (size > (size_t)n) {
    memset(body + n, 'x', size - (size_t)n);
    n = (int)size;
  }
  int rc;
  if (query_int(q, "chunked", 0)) {
    rc = piston_resp_start(req, status, h, nh);
    if (rc >= 0)
      rc = piston_resp_write(req, body, (size_t)n / 2);
    if (rc >= 0)
      rc = piston_resp_write(req, body + n / 2, (size_t)n - (size_t)n / 2);
    if (rc >= 0)
      rc = piston_resp_end(req, NULL, 0);
  } else {
    rc = piston_resp_send(req, status, h, nh, body, (size_t)n);
  }
  check(rc, "cache route");
}

static void *cache_thread(void *arg) {
  cache_job *j = arg;
  usleep((useconds_t)j->ms * 1000);
  cache_answer(j->req);
  release(j->req);
  free(j);
  return NULL;
}

static void h_cache(piston_req *req) {
  long ms = (long)query_int(piston_req_query(req), "ms", 0);
  cache_job *j = malloc(sizeof *j);
  pthread_t th;
  if (!j)
    abort();
  j->req = req;
  j->ms = ms;
  if (pthread_create(&th, NULL, cache_thread, j) != 0)
    abort();
  pthread_detach(th);
}

static void h_cache_stats(piston_req *req) {
  piston_cache_stats st;
  char body[512];
  piston_server_cache_stats(g_srv, &st);
  snprintf(body, sizeof body,
           "hits=%llu stale_hits=%llu misses=%llu coalesced=%llu stores=%llu "
           "uncacheable=%llu evictions=%llu purged=%llu bytes=%llu "
           "entries=%llu calls=%ld",
           (unsigned long long)st.hits, (unsigned long long)st.stale_hits,
           (unsigned long long)st.misses, (unsigned long long)st.coalesced,
           (unsigned long long)st.stores, (unsigned long long)st.uncacheable,
           (unsigned long long)st.evictions, (unsigned long long)st.purged,
           (unsigned long long)st.bytes, (unsigned long long)st.entries,
           atomic_load(&g_cache_calls));
  send_text(req, 200, body);
}

static void h_cache_purge(piston_req *req) {
  piston_str q = piston_req_query(req);
  piston_str t = query_str(q, "t");
  char body[32];
  size_t n = piston_server_cache_purge(g_srv, t.ptr ? t.ptr : "", t.len,
                                       (int)query_int(q, "prefix", 0));
  snprintf(body, sizeof body, "purged=%zu", n);
  send_text(req, 200, body);
}

static void on_request(piston_req *req, void *ud) {
  (void)ud;
  atomic_fetch_add(&g_requests, 1);
  atomic_fetch_add(&g_live, 1);
  piston_str m = piston_req_method(req);
  piston_str p = piston_req_path(req);
  piston_str q = piston_req_query(req);
  int get = str_eq(m, "GET") || str_eq(m, "HEAD");
  int post = str_eq(m, "POST") || str_eq(m, "PUT");

  if (str_eq(p, "/hello") && get) {
    send_text(req, 200, "Hello, World!");
  } else if (p.len > 3 && memcmp(p.ptr, "/c/", 3) == 0) {
    if (query_int(q, "ms", 0) > 0) {
      h_cache(req);
      return; /* released by its thread */
    }
    cache_answer(req);
  } else if (str_eq(p, "/cache-fail")) {
    atomic_store(&g_cache_fail, (int)query_int(q, "on", 0));
    send_text(req, 200, "ok");
  } else if (str_eq(p, "/cache-stats")) {
    h_cache_stats(req);
  } else if (str_eq(p, "/cache-purge")) {
    h_cache_purge(req);
  } else if (str_eq(p, "/echo") && post) {
    start_loop_handler(req, K_ECHO, 0, 0);
    return; /* released by the state machine */
  } else if (str_eq(p, "/echo-thread") && post) {
    start_thread_handler(req, T_ECHO, query_int(q, "ms", 0));
    return;
  } else if (str_eq(p, "/chunked") && get) {
    long long n = query_int(q, "n", 3), size = query_int(q, "size", 5);
    start_loop_handler(req, K_CHUNKED, (uint64_t)(n * size), (size_t)size);
    return;
  } else if (str_eq(p, "/big") && get) {
    start_loop_handler(req, K_BIG, (uint64_t)query_int(q, "bytes", 1000),
                       CHUNK);
    return;
  } else if (str_eq(p, "/big-thread") && get) {
    start_thread_handler(req, T_BIG, query_int(q, "bytes", 1000));
    return;
  } else if (str_eq(p, "/slow") && get) {
    start_thread_handler(req, T_SLOW, query_int(q, "ms", 100));
    return;
  } else if (str_eq(p, "/never")) {
    start_loop_handler(req, K_NEVER, 0, 0);
    return;
  } else if (str_eq(p, "/stats") && get) {
    h_stats(req);
  } else if (str_eq(p, "/headers")) {
    h_headers(req);
  } else if (str_eq(p, "/header")) {
    h_header(req);
  } else if (str_eq(p, "/client")) {
    h_client(req);
  } else if (str_eq(p, "/info")) {
    h_info(req);
  } else if (str_eq(p, "/hop-headers")) {
    h_hop_headers(req);
  } else if (str_eq(p, "/tls-info")) {
    h_tls_info(req);
  } else if (str_eq(p, "/tls-reload") && str_eq(m, "POST")) {
    h_tls_reload(req);
  } else if (str_eq(p, "/trailers") && get) {
    h_trailers(req);
  } else if (str_eq(p, "/own-length") && get) {
    h_own_length(req);
  } else if (str_eq(p, "/status")) {
    h_status(req);
  } else if (str_eq(p, "/overflow") && get) {
    h_overflow(req);
  } else if (str_eq(p, "/throw")) {
    piston_resp_abort(req);
  } else if (str_eq(p, "/reset")) {
    piston_resp_reset(req); /* no response at all: the connection closes */
  } else if (str_eq(p, "/no-date") && get) {
    static const piston_header h[] = {{{"Date", 4}, {"", 0}},
                                      {{"X-App", 5}, {"1", 1}}};
    check(piston_resp_send(req, 200, h, 2, "no date\n", 8), "no-date");
  } else if (str_eq(p, "/abort-mid") && get) {
    h_abort_mid(req);
  } else if (str_eq(p, "/sendfile") && get) {
    h_sendfile(req);
  } else if (str_eq(p, "/raw-abort")) {
    h_raw_abort(req, query_int(q, "later", 0) != 0);
    return; /* released on PISTON_EV_CLOSED */
  } else if (str_eq(p, "/raw-shut-first")) {
    h_raw_shut_first(req, (long)query_int(q, "hold_ms", 0));
    return; /* released on PISTON_EV_CLOSED */
  } else if (str_eq(m, "CONNECT") || str_eq(p, "/raw-echo")) {
    h_raw_echo(req, str_eq(m, "CONNECT"));
    return; /* released on PISTON_EV_CLOSED */
  } else if (str_eq(p, "/early-hints") && get) {
    h_early_hints(req);
  } else if (str_eq(p, "/ws-pubsub")) {
    h_ws_pubsub(req);
    return; /* released on PISTON_EV_CLOSED */
  } else if (str_eq(p, "/ws-last") && get) {
    h_ws_last(req);
  } else if (str_eq(p, "/ws-thread")) {
    h_ws_thread(req);
    return; /* released by the session's thread */
  } else if (str_eq(p, "/ws-echo")) {
    h_ws_echo(req);
    return; /* released on PISTON_EV_CLOSED */
  } else {
    send_text(req, 404, "not found\n");
  }
  release(req);
}

static void on_batch_end(piston_loop *loop, void *ud) {
  (void)loop;
  (void)ud;
  atomic_fetch_add(&g_batches, 1);
}

/* ---- main: options, loops, signals -------------------------------------- */

static void usage(FILE *f) {
  fprintf(f,
          "usage: " PROG " --bind HOST:PORT [--threads N] [--max-head-size B]\n"
          "       [--max-url-size B] [--max-headers N] [--max-body-size B]\n"
          "       [--head-timeout S] [--body-timeout S] [--idle-timeout S]\n"
          "       [--write-timeout S] [--handler-timeout S] "
          "[--shutdown-timeout S]\n"
          "       [--body-high-water B] [--write-high-water B] [--backlog N]\n"
          "       [--max-connections N] [--access-log] [--head-style 0|1|2]\n"
          "       [--ipv6-only 0|1] [--expect-to-host 0|1]\n"
          "       [--cache-size B] [--cache-max-entry B] "
          "[--cache-honour-s-maxage 0|1]\n"
          "       [--cache-wait S] [--cache-max-waiters N] [--cache-purge "
          "0|1]\n"
          "       [--cache-route PREFIX=TTL]...\n");
}

static void die_usage(const char *fmt, const char *arg) {
  fprintf(stderr, PROG ": ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n");
  exit(2);
}

static long long parse_int(const char *opt, const char *v) {
  char *end;
  errno = 0;
  long long n = strtoll(v, &end, 10);
  if (errno || end == v || *end || n < 0)
    die_usage("bad value for %s", opt);
  return n;
}

static long long parse_seconds_ms(const char *opt, const char *v) {
  char *end;
  errno = 0;
  double s = strtod(v, &end);
  if (errno || end == v || *end || s < 0 || s > 1e9)
    die_usage("bad value for %s", opt);
  return (long long)(s * 1000.0 + 0.5);
}

static void on_signal(int sig) {
  (void)sig;
  g_stopping = 1;
  for (size_t i = 0; i < g_nloops; i++)
    piston_loop_stop(g_loops[i], g_shutdown_ms);
}

/* SIGUSR1: the access log file again (open and dup2 are signal-safe) */
static void on_usr1(int sig) {
  (void)sig;
  (void)piston_server_reopen_logs(g_srv);
}

static void *loop_thread(void *arg) {
  piston_loop_run(arg);
  return NULL;
}

static void set_opt(piston_server *srv, piston_option opt, long long v,
                    const char *name) {
  int rc = piston_server_set(srv, opt, v);
  if (rc < 0) {
    fprintf(stderr, PROG ": %s: %s\n", name, piston_strerror(rc));
    exit(2);
  }
  if (piston_server_get(srv, opt) != v) {
    fprintf(stderr,
            PROG ": %s: piston_server_get does not return the value set\n",
            name);
    exit(2);
  }
}

static void make_file(void) {
  char path[] = "/tmp/piston-testserver-XXXXXX";
  g_file_fd = mkstemp(path);
  if (g_file_fd < 0) {
    perror(PROG ": mkstemp");
    exit(1);
  }
  unlink(path);
  char *tmp = malloc(g_file_size);
  if (!tmp)
    abort();
  fill_pattern(tmp, 0, g_file_size);
  size_t done = 0;
  while (done < g_file_size) {
    ssize_t n = write(g_file_fd, tmp + done, g_file_size - done);
    if (n <= 0) {
      perror(PROG ": write");
      exit(1);
    }
    done += (size_t)n;
  }
  free(tmp);
}

static struct { const char *cert, *key, *ocsp; } g_certs[8];
static int g_ncerts;

/* The TLS flags that map one to one on piston_server_tls_set: the common
 * ones (cli.c) and two for the tests (a secret on the command line would
 * show in ps: piston-static takes it from a file only); -1: none. */
static int tls_option(const char *name) {
  if (strcmp(name, "--tls-ticket-rotate") == 0)
    return PISTON_TLS_TICKET_ROTATE_S;
  if (strcmp(name, "--tls-ticket-secret") == 0)
    return PISTON_TLS_TICKET_SECRET;
  return piston_cli_tls_option(name);
}

int main(int argc, char **argv) {
  const char *bind = NULL;
  /* as the engine's programs (csrc/bin/cli.c): uvicorn's default */
  const char *trusted = getenv("FORWARDED_ALLOW_IPS");
  const char *alog_file = NULL, *alog_format = NULL;
  long long threads = 1;
  static const struct {
    const char *name;
    piston_option opt;
    int seconds;
  } opts[] = {
      {"--max-head-size", PISTON_OPT_MAX_HEAD_SIZE, 0},
      {"--max-url-size", PISTON_OPT_MAX_URL_SIZE, 0},
      {"--max-headers", PISTON_OPT_MAX_HEADERS, 0},
      {"--max-body-size", PISTON_OPT_MAX_BODY_SIZE, 0},
      {"--head-timeout", PISTON_OPT_HEAD_TIMEOUT_MS, 1},
      {"--body-timeout", PISTON_OPT_BODY_TIMEOUT_MS, 1},
      {"--idle-timeout", PISTON_OPT_IDLE_TIMEOUT_MS, 1},
      {"--write-timeout", PISTON_OPT_WRITE_TIMEOUT_MS, 1},
      {"--ws-max-message", PISTON_OPT_WS_MAX_MESSAGE, 0},
      {"--ws-ping", PISTON_OPT_WS_PING_MS, 1},
      {"--ws-deflate", PISTON_OPT_WS_DEFLATE, 0},
      {"--handler-timeout", PISTON_OPT_HANDLER_TIMEOUT_MS, 1},
      {"--body-high-water", PISTON_OPT_BODY_HIGH_WATER, 0},
      {"--write-high-water", PISTON_OPT_WRITE_HIGH_WATER, 0},
      {"--backlog", PISTON_OPT_BACKLOG, 0},
      {"--max-connections", PISTON_OPT_MAX_CONNECTIONS, 0},
      {"--http2", PISTON_OPT_HTTP2, 0},
      {"--head-style", PISTON_OPT_HEAD_STYLE, 0},
      {"--ipv6-only", PISTON_OPT_IPV6_ONLY, 0},
      {"--expect-to-host", PISTON_OPT_EXPECT_TO_HOST, 0},
      {"--limit-concurrency", PISTON_OPT_LIMIT_CONCURRENCY, 0},
      {"--cache-size", PISTON_OPT_CACHE_SIZE, 0},
      {"--cache-max-entry", PISTON_OPT_CACHE_MAX_ENTRY, 0},
      {"--cache-honour-s-maxage", PISTON_OPT_CACHE_S_MAXAGE, 0},
      {"--cache-wait", PISTON_OPT_CACHE_WAIT_MS, 1},
      {"--cache-max-waiters", PISTON_OPT_CACHE_MAX_WAITERS, 0},
      {"--cache-purge", PISTON_OPT_CACHE_PURGE, 0},
  };
  piston_server *srv = g_srv = piston_server_new();
  if (!srv) {
    fprintf(stderr, PROG ": out of memory\n");
    return 1;
  }
  for (int i = 1; i < argc; i++) {
    char *a = argv[i], *val = NULL;
    char name[64];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      /* freed so that LeakSanitizer (make test-asan) sees a clean exit */
      piston_server_free(srv);
      return 0;
    }
    if (strcmp(a, "--access-log") == 0) {
      set_opt(srv, PISTON_OPT_ACCESS_LOG, 1, a);
      continue;
    }
    if (strcmp(a, "--debug-log") == 0) {
      set_opt(srv, PISTON_OPT_DEBUG_LOG, 1, a);
      continue;
    }
    if (strcmp(a, "--no-proxy-headers") == 0) {
      set_opt(srv, PISTON_OPT_PROXY_HEADERS, 0, a);
      continue;
    }
    if (strcmp(a, "--proxy-protocol") == 0) {
      set_opt(srv, PISTON_OPT_PROXY_PROTOCOL, 1, a);
      continue;
    }
    char *eq = strchr(a, '=');
    if (strncmp(a, "--", 2) == 0 && eq && (size_t)(eq - a) < sizeof name) {
      memcpy(name, a, (size_t)(eq - a));
      name[eq - a] = 0;
      val = eq + 1;
    } else {
      snprintf(name, sizeof name, "%s", a);
      if (i + 1 < argc)
        val = argv[++i];
    }
    int known = 0;
    if (strcmp(name, "--bind") == 0) {
      known = 1;
      if (!val)
        die_usage("%s needs a value", name);
      bind = val;
    } else if (strcmp(name, "--threads") == 0) {
      known = 1;
      if (!val)
        die_usage("%s needs a value", name);
      threads = parse_int(name, val);
      if (threads < 1 || threads > 256)
        die_usage("bad value for %s", name);
    } else if (strcmp(name, "--cert") == 0 || strcmp(name, "--key") == 0 ||
               strcmp(name, "--ocsp") == 0) {
      known = 1;
      if (!val)
        die_usage("%s needs a value", name);
      if (name[2] == 'c') {
        if (g_ncerts == 8)
          die_usage("at most 8 %s", "--cert");
        g_certs[g_ncerts++].cert = val;
      } else if (g_ncerts == 0) {
        die_usage("%s belongs after its --cert", name);
      } else if (name[2] == 'k') {
        g_certs[g_ncerts - 1].key = val;
      } else {
        g_certs[g_ncerts - 1].ocsp = val;
      }
    } else if (tls_option(name) >= 0) {
      known = 1;
      if (!val)
        die_usage("%s needs a value", name);
      if (piston_server_tls_set(srv, (piston_tls_option)tls_option(name),
                                val) != 0) {
        fprintf(stderr, PROG ": %s\n", piston_server_tls_error(srv));
        return 1;
      }
    } else if (strcmp(name, "--access-logfile") == 0 ||
               strcmp(name, "--access-logformat") == 0) {
      known = 1;
      if (!val)
        die_usage("%s needs a value", name);
      if (name[13] == 'i')
        alog_file = val;
      else
        alog_format = val;
    } else if (strcmp(name, "--metrics") == 0 ||
               strcmp(name, "--health") == 0) {
      known = 1;
      if (!val || (name[2] == 'm' ? piston_server_metrics(srv, NULL, val)
                                  : piston_server_health(srv, val)) != 0)
        die_usage("%s wants a path starting with '/'", name);
    } else if (strcmp(name, "--forwarded-allow-ips") == 0) {
      known = 1;
      if (!val)
        die_usage("%s needs a value", name);
      trusted = val;
    } else if (strcmp(name, "--cache-route") == 0) { /* PREFIX=TTL */
      known = 1;
      char *e = val ? strrchr(val, '=') : NULL;
      if (!e)
        die_usage("%s wants PREFIX=TTL", name);
      *e = '\0';
      if (piston_server_cache_route(srv, val, (int)parse_int(name, e + 1), 0,
                                    0) != 0)
        die_usage("bad %s (a prefix starting with /, a ttl >= 1)", name);
    } else if (strcmp(name, "--shutdown-timeout") == 0) {
      known = 1;
      if (!val)
        die_usage("%s needs a value", name);
      g_shutdown_ms = (int)parse_seconds_ms(name, val);
    }
    for (size_t k = 0; !known && k < sizeof opts / sizeof opts[0]; k++) {
      if (strcmp(name, opts[k].name) != 0)
        continue;
      known = 1;
      if (!val)
        die_usage("%s needs a value", name);
      long long v =
          opts[k].seconds ? parse_seconds_ms(name, val) : parse_int(name, val);
      set_opt(srv, opts[k].opt, v, name);
    }
    if (!known)
      die_usage("unknown option %s (try --help)", name);
  }
  if (!bind)
    die_usage("%s is required", "--bind");
  if (piston_server_trust_proxies(srv, trusted ? trusted : "127.0.0.1") != 0)
    die_usage("bad --forwarded-allow-ips '%s'", trusted);
  if ((alog_file || alog_format) &&
      piston_server_access_log(srv, alog_file, alog_format) != 0)
    die_usage("bad --access-logformat or --access-logfile (%s)",
              piston_server_access_log_error(srv));
  char host[256];
  const char *colon = strrchr(bind, ':');
  if (!colon || (size_t)(colon - bind) >= sizeof host)
    die_usage("bad --bind %s (want HOST:PORT)", bind);
  memcpy(host, bind, (size_t)(colon - bind));
  host[colon - bind] = 0;
  long long port = parse_int("--bind", colon + 1);
  if (port > 65535)
    die_usage("bad --bind %s (want HOST:PORT)", bind);

  make_file();
  piston_server_on_request(srv, on_request, NULL);
  piston_server_on_batch_end(srv, on_batch_end, NULL);
  int rc = piston_server_listen_tcp(srv, host, (int)port);
  for (int i = 0; rc == 0 && i < g_ncerts; i++) {
    rc = piston_server_tls_cert(srv, g_certs[i].cert,
                                g_certs[i].key ? g_certs[i].key : "",
                                g_certs[i].ocsp);
    if (rc == 0 && i == 0)
      rc = piston_server_listener_tls(srv, 0);
  }
  if (rc == PISTON_ETLS) {
    fprintf(stderr, PROG ": %s\n", piston_server_tls_error(srv));
    piston_server_free(srv);
    close(g_file_fd);
    return 1;
  }
  if (rc < 0) {
    fprintf(stderr, PROG ": cannot listen on %s: %s\n", bind,
            piston_strerror(rc));
    piston_server_free(srv);
    close(g_file_fd);
    return 1;
  }
  g_loops = calloc((size_t)threads, sizeof *g_loops);
  if (!g_loops)
    abort();
  for (long long i = 0; i < threads; i++) {
    int err = 0;
    g_loops[i] = piston_loop_new(srv, &err);
    if (!g_loops[i]) {
      fprintf(stderr, PROG ": cannot listen on %s: %s\n", bind,
              piston_strerror(err));
      for (size_t k = 0; k < g_nloops; k++)
        piston_loop_free(g_loops[k]);
      free(g_loops);
      piston_server_free(srv);
      close(g_file_fd);
      return 1;
    }
    g_nloops = (size_t)i + 1;
  }

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);

  fprintf(stderr, PROG ": listening on %s://%s:%d\n",
          g_ncerts ? "https" : "http", host, piston_server_port(srv, 0));
  fflush(stderr);

  pthread_t *th = calloc(g_nloops, sizeof *th);
  if (!th)
    abort();
  for (size_t i = 1; i < g_nloops; i++)
    if (pthread_create(&th[i], NULL, loop_thread, g_loops[i]) != 0) {
      fprintf(stderr, PROG ": pthread_create failed\n");
      return 1;
    }
  piston_loop_run(g_loops[0]);
  for (size_t i = 1; i < g_nloops; i++)
    pthread_join(th[i], NULL);

  /* Workers may still be finishing (a /slow in flight when the deadline
   * passed): wait for them to drop their handles before freeing the loops.
   * A handle never released is a bug somewhere: say so in the exit code. */
  int status = 0;
  for (int waited = 0; atomic_load(&g_live) > 0; waited += 10) {
    if (waited > g_shutdown_ms + 5000) {
      fprintf(stderr, PROG ": %ld request handles still held at exit\n",
              atomic_load(&g_live));
      return 3; /* do not free loops that handles still point into */
    }
    usleep(10000);
  }
  for (size_t i = 0; i < g_nloops; i++)
    piston_loop_free(g_loops[i]);
  piston_server_free(srv);
  free(th);
  free(g_loops);
  close(g_file_fd);
  return status;
}
