/* addon.c: the Node-API face of the Piston engine. It only translates:
 * JS values become piston_* calls and engine callbacks become JS calls. No
 * HTTP logic lives here (node/binding.js is the JS side that receives the
 * calls; csrc/ is the engine).
 *
 * Embedding: each server owns one piston_loop that runs on the thread of
 * the Node environment that created it. A uv_poll watches piston_loop_fd();
 * when it is readable we run one piston_loop_poll() pass. Requests
 * dispatched during the pass are collected and handed to JS at the batch
 * end, all inside one callback scope, so the microtasks they queue (async
 * handlers) drain once per batch while the engine is still inside its pass
 * (their responses are then written directly, not posted). Request events
 * (body, drain, closed) are one JS call each, in their own callback scope;
 * WebSocket sessions with messages waiting are queued during the pass and
 * handed to JS after it in one call (JS takes their messages, wsRecv);
 * connection events (client errors, closed connections) are queued during
 * the pass and handed to JS after it.
 *
 * Request handles are named in JS by a small integer "slot" into a table
 * here; JS releases the slot when it is done with the request. A server's
 * loop is freed once it has stopped and every one of its slots is released.
 *
 * Environments: all state is per Node environment (the addon_t below, the
 * environment's instance data), so the addon can be loaded by the main
 * thread and by worker_threads at once; each environment's servers run on
 * its own thread and libuv loop. When an environment is torn down with
 * servers still open, they are closed without calling JS.
 *
 * Node-API version: 8 (napi_get_uv_event_loop, callback scopes,
 * napi_fatal_exception, instance data are all <= 8). */
#define _GNU_SOURCE
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>
#include <uv.h>

#include "../csrc/piston.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCRATCH (64 * 1024)

typedef struct addon addon_t;

typedef struct srv {
  addon_t *a;
  struct srv *next, **pprev; /* in a->servers while a lives */
  piston_server *server;
  piston_loop *loop;
  uv_poll_t poll;
  int js_id;       /* the JS server's id, passed back with each request */
  int stopped;     /* loop drained: no more passes */
  int live;        /* slots of this server not yet released */
  int handle_open; /* uv handle initialised and not closed */
  uint32_t *batch; /* slots dispatched in the current pass */
  size_t nbatch, cbatch;
  struct srv_ev *evs; /* connection events of the current pass */
  size_t nevs, cevs;
  uint32_t *wsq; /* WebSocket sessions with messages waiting, this pass */
  size_t nwsq, cwsq;
  /* requests that died in the current pass (PISTON_EV_CLOSED), and their
   * events: handed to JS after it in one callback scope (flush_closed) */
  uint32_t *closedq;
  size_t nclosed, cclosed;
  int in_pass; /* inside piston_loop_poll(): CLOSED events wait for its end */
  int answers_errors; /* JS answers rejections ('clientError' listeners) */
} srv_t;

/* A connection event, queued during a pass and handed to JS after it (so JS
 * never runs in the middle of the engine's pass for them, and a connection
 * closed in the pass that dispatched its request is reported after that
 * request). The kinds are exported to JS as CONN_*. */
enum { EV_CLIENT_ERROR = 1, EV_CONN_CLOSED = 2 };
typedef struct srv_ev {
  int kind;
  int status;                /* EV_CLIENT_ERROR */
  int port;                  /* EV_CLIENT_ERROR */
  uint64_t conn;             /* the connection's id (both kinds) */
  char addr[48];             /* EV_CLIENT_ERROR: textual peer address */
  const char *code, *reason; /* EV_CLIENT_ERROR: llhttp's (static) or NULL */
  /* EV_CLIENT_ERROR: the connection JS answers (its raw stream's slot), or
   * -1 when the engine answered; the bytes llhttp was given (data NULL:
   * none) and how many it took */
  int64_t slot;
  char *data;
  size_t len, parsed;
} srv_ev;

typedef struct {
  piston_req *req;
  srv_t *srv;
  uint32_t next_free;
  int ws_pending; /* in srv->wsq */
  /* in srv->closedq: its events (PISTON_EV_CLOSED, with PISTON_EV_TIMEOUT
   * if it was that), else 0 */
  int closed_pending;
} slot_t;

/* One Node environment's state: its JS callbacks (from init()), the slot
 * table and its servers. Reached from JS functions through their data
 * pointer and from engine callbacks through the server or request. */
struct addon {
  napi_env env;
  int ready; /* init() has stored the callbacks below */
  int gone;  /* the environment is being torn down: no more JS */
  napi_ref on_request, on_event, on_closed, on_conn_event, resource;
  napi_ref on_ws, ws_batch; /* wsInit(): onWsMessages(n), its Int32Array */
  napi_async_context async;
  slot_t *slots;
  uint32_t nslots, free, live;
  srv_t *servers;
  napi_async_cleanup_hook_handle cleanup; /* until the teardown is done */
  int closing;                            /* teardown steps not done yet */
  char scratch[SCRATCH]; /* body reads and short strings, on this thread */
};

/* ---- Node-API status ----------------------------------------------------- */

/* A Node-API call fails on misuse, with an exception pending or while the
 * environment shuts down. A JS entry point then throws (unless an exception
 * is already pending, which then propagates) and returns NULL. */
static napi_value napi_failed(napi_env env, const char *call) {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && !pending)
    napi_throw_error(env, NULL, call);
  return NULL;
}

#define NAPI_OR(call, fail)                                                    \
  do {                                                                         \
    if ((call) != napi_ok) {                                                   \
      fail;                                                                    \
    }                                                                          \
  } while (0)
/* In functions returning napi_value with `env` in scope. */
#define NAPI_OK(call)                                                          \
  NAPI_OR(call, return napi_failed(env, "piston: Node-API call "               \
                                        "failed: " #call))
/* Calls that fail only if our own scope bookkeeping is wrong: a bug. */
#define NAPI_MUST(call)                                                        \
  NAPI_OR(call, napi_fatal_error("piston addon.c", NAPI_AUTO_LENGTH, #call,    \
                                 NAPI_AUTO_LENGTH))

/* ---- values -------------------------------------------------------------- */

/* The make_* helpers return NULL on failure; a NULL passed on makes the
 * Node-API call that receives it fail with napi_invalid_arg, which is
 * checked there. */
static napi_value make_int(napi_env env, int64_t v) {
  napi_value r;
  return napi_create_int64(env, v, &r) == napi_ok ? r : NULL;
}

static napi_value undef(napi_env env) {
  napi_value r;
  return napi_get_undefined(env, &r) == napi_ok ? r : NULL;
}

static napi_value make_latin1(napi_env env, const char *p, size_t len) {
  napi_value r;
  return napi_create_string_latin1(env, p, len, &r) == napi_ok ? r : NULL;
}

/* A slice as a latin1 string (header bytes are not UTF-8 by contract);
 * undefined for an absent slice. */
static napi_value make_str(napi_env env, piston_str s) {
  return s.ptr ? make_latin1(env, s.ptr, s.len) : undef(env);
}

static napi_value make_cstr(napi_env env, const char *s) {
  napi_value r;
  return napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &r) == napi_ok
             ? r
             : NULL;
}

static void throw_piston(napi_env env, int rc, const char *what) {
  char msg[256];
  napi_value err;
  snprintf(msg, sizeof msg, "%s: %s", what, piston_strerror(rc));
  /* PISTON_EADDRINUSE -> EADDRINUSE, the name node users match on */
  const char *name = piston_err_name(rc);
  if (strncmp(name, "PISTON_", 7) == 0)
    name += 7;
  NAPI_OR(
      napi_create_error(env, make_cstr(env, name), make_cstr(env, msg), &err),
      napi_failed(env, msg);
      return );
  NAPI_OR(napi_set_named_property(env, err, "errno", make_int(env, rc)),
          napi_failed(env, msg);
          return );
  NAPI_OR(napi_throw(env, err), napi_failed(env, msg));
}

/* The call's arguments (missing ones undefined) and the environment's
 * state, which every function gets as its data pointer. NULL with an
 * exception pending on failure. */
static addon_t *get_args(napi_env env, napi_callback_info info, size_t n,
                         napi_value *argv) {
  size_t argc = n;
  void *data = NULL;
  napi_value u = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, &data) != napi_ok ||
      (argc < n && napi_get_undefined(env, &u) != napi_ok)) {
    napi_failed(env, "piston: Node-API call failed: napi_get_cb_info");
    return NULL;
  }
  for (size_t i = argc; i < n; i++)
    argv[i] = u;
  return data;
}

/* A number argument, or dflt if it is not one. */
static int64_t get_i64(napi_env env, napi_value v, int64_t dflt) {
  int64_t r;
  return napi_get_value_int64(env, v, &r) == napi_ok ? r : dflt;
}

static bool get_bool(napi_env env, napi_value v, bool dflt) {
  bool r;
  return napi_get_value_bool(env, v, &r) == napi_ok ? r : dflt;
}

static bool is_nullish(napi_env env, napi_value v) {
  napi_valuetype t;
  return napi_typeof(env, v, &t) != napi_ok || t == napi_undefined ||
         t == napi_null;
}

static srv_t *get_srv(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || !p) {
    NAPI_OR(napi_throw_type_error(env, NULL, "piston: not a server handle"),
            napi_failed(env, "piston: not a server handle"));
    return NULL;
  }
  return p;
}

static piston_req *get_req(addon_t *a, napi_env env, napi_value v,
                           uint32_t *slot_out) {
  uint32_t s;
  if (napi_get_value_uint32(env, v, &s) != napi_ok || s >= a->nslots ||
      !a->slots[s].req)
    return NULL;
  *slot_out = s;
  return a->slots[s].req;
}

/* A malloc'd C string from a JS string (utf8); NULL if not a string. */
static char *dup_str(napi_env env, napi_value v) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok)
    return NULL;
  char *s = malloc(len + 1);
  if (s && napi_get_value_string_utf8(env, v, s, len + 1, &len) != napi_ok) {
    free(s);
    s = NULL;
  }
  return s;
}

/* A JS string's bytes (latin1: one byte per char, as make_str made them;
 * else utf8) in buf when they fit in cap, else in malloc'd memory that
 * *owned is set to. */
static int get_string(napi_env env, napi_value v, bool latin1, char *buf,
                      size_t cap, const char **data, size_t *len,
                      char **owned) {
  napi_status (*get)(napi_env, napi_value, char *, size_t, size_t *) =
      latin1 ? napi_get_value_string_latin1 : napi_get_value_string_utf8;
  size_t n;
  *owned = NULL;
  if (get(env, v, NULL, 0, &n) != napi_ok)
    return -1;
  char *p = n + 1 <= cap ? buf : (*owned = malloc(n + 1));
  if (!p || get(env, v, p, n + 1, &n) != napi_ok) {
    free(*owned);
    *owned = NULL;
    return -1;
  }
  *data = p;
  *len = n;
  return 0;
}

/* Bytes of a Buffer/TypedArray or a utf8 string. *owned is set when the
 * returned memory must be freed. */
static int get_bytes(addon_t *a, napi_env env, napi_value v, const char **data,
                     size_t *len, char **owned) {
  bool is;
  void *p;
  *owned = NULL;
  if (napi_is_buffer(env, v, &is) == napi_ok && is) {
    if (napi_get_buffer_info(env, v, &p, len) != napi_ok)
      return -1;
    *data = p;
    return 0;
  }
  if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
    napi_typedarray_type t;
    size_t n, off;
    napi_value ab;
    if (napi_get_typedarray_info(env, v, &t, &n, &p, &ab, &off) != napi_ok)
      return -1;
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
  return get_string(env, v, false, a->scratch, SCRATCH, data, len, owned);
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
  uint32_t n;
  if (napi_is_array(env, arr, &is) != napi_ok || !is)
    return 0;
  if (napi_get_array_length(env, arr, &n) != napi_ok)
    return -1;
  n &= ~1u;
  if (n == 0)
    return 0;
  size_t total = 0;
  napi_value *vals = malloc(sizeof(napi_value) * n);
  size_t *lens = malloc(sizeof(size_t) * n);
  if (!vals || !lens)
    goto fail;
  for (uint32_t i = 0; i < n; i++) {
    if (napi_get_element(env, arr, i, &vals[i]) != napi_ok ||
        napi_get_value_string_latin1(env, vals[i], NULL, 0, &lens[i]) !=
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
    if (napi_get_value_string_latin1(env, vals[i], p, lens[i] + 1, &got) !=
        napi_ok)
      goto fail;
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
  out->h = NULL;
  return -1;
}

/* ---- calls into JS ------------------------------------------------------- */

/* One entry into JS from libuv or the engine: a handle scope and a callback
 * scope, so nextTicks and microtasks run when it closes, as after any node
 * callback. */
typedef struct {
  napi_handle_scope hs;
  napi_callback_scope cs;
  napi_value global;
  int open; /* 1: handle scope open; 2: callback scope too */
} js_scope;

static void js_leave(addon_t *a, js_scope *j) {
  if (j->open == 2)
    NAPI_MUST(napi_close_callback_scope(a->env, j->cs));
  if (j->open >= 1)
    NAPI_MUST(napi_close_handle_scope(a->env, j->hs));
  j->open = 0;
}

/* 0 when JS may be called (the caller then js_leave()s), -1 if not: the
 * environment is going away, or has no callbacks yet. */
static int js_enter(addon_t *a, js_scope *j) {
  napi_value res;
  j->open = 0;
  if (a->gone || !a->ready || napi_open_handle_scope(a->env, &j->hs) != napi_ok)
    return -1;
  j->open = 1;
  if (napi_get_reference_value(a->env, a->resource, &res) != napi_ok ||
      napi_open_callback_scope(a->env, res, a->async, &j->cs) != napi_ok) {
    js_leave(a, j);
    return -1;
  }
  j->open = 2;
  if (napi_get_global(a->env, &j->global) != napi_ok) {
    js_leave(a, j);
    return -1;
  }
  return 0;
}

/* fn(...argv) inside an entered scope. An exception becomes the process's
 * 'uncaughtException', as for any node callback. -1 if fn could not be
 * called at all (an argument could not be made: the env is failing). */
static int js_call(addon_t *a, js_scope *j, napi_ref fn, size_t argc,
                   napi_value *argv) {
  napi_env env = a->env;
  napi_value f, ret, e;
  for (size_t i = 0; i < argc; i++)
    if (!argv[i])
      return -1;
  if (napi_get_reference_value(env, fn, &f) != napi_ok)
    return -1;
  if (napi_call_function(env, j->global, f, argc, argv, &ret) == napi_ok)
    return 0;
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending &&
      napi_get_and_clear_last_exception(env, &e) == napi_ok)
    NAPI_OR(napi_fatal_exception(env, e),
            fprintf(stderr, "piston: an exception could not be reported\n"));
  return 0;
}

/* ---- slots --------------------------------------------------------------- */

static int slot_alloc(addon_t *a, piston_req *req, srv_t *s, uint32_t *out) {
  if (a->free == UINT32_MAX) {
    uint32_t n = a->nslots ? a->nslots * 2 : 1024;
    slot_t *ns = realloc(a->slots, sizeof(slot_t) * n);
    if (!ns)
      return -1;
    a->slots = ns;
    for (uint32_t i = n; i-- > a->nslots;) {
      a->slots[i].req = NULL;
      a->slots[i].srv = NULL;
      a->slots[i].ws_pending = 0;
      a->slots[i].closed_pending = 0;
      a->slots[i].next_free = a->free;
      a->free = i;
    }
    a->nslots = n;
  }
  uint32_t i = a->free;
  a->free = a->slots[i].next_free;
  a->slots[i].req = req;
  a->slots[i].srv = s;
  a->live++;
  s->live++;
  *out = i;
  return 0;
}

static void srv_maybe_free(srv_t *s);

static void slot_release(addon_t *a, uint32_t i) {
  slot_t *sl = &a->slots[i];
  srv_t *s = sl->srv;
  piston_req_on_event(sl->req, NULL, NULL);
  piston_req_release(sl->req);
  sl->req = NULL;
  sl->srv = NULL;
  sl->ws_pending = 0;
  sl->closed_pending = 0;
  sl->next_free = a->free;
  a->free = i;
  a->live--;
  s->live--;
  srv_maybe_free(s);
}

/* ---- engine callbacks ---------------------------------------------------- */

/* Appends slot to a growing list (*q, *n entries of *cap); 0, or -1 when
 * it cannot grow. */
static int slots_push(uint32_t **q, size_t *n, size_t *cap, uint32_t slot) {
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 64;
    uint32_t *nq = realloc(*q, c * sizeof *nq);
    if (!nq)
      return -1;
    *q = nq;
    *cap = c;
  }
  (*q)[(*n)++] = slot;
  return 0;
}

/* Takes such a list whole (JS may queue more while it is handled): its
 * entries, *out of them, or NULL when it has none. */
static uint32_t *slots_take(uint32_t **q, size_t *n, size_t *cap, size_t *out) {
  uint32_t *l = *n ? *q : NULL;
  *out = *n;
  if (l) {
    *q = NULL;
    *n = *cap = 0;
  }
  return l;
}

/* A WebSocket session with messages waiting joins its server's list for
 * the pass end (flush_ws); 0, or -1 if it could not (JS then gets the
 * event at once). */
static int ws_queue(addon_t *a, uint32_t slot) {
  slot_t *sl = &a->slots[slot];
  srv_t *s = sl->srv;
  if (sl->ws_pending || !a->on_ws)
    return sl->ws_pending ? 0 : -1;
  if (slots_push(&s->wsq, &s->nwsq, &s->cwsq, slot) < 0)
    return -1;
  sl->ws_pending = 1;
  return 0;
}

/* A request that died in the pass joins its server's list for the pass
 * end (flush_closed); 0, or -1 if it could not (JS then gets the event at
 * once). Deaths come in bursts (a timeout wheel slot of stalled bodies, a
 * client's connections reset together): one callback scope for the lot
 * keeps JS's per-callback work (nextTicks, async hooks) to one run, as
 * node:http checks its request timeouts in one timer callback. */
static int closed_queue(addon_t *a, uint32_t slot, int events) {
  slot_t *sl = &a->slots[slot];
  srv_t *s = sl->srv;
  if (sl->closed_pending) {
    /* queued already: the engine reports a death it answered for (a
     * timeout's 408 or 503) and again when the connection goes, which JS,
     * had it run in between, would have stopped by releasing the slot */
    sl->closed_pending |= events;
    return 0;
  }
  if (!s->in_pass)
    return -1;
  if (slots_push(&s->closedq, &s->nclosed, &s->cclosed, slot) < 0)
    return -1;
  sl->closed_pending = events;
  return 0;
}

/* onEvent(slot, events); the slot is the request's userdata. A
 * WebSocket's message event waits for the pass end instead (flush_ws), as
 * does a death in a pass (flush_closed). */
static void on_event(piston_req *req, int events, void *ud) {
  addon_t *a = ud;
  uint32_t slot = (uint32_t)(uintptr_t)piston_req_userdata(req);
  if (events & PISTON_EV_MESSAGE && ws_queue(a, slot) == 0)
    events &= ~PISTON_EV_MESSAGE;
  if (events & PISTON_EV_CLOSED &&
      closed_queue(a, slot, events & (PISTON_EV_CLOSED | PISTON_EV_TIMEOUT)) ==
          0)
    events &= ~(PISTON_EV_CLOSED | PISTON_EV_TIMEOUT);
  js_scope j;
  if (!events || js_enter(a, &j) < 0)
    return;
  napi_value argv[2] = {make_int(a->env, slot), make_int(a->env, events)};
  js_call(a, &j, a->on_event, 2, argv);
  js_leave(a, &j);
}

static void on_request(piston_req *req, void *ud) {
  srv_t *s = ud;
  addon_t *a = s->a;
  uint32_t slot;
  if (s->nbatch == s->cbatch) {
    size_t n = s->cbatch ? s->cbatch * 2 : 64;
    uint32_t *nb = realloc(s->batch, n * sizeof *nb);
    if (nb) {
      s->batch = nb;
      s->cbatch = n;
    }
  }
  if (a->gone || s->nbatch == s->cbatch || slot_alloc(a, req, s, &slot) < 0) {
    piston_resp_abort(req);
    piston_req_release(req);
    return;
  }
  piston_req_set_userdata(req, (void *)(uintptr_t)slot);
  piston_req_on_event(req, on_event, a);
  s->batch[s->nbatch++] = slot;
}

/* onRequest(serverId, slot, method, target, httpMinor, connId, path, query)
 * for each request of the pass. path and query are the engine's (it
 * handles absolute-form targets); query is undefined when empty. */
static void on_batch_end(piston_loop *loop, void *ud) {
  (void)loop;
  srv_t *s = ud;
  addon_t *a = s->a;
  /* the handlers may call back into us; take the batch first */
  size_t n = s->nbatch;
  s->nbatch = 0;
  js_scope j;
  int in_js = js_enter(a, &j) == 0;
  napi_env env = a->env;
  napi_value sid = in_js ? make_int(env, s->js_id) : NULL;
  for (size_t i = 0; i < n; i++) {
    uint32_t slot = s->batch[i];
    piston_req *req = a->slots[slot].req;
    piston_str target = piston_req_target(req), path = piston_req_path(req),
               query = piston_req_query(req);
    napi_handle_scope is;
    if (!in_js || napi_open_handle_scope(env, &is) != napi_ok) {
      /* JS will never see this request: the engine answers it (500) */
      piston_resp_abort(req);
      slot_release(a, slot);
      continue;
    }
    napi_value argv[8];
    argv[0] = sid;
    argv[1] = make_int(env, slot);
    argv[2] = make_str(env, piston_req_method(req));
    argv[3] = make_str(env, target);
    argv[4] = make_int(env, piston_req_http_minor(req));
    /* a process-wide counter: exact as a JS number up to 2^53 */
    argv[5] = make_int(env, (int64_t)piston_req_connection_id(req));
    /* the common origin-form target without a query is its own path */
    argv[6] = path.ptr == target.ptr && path.len == target.len
                  ? argv[3]
                  : make_str(env, path);
    argv[7] = query.len ? make_str(env, query) : undef(env);
    if (js_call(a, &j, a->on_request, 8, argv) < 0) {
      piston_resp_abort(req);
      slot_release(a, slot);
    }
    NAPI_MUST(napi_close_handle_scope(env, is));
  }
  if (in_js)
    js_leave(a, &j);
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
  srv_ev *e = &s->evs[s->nevs++];
  memset(e, 0, sizeof *e);
  return e;
}

static void on_client_error(piston_loop *loop, int status,
                            const char *remote_addr, int remote_port,
                            void *ud) {
  srv_ev *e = ev_push(ud);
  if (!e)
    return;
  e->kind = EV_CLIENT_ERROR;
  e->code = piston_loop_client_error(loop, &e->reason);
  e->status = status;
  e->slot = -1;
  e->conn = piston_loop_client_error_connection_id(loop);
  size_t len, parsed;
  const char *data = piston_loop_client_error_data(loop, &len, &parsed);
  if (data && (e->data = malloc(len ? len : 1))) {
    memcpy(e->data, data, len);
    e->len = len;
    e->parsed = parsed;
  }
  srv_t *s = ud;
  piston_req *req =
      s->answers_errors ? piston_loop_client_error_take(loop) : NULL;
  if (req) {
    uint32_t slot;
    if (s->a->gone || slot_alloc(s->a, req, s, &slot) < 0) {
      piston_resp_abort(req); /* closed without an answer */
      piston_req_release(req);
    } else {
      piston_req_set_userdata(req, (void *)(uintptr_t)slot);
      piston_req_on_event(req, on_event, s->a);
      e->slot = slot;
    }
  }
  e->port = remote_port;
  snprintf(e->addr, sizeof e->addr, "%s", remote_addr ? remote_addr : "");
}

static void on_conn_closed(piston_loop *loop, uint64_t conn_id, void *ud) {
  (void)loop;
  srv_ev *e = ev_push(ud);
  if (!e)
    return;
  e->kind = EV_CONN_CLOSED;
  e->conn = conn_id;
}

/* onConnEvent(serverId, kind, status|connId, remoteAddr, remotePort, code,
 * reason, slot, bytesParsed, rawPacket, connId) for each queued event, in
 * order. */
static void flush_events(srv_t *s) {
  addon_t *a = s->a;
  /* take the list first, as on_batch_end takes its batch */
  srv_ev *evs = s->evs;
  size_t n = s->nevs;
  s->evs = NULL;
  s->nevs = s->cevs = 0;
  js_scope j;
  if (n && js_enter(a, &j) == 0) {
    napi_env env = a->env;
    napi_value sid = make_int(env, s->js_id);
    for (size_t i = 0; i < n; i++) {
      napi_handle_scope is;
      if (napi_open_handle_scope(env, &is) != napi_ok)
        break;
      napi_value argv[11];
      argv[0] = sid;
      argv[1] = make_int(env, evs[i].kind);
      argv[5] = argv[6] = argv[8] = argv[9] = undef(env);
      argv[7] = make_int(env, -1);
      argv[10] = undef(env);
      if (evs[i].kind == EV_CLIENT_ERROR) {
        srv_ev *e = &evs[i];
        argv[7] = make_int(env, e->slot);
        /* a process-wide counter, as onRequest's */
        argv[10] = make_int(env, (int64_t)e->conn);
        e->slot = -1; /* JS's now */
        if (e->data) {
          void *x;
          argv[8] = make_int(env, (int64_t)e->parsed);
          NAPI_MUST(
              napi_create_buffer_copy(env, e->len, e->data, &x, &argv[9]));
        }
        argv[2] = make_int(env, e->status);
        argv[3] = make_latin1(env, e->addr, strlen(e->addr));
        argv[4] = make_int(env, e->port);
        if (e->code)
          argv[5] = make_latin1(env, e->code, strlen(e->code));
        if (e->reason)
          argv[6] = make_latin1(env, e->reason, strlen(e->reason));
      } else {
        argv[2] = make_int(env, (int64_t)evs[i].conn);
        argv[3] = argv[4] = undef(env);
      }
      js_call(a, &j, a->on_conn_event, 11, argv);
      NAPI_MUST(napi_close_handle_scope(env, is));
    }
    js_leave(a, &j);
  }
  /* what JS never got: a connection nobody answers is closed */
  for (size_t i = 0; i < n; i++) {
    free(evs[i].data);
    if (evs[i].kind == EV_CLIENT_ERROR && evs[i].slot >= 0) {
      piston_resp_abort(a->slots[evs[i].slot].req);
      slot_release(a, (uint32_t)evs[i].slot);
    }
  }
  free(evs);
}

/* onEvent(slot, events) for each request that died in the pass, in
 * order, in one callback scope. A slot released since (JS let an earlier
 * one go, and with it nothing of this one) is left out. */
static void flush_closed(srv_t *s) {
  addon_t *a = s->a;
  size_t n;
  uint32_t *q = slots_take(&s->closedq, &s->nclosed, &s->cclosed, &n);
  if (!q)
    return;
  js_scope j;
  int in_js = js_enter(a, &j) == 0;
  for (size_t i = 0; i < n; i++) {
    slot_t *sl = &a->slots[q[i]];
    int events = sl->closed_pending;
    if (!events || sl->srv != s)
      continue;
    sl->closed_pending = 0;
    napi_handle_scope is;
    if (!in_js || napi_open_handle_scope(a->env, &is) != napi_ok)
      continue; /* no JS: its slot goes with the environment */
    napi_value argv[2] = {make_int(a->env, q[i]), make_int(a->env, events)};
    js_call(a, &j, a->on_event, 2, argv);
    NAPI_MUST(napi_close_handle_scope(a->env, is));
  }
  if (in_js)
    js_leave(a, &j);
  free(q);
}

/* onWsMessages(n) after the pass, with the slots of the sessions that have
 * messages waiting in the first n entries of the wsInit() Int32Array (as
 * many calls as it takes), all in one callback scope: JS takes each
 * session's messages (wsRecv). A session released since it was queued is
 * left out. */
static void flush_ws(srv_t *s) {
  addon_t *a = s->a;
  size_t n;
  uint32_t *q = slots_take(&s->wsq, &s->nwsq, &s->cwsq, &n);
  if (!q)
    return;
  js_scope j;
  napi_value batch;
  napi_typedarray_type t;
  size_t cap = 0, off;
  void *data = NULL;
  napi_value ab;
  if (js_enter(a, &j) == 0) {
    napi_env env = a->env;
    if (napi_get_reference_value(env, a->ws_batch, &batch) != napi_ok ||
        napi_get_typedarray_info(env, batch, &t, &cap, &data, &ab, &off) !=
            napi_ok ||
        t != napi_int32_array)
      cap = 0;
    for (size_t i = 0; i < n && cap > 0;) {
      size_t k = 0;
      for (; i < n && k < cap; i++) {
        slot_t *sl = &a->slots[q[i]];
        if (!sl->ws_pending || sl->srv != s)
          continue;
        sl->ws_pending = 0;
        ((int32_t *)data)[k++] = (int32_t)q[i];
      }
      napi_value argv[1] = {make_int(env, (int64_t)k)};
      if (k)
        js_call(a, &j, a->on_ws, 1, argv);
    }
    js_leave(a, &j);
  }
  /* JS never saw these (no JS, or no batch buffer): nothing waits for
   * them but their sessions, which end with the environment */
  for (size_t i = 0; i < n; i++)
    if (a->slots[q[i]].srv == s)
      a->slots[q[i]].ws_pending = 0;
  free(q);
}

/* onClosed(serverId) once the server's loop drained. */
static void call_closed(srv_t *s) {
  addon_t *a = s->a;
  js_scope j;
  if (js_enter(a, &j) < 0)
    return;
  napi_value argv[1] = {make_int(a->env, s->js_id)};
  js_call(a, &j, a->on_closed, 1, argv);
  js_leave(a, &j);
}

static void teardown_step_done(addon_t *a);

static void on_handle_closed(uv_handle_t *h) {
  srv_t *s = h->data;
  addon_t *a = s->a;
  s->handle_open = 0;
  srv_maybe_free(s);
  if (a->gone)
    teardown_step_done(a);
}

/* The loop is freed once it has stopped and JS holds none of its requests;
 * the server struct once the uv handle is closed too. */
static void srv_maybe_free(srv_t *s) {
  if (!s->stopped || s->live > 0)
    return;
  if (s->loop) {
    piston_loop_free(s->loop);
    s->loop = NULL;
  }
  if (s->handle_open)
    return;
  if (s->pprev) {
    *s->pprev = s->next;
    if (s->next)
      s->next->pprev = s->pprev;
  }
  piston_server_free(s->server);
  free(s->batch);
  free(s->evs);
  free(s->wsq);
  free(s->closedq);
  free(s);
}

static void srv_close_handle(srv_t *s) {
  if (!s->handle_open)
    return;
  /* uv_poll_stop cannot fail on an initialised handle */
  (void)uv_poll_stop(&s->poll);
  uv_close((uv_handle_t *)&s->poll, on_handle_closed);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  /* an error status (the fd failed) leaves the pass to find out */
  (void)status;
  (void)events;
  srv_t *s = h->data;
  s->in_pass = 1;
  int rc = piston_loop_poll(s->loop);
  s->in_pass = 0;
  /* what the pass left for JS, in the order it happened in: deaths came
   * from within the pass (before, they were reported in it), messages and
   * connection events after */
  flush_closed(s);
  flush_ws(s);
  flush_events(s);
  if (rc <= 0 && !s->stopped) {
    s->stopped = 1;
    srv_close_handle(s);
    call_closed(s);
    srv_maybe_free(s);
  }
}

/* ---- environment teardown ------------------------------------------------ */

/* When the environment ends (a worker exiting or terminated, the main
 * thread at exit) with servers open, JS can no longer be called: the
 * requests JS holds are dropped, each loop is stopped at once and drained,
 * and the poll handles are closed. This is an async cleanup hook because
 * the environment's libuv loop must run their close callbacks before it
 * closes, and while this library is still loaded (a worker unloads the
 * addons it loaded); the hook's removal lets the teardown go on. */
static void teardown_step_done(addon_t *a) {
  if (--a->closing == 0 && a->cleanup) {
    NAPI_MUST(napi_remove_async_cleanup_hook(a->cleanup));
    a->cleanup = NULL;
  }
}

static void addon_teardown(napi_async_cleanup_hook_handle h, void *arg) {
  (void)h;
  addon_t *a = arg;
  a->gone = 1;
  for (uint32_t i = 0; i < a->nslots; i++)
    if (a->slots[i].req)
      slot_release(a, i);
  a->closing = 1; /* this walk's own step */
  for (srv_t *s = a->servers, *next; s; s = next) {
    next = s->next; /* s may be freed below */
    if (s->loop && !s->stopped) {
      piston_loop_stop(s->loop, 0);
      /* with no deadline a stopped loop drains in a pass or two; the bound
       * only guards against an engine that would not */
      for (int k = 0; k < 1000 && piston_loop_poll(s->loop) > 0; k++)
        ;
    }
    s->stopped = 1;
    free(s->evs);
    s->evs = NULL;
    s->nevs = s->cevs = 0;
    free(s->wsq);
    s->wsq = NULL;
    s->nwsq = s->cwsq = 0;
    free(s->closedq);
    s->closedq = NULL;
    s->nclosed = s->cclosed = 0;
    if (s->handle_open)
      a->closing++; /* until on_handle_closed */
    srv_close_handle(s);
    srv_maybe_free(s);
  }
  teardown_step_done(a);
}

/* The instance data's finalizer, after the teardown above. The references
 * and the async context belong to the environment and end with it. */
static void addon_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  addon_t *a = data;
  free(a->slots);
  free(a);
}

/* ---- JS functions: setup and servers ------------------------------------- */

/* init(onRequest(serverId, slot, method, target, httpMinor, connId, path,
 *                query),
 *      onEvent(slot, events),
 *      onClosed(serverId),
 *      onConnEvent(serverId, kind, statusOrConnId, remoteAddr, remotePort))
 * Once per environment, before any server starts. */
static napi_value js_init(napi_env env, napi_callback_info info) {
  napi_value argv[4], res;
  addon_t *a = get_args(env, info, 4, argv);
  if (!a)
    return NULL;
  if (a->ready)
    return napi_failed(env, "piston: init() called twice");
  NAPI_OK(napi_create_reference(env, argv[0], 1, &a->on_request));
  NAPI_OK(napi_create_reference(env, argv[1], 1, &a->on_event));
  NAPI_OK(napi_create_reference(env, argv[2], 1, &a->on_closed));
  NAPI_OK(napi_create_reference(env, argv[3], 1, &a->on_conn_event));
  NAPI_OK(napi_create_object(env, &res));
  NAPI_OK(napi_create_reference(env, res, 1, &a->resource));
  NAPI_OK(napi_async_init(env, res, make_cstr(env, "PISTON_HTTP"), &a->async));
  a->ready = 1;
  return undef(env);
}

/* serverNew(jsId) -> an external naming the server */
static napi_value js_server_new(napi_env env, napi_callback_info info) {
  napi_value argv[1], ext;
  addon_t *a = get_args(env, info, 1, argv);
  if (!a)
    return NULL;
  srv_t *s = calloc(1, sizeof *s);
  if (!s || !(s->server = piston_server_new())) {
    free(s);
    throw_piston(env, PISTON_ENOMEM, "piston_server_new");
    return NULL;
  }
  if (napi_create_external(env, s, NULL, NULL, &ext) != napi_ok) {
    piston_server_free(s->server);
    free(s);
    return napi_failed(env, "piston: napi_create_external failed");
  }
  s->a = a;
  s->js_id = (int)get_i64(env, argv[0], 0);
  s->next = a->servers;
  if (s->next)
    s->next->pprev = &s->next;
  s->pprev = &a->servers;
  a->servers = s;
  piston_server_on_request(s->server, on_request, s);
  piston_server_on_batch_end(s->server, on_batch_end, s);
  return ext;
}

/* The server argument of the functions below. */
#define SRV_ARG(n)                                                             \
  napi_value argv[n];                                                          \
  if (!get_args(env, info, n, argv))                                           \
    return NULL;                                                               \
  srv_t *s = get_srv(env, argv[0]);                                            \
  if (!s)                                                                      \
    return NULL;

/* watch(srv, clientErrors, connections): asks for the engine's client-error
 * and connection-closed callbacks (onConnEvent). Before start(). */
static napi_value js_watch(napi_env env, napi_callback_info info) {
  SRV_ARG(3);
  piston_server_on_client_error(
      s->server, get_bool(env, argv[1], false) ? on_client_error : NULL, s);
  piston_server_on_connection_closed(
      s->server, get_bool(env, argv[2], false) ? on_conn_closed : NULL, s);
  return undef(env);
}

/* answerClientErrors(srv, on): while on, JS answers the engine's
 * rejections itself (node:http's 'clientError' listeners): each comes with
 * its connection's slot as a raw stream (piston_loop_client_error_take). */
static napi_value js_answer_client_errors(napi_env env,
                                          napi_callback_info info) {
  SRV_ARG(2);
  s->answers_errors = get_bool(env, argv[1], false);
  return undef(env);
}

/* closeIdle(srv): closes keep-alive connections waiting for a request (at
 * the loop's next pass); requests in flight go on. */
static napi_value js_close_idle(napi_env env, napi_callback_info info) {
  SRV_ARG(1);
  if (s->loop && !s->stopped)
    piston_loop_close_idle(s->loop);
  return undef(env);
}

/* serverSet(srv, option, value) */
static napi_value js_server_set(napi_env env, napi_callback_info info) {
  SRV_ARG(3);
  int rc =
      piston_server_set(s->server, (piston_option)get_i64(env, argv[1], -1),
                        get_i64(env, argv[2], 0));
  if (rc < 0)
    throw_piston(env, rc, "piston_server_set");
  return undef(env);
}

/* routeFixed(srv, method|null, path, status, headers[], body) */
static napi_value js_route_fixed(napi_env env, napi_callback_info info) {
  SRV_ARG(6);
  char *method = is_nullish(env, argv[1]) ? NULL : dup_str(env, argv[1]);
  char *path = dup_str(env, argv[2]);
  hdrs_t h;
  const char *body;
  size_t blen;
  char *owned;
  int rc = PISTON_EINVAL;
  if (path && get_headers(env, argv[4], &h) == 0) {
    if (get_bytes(s->a, env, argv[5], &body, &blen, &owned) == 0) {
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
  SRV_ARG(3);
  char *prefix = dup_str(env, argv[1]), *dir = dup_str(env, argv[2]);
  int rc = prefix && dir ? piston_server_route_dir(s->server, prefix, dir)
                         : PISTON_EINVAL;
  free(prefix);
  free(dir);
  if (rc < 0)
    throw_piston(env, rc, "piston_server_route_dir");
  return undef(env);
}

/* trustProxies(srv, list): piston_server_trust_proxies */
static napi_value js_trust_proxies(napi_env env, napi_callback_info info) {
  SRV_ARG(2);
  char *list = dup_str(env, argv[1]);
  int rc = list ? piston_server_trust_proxies(s->server, list) : PISTON_EINVAL;
  free(list);
  if (rc < 0)
    throw_piston(env, rc, "trustedProxies");
  return undef(env);
}

/* accessLog(srv, file|null, format|null): piston_server_access_log */
static napi_value js_access_log(napi_env env, napi_callback_info info) {
  SRV_ARG(3);
  napi_valuetype t1, t2;
  napi_typeof(env, argv[1], &t1);
  napi_typeof(env, argv[2], &t2);
  char *file = t1 == napi_string ? dup_str(env, argv[1]) : NULL;
  char *fmt = t2 == napi_string ? dup_str(env, argv[2]) : NULL;
  int rc = piston_server_access_log(s->server, file, fmt);
  free(file);
  free(fmt);
  if (rc == PISTON_EINVAL) {
    char msg[128];
    snprintf(msg, sizeof msg, "accessLogFormat: unknown atom %s",
             piston_server_access_log_error(s->server));
    napi_throw_error(env, "ERR_INVALID_ARG_VALUE", msg);
  } else if (rc < 0) {
    throw_piston(env, rc, "accessLogFile");
  }
  return undef(env);
}

/* The regions this process opened by file (piston_metrics_open), one per
 * file, kept for the process's life: every server of it counting into one
 * file shares the mapping, and a server may end while others still count. */
#define SHARED_REGIONS 8
static struct {
  char *file;
  piston_metrics *m;
} shared_regions[SHARED_REGIONS];
static pthread_mutex_t shared_regions_lock = PTHREAD_MUTEX_INITIALIZER;

static piston_metrics *shared_region(const char *file, size_t nslots) {
  pthread_mutex_lock(&shared_regions_lock);
  piston_metrics *m = NULL;
  int i = 0;
  for (; i < SHARED_REGIONS && shared_regions[i].file; i++)
    if (strcmp(shared_regions[i].file, file) == 0) {
      m = shared_regions[i].m;
      break;
    }
  if (!m && i < SHARED_REGIONS && (m = piston_metrics_open(file, nslots))) {
    shared_regions[i].file = strdup(file);
    shared_regions[i].m = m;
    if (!shared_regions[i].file) {
      piston_metrics_free(m);
      m = NULL;
      errno = ENOMEM;
    }
  } else if (!m && i == SHARED_REGIONS) {
    errno = EMFILE;
  }
  pthread_mutex_unlock(&shared_regions_lock);
  return m;
}

/* opsRoute(srv, kind, path, file, nslots): 0 metrics (piston_server_metrics,
 * in a region of the process's own, or with file the region shared through
 * it by every process that opens it), 1 health (piston_server_health) */
static napi_value js_ops_route(napi_env env, napi_callback_info info) {
  SRV_ARG(5);
  int64_t kind = get_i64(env, argv[1], 0);
  char *path = dup_str(env, argv[2]);
  piston_metrics *m = NULL;
  if (path && kind == 0 && !is_nullish(env, argv[3])) {
    char *file = dup_str(env, argv[3]);
    m = file ? shared_region(file, (size_t)get_i64(env, argv[4], 0)) : NULL;
    if (!m) {
      char msg[512];
      snprintf(msg, sizeof msg, "metrics: cannot share counters through %s: %s",
               file ? file : "(a file)", strerror(errno));
      napi_throw_error(env, "ERR_PISTON_METRICS", msg);
      free(file);
      free(path);
      return NULL;
    }
    free(file);
  }
  int rc = !path       ? PISTON_EINVAL
           : kind == 0 ? piston_server_metrics(s->server, m, path)
                       : piston_server_health(s->server, path);
  free(path);
  if (rc < 0)
    throw_piston(env, rc, kind == 0 ? "metrics" : "health");
  return undef(env);
}

/* reopenLogs(srv): piston_server_reopen_logs (logrotate) */
static napi_value js_reopen_logs(napi_env env, napi_callback_info info) {
  SRV_ARG(1);
  int rc = piston_server_reopen_logs(s->server);
  if (rc < 0)
    throw_piston(env, rc, "reopenLogs");
  return undef(env);
}

/* listenTcp(srv, host, port) / listenUnix(srv, path) */
static napi_value js_listen_tcp(napi_env env, napi_callback_info info) {
  SRV_ARG(3);
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
  SRV_ARG(2);
  char *path = dup_str(env, argv[1]);
  int rc = path ? piston_server_listen_unix(s->server, path) : PISTON_EINVAL;
  free(path);
  if (rc < 0)
    throw_piston(env, rc, "listen");
  return undef(env);
}

/* start(srv): creates the loop (binding the listeners) and starts polling
 * on this environment's libuv loop. Returns the port of the first listener
 * (0 for a Unix socket). */
static napi_value js_start(napi_env env, napi_callback_info info) {
  SRV_ARG(1);
  uv_loop_t *uvl;
  int err = 0;
  if (s->loop || s->stopped) {
    throw_piston(env, PISTON_ESTATE, "start");
    return NULL;
  }
  NAPI_OK(napi_get_uv_event_loop(env, &uvl));
  s->loop = piston_loop_new(s->server, &err);
  if (!s->loop) {
    throw_piston(env, err ? err : PISTON_ESYS, "listen");
    return NULL;
  }
  if (uv_poll_init(uvl, &s->poll, piston_loop_fd(s->loop)) != 0) {
    piston_loop_free(s->loop);
    s->loop = NULL;
    throw_piston(env, PISTON_ESYS, "uv_poll_init");
    return NULL;
  }
  s->poll.data = s;
  s->handle_open = 1;
  if (uv_poll_start(&s->poll, UV_READABLE, on_poll) != 0) {
    /* the loop goes with the handle: stop() then finds a stopped server */
    s->stopped = 1;
    srv_close_handle(s);
    srv_maybe_free(s);
    throw_piston(env, PISTON_ESYS, "uv_poll_start");
    return NULL;
  }
  return make_int(env, piston_server_port(s->server, 0));
}

/* stop(srv, deadlineMs): graceful stop; onClosed fires when drained. A
 * server that never started is freed at once. */
static napi_value js_stop(napi_env env, napi_callback_info info) {
  SRV_ARG(2);
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
  SRV_ARG(2);
  if (s->handle_open) {
    if (get_bool(env, argv[1], true))
      uv_ref((uv_handle_t *)&s->poll);
    else
      uv_unref((uv_handle_t *)&s->poll);
  }
  return undef(env);
}

/* cachePurge(srv, target, prefix) -> responses dropped */
static napi_value js_cache_purge(napi_env env, napi_callback_info info) {
  SRV_ARG(3);
  const char *t;
  size_t len;
  char buf[512], *owned = NULL;
  /* latin1: one byte per char, as the request's target reached JS */
  if (get_string(env, argv[1], true, buf, sizeof buf, &t, &len, &owned) != 0) {
    napi_throw_type_error(env, NULL, "cache.purge: target must be a string");
    return NULL;
  }
  size_t n = piston_server_cache_purge(s->server, t, len,
                                       get_bool(env, argv[2], false));
  free(owned);
  return make_int(env, (int64_t)n);
}

/* cacheRoute(srv, prefix, ttl, swr, sie): before start() */
static napi_value js_cache_route(napi_env env, napi_callback_info info) {
  SRV_ARG(5);
  char *prefix = dup_str(env, argv[1]);
  int rc = prefix ? piston_server_cache_route(s->server, prefix,
                                              (int)get_i64(env, argv[2], 0),
                                              (int)get_i64(env, argv[3], 0),
                                              (int)get_i64(env, argv[4], 0))
                  : PISTON_EINVAL;
  free(prefix);
  if (rc < 0)
    throw_piston(env, rc, "piston_server_cache_route");
  return undef(env);
}

/* cacheStats(srv) -> {hits, staleHits, misses, ...} */
static napi_value js_cache_stats(napi_env env, napi_callback_info info) {
  SRV_ARG(1);
  piston_cache_stats st;
  piston_server_cache_stats(s->server, &st);
  const struct {
    const char *name;
    uint64_t v;
  } f[] = {{"hits", st.hits},           {"staleHits", st.stale_hits},
           {"misses", st.misses},       {"coalesced", st.coalesced},
           {"stores", st.stores},       {"uncacheable", st.uncacheable},
           {"evictions", st.evictions}, {"purged", st.purged},
           {"bytes", st.bytes},         {"entries", st.entries}};
  napi_value o;
  NAPI_OR(napi_create_object(env, &o), return NULL);
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
    NAPI_OR(napi_set_named_property(env, o, f[i].name,
                                    make_int(env, (int64_t)f[i].v)),
            return NULL);
  return o;
}

static napi_value js_connections(napi_env env, napi_callback_info info) {
  SRV_ARG(1);
  return make_int(env, s->loop ? (int64_t)piston_loop_connections(s->loop) : 0);
}

/* ---- JS functions: TLS ----------------------------------------------------
 * Translations of piston.h's TLS calls; node/tls.js maps node:https's
 * options onto them. A PISTON_ETLS failure throws with code ETLS, and
 * tlsError(srv) then says what to fix (JS puts it in the message). */

/* PEM text from a Buffer/TypedArray or a string. Strings are always copied
 * to malloc'd memory (*owned), so that two of them can be held at once
 * (get_bytes would put both in the scratch buffer). */
static int get_pem(addon_t *a, napi_env env, napi_value v, const char **data,
                   size_t *len, char **owned) {
  bool buf = false, typed = false;
  if ((napi_is_buffer(env, v, &buf) == napi_ok && buf) ||
      (napi_is_typedarray(env, v, &typed) == napi_ok && typed))
    return get_bytes(a, env, v, data, len, owned);
  return get_string(env, v, false, NULL, 0, data, len, owned);
}

static napi_value tls_result(napi_env env, int rc, const char *call) {
  if (rc < 0)
    throw_piston(env, rc, call);
  return undef(env);
}

/* tlsCertPem(srv, cert, key): a certificate chain and its key, PEM text */
static napi_value js_tls_cert_pem(napi_env env, napi_callback_info info) {
  SRV_ARG(3);
  const char *cert, *key;
  size_t clen, klen;
  char *cown = NULL, *kown = NULL;
  int rc = PISTON_EINVAL;
  if (get_pem(s->a, env, argv[1], &cert, &clen, &cown) == 0 &&
      get_pem(s->a, env, argv[2], &key, &klen, &kown) == 0)
    rc = piston_server_tls_cert_pem(s->server, cert, clen, key, klen);
  free(cown);
  free(kown);
  return tls_result(env, rc, "piston_server_tls_cert_pem");
}

/* tlsCert(srv, certFile, keyFile, ocspFile|null): the same from files */
static napi_value js_tls_cert(napi_env env, napi_callback_info info) {
  SRV_ARG(4);
  char *cert = dup_str(env, argv[1]), *key = dup_str(env, argv[2]);
  char *ocsp = is_nullish(env, argv[3]) ? NULL : dup_str(env, argv[3]);
  int rc = cert && key && (ocsp || is_nullish(env, argv[3]))
               ? piston_server_tls_cert(s->server, cert, key, ocsp)
               : PISTON_EINVAL;
  free(cert);
  free(key);
  free(ocsp);
  return tls_result(env, rc, "piston_server_tls_cert");
}

/* tlsReplacePem(srv, i, cert, key): the i-th certificate, for new
 * connections (setSecureContext) */
static napi_value js_tls_replace_pem(napi_env env, napi_callback_info info) {
  SRV_ARG(4);
  const char *cert, *key;
  size_t clen, klen;
  char *cown = NULL, *kown = NULL;
  int64_t i = get_i64(env, argv[1], -1);
  int rc = PISTON_EINVAL;
  if (i >= 0 && get_pem(s->a, env, argv[2], &cert, &clen, &cown) == 0 &&
      get_pem(s->a, env, argv[3], &key, &klen, &kown) == 0)
    rc = piston_server_tls_replace_pem(s->server, (size_t)i, cert, clen, key,
                                       klen);
  free(cown);
  free(kown);
  return tls_result(env, rc, "piston_server_tls_replace_pem");
}

/* tlsSet(srv, TLS_<option>, value) */
static napi_value js_tls_set(napi_env env, napi_callback_info info) {
  SRV_ARG(3);
  int64_t opt = get_i64(env, argv[1], -1);
  char *value = dup_str(env, argv[2]);
  int rc = value && opt >= 0 && opt < PISTON_TLS__COUNT
               ? piston_server_tls_set(s->server, (piston_tls_option)opt, value)
               : PISTON_EINVAL;
  free(value);
  return tls_result(env, rc, "piston_server_tls_set");
}

/* listenerTls(srv, i): the i-th listener speaks TLS */
static napi_value js_listener_tls(napi_env env, napi_callback_info info) {
  SRV_ARG(2);
  int64_t i = get_i64(env, argv[1], -1);
  return tls_result(env,
                    i < 0 ? PISTON_EINVAL
                          : piston_server_listener_tls(s->server, (size_t)i),
                    "piston_server_listener_tls");
}

/* tlsReload(srv): builds the certificates again (files are read again) */
static napi_value js_tls_reload(napi_env env, napi_callback_info info) {
  SRV_ARG(1);
  return tls_result(env, piston_server_tls_reload(s->server),
                    "piston_server_tls_reload");
}

/* tlsError(srv) -> what the last failed TLS call found ("" if none) */
static napi_value js_tls_error(napi_env env, napi_callback_info info) {
  SRV_ARG(1);
  return make_cstr(env, piston_server_tls_error(s->server));
}

/* tlsInfo(slot) -> [one entry per PISTON_TLSI_*, indexed by TLSI_<name>]:
 * UTF-8 strings (the names may hold UTF-8), the two DERs as Buffers; all
 * empty on a plain connection. A number (PISTON_ECLOSED) for a dead slot. */
static napi_value js_tls_info(napi_env env, napi_callback_info info) {
  napi_value argv[1], arr;
  uint32_t slot;
  addon_t *a = get_args(env, info, 1, argv);
  if (!a)
    return NULL;
  piston_req *req = get_req(a, env, argv[0], &slot);
  if (!req)
    return make_int(env, PISTON_ECLOSED);
  NAPI_OK(napi_create_array_with_length(env, PISTON_TLSI__COUNT, &arr));
  for (int i = 0; i < PISTON_TLSI__COUNT; i++) {
    piston_str v = piston_req_tls(req, (piston_tls_info)i);
    napi_value x;
    void *data;
    if (i == PISTON_TLSI_PEER_CERT || i == PISTON_TLSI_LOCAL_CERT)
      NAPI_OK(
          napi_create_buffer_copy(env, v.len, v.len ? v.ptr : "", &data, &x));
    else
      NAPI_OK(napi_create_string_utf8(env, v.len ? v.ptr : "", v.len, &x));
    NAPI_OK(napi_set_element(env, arr, (uint32_t)i, x));
  }
  return arr;
}

/* httpVersion(slot) -> 10, 11 or 20; PISTON_ECLOSED for a dead slot */
static napi_value js_http_version(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  uint32_t slot;
  addon_t *a = get_args(env, info, 1, argv);
  if (!a)
    return NULL;
  piston_req *req = get_req(a, env, argv[0], &slot);
  return make_int(env, req ? piston_req_http_version(req) : PISTON_ECLOSED);
}

/* TLS_<name>: tlsSet's settings; TLSI_<name>: tlsInfo's indexes (from
 * piston.h's maps, so JS has no copies). 0 with an exception pending on
 * failure. */
static int tls_consts(napi_env env, napi_value exports) {
  static const struct {
    const char *name;
    int v;
  } consts[] = {
#define TLS_CONST_(name, doc) {"TLS_" #name, PISTON_TLS_##name},
      PISTON_TLS_OPTION_MAP(TLS_CONST_)
#undef TLS_CONST_
#define TLSI_CONST_(name, doc) {"TLSI_" #name, PISTON_TLSI_##name},
          PISTON_TLS_INFO_MAP(TLSI_CONST_)
#undef TLSI_CONST_
  };
  for (size_t i = 0; i < sizeof consts / sizeof consts[0]; i++) {
    if (napi_set_named_property(env, exports, consts[i].name,
                                make_int(env, consts[i].v)) != napi_ok) {
      napi_failed(env, "piston: exporting the TLS constants failed");
      return 0;
    }
  }
  return 1;
}

/* ---- JS functions: requests ---------------------------------------------- */

/* The request argument: a dead or released slot answers PISTON_ECLOSED. */
#define REQ_ARG(n)                                                             \
  napi_value argv[n];                                                          \
  addon_t *a = get_args(env, info, n, argv);                                   \
  if (!a)                                                                      \
    return NULL;                                                               \
  uint32_t slot;                                                               \
  piston_req *req = get_req(a, env, argv[0], &slot);                           \
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
    NAPI_OK(
        napi_set_element(env, arr, (uint32_t)(2 * i), make_str(env, h.name)));
    NAPI_OK(napi_set_element(env, arr, (uint32_t)(2 * i + 1),
                             make_str(env, h.value)));
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
 *                localPort, path, query, secure] */
static napi_value js_info(napi_env env, napi_callback_info info) {
  REQ_ARG(1);
  int port = 0;
  const char *addr = piston_req_remote_addr(req, &port);
  napi_value arr,
      v[8] = {
          make_int(env, piston_req_http_minor(req)),
          make_int(env, piston_req_content_length(req)),
          make_latin1(env, addr ? addr : "", addr ? strlen(addr) : 0),
          make_int(env, port),
          make_int(env, piston_req_local_port(req)),
          make_str(env, piston_req_path(req)),
          make_str(env, piston_req_query(req)),
          make_int(env, piston_req_secure(req)),
      };
  NAPI_OK(napi_create_array_with_length(env, 8, &arr));
  for (uint32_t i = 0; i < 8; i++)
    NAPI_OK(napi_set_element(env, arr, i, v[i]));
  return arr;
}

/* read(slot) -> Buffer with the buffered body bytes, or a number: 0 at the
 * end, PISTON_EAGAIN (wait for the body event), another negative error. */
static napi_value js_read(napi_env env, napi_callback_info info) {
  REQ_ARG(1);
  int64_t n = piston_req_body_read(req, a->scratch, SCRATCH);
  if (n <= 0)
    return make_int(env, n);
  napi_value buf;
  void *data;
  NAPI_OK(napi_create_buffer_copy(env, (size_t)n, a->scratch, &data, &buf));
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
  return get_string(env, v, true, buf, cap, out, len, owned);
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
  int rc = reason
               ? piston_resp_start_reason(req, status, reason, rlen, h.h, h.n)
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
  if (get_bytes(a, env, argv[1], &data, &len, &owned) < 0)
    return make_int(env, PISTON_EINVAL);
  int rc = len ? piston_resp_write(req, data, len) : 0;
  free(owned);
  return make_int(env, rc);
}

/* end(slot[, chunk[, trailers[]]]) -> rc */
static napi_value js_resp_end(napi_env env, napi_callback_info info) {
  REQ_ARG(3);
  int rc = 0;
  if (!is_nullish(env, argv[1])) {
    const char *data;
    size_t len;
    char *owned;
    if (get_bytes(a, env, argv[1], &data, &len, &owned) < 0)
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

/* send(slot, status, headers[], body, reason?) -> rc: start + write + end
 * with a Content-Length, in one engine call */
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
  if (!is_nullish(env, argv[3]) &&
      get_bytes(a, env, argv[3], &data, &len, &owned) < 0) {
    free(h.mem);
    free(rown);
    return make_int(env, PISTON_EINVAL);
  }
  int rc = piston_resp_send_reason(req, (int)get_i64(env, argv[1], 200), reason,
                                   rlen, h.h, h.n, data, len);
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

/* abort(slot[, reset]): the engine's 500 (or a close mid-body); with reset,
 * the close without a response (node's res.destroy()) */
static napi_value js_resp_abort(napi_env env, napi_callback_info info) {
  REQ_ARG(2);
  bool reset = false;
  napi_get_value_bool(env, argv[1], &reset);
  if (reset)
    piston_resp_reset(req);
  else
    piston_resp_abort(req);
  return undef(env);
}

/* connBytes(slot, written?) -> the connection's bytes read (or queued for
 * the client), or PISTON_ECLOSED */
static napi_value js_conn_bytes(napi_env env, napi_callback_info info) {
  REQ_ARG(2);
  uint64_t rd, wr;
  int rc = piston_req_connection_bytes(req, &rd, &wr);
  if (rc < 0)
    return make_int(env, rc);
  bool written = false;
  napi_get_value_bool(env, argv[1], &written);
  napi_value v;
  NAPI_OK(napi_create_double(env, (double)(written ? wr : rd), &v));
  return v;
}

/* inform(slot, status, headers[]) -> rc: a 1xx before the response */
static napi_value js_resp_inform(napi_env env, napi_callback_info info) {
  REQ_ARG(3);
  hdrs_t h;
  if (get_headers(env, argv[2], &h) < 0)
    return make_int(env, PISTON_ENOMEM);
  int rc = piston_resp_inform(req, (int)get_i64(env, argv[1], 100), h.h, h.n);
  free(h.mem);
  return make_int(env, rc);
}

static napi_value js_release(napi_env env, napi_callback_info info) {
  REQ_ARG(1);
  slot_release(a, slot);
  return undef(env);
}

/* ---- JS functions: WebSocket sessions ------------------------------------ */

/* wsInit(onWsMessages, Int32Array): where flush_ws hands the sessions
 * with messages waiting. Before it, message events go to onEvent. */
static napi_value js_ws_init(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  addon_t *a = get_args(env, info, 2, argv);
  bool is = false;
  if (!a)
    return NULL;
  if (a->on_ws)
    return napi_failed(env, "piston: wsInit() called twice");
  NAPI_OK(napi_is_typedarray(env, argv[1], &is));
  if (!is)
    return napi_failed(env, "piston: wsInit needs an Int32Array");
  NAPI_OK(napi_create_reference(env, argv[1], 1, &a->ws_batch));
  NAPI_OK(napi_create_reference(env, argv[0], 1, &a->on_ws));
  return undef(env);
}

/* wsHandshake(slot) -> 101, 426, 400 or 0 (no WebSocket attempt) */
static napi_value js_ws_handshake(napi_env env, napi_callback_info info) {
  REQ_ARG(1);
  return make_int(env, piston_ws_handshake(req));
}

/* wsRefuse(slot) -> rc: the engine's 400/426 for an attempt not taken */
static napi_value js_ws_refuse(napi_env env, napi_callback_info info) {
  REQ_ARG(1);
  return make_int(env, piston_ws_refuse(req));
}

/* wsAccept(slot, headers[]) -> rc: the 101; the slot now names the session */
static napi_value js_ws_accept(napi_env env, napi_callback_info info) {
  REQ_ARG(2);
  hdrs_t h;
  if (get_headers(env, argv[1], &h) < 0)
    return make_int(env, PISTON_ENOMEM);
  int rc = piston_ws_accept(req, h.h, h.n);
  free(h.mem);
  return make_int(env, rc);
}

/* Bytes of an ArrayBuffer, a Buffer/TypedArray or a string (UTF-8). */
static int get_payload(addon_t *a, napi_env env, napi_value v,
                       const char **data, size_t *len, char **owned) {
  bool is = false;
  void *p;
  *owned = NULL;
  if (napi_is_arraybuffer(env, v, &is) == napi_ok && is) {
    if (napi_get_arraybuffer_info(env, v, &p, len) != napi_ok)
      return -1;
    *data = p;
    return 0;
  }
  return get_bytes(a, env, v, data, len, owned);
}

/* wsSend(slot, data, binary) -> 0, 1 (wait for drain) or an error. data:
 * an ArrayBuffer, a Buffer/TypedArray or a string (sent as UTF-8). */
static napi_value js_ws_send(napi_env env, napi_callback_info info) {
  REQ_ARG(3);
  const char *data;
  size_t len;
  char *owned = NULL;
  if (get_payload(a, env, argv[1], &data, &len, &owned) < 0)
    return make_int(env, PISTON_EINVAL);
  int op = get_bool(env, argv[2], false) ? PISTON_WS_BINARY : PISTON_WS_TEXT;
  int rc = piston_ws_send(req, op, data, len);
  free(owned);
  return make_int(env, rc);
}

/* wsClose(slot, code, reason?) -> rc: starts the closing handshake (code 0:
 * a close frame without one) */
static napi_value js_ws_close(napi_env env, napi_callback_info info) {
  REQ_ARG(3);
  const char *reason = NULL;
  size_t rlen = 0;
  char *owned = NULL;
  if (!is_nullish(env, argv[2]) &&
      get_bytes(a, env, argv[2], &reason, &rlen, &owned) < 0)
    return make_int(env, PISTON_EINVAL);
  int rc = piston_ws_close(req, (int)get_i64(env, argv[1], 0), reason, rlen);
  free(owned);
  return make_int(env, rc);
}

/* wsRecv(slot, out) -> the next message as an ArrayBuffer (its opcode in
 * the Int32Array out[0]: 1 text, 2 binary), or a number: 0 when none is
 * waiting (EV_MESSAGE tells when one is), PISTON_ECLOSED once the session
 * ended and every message was taken. */
static napi_value js_ws_recv(napi_env env, napi_callback_info info) {
  REQ_ARG(2);
  napi_typedarray_type t;
  size_t n, off;
  void *outp = NULL;
  napi_value ab;
  if (napi_get_typedarray_info(env, argv[1], &t, &n, &outp, &ab, &off) !=
          napi_ok ||
      t != napi_int32_array || n < 1)
    return napi_failed(env, "piston: wsRecv needs an Int32Array");
  int op;
  const void *data;
  size_t len;
  int rc = piston_ws_recv(req, &op, &data, &len);
  if (rc != 1)
    return make_int(env, rc);
  napi_value buf;
  void *dst;
  NAPI_OK(napi_create_arraybuffer(env, len, &dst, &buf));
  if (len)
    memcpy(dst, data, len);
  ((int32_t *)outp)[0] = op;
  return buf;
}

/* wsCloseCode(slot) -> how the session ended (0 while open) */
static napi_value js_ws_close_code(napi_env env, napi_callback_info info) {
  REQ_ARG(1);
  return make_int(env, piston_ws_close_code(req));
}

/* ---- JS functions: WebSocket publish/subscribe, control frames, state ---- */

/* A session's call with one argument of bytes (a topic, a ping's payload),
 * its result as a number. */
typedef int (*bytes_fn)(piston_req *req, const void *p, size_t len);
static napi_value bytes_call(napi_env env, napi_callback_info info,
                             bytes_fn fn) {
  REQ_ARG(2);
  const char *t;
  size_t tl;
  char *owned;
  if (get_payload(a, env, argv[1], &t, &tl, &owned) < 0)
    return make_int(env, PISTON_EINVAL);
  int rc = fn(req, t, tl);
  free(owned);
  return make_int(env, rc);
}

static int is_subscribed(piston_req *req, const void *topic, size_t len) {
  return piston_ws_is_subscribed(req, topic, len);
}

/* wsSubscribe(slot, topic) -> rc */
static napi_value js_ws_subscribe(napi_env env, napi_callback_info info) {
  return bytes_call(env, info, piston_ws_subscribe);
}

/* wsUnsubscribe(slot, topic) -> 1 if it was subscribed, else 0 */
static napi_value js_ws_unsubscribe(napi_env env, napi_callback_info info) {
  return bytes_call(env, info, piston_ws_unsubscribe);
}

/* wsIsSubscribed(slot, topic) -> 1 or 0 */
static napi_value js_ws_is_subscribed(napi_env env, napi_callback_info info) {
  return bytes_call(env, info, is_subscribed);
}

/* wsPublish(server, topic, data, binary, exceptSlot) -> the number of
 * sessions it was queued to, or an error. exceptSlot < 0: none skipped. */
static napi_value js_ws_publish(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  addon_t *a = get_args(env, info, 5, argv);
  srv_t *s = a ? get_srv(env, argv[0]) : NULL;
  if (!s)
    return NULL;
  int64_t ex = get_i64(env, argv[4], -1);
  const piston_req *except =
      ex >= 0 && (uint64_t)ex < a->nslots ? a->slots[ex].req : NULL;
  const char *t, *d;
  size_t tl, dl;
  char *towned, *downned = NULL;
  if (get_payload(a, env, argv[1], &t, &tl, &towned) < 0)
    return make_int(env, PISTON_EINVAL);
  /* the topic may sit in the scratch buffer: a string message needs its own
   * memory then */
  if (!towned && t == a->scratch) {
    if (!(towned = malloc(tl + 1)))
      return make_int(env, PISTON_ENOMEM);
    memcpy(towned, t, tl);
    t = towned;
  }
  int rc =
      get_payload(a, env, argv[2], &d, &dl, &downned) < 0
          ? PISTON_EINVAL
          : piston_ws_publish(s->server, t, tl,
                              get_bool(env, argv[3], false) ? PISTON_WS_BINARY
                                                            : PISTON_WS_TEXT,
                              d, dl, except);
  free(towned);
  free(downned);
  return make_int(env, rc);
}

/* wsSubscribers(server, topic) -> how many sessions follow topic */
static napi_value js_ws_subscribers(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  addon_t *a = get_args(env, info, 2, argv);
  srv_t *s = a ? get_srv(env, argv[0]) : NULL;
  if (!s)
    return NULL;
  const char *t;
  size_t tl;
  char *owned;
  if (get_payload(a, env, argv[1], &t, &tl, &owned) < 0)
    return make_int(env, PISTON_EINVAL);
  size_t n = piston_ws_subscribers(s->server, t, tl);
  free(owned);
  return make_int(env, (int64_t)n);
}

/* wsCloseReason(slot) -> the peer's close reason, an ArrayBuffer */
static napi_value js_ws_close_reason(napi_env env, napi_callback_info info) {
  REQ_ARG(1);
  piston_str r = piston_ws_close_reason(req);
  napi_value buf;
  void *dst;
  NAPI_OK(napi_create_arraybuffer(env, r.len, &dst, &buf));
  if (r.len)
    memcpy(dst, r.ptr, r.len);
  return buf;
}

/* wsAbort(slot) -> rc: the session ends without a close frame */
static napi_value js_ws_abort(napi_env env, napi_callback_info info) {
  REQ_ARG(1);
  return make_int(env, piston_ws_abort(req));
}

/* wsControl(slot, on): wsRecv also gives pings (9) and pongs (10) */
static napi_value js_ws_control(napi_env env, napi_callback_info info) {
  REQ_ARG(2);
  piston_ws_control_events(req, get_bool(env, argv[1], false));
  return undef(env);
}

static int send_ping(piston_req *req, const void *data, size_t len) {
  return piston_ws_send(req, PISTON_WS_PING, data, len);
}

/* wsPing(slot, data) -> as wsSend (data as wsSend's, at most 125 bytes) */
static napi_value js_ws_ping(napi_env env, napi_callback_info info) {
  return bytes_call(env, info, send_ping);
}

/* wsBuffered(slot) -> bytes queued for the session's connection */
static napi_value js_ws_buffered(napi_env env, napi_callback_info info) {
  REQ_ARG(1);
  return make_int(env, (int64_t)piston_ws_buffered(req));
}

/* ---- JS functions: a connection taken over (node:http's 'upgrade' and
 * 'connect') ----------------------------------------------------------------
 * After rawTakeover the slot names the connection's byte stream: read(slot)
 * gives the client's bytes (those behind the request's head first; EV_BODY
 * when more arrive, 0 once the client shut its direction), respAbort(slot)
 * closes it, EV_DRAIN and EV_CLOSED come as for a response. */

/* rawTakeover(slot) -> rc: no HTTP answer; the host writes its own */
static napi_value js_raw_takeover(napi_env env, napi_callback_info info) {
  REQ_ARG(1);
  return make_int(env, piston_raw_takeover(req));
}

/* rawWrite(slot, chunk) -> 0, 1 (wait for drain) or an error */
static napi_value js_raw_write(napi_env env, napi_callback_info info) {
  return bytes_call(env, info, piston_raw_write);
}

/* rawShutdown(slot) -> rc: a FIN once what is queued has gone out */
static napi_value js_raw_shutdown(napi_env env, napi_callback_info info) {
  REQ_ARG(1);
  return make_int(env, piston_raw_shutdown(req));
}

/* ---- JS functions: the engine's tables ----------------------------------- */

static napi_value js_err_name(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv))
    return NULL;
  return make_cstr(env, piston_err_name((int)get_i64(env, argv[0], 0)));
}

/* The one string argument of the functions below, in the scratch buffer
 * (or in *owned memory). NULL, with an exception pending, if it is not a
 * string. */
static addon_t *string_arg(napi_env env, napi_callback_info info, bool latin1,
                           const char **str, size_t *len, char **owned) {
  napi_value argv[1];
  addon_t *a = get_args(env, info, 1, argv);
  if (a && get_string(env, argv[0], latin1, a->scratch, SCRATCH, str, len,
                      owned) < 0) {
    napi_failed(env, "piston: a string argument is required");
    return NULL;
  }
  return a;
}

/* mimeType(fileName) -> the engine's Content-Type for it, as file mounts
 * send it */
static napi_value js_mime_type(napi_env env, napi_callback_info info) {
  const char *name;
  size_t len;
  char *owned;
  if (!string_arg(env, info, false, &name, &len, &owned))
    return NULL;
  napi_value r = make_cstr(env, piston_mime_type(name, len));
  free(owned);
  return r;
}

/* percentDecode(str) -> the %XX-decoded bytes of a latin1 string (a slice
 * of the request, as make_str made it) read as UTF-8, or undefined if a '%'
 * is not followed by two hex digits. */
static napi_value js_percent_decode(napi_env env, napi_callback_info info) {
  const char *in;
  size_t len;
  char *owned;
  napi_value r;
  if (!string_arg(env, info, true, &in, &len, &owned))
    return NULL;
  /* decoding never lengthens, so it is done in place */
  ptrdiff_t n = piston_percent_decode(in, len, (char *)in, PISTON_PCT_STRICT);
  if (n < 0)
    r = undef(env);
  else if (napi_create_string_utf8(env, in, (size_t)n, &r) != napi_ok)
    r = napi_failed(env, "piston: napi_create_string_utf8 failed");
  free(owned);
  return r;
}

/* live() -> request handles JS still holds (for tests: leaks show here) */
static napi_value js_live(napi_env env, napi_callback_info info) {
  addon_t *a = get_args(env, info, 0, NULL);
  return a ? make_int(env, a->live) : NULL;
}

/* ---- module -------------------------------------------------------------- */

static napi_value module_init(napi_env env, napi_value exports) {
  static const struct {
    const char *name;
    napi_callback fn;
  } fns[] = {
      {"init", js_init},
      {"serverNew", js_server_new},
      {"serverSet", js_server_set},
      {"routeFixed", js_route_fixed},
      {"routeDir", js_route_dir},
      {"trustProxies", js_trust_proxies},
      {"accessLog", js_access_log},
      {"reopenLogs", js_reopen_logs},
      {"opsRoute", js_ops_route},
      {"listenTcp", js_listen_tcp},
      {"listenUnix", js_listen_unix},
      {"tlsCertPem", js_tls_cert_pem},
      {"tlsCert", js_tls_cert},
      {"tlsReplacePem", js_tls_replace_pem},
      {"tlsSet", js_tls_set},
      {"listenerTls", js_listener_tls},
      {"tlsReload", js_tls_reload},
      {"tlsError", js_tls_error},
      {"tlsInfo", js_tls_info},
      {"httpVersion", js_http_version},
      {"start", js_start},
      {"stop", js_stop},
      {"ref", js_ref},
      {"connections", js_connections},
      {"cachePurge", js_cache_purge},
      {"cacheRoute", js_cache_route},
      {"cacheStats", js_cache_stats},
      {"headers", js_headers},
      {"header", js_header},
      {"info", js_info},
      {"read", js_read},
      {"respStart", js_resp_start},
      {"respWrite", js_resp_write},
      {"respEnd", js_resp_end},
      {"respSend", js_resp_send},
      {"respSendfile", js_resp_sendfile},
      {"respAbort", js_resp_abort},
      {"connBytes", js_conn_bytes},
      {"respInform", js_resp_inform},
      {"release", js_release},
      {"wsInit", js_ws_init},
      {"wsHandshake", js_ws_handshake},
      {"wsRefuse", js_ws_refuse},
      {"wsAccept", js_ws_accept},
      {"wsSend", js_ws_send},
      {"wsClose", js_ws_close},
      {"wsRecv", js_ws_recv},
      {"wsCloseCode", js_ws_close_code},
      {"wsSubscribe", js_ws_subscribe},
      {"wsUnsubscribe", js_ws_unsubscribe},
      {"wsIsSubscribed", js_ws_is_subscribed},
      {"wsPublish", js_ws_publish},
      {"wsSubscribers", js_ws_subscribers},
      {"wsCloseReason", js_ws_close_reason},
      {"wsAbort", js_ws_abort},
      {"wsControl", js_ws_control},
      {"wsPing", js_ws_ping},
      {"wsBuffered", js_ws_buffered},
      {"rawTakeover", js_raw_takeover},
      {"rawWrite", js_raw_write},
      {"rawShutdown", js_raw_shutdown},
      {"errName", js_err_name},
      {"mimeType", js_mime_type},
      {"percentDecode", js_percent_decode},
      {"watch", js_watch},
      {"answerClientErrors", js_answer_client_errors},
      {"closeIdle", js_close_idle},
      {"live", js_live},
  };
  /* The engine's names, from its X-macro maps, so that JS has no copies:
   * E<name> for errors, OPT_<name> for options, EV_<name> for request
   * events; CONN_* are the onConnEvent kinds. */
  static const struct {
    const char *name;
    int v;
  } consts[] = {
#define ERR_CONST_(name, value, msg) {"E" #name, PISTON_E##name},
      PISTON_ERRNO_MAP(ERR_CONST_)
#undef ERR_CONST_
#define OPT_CONST_(name, doc) {"OPT_" #name, PISTON_OPT_##name},
          PISTON_OPTION_MAP(OPT_CONST_)
#undef OPT_CONST_
#define EV_CONST_(name, bit, doc) {"EV_" #name, PISTON_EV_##name},
              PISTON_EVENT_MAP(EV_CONST_)
#undef EV_CONST_
                  {"CONN_CLIENT_ERROR", EV_CLIENT_ERROR},
      {"CONN_CLOSED", EV_CONN_CLOSED},
  };
  addon_t *a = calloc(1, sizeof *a);
  if (!a)
    return napi_failed(env, "piston: out of memory");
  a->env = env;
  a->free = UINT32_MAX;
  if (napi_set_instance_data(env, a, addon_finalize, NULL) != napi_ok) {
    free(a);
    return napi_failed(env, "piston: napi_set_instance_data failed");
  }
  NAPI_OK(napi_add_async_cleanup_hook(env, addon_teardown, a, &a->cleanup));
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    NAPI_OK(napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn,
                                 a, &f));
    NAPI_OK(napi_set_named_property(env, exports, fns[i].name, f));
  }
  for (size_t i = 0; i < sizeof consts / sizeof consts[0]; i++)
    NAPI_OK(napi_set_named_property(env, exports, consts[i].name,
                                    make_int(env, consts[i].v)));
  if (!tls_consts(env, exports))
    return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, module_init)
