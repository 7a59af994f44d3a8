/* addon.c: the Node-API face of the Piston engine. It only translates:
 * JS values become piston_* calls and engine callbacks become JS calls. No
 * HTTP logic lives here (see node/index.js for the JS side and csrc/ for the
 * engine).
 *
 * Embedding: each server owns one piston_loop that runs on Node's main
 * thread. A uv_poll watches piston_loop_fd(); when it is readable we run one
 * piston_loop_poll() pass. Requests dispatched during the pass are collected
 * and handed to JS at the batch end, all inside one callback scope, so the
 * microtasks they queue (async handlers) drain once per batch while the
 * engine is still inside its pass (their responses are then written
 * directly, not posted). Request events (body, drain, closed) are one JS
 * call each, in their own callback scope.
 *
 * Request handles are named in JS by a small integer "slot" into a table
 * here; JS releases the slot when it is done with the request. A server's
 * loop is freed once it has stopped and every one of its slots is released.
 *
 * Node-API version: 8 (napi_get_uv_event_loop, callback scopes,
 * napi_fatal_exception, instance data are all <= 8). One Node environment
 * (the main thread) per process: worker_threads are not supported. */
#define _GNU_SOURCE
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>
#include <uv.h>

#include "../csrc/piston.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SCRATCH (64 * 1024)

typedef struct srv {
  piston_server *server;
  piston_loop *loop;
  uv_poll_t poll;
  int js_id;        /* the JS server's id, passed back with each request */
  int running;      /* poll handle active */
  int stopped;      /* loop drained: no more passes */
  int freed_loop;
  int live;         /* slots of this server not yet released */
  int handle_open;  /* uv handle initialised and not closed */
  uint32_t *batch;  /* slots dispatched in the current pass */
  size_t nbatch, cbatch;
  struct srv_ev *evs; /* connection events of the current pass */
  size_t nevs, cevs;
} srv_t;

/* A connection event, queued during a pass and handed to JS after it (so JS
 * never runs in the middle of the engine's pass for them, and a connection
 * closed in the pass that dispatched its request is reported after that
 * request). */
enum { EV_CLIENT_ERROR = 1, EV_CONN_CLOSED = 2 };
typedef struct srv_ev {
  int kind;
  int status;      /* EV_CLIENT_ERROR */
  int port;        /* EV_CLIENT_ERROR */
  uint64_t conn;   /* EV_CONN_CLOSED */
  char addr[48];   /* EV_CLIENT_ERROR: textual peer address */
} srv_ev;

typedef struct {
  piston_req *req;
  srv_t *srv;
  uint32_t next_free;
} slot_t;

static napi_env g_env;
static napi_ref g_on_request, g_on_event, g_on_closed, g_on_conn_event,
    g_resource;
static napi_async_context g_async;
static slot_t *g_slots;
static uint32_t g_nslots, g_free = UINT32_MAX, g_live;
static char g_scratch[SCRATCH];
/* Inside piston_loop_poll: a mid-response piston_resp_abort made there
 * (sync handlers, the batch's microtasks) is held until the pass returns,
 * because the engine applies a direct one only at the connection's next I/O
 * event (it sets the abort but does not schedule the connection); made after
 * the pass it is posted and applied at once. */
static int g_in_pass;
static piston_req **g_aborts;
static size_t g_naborts, g_caborts;

/* ---- helpers ------------------------------------------------------------- */

#define NAPI_OK(call)                                                          \
  do {                                                                         \
    if ((call) != napi_ok) {                                                   \
      napi_throw_error(env, NULL, "piston: Node-API call failed: " #call);      \
      return NULL;                                                             \
    }                                                                          \
  } while (0)

static napi_value make_int(napi_env env, int64_t v) {
  napi_value r;
  napi_create_int64(env, v, &r);
  return r;
}

static napi_value make_str(napi_env env, piston_str s) {
  napi_value r;
  if (!s.ptr)
    napi_get_undefined(env, &r);
  else
    napi_create_string_latin1(env, s.ptr, s.len, &r);
  return r;
}

static napi_value undef(napi_env env) {
  napi_value r;
  napi_get_undefined(env, &r);
  return r;
}

static void throw_piston(napi_env env, int rc, const char *what) {
  char msg[256];
  napi_value m, code, err;
  snprintf(msg, sizeof msg, "%s: %s", what, piston_strerror(rc));
  /* PISTON_EADDRINUSE -> EADDRINUSE, the name node users match on */
  const char *name = piston_err_name(rc);
  if (strncmp(name, "PISTON_", 7) == 0)
    name += 7;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, m, &err);
  napi_value errno_v = make_int(env, rc);
  napi_set_named_property(env, err, "errno", errno_v);
  napi_throw(env, err);
}

static int get_args(napi_env env, napi_callback_info info, size_t n,
                    napi_value *argv) {
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok)
    return -1;
  for (size_t i = argc; i < n; i++)
    napi_get_undefined(env, &argv[i]);
  return 0;
}

static int64_t get_i64(napi_env env, napi_value v, int64_t dflt) {
  int64_t r;
  if (napi_get_value_int64(env, v, &r) != napi_ok)
    return dflt;
  return r;
}

static srv_t *get_srv(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || !p) {
    napi_throw_type_error(env, NULL, "piston: not a server handle");
    return NULL;
  }
  return p;
}

static piston_req *get_req(napi_env env, napi_value v, uint32_t *slot_out) {
  uint32_t s;
  if (napi_get_value_uint32(env, v, &s) != napi_ok || s >= g_nslots ||
      !g_slots[s].req)
    return NULL;
  if (slot_out)
    *slot_out = s;
  return g_slots[s].req;
}

/* A malloc'd C string from a JS string (utf8); NULL for null/undefined. */
static char *dup_str(napi_env env, napi_value v) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok)
    return NULL;
  char *s = malloc(len + 1);
  if (s)
    napi_get_value_string_utf8(env, v, s, len + 1, &len);
  return s;
}

/* Bytes of a Buffer/TypedArray or a utf8 string. *owned is set when the
 * returned memory must be freed. */
static int get_bytes(napi_env env, napi_value v, const char **data,
                     size_t *len, char **owned) {
  bool is;
  *owned = NULL;
  if (napi_is_buffer(env, v, &is) == napi_ok && is) {
    void *p;
    napi_get_buffer_info(env, v, &p, len);
    *data = p;
    return 0;
  }
  if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
    napi_typedarray_type t;
    size_t n, off;
    void *p;
    napi_value ab;
    napi_get_typedarray_info(env, v, &t, &n, &p, &ab, &off);
    size_t el = (t == napi_int8_array || t == napi_uint8_array ||
                 t == napi_uint8_clamped_array)
                    ? 1
                    : (t == napi_int16_array || t == napi_uint16_array) ? 2
                    : (t == napi_float64_array || t == napi_bigint64_array ||
                       t == napi_biguint64_array)
                        ? 8
                        : 4;
    *data = p;
    *len = n * el;
    return 0;
  }
  size_t n;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &n) != napi_ok)
    return -1;
  char *buf = n + 1 <= SCRATCH ? g_scratch : (*owned = malloc(n + 1));
  if (!buf)
    return -1;
  napi_get_value_string_utf8(env, v, buf, n + 1, &n);
  *data = buf;
  *len = n;
  return 0;
}

/* Header list from a flat JS array [name, value, name, value, ...] of
 * latin1 strings, stored in one malloc'd block. */
typedef struct {
  piston_header *h;
  size_t n;
  char *mem;
} hdrs_t;

static int get_headers(napi_env env, napi_value arr, hdrs_t *out) {
  out->h = NULL;
  out->n = 0;
  out->mem = NULL;
  bool is;
  if (napi_is_array(env, arr, &is) != napi_ok || !is)
    return 0;
  uint32_t n;
  napi_get_array_length(env, arr, &n);
  n &= ~1u;
  if (n == 0)
    return 0;
  size_t total = 0;
  napi_value *vals = malloc(sizeof(napi_value) * n);
  size_t *lens = malloc(sizeof(size_t) * n);
  if (!vals || !lens)
    goto fail;
  for (uint32_t i = 0; i < n; i++) {
    napi_get_element(env, arr, i, &vals[i]);
    if (napi_get_value_string_latin1(env, vals[i], NULL, 0, &lens[i]) !=
        napi_ok)
      goto fail;
    total += lens[i] + 1;
  }
  out->mem = malloc(total + sizeof(piston_header) * (n / 2));
  if (!out->mem)
    goto fail;
  out->h = (piston_header *)(void *)out->mem;
  char *p = out->mem + sizeof(piston_header) * (n / 2);
  for (uint32_t i = 0; i < n; i++) {
    size_t got;
    napi_get_value_string_latin1(env, vals[i], p, lens[i] + 1, &got);
    piston_str s = {p, got};
    if (i & 1)
      out->h[i / 2].value = s;
    else
      out->h[i / 2].name = s;
    p += lens[i] + 1;
  }
  out->n = n / 2;
  free(vals);
  free(lens);
  return 0;
fail:
  free(vals);
  free(lens);
  free(out->mem);
  out->mem = NULL;
  return -1;
}

/* Calls a JS callback inside a callback scope, so nextTicks and microtasks
 * run when the outermost scope closes. An exception becomes the process's
 * 'uncaughtException', as for any node callback. */
static void report_exception(napi_env env) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) {
    napi_value e;
    napi_get_and_clear_last_exception(env, &e);
    napi_fatal_exception(env, e);
  }
}

/* ---- slots ----------------------------------------------------------------- */

static int slot_alloc(piston_req *req, srv_t *s, uint32_t *out) {
  if (g_free == UINT32_MAX) {
    uint32_t n = g_nslots ? g_nslots * 2 : 1024;
    slot_t *ns = realloc(g_slots, sizeof(slot_t) * n);
    if (!ns)
      return -1;
    g_slots = ns;
    for (uint32_t i = n; i-- > g_nslots;) {
      g_slots[i].req = NULL;
      g_slots[i].srv = NULL;
      g_slots[i].next_free = g_free;
      g_free = i;
    }
    g_nslots = n;
  }
  uint32_t i = g_free;
  g_free = g_slots[i].next_free;
  g_slots[i].req = req;
  g_slots[i].srv = s;
  g_live++;
  *out = i;
  return 0;
}

static void srv_maybe_free(srv_t *s);

static void slot_release(uint32_t i) {
  slot_t *sl = &g_slots[i];
  srv_t *s = sl->srv;
  piston_req_on_event(sl->req, NULL, NULL);
  piston_req_release(sl->req);
  sl->req = NULL;
  sl->srv = NULL;
  sl->next_free = g_free;
  g_free = i;
  g_live--;
  s->live--;
  srv_maybe_free(s);
}

/* ---- engine callbacks -------------------------------------------------------- */

static void on_event(piston_req *req, int events, void *ud) {
  (void)req;
  napi_env env = g_env;
  uint32_t slot = (uint32_t)(uintptr_t)ud;
  napi_handle_scope hs;
  napi_callback_scope cs;
  napi_value fn, res, global, argv[2];
  napi_open_handle_scope(env, &hs);
  napi_get_reference_value(env, g_resource, &res);
  napi_open_callback_scope(env, res, g_async, &cs);
  napi_get_reference_value(env, g_on_event, &fn);
  napi_get_global(env, &global);
  argv[0] = make_int(env, slot);
  argv[1] = make_int(env, events);
  napi_value ret;
  if (napi_call_function(env, global, fn, 2, argv, &ret) != napi_ok)
    report_exception(env);
  napi_close_callback_scope(env, cs);
  napi_close_handle_scope(env, hs);
}

static void on_request(piston_req *req, void *ud) {
  srv_t *s = ud;
  uint32_t slot;
  if (s->nbatch == s->cbatch) {
    size_t n = s->cbatch ? s->cbatch * 2 : 64;
    uint32_t *nb = realloc(s->batch, n * sizeof *nb);
    if (!nb) {
      piston_resp_abort(req);
      piston_req_release(req);
      return;
    }
    s->batch = nb;
    s->cbatch = n;
  }
  if (slot_alloc(req, s, &slot) < 0) {
    piston_resp_abort(req);
    piston_req_release(req);
    return;
  }
  s->live++;
  piston_req_on_event(req, on_event, (void *)(uintptr_t)slot);
  s->batch[s->nbatch++] = slot;
}

static void on_batch_end(piston_loop *loop, void *ud) {
  (void)loop;
  srv_t *s = ud;
  napi_env env = g_env;
  napi_handle_scope hs;
  napi_callback_scope cs;
  napi_value fn, res, global;
  napi_open_handle_scope(env, &hs);
  napi_get_reference_value(env, g_resource, &res);
  napi_open_callback_scope(env, res, g_async, &cs);
  napi_get_reference_value(env, g_on_request, &fn);
  napi_get_global(env, &global);
  napi_value sid = make_int(env, s->js_id);
  /* the handler may start another pass-free call into us; take the batch */
  size_t n = s->nbatch;
  s->nbatch = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t slot = s->batch[i];
    piston_req *req = g_slots[slot].req;
    napi_handle_scope is;
    napi_open_handle_scope(env, &is);
    napi_value argv[6], ret;
    argv[0] = sid;
    argv[1] = make_int(env, slot);
    argv[2] = make_str(env, piston_req_method(req));
    argv[3] = make_str(env, piston_req_target(req));
    argv[4] = make_int(env, piston_req_http_minor(req));
    /* a process-wide counter: exact as a JS number up to 2^53 */
    argv[5] = make_int(env, (int64_t)piston_req_connection_id(req));
    if (napi_call_function(env, global, fn, 6, argv, &ret) != napi_ok)
      report_exception(env);
    napi_close_handle_scope(env, is);
  }
  napi_close_callback_scope(env, cs);
  napi_close_handle_scope(env, hs);
}

/* ---- connection events: queued in the pass, delivered after it ---------- */

static srv_ev *ev_push(srv_t *s) {
  if (s->nevs == s->cevs) {
    size_t n = s->cevs ? s->cevs * 2 : 16;
    srv_ev *ne = realloc(s->evs, n * sizeof *ne);
    if (!ne)
      return NULL;
    s->evs = ne;
    s->cevs = n;
  }
  return &s->evs[s->nevs++];
}

static void on_client_error(piston_loop *loop, int status,
                            const char *remote_addr, int remote_port,
                            void *ud) {
  (void)loop;
  srv_ev *e = ev_push(ud);
  if (!e)
    return;
  e->kind = EV_CLIENT_ERROR;
  e->status = status;
  e->port = remote_port;
  e->conn = 0;
  snprintf(e->addr, sizeof e->addr, "%s", remote_addr ? remote_addr : "");
}

static void on_conn_closed(piston_loop *loop, uint64_t conn_id, void *ud) {
  (void)loop;
  srv_ev *e = ev_push(ud);
  if (!e)
    return;
  e->kind = EV_CONN_CLOSED;
  e->conn = conn_id;
  e->status = 0;
  e->port = 0;
  e->addr[0] = 0;
}

/* onConnEvent(serverId, kind, status|connId, remoteAddr, remotePort) for
 * each queued event, in order. */
static void flush_events(srv_t *s) {
  if (s->nevs == 0)
    return;
  napi_env env = g_env;
  napi_handle_scope hs;
  napi_callback_scope cs;
  napi_value fn, res, global;
  napi_open_handle_scope(env, &hs);
  napi_get_reference_value(env, g_resource, &res);
  napi_open_callback_scope(env, res, g_async, &cs);
  napi_get_reference_value(env, g_on_conn_event, &fn);
  napi_get_global(env, &global);
  napi_value sid = make_int(env, s->js_id);
  /* take the list first, as on_batch_end takes its batch */
  srv_ev *evs = s->evs;
  size_t n = s->nevs;
  s->evs = NULL;
  s->nevs = s->cevs = 0;
  for (size_t i = 0; i < n; i++) {
    napi_handle_scope is;
    napi_open_handle_scope(env, &is);
    napi_value argv[5], ret;
    argv[0] = sid;
    argv[1] = make_int(env, evs[i].kind);
    if (evs[i].kind == EV_CLIENT_ERROR) {
      argv[2] = make_int(env, evs[i].status);
      napi_create_string_latin1(env, evs[i].addr, NAPI_AUTO_LENGTH, &argv[3]);
      argv[4] = make_int(env, evs[i].port);
    } else {
      argv[2] = make_int(env, (int64_t)evs[i].conn);
      argv[3] = undef(env);
      argv[4] = undef(env);
    }
    if (napi_call_function(env, global, fn, 5, argv, &ret) != napi_ok)
      report_exception(env);
    napi_close_handle_scope(env, is);
  }
  free(evs);
  napi_close_callback_scope(env, cs);
  napi_close_handle_scope(env, hs);
}

static void call_closed(srv_t *s) {
  napi_env env = g_env;
  napi_handle_scope hs;
  napi_callback_scope cs;
  napi_value fn, res, global, argv[1], ret;
  napi_open_handle_scope(env, &hs);
  napi_get_reference_value(env, g_resource, &res);
  napi_open_callback_scope(env, res, g_async, &cs);
  napi_get_reference_value(env, g_on_closed, &fn);
  napi_get_global(env, &global);
  argv[0] = make_int(env, s->js_id);
  if (napi_call_function(env, global, fn, 1, argv, &ret) != napi_ok)
    report_exception(env);
  napi_close_callback_scope(env, cs);
  napi_close_handle_scope(env, hs);
}

static void on_handle_closed(uv_handle_t *h) {
  srv_t *s = h->data;
  s->handle_open = 0;
  srv_maybe_free(s);
}

/* The loop is freed once it has stopped and JS holds none of its requests;
 * the server struct once the uv handle is closed too. */
static void srv_maybe_free(srv_t *s) {
  if (!s->stopped || s->live > 0)
    return;
  if (s->loop && !s->freed_loop) {
    piston_loop_free(s->loop);
    s->freed_loop = 1;
    s->loop = NULL;
  }
  if (s->handle_open)
    return;
  if (s->server) {
    piston_server_free(s->server);
    s->server = NULL;
  }
  free(s->batch);
  free(s->evs);
  free(s);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  srv_t *s = h->data;
  napi_handle_scope hs;
  napi_open_handle_scope(g_env, &hs);
  g_in_pass = 1;
  int rc = piston_loop_poll(s->loop);
  g_in_pass = 0;
  napi_close_handle_scope(g_env, hs);
  for (size_t i = 0; i < g_naborts; i++) {
    piston_resp_abort(g_aborts[i]);
    piston_req_release(g_aborts[i]);
  }
  g_naborts = 0;
  flush_events(s);
  if (rc <= 0 && !s->stopped) {
    s->stopped = 1;
    s->running = 0;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, on_handle_closed);
    call_closed(s);
    srv_maybe_free(s);
  }
}

/* ---- JS functions: setup and servers ---------------------------------------- */

/* init(onRequest(serverId, slot, method, url, httpMinor, connId),
 *      onEvent(slot, events),
 *      onClosed(serverId),
 *      onConnEvent(serverId, kind, statusOrConnId, remoteAddr, remotePort)) */
static napi_value js_init(napi_env env, napi_callback_info info) {
  napi_value argv[4], res, name;
  if (get_args(env, info, 4, argv) < 0)
    return NULL;
  if (g_env && g_env != env) {
    napi_throw_error(env, NULL, "piston: one Node environment per process");
    return NULL;
  }
  g_env = env;
  NAPI_OK(napi_create_reference(env, argv[0], 1, &g_on_request));
  NAPI_OK(napi_create_reference(env, argv[1], 1, &g_on_event));
  NAPI_OK(napi_create_reference(env, argv[2], 1, &g_on_closed));
  NAPI_OK(napi_create_reference(env, argv[3], 1, &g_on_conn_event));
  NAPI_OK(napi_create_object(env, &res));
  NAPI_OK(napi_create_reference(env, res, 1, &g_resource));
  NAPI_OK(napi_create_string_utf8(env, "PISTON_HTTP", NAPI_AUTO_LENGTH, &name));
  NAPI_OK(napi_async_init(env, res, name, &g_async));
  return undef(env);
}

static napi_value js_server_new(napi_env env, napi_callback_info info) {
  napi_value argv[1], ext;
  if (get_args(env, info, 1, argv) < 0)
    return NULL;
  srv_t *s = calloc(1, sizeof *s);
  if (!s || !(s->server = piston_server_new())) {
    free(s);
    napi_throw_error(env, "ENOMEM", "piston: out of memory");
    return NULL;
  }
  s->js_id = (int)get_i64(env, argv[0], 0);
  piston_server_on_request(s->server, on_request, s);
  piston_server_on_batch_end(s->server, on_batch_end, s);
  NAPI_OK(napi_create_external(env, s, NULL, NULL, &ext));
  return ext;
}

/* watch(srv, clientErrors, connections): asks for the engine's client-error
 * and connection-closed callbacks (onConnEvent). Before start(). */
static napi_value js_watch(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  bool ce = false, cc = false;
  if (get_args(env, info, 3, argv) < 0)
    return NULL;
  srv_t *s = get_srv(env, argv[0]);
  if (!s)
    return NULL;
  napi_get_value_bool(env, argv[1], &ce);
  napi_get_value_bool(env, argv[2], &cc);
  piston_server_on_client_error(s->server, ce ? on_client_error : NULL, s);
  piston_server_on_connection_closed(s->server, cc ? on_conn_closed : NULL, s);
  return undef(env);
}

/* closeIdle(srv): closes keep-alive connections waiting for a request (at
 * the loop's next pass); requests in flight go on. */
static napi_value js_close_idle(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv) < 0)
    return NULL;
  srv_t *s = get_srv(env, argv[0]);
  if (!s)
    return NULL;
  if (s->loop && !s->stopped && !s->freed_loop)
    piston_loop_close_idle(s->loop);
  return undef(env);
}

/* serverSet(srv, option, value) */
static napi_value js_server_set(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (get_args(env, info, 3, argv) < 0)
    return NULL;
  srv_t *s = get_srv(env, argv[0]);
  if (!s)
    return NULL;
  int rc = piston_server_set(s->server, (piston_option)get_i64(env, argv[1], -1),
                             get_i64(env, argv[2], 0));
  if (rc < 0)
    throw_piston(env, rc, "piston_server_set");
  return undef(env);
}

/* routeFixed(srv, method|null, path, status, headers[], body) */
static napi_value js_route_fixed(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  if (get_args(env, info, 6, argv) < 0)
    return NULL;
  srv_t *s = get_srv(env, argv[0]);
  if (!s)
    return NULL;
  napi_valuetype t;
  napi_typeof(env, argv[1], &t);
  char *method = t == napi_string ? dup_str(env, argv[1]) : NULL;
  char *path = dup_str(env, argv[2]);
  hdrs_t h;
  const char *body;
  size_t blen;
  char *owned;
  int rc = PISTON_EINVAL;
  if (path && get_headers(env, argv[4], &h) == 0) {
    if (get_bytes(env, argv[5], &body, &blen, &owned) == 0) {
      rc = piston_server_route_fixed(s->server, method, path,
                                     (int)get_i64(env, argv[3], 200), h.h, h.n,
                                     body, blen);
      free(owned);
    }
    free(h.mem);
  }
  free(method);
  free(path);
  if (rc < 0)
    throw_piston(env, rc, "piston_server_route_fixed");
  return undef(env);
}

/* routeDir(srv, prefix, dir) */
static napi_value js_route_dir(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (get_args(env, info, 3, argv) < 0)
    return NULL;
  srv_t *s = get_srv(env, argv[0]);
  if (!s)
    return NULL;
  char *prefix = dup_str(env, argv[1]), *dir = dup_str(env, argv[2]);
  int rc = prefix && dir ? piston_server_route_dir(s->server, prefix, dir)
                         : PISTON_EINVAL;
  free(prefix);
  free(dir);
  if (rc < 0)
    throw_piston(env, rc, "piston_server_route_dir");
  return undef(env);
}

/* listenTcp(srv, host, port) / listenUnix(srv, path) */
static napi_value js_listen_tcp(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (get_args(env, info, 3, argv) < 0)
    return NULL;
  srv_t *s = get_srv(env, argv[0]);
  if (!s)
    return NULL;
  char *host = dup_str(env, argv[1]);
  int rc = host ? piston_server_listen_tcp(s->server, host,
                                           (int)get_i64(env, argv[2], 0))
                : PISTON_EINVAL;
  free(host);
  if (rc < 0)
    throw_piston(env, rc, "listen");
  return undef(env);
}

static napi_value js_listen_unix(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv) < 0)
    return NULL;
  srv_t *s = get_srv(env, argv[0]);
  if (!s)
    return NULL;
  char *path = dup_str(env, argv[1]);
  int rc = path ? piston_server_listen_unix(s->server, path) : PISTON_EINVAL;
  free(path);
  if (rc < 0)
    throw_piston(env, rc, "listen");
  return undef(env);
}

/* start(srv): creates the loop (binding the listeners) and starts polling.
 * Returns the port of the first listener (0 for a Unix socket). */
static napi_value js_start(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv) < 0)
    return NULL;
  srv_t *s = get_srv(env, argv[0]);
  if (!s)
    return NULL;
  int err = 0;
  s->loop = piston_loop_new(s->server, &err);
  if (!s->loop) {
    throw_piston(env, err ? err : PISTON_ESYS, "listen");
    return NULL;
  }
  uv_loop_t *uvl;
  NAPI_OK(napi_get_uv_event_loop(env, &uvl));
  if (uv_poll_init(uvl, &s->poll, piston_loop_fd(s->loop)) != 0) {
    piston_loop_free(s->loop);
    s->loop = NULL;
    throw_piston(env, PISTON_ESYS, "uv_poll_init");
    return NULL;
  }
  s->poll.data = s;
  s->handle_open = 1;
  uv_poll_start(&s->poll, UV_READABLE, on_poll);
  s->running = 1;
  return make_int(env, piston_server_port(s->server, 0));
}

/* stop(srv, deadlineMs): graceful stop; onClosed fires when drained. A
 * server that never started is freed at once. */
static napi_value js_stop(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv) < 0)
    return NULL;
  srv_t *s = get_srv(env, argv[0]);
  if (!s)
    return NULL;
  if (s->loop && !s->stopped) {
    piston_loop_stop(s->loop, (int)get_i64(env, argv[1], 0));
  } else if (!s->loop && !s->stopped) {
    s->stopped = 1;
    srv_maybe_free(s);
  }
  return undef(env);
}

/* ref(srv, on): keeps the process alive (or not) for this server. */
static napi_value js_ref(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  bool on = true;
  if (get_args(env, info, 2, argv) < 0)
    return NULL;
  srv_t *s = get_srv(env, argv[0]);
  if (!s)
    return NULL;
  napi_get_value_bool(env, argv[1], &on);
  if (s->handle_open) {
    if (on)
      uv_ref((uv_handle_t *)&s->poll);
    else
      uv_unref((uv_handle_t *)&s->poll);
  }
  return undef(env);
}

static napi_value js_connections(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv) < 0)
    return NULL;
  srv_t *s = get_srv(env, argv[0]);
  if (!s)
    return NULL;
  return make_int(env, s->loop && !s->freed_loop
                           ? (int64_t)piston_loop_connections(s->loop)
                           : 0);
}

/* ---- JS functions: requests -------------------------------------------------- */

#define REQ_ARG(n)                                                             \
  napi_value argv[n];                                                          \
  if (get_args(env, info, n, argv) < 0)                                        \
    return NULL;                                                               \
  uint32_t slot;                                                               \
  piston_req *req = get_req(env, argv[0], &slot);                              \
  (void)slot;                                                                  \
  if (!req)                                                                    \
    return make_int(env, PISTON_ECLOSED);

/* headers(slot) -> [name, value, ...] in arrival order */
static napi_value js_headers(napi_env env, napi_callback_info info) {
  REQ_ARG(1);
  size_t n = piston_req_header_count(req);
  napi_value arr;
  NAPI_OK(napi_create_array_with_length(env, n * 2, &arr));
  for (size_t i = 0; i < n; i++) {
    piston_header h = piston_req_header_at(req, i);
    napi_set_element(env, arr, (uint32_t)(2 * i), make_str(env, h.name));
    napi_set_element(env, arr, (uint32_t)(2 * i + 1), make_str(env, h.value));
  }
  return arr;
}

/* header(slot, name) -> string | undefined (first match) */
static napi_value js_header(napi_env env, napi_callback_info info) {
  REQ_ARG(2);
  char name[256];
  size_t len;
  if (napi_get_value_string_latin1(env, argv[1], name, sizeof name, &len) !=
      napi_ok)
    return undef(env);
  return make_str(env, piston_req_header(req, name, len));
}

/* info(slot) -> [httpMinor, contentLength, remoteAddr, remotePort,
 *                localPort, path, query] */
static napi_value js_info(napi_env env, napi_callback_info info) {
  REQ_ARG(1);
  int port = 0;
  const char *addr = piston_req_remote_addr(req, &port);
  napi_value arr, a;
  NAPI_OK(napi_create_array_with_length(env, 7, &arr));
  napi_set_element(env, arr, 0, make_int(env, piston_req_http_minor(req)));
  napi_set_element(env, arr, 1, make_int(env, piston_req_content_length(req)));
  napi_create_string_latin1(env, addr ? addr : "", NAPI_AUTO_LENGTH, &a);
  napi_set_element(env, arr, 2, a);
  napi_set_element(env, arr, 3, make_int(env, port));
  napi_set_element(env, arr, 4, make_int(env, piston_req_local_port(req)));
  napi_set_element(env, arr, 5, make_str(env, piston_req_path(req)));
  napi_set_element(env, arr, 6, make_str(env, piston_req_query(req)));
  return arr;
}

/* read(slot) -> Buffer with the buffered body bytes, or a number: 0 at the
 * end, PISTON_EAGAIN (wait for the body event), another negative error. */
static napi_value js_read(napi_env env, napi_callback_info info) {
  REQ_ARG(1);
  int64_t n = piston_req_body_read(req, g_scratch, SCRATCH);
  if (n <= 0)
    return make_int(env, n);
  napi_value buf;
  void *data;
  NAPI_OK(napi_create_buffer_copy(env, (size_t)n, g_scratch, &data, &buf));
  return buf;
}

/* The reason phrase argument: a latin1 string, or none (NULL: the engine's
 * phrase). *owned is set when the returned memory must be freed. */
static int get_reason(napi_env env, napi_value v, char *buf, size_t cap,
                      const char **out, size_t *len, char **owned) {
  napi_valuetype t;
  *out = NULL;
  *len = 0;
  *owned = NULL;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_string)
    return 0;
  size_t n;
  if (napi_get_value_string_latin1(env, v, NULL, 0, &n) != napi_ok)
    return -1;
  char *p = n + 1 <= cap ? buf : (*owned = malloc(n + 1));
  if (!p)
    return -1;
  napi_get_value_string_latin1(env, v, p, n + 1, &n);
  *out = p;
  *len = n;
  return 0;
}

/* start(slot, status, headers[], reason?) -> rc */
static napi_value js_resp_start(napi_env env, napi_callback_info info) {
  REQ_ARG(4);
  hdrs_t h;
  char rbuf[128], *rown;
  const char *reason;
  size_t rlen;
  if (get_reason(env, argv[3], rbuf, sizeof rbuf, &reason, &rlen, &rown) < 0)
    return make_int(env, PISTON_ENOMEM);
  if (get_headers(env, argv[2], &h) < 0) {
    free(rown);
    return make_int(env, PISTON_ENOMEM);
  }
  int status = (int)get_i64(env, argv[1], 200);
  int rc = reason ? piston_resp_start_reason(req, status, reason, rlen, h.h, h.n)
                  : piston_resp_start(req, status, h.h, h.n);
  free(h.mem);
  free(rown);
  return make_int(env, rc);
}

/* write(slot, chunk) -> 0, 1 (wait for drain) or an error */
static napi_value js_resp_write(napi_env env, napi_callback_info info) {
  REQ_ARG(2);
  const char *data;
  size_t len;
  char *owned;
  if (get_bytes(env, argv[1], &data, &len, &owned) < 0)
    return make_int(env, PISTON_EINVAL);
  int rc = len ? piston_resp_write(req, data, len) : 0;
  free(owned);
  return make_int(env, rc);
}

/* end(slot[, chunk[, trailers[]]]) -> rc */
static napi_value js_resp_end(napi_env env, napi_callback_info info) {
  REQ_ARG(3);
  napi_valuetype t;
  napi_typeof(env, argv[1], &t);
  int rc = 0;
  if (t != napi_undefined && t != napi_null) {
    const char *data;
    size_t len;
    char *owned;
    if (get_bytes(env, argv[1], &data, &len, &owned) < 0)
      return make_int(env, PISTON_EINVAL);
    if (len)
      rc = piston_resp_write(req, data, len);
    free(owned);
  }
  if (rc >= 0) {
    hdrs_t tr;
    if (get_headers(env, argv[2], &tr) < 0)
      return make_int(env, PISTON_ENOMEM);
    rc = piston_resp_end(req, tr.h, tr.n);
    free(tr.mem);
  }
  return make_int(env, rc);
}

/* piston_resp_send with a reason phrase: the engine has no single call for
 * it, so start_reason (with a Content-Length unless the host set one) +
 * write + end. On the loop thread these are direct, not posted. */
static int send_reason(piston_req *req, int status, const char *reason,
                       size_t rlen, const hdrs_t *h, const char *data,
                       size_t len) {
  int has_cl = 0;
  for (size_t i = 0; i < h->n; i++)
    if (h->h[i].name.len == 14 &&
        strncasecmp(h->h[i].name.ptr, "content-length", 14) == 0)
      has_cl = 1;
  piston_header *all = malloc(sizeof *all * (h->n + 1));
  if (!all)
    return PISTON_ENOMEM;
  if (h->n)
    memcpy(all, h->h, sizeof *all * h->n);
  char cl[24];
  size_t n = h->n;
  if (!has_cl) {
    int k = snprintf(cl, sizeof cl, "%zu", len);
    all[n].name = (piston_str){"Content-Length", 14};
    all[n].value = (piston_str){cl, (size_t)k};
    n++;
  }
  int rc = piston_resp_start_reason(req, status, reason, rlen, all, n);
  free(all);
  if (rc >= 0 && len)
    rc = piston_resp_write(req, data, len);
  if (rc >= 0)
    rc = piston_resp_end(req, NULL, 0);
  return rc < 0 ? rc : 0;
}

/* send(slot, status, headers[], body, reason?) -> rc: start + write + end
 * with a Content-Length, in one call */
static napi_value js_resp_send(napi_env env, napi_callback_info info) {
  REQ_ARG(5);
  hdrs_t h;
  char rbuf[128], *rown;
  const char *reason;
  size_t rlen;
  if (get_reason(env, argv[4], rbuf, sizeof rbuf, &reason, &rlen, &rown) < 0)
    return make_int(env, PISTON_ENOMEM);
  if (get_headers(env, argv[2], &h) < 0) {
    free(rown);
    return make_int(env, PISTON_ENOMEM);
  }
  const char *data = "";
  size_t len = 0;
  char *owned = NULL;
  napi_valuetype t;
  napi_typeof(env, argv[3], &t);
  if (t != napi_undefined && t != napi_null &&
      get_bytes(env, argv[3], &data, &len, &owned) < 0) {
    free(h.mem);
    free(rown);
    return make_int(env, PISTON_EINVAL);
  }
  int status = (int)get_i64(env, argv[1], 200);
  int rc = reason ? send_reason(req, status, reason, rlen, &h, data, len)
                  : piston_resp_send(req, status, h.h, h.n, data, len);
  free(owned);
  free(h.mem);
  free(rown);
  return make_int(env, rc);
}

/* sendfile(slot, fd, offset, len) -> rc (the engine dups fd) */
static napi_value js_resp_sendfile(napi_env env, napi_callback_info info) {
  REQ_ARG(4);
  int rc = piston_resp_sendfile(req, (int)get_i64(env, argv[1], -1),
                                (off_t)get_i64(env, argv[2], 0),
                                (size_t)get_i64(env, argv[3], 0));
  return make_int(env, rc);
}

static napi_value js_resp_abort(napi_env env, napi_callback_info info) {
  REQ_ARG(1);
  if (g_in_pass && piston_resp_started(req)) {
    if (g_naborts == g_caborts) {
      size_t n = g_caborts ? g_caborts * 2 : 16;
      piston_req **na = realloc(g_aborts, n * sizeof *na);
      if (na) {
        g_aborts = na;
        g_caborts = n;
      }
    }
    if (g_naborts < g_caborts) {
      piston_req_retain(req);
      g_aborts[g_naborts++] = req;
      return undef(env);
    }
  }
  piston_resp_abort(req);
  return undef(env);
}

static napi_value js_release(napi_env env, napi_callback_info info) {
  REQ_ARG(1);
  (void)req;
  slot_release(slot);
  return undef(env);
}

static napi_value js_strerror(napi_env env, napi_callback_info info) {
  napi_value argv[1], r;
  if (get_args(env, info, 1, argv) < 0)
    return NULL;
  int rc = (int)get_i64(env, argv[0], 0);
  napi_create_string_utf8(env, piston_err_name(rc), NAPI_AUTO_LENGTH, &r);
  return r;
}

/* live() -> request handles JS still holds (for tests: leaks show here) */
static napi_value js_live(napi_env env, napi_callback_info info) {
  (void)info;
  return make_int(env, g_live);
}

/* ---- module ------------------------------------------------------------------ */

static napi_value module_init(napi_env env, napi_value exports) {
  static const struct {
    const char *name;
    napi_callback fn;
  } fns[] = {
      {"init", js_init},           {"serverNew", js_server_new},
      {"serverSet", js_server_set}, {"routeFixed", js_route_fixed},
      {"routeDir", js_route_dir},   {"listenTcp", js_listen_tcp},
      {"listenUnix", js_listen_unix}, {"start", js_start},
      {"stop", js_stop},           {"ref", js_ref},
      {"connections", js_connections}, {"headers", js_headers},
      {"header", js_header},       {"info", js_info},
      {"read", js_read},           {"respStart", js_resp_start},
      {"respWrite", js_resp_write}, {"respEnd", js_resp_end},
      {"respSend", js_resp_send},  {"respSendfile", js_resp_sendfile},
      {"respAbort", js_resp_abort}, {"release", js_release},
      {"errName", js_strerror},
      {"watch", js_watch},         {"closeIdle", js_close_idle},
      {"live", js_live},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL,
                         &f);
    napi_set_named_property(env, exports, fns[i].name, f);
  }
  static const struct {
    const char *name;
    int v;
  } consts[] = {
#define OPT_CONST_(name, doc) {"OPT_" #name, PISTON_OPT_##name},
      PISTON_OPTION_MAP(OPT_CONST_)
#undef OPT_CONST_
      {"EV_BODY", PISTON_EV_BODY},
      {"EV_DRAIN", PISTON_EV_DRAIN},
      {"EV_CLOSED", PISTON_EV_CLOSED},
      {"EAGAIN", PISTON_EAGAIN},
      {"ECLOSED", PISTON_ECLOSED},
      {"ETOOBIG", PISTON_ETOOBIG},
      {"ESTATE", PISTON_ESTATE},
  };
  for (size_t i = 0; i < sizeof consts / sizeof consts[0]; i++)
    napi_set_named_property(env, exports, consts[i].name,
                            make_int(env, consts[i].v));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, module_init)
