/* piston._piston: the CPython face of the engine (csrc/piston.h).
 *
 * It only translates. The engine's loops run on C threads of their own and
 * never touch Python: the request callback pushes the handle onto a queue
 * (a thread-local list per loop, moved to the shared queue once per batch).
 * Python worker threads take handles from that queue with
 * Server.next_request(), releasing the GIL only while the queue is empty,
 * and answer them with the Request methods (start/write/sendfile/end/send),
 * which release the GIL only to wait for PISTON_EV_DRAIN or PISTON_EV_BODY.
 *
 * Events: each request taken by a worker gets a slot (a condition variable
 * plus event bits) from a pool that is never freed. The engine's event
 * callback runs on the loop thread; under the server mutex it finds the slot
 * through piston_req_userdata(), which the worker sets and clears under the
 * same mutex, so a late event can never reach a slot that was recycled.
 *
 * Ownership: the engine gives the host one reference per request; the
 * Request object owns it and drops it in finish() (or when it is freed). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "common.h"
#include "piston.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- module state (one engine server per process is all a host needs, but
 * the state is per Server object all the same) ------------------------- */

typedef struct slot {
  struct slot *next_free;
  piston_req *req;
  int events;
  pthread_cond_t cv;
} slot;

typedef struct hub {
  pthread_mutex_t mu;
  pthread_cond_t queue_cv;
  piston_req **queue; /* ring buffer */
  size_t qcap, qhead, qlen;
  int waiters;
  bool closing;
  slot *free_slots;
  atomic_long live; /* handles held by the host */
  atomic_long requests;
} hub;

/* The exceptions live in common.c, shared with the ASGI side. */
#define PistonError piston_py_Error
#define ClientDisconnected piston_py_ClientDisconnected
#define BodyTooLarge piston_py_BodyTooLarge

/* ---- the loop side: runs without the GIL, touches no Python object ---- */

typedef struct {
  piston_req **items;
  size_t len, cap;
} pending_list;

static _Thread_local pending_list tl_pending;

static int queue_push_locked(hub *h, piston_req *req) {
  if (h->qlen == h->qcap) {
    size_t ncap = h->qcap ? h->qcap * 2 : 256;
    piston_req **nq = malloc(ncap * sizeof *nq);
    if (!nq)
      return -1;
    for (size_t i = 0; i < h->qlen; i++)
      nq[i] = h->queue[(h->qhead + i) % h->qcap];
    free(h->queue);
    h->queue = nq;
    h->qcap = ncap;
    h->qhead = 0;
  }
  h->queue[(h->qhead + h->qlen) % h->qcap] = req;
  h->qlen++;
  return 0;
}

static void on_event(piston_req *req, int events, void *ud) {
  hub *h = ud;
  pthread_mutex_lock(&h->mu);
  slot *s = piston_req_userdata(req);
  if (s && s->req == req) {
    s->events |= events;
    pthread_cond_broadcast(&s->cv);
  }
  pthread_mutex_unlock(&h->mu);
}

static void on_request(piston_req *req, void *ud) {
  hub *h = ud;
  atomic_fetch_add(&h->live, 1);
  atomic_fetch_add(&h->requests, 1);
  piston_req_on_event(req, on_event, h);
  pending_list *p = &tl_pending;
  if (p->len == p->cap) {
    size_t ncap = p->cap ? p->cap * 2 : 64;
    piston_req **n = realloc(p->items, ncap * sizeof *n);
    if (!n) {
      piston_resp_abort(req);
      piston_req_release(req);
      atomic_fetch_sub(&h->live, 1);
      return;
    }
    p->items = n;
    p->cap = ncap;
  }
  p->items[p->len++] = req;
}

/* Once per poll pass: hand the pass's requests to the workers in one lock. */
static void on_batch_end(piston_loop *loop, void *ud) {
  (void)loop;
  hub *h = ud;
  pending_list *p = &tl_pending;
  if (p->len == 0)
    return;
  size_t pushed = 0;
  pthread_mutex_lock(&h->mu);
  for (; pushed < p->len; pushed++)
    if (queue_push_locked(h, p->items[pushed]) != 0)
      break;
  int wake = h->waiters;
  pthread_mutex_unlock(&h->mu);
  if ((size_t)wake > pushed)
    wake = (int)pushed;
  if (wake == 1)
    pthread_cond_signal(&h->queue_cv);
  else if (wake > 1)
    pthread_cond_broadcast(&h->queue_cv);
  for (size_t i = pushed; i < p->len; i++) { /* out of memory */
    piston_resp_abort(p->items[i]);
    piston_req_release(p->items[i]);
    atomic_fetch_sub(&h->live, 1);
  }
  p->len = 0;
}

static void *loop_thread(void *arg) {
  /* Signals belong to Python's main thread. */
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  piston_loop_run(arg);
  free(tl_pending.items);
  tl_pending.items = NULL;
  tl_pending.len = tl_pending.cap = 0;
  return NULL;
}

/* ---- Server ---- */

typedef struct {
  PyObject_HEAD piston_server *srv;
  hub *h;
  piston_loop **loops;
  pthread_t *threads;
  int nloops;
  bool started, joined;
} ServerObject;

static PyTypeObject ServerType, RequestType, InputType;

typedef struct {
  PyObject_HEAD ServerObject *server; /* strong */
  piston_req *req;                    /* NULL once finished */
  slot *slot;
  bool ended;        /* end/send/abort done: finish() must not abort */
  bool host_started; /* start/send was called */
} RequestObject;

static int Server_init(ServerObject *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {NULL};
  if (!PyArg_ParseTupleAndKeywords(args, kw, "", kwlist))
    return -1;
  if (self->srv)
    return 0;
  self->srv = piston_server_new();
  self->h = calloc(1, sizeof *self->h);
  if (!self->srv || !self->h) {
    PyErr_NoMemory();
    return -1;
  }
  pthread_mutex_init(&self->h->mu, NULL);
  pthread_cond_init(&self->h->queue_cv, NULL);
  piston_server_on_request(self->srv, on_request, self->h);
  piston_server_on_batch_end(self->srv, on_batch_end, self->h);
  return 0;
}

static void Server_dealloc(ServerObject *self) {
  /* Loops and the hub are freed only when nothing can still use them: if
   * the server ran and handles are still held, they are left to the OS. */
  if (self->srv && (!self->started || self->joined) &&
      atomic_load(&self->h->live) == 0) {
    for (int i = 0; i < self->nloops; i++)
      piston_loop_free(self->loops[i]);
    piston_server_free(self->srv);
    free(self->h->queue);
    /* slots and the hub stay: events may be in flight on other servers'
     * loops in theory; they are small and per process. */
  }
  free(self->loops);
  free(self->threads);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Server_set_option(ServerObject *self, PyObject *args) {
  return piston_py_set_option(self->srv, self->started, args);
}

static PyObject *Server_get_option(ServerObject *self, PyObject *args) {
  int opt;
  if (!PyArg_ParseTuple(args, "i", &opt))
    return NULL;
  if (opt < 0 || opt >= PISTON_OPT__COUNT) {
    PyErr_SetString(PyExc_ValueError, "unknown option");
    return NULL;
  }
  return PyLong_FromLongLong(piston_server_get(self->srv, (piston_option)opt));
}

static PyObject *Server_listen_tcp(ServerObject *self, PyObject *args) {
  return piston_py_listen_tcp(self->srv, args);
}

static PyObject *Server_listen_unix(ServerObject *self, PyObject *args) {
  return piston_py_listen_unix(self->srv, args);
}

static PyObject *Server_listen_fd(ServerObject *self, PyObject *args) {
  return piston_py_listen_fd(self->srv, args);
}

static PyObject *Server_route_fixed(ServerObject *self, PyObject *args) {
  return piston_py_route_fixed(self->srv, args, PISTON_PY_HDRS_STR);
}

static PyObject *Server_route_dir(ServerObject *self, PyObject *args) {
  return piston_py_route_dir(self->srv, args);
}

/* Creates the loops (which bind the TCP sockets) and runs each on a thread
 * of its own. */
static PyObject *Server_start(ServerObject *self, PyObject *args) {
  int n;
  if (!PyArg_ParseTuple(args, "i", &n))
    return NULL;
  if (self->started) {
    PyErr_SetString(PyExc_RuntimeError, "the server is already running");
    return NULL;
  }
  if (n < 1 || n > 256) {
    PyErr_SetString(PyExc_ValueError, "loops must be from 1 to 256");
    return NULL;
  }
  self->loops = calloc((size_t)n, sizeof *self->loops);
  self->threads = calloc((size_t)n, sizeof *self->threads);
  if (!self->loops || !self->threads)
    return PyErr_NoMemory();
  for (int i = 0; i < n; i++) {
    int err = 0;
    self->loops[i] = piston_loop_new(self->srv, &err);
    if (!self->loops[i]) {
      for (int k = 0; k < i; k++)
        piston_loop_free(self->loops[k]);
      self->nloops = 0;
      return piston_py_raise(err ? err : PISTON_ESYS);
    }
    self->nloops = i + 1;
  }
  self->started = true;
  for (int i = 0; i < n; i++) {
    if (pthread_create(&self->threads[i], NULL, loop_thread, self->loops[i]) !=
        0) {
      /* Cannot happen short of resource exhaustion; loops already running
       * are stopped by the caller's stop() + join(). */
      for (int k = i; k < n; k++)
        piston_loop_stop(self->loops[k], 0);
      self->nloops = i;
      PyErr_SetString(PyExc_RuntimeError, "cannot start a loop thread");
      return NULL;
    }
  }
  Py_RETURN_NONE;
}

static PyObject *Server_port(ServerObject *self, PyObject *args) {
  Py_ssize_t i = 0;
  if (!PyArg_ParseTuple(args, "|n", &i))
    return NULL;
  return PyLong_FromLong(piston_server_port(self->srv, (size_t)i));
}

/* Graceful stop of every loop; callable from a signal handler's Python
 * code (piston_loop_stop is async-signal-safe). */
static PyObject *Server_stop(ServerObject *self, PyObject *args) {
  int deadline_ms = 30000;
  if (!PyArg_ParseTuple(args, "|i", &deadline_ms))
    return NULL;
  for (int i = 0; i < self->nloops; i++)
    piston_loop_stop(self->loops[i], deadline_ms);
  Py_RETURN_NONE;
}

/* Waits (GIL released) for the loops to finish, then tells the workers
 * that no more requests will come. */
static PyObject *Server_join(ServerObject *self, PyObject *noargs) {
  (void)noargs;
  if (self->started && !self->joined) {
    Py_BEGIN_ALLOW_THREADS;
    for (int i = 0; i < self->nloops; i++)
      pthread_join(self->threads[i], NULL);
    Py_END_ALLOW_THREADS;
    self->joined = true;
  }
  pthread_mutex_lock(&self->h->mu);
  self->h->closing = true;
  pthread_mutex_unlock(&self->h->mu);
  pthread_cond_broadcast(&self->h->queue_cv);
  Py_RETURN_NONE;
}

static slot *slot_get_locked(hub *h) {
  slot *s = h->free_slots;
  if (s) {
    h->free_slots = s->next_free;
    return s;
  }
  s = calloc(1, sizeof *s);
  if (s)
    pthread_cond_init(&s->cv, NULL);
  return s;
}

/* The next request, or None once the server is stopped and the queue is
 * empty. The GIL is released only if the queue is empty. */
static PyObject *Server_next_request(ServerObject *self, PyObject *noargs) {
  (void)noargs;
  hub *h = self->h;
  piston_req *req = NULL;
  slot *s = NULL;
  for (;;) {
    pthread_mutex_lock(&h->mu);
    if (h->qlen > 0) {
      req = h->queue[h->qhead];
      h->qhead = (h->qhead + 1) % h->qcap;
      h->qlen--;
      s = slot_get_locked(h);
      if (s) {
        s->req = req;
        s->events = 0;
        piston_req_set_userdata(req, s);
      }
      pthread_mutex_unlock(&h->mu);
      break;
    }
    bool closing = h->closing;
    pthread_mutex_unlock(&h->mu);
    if (closing)
      break;
    /* Empty: wait without the GIL. Another thread holding the GIL may take
     * what arrives first, so check again after waking. */
    Py_BEGIN_ALLOW_THREADS;
    pthread_mutex_lock(&h->mu);
    while (h->qlen == 0 && !h->closing) {
      h->waiters++;
      pthread_cond_wait(&h->queue_cv, &h->mu);
      h->waiters--;
    }
    pthread_mutex_unlock(&h->mu);
    Py_END_ALLOW_THREADS;
  }
  if (!req)
    Py_RETURN_NONE;
  RequestObject *r = s ? PyObject_New(RequestObject, &RequestType) : NULL;
  if (!r) {
    pthread_mutex_lock(&h->mu);
    if (s) {
      piston_req_set_userdata(req, NULL);
      s->req = NULL;
      s->next_free = h->free_slots;
      h->free_slots = s;
    }
    pthread_mutex_unlock(&h->mu);
    piston_resp_abort(req);
    piston_req_release(req);
    atomic_fetch_sub(&h->live, 1);
    return PyErr_NoMemory();
  }
  Py_INCREF(self);
  r->server = self;
  r->req = req;
  r->slot = s;
  r->ended = false;
  r->host_started = false;
  return (PyObject *)r;
}

static PyObject *Server_stats(ServerObject *self, PyObject *noargs) {
  (void)noargs;
  size_t conns = 0;
  for (int i = 0; i < self->nloops; i++)
    conns += piston_loop_connections(self->loops[i]);
  pthread_mutex_lock(&self->h->mu);
  size_t queued = self->h->qlen;
  pthread_mutex_unlock(&self->h->mu);
  return Py_BuildValue("{s:l,s:l,s:n,s:n}", "live", atomic_load(&self->h->live),
                       "requests", atomic_load(&self->h->requests), "queued",
                       (Py_ssize_t)queued, "connections", (Py_ssize_t)conns);
}

static PyMethodDef Server_methods[] = {
    {"set_option", (PyCFunction)Server_set_option, METH_VARARGS,
     "set_option(OPT_*, value)"},
    {"get_option", (PyCFunction)Server_get_option, METH_VARARGS,
     "get_option(OPT_*) -> int"},
    {"listen_tcp", (PyCFunction)Server_listen_tcp, METH_VARARGS,
     "listen_tcp(host, port)"},
    {"listen_unix", (PyCFunction)Server_listen_unix, METH_VARARGS,
     "listen_unix(path)"},
    {"listen_fd", (PyCFunction)Server_listen_fd, METH_VARARGS,
     "listen_fd(fd): an already listening socket"},
    {"route_fixed", (PyCFunction)Server_route_fixed, METH_VARARGS,
     "route_fixed(method or None, path, status, headers, body)"},
    {"route_dir", (PyCFunction)Server_route_dir, METH_VARARGS,
     "route_dir(prefix, directory)"},
    {"start", (PyCFunction)Server_start, METH_VARARGS,
     "start(nloops): bind and run the loops on their own threads"},
    {"port", (PyCFunction)Server_port, METH_VARARGS,
     "port(i=0): the port bound by the i-th listener"},
    {"stop", (PyCFunction)Server_stop, METH_VARARGS,
     "stop(deadline_ms): graceful stop of every loop"},
    {"join", (PyCFunction)Server_join, METH_NOARGS,
     "join(): wait for the loops to end; next_request() then drains"},
    {"next_request", (PyCFunction)Server_next_request, METH_NOARGS,
     "next_request() -> Request or None when stopped"},
    {"stats", (PyCFunction)Server_stats, METH_NOARGS, "counters"},
    {NULL, NULL, 0, NULL}};

static PyTypeObject ServerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "piston._piston.Server",
    .tp_basicsize = sizeof(ServerObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An engine server: options, listeners, native routes, loops.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Server_init,
    .tp_dealloc = (destructor)Server_dealloc,
    .tp_methods = Server_methods,
};

/* ---- Request ---- */

static int req_check(RequestObject *r) {
  if (!r->req) {
    PyErr_SetString(PyExc_RuntimeError, "the request is finished");
    return -1;
  }
  return 0;
}

static void req_clear_events(RequestObject *r, int bits) {
  hub *h = r->server->h;
  pthread_mutex_lock(&h->mu);
  r->slot->events &= ~bits;
  pthread_mutex_unlock(&h->mu);
}

/* Waits with the GIL released until one of mask's bits is set. */
static int req_wait(RequestObject *r, int mask) {
  hub *h = r->server->h;
  slot *s = r->slot;
  int ev;
  Py_BEGIN_ALLOW_THREADS;
  pthread_mutex_lock(&h->mu);
  while (!(s->events & mask))
    pthread_cond_wait(&s->cv, &h->mu);
  ev = s->events;
  pthread_mutex_unlock(&h->mu);
  Py_END_ALLOW_THREADS;
  return ev;
}

static void req_finish(RequestObject *r) {
  if (!r->req)
    return;
  hub *h = r->server->h;
  piston_req *req = r->req;
  pthread_mutex_lock(&h->mu);
  piston_req_set_userdata(req, NULL);
  r->slot->req = NULL;
  r->slot->next_free = h->free_slots;
  h->free_slots = r->slot;
  pthread_mutex_unlock(&h->mu);
  r->req = NULL;
  r->slot = NULL;
  /* A response never ended would hang the client: end it abnormally. */
  if (!r->ended)
    piston_resp_abort(req);
  piston_req_release(req);
  atomic_fetch_sub(&h->live, 1);
}

static void Request_dealloc(RequestObject *r) {
  req_finish(r);
  Py_XDECREF(r->server);
  PyObject_Free(r);
}

static PyObject *Request_finish(RequestObject *r, PyObject *noargs) {
  (void)noargs;
  req_finish(r);
  Py_RETURN_NONE;
}

static PyObject *latin1(piston_str s) {
  return PyUnicode_DecodeLatin1(s.ptr ? s.ptr : "", (Py_ssize_t)s.len, NULL);
}

static int set_item(PyObject *d, const char *key, PyObject *v) {
  if (!v)
    return -1;
  int rc = PyDict_SetItemString(d, key, v);
  Py_DECREF(v);
  return rc;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* environ(base, script_name) -> a copy of base with the request's keys. */
static PyObject *Request_environ(RequestObject *r, PyObject *args) {
  PyObject *base;
  const char *root = "";
  Py_ssize_t root_len = 0;
  if (!PyArg_ParseTuple(args, "O!|s#", &PyDict_Type, &base, &root, &root_len))
    return NULL;
  if (req_check(r) < 0)
    return NULL;
  piston_req *req = r->req;
  PyObject *env = PyDict_Copy(base);
  if (!env)
    return NULL;
  if (set_item(env, "REQUEST_METHOD", latin1(piston_req_method(req))) < 0)
    goto fail;

  /* PATH_INFO: percent-decoded bytes, as Latin-1 (PEP 3333). */
  piston_str path = piston_req_path(req);
  char stackbuf[1024];
  char *dec = path.len <= sizeof stackbuf ? stackbuf : PyMem_Malloc(path.len);
  if (!dec) {
    PyErr_NoMemory();
    goto fail;
  }
  size_t dl = 0;
  for (size_t i = 0; i < path.len; i++) {
    int hi, lo;
    if (path.ptr[i] == '%' && i + 2 < path.len + 0 &&
        (hi = hexval(path.ptr[i + 1])) >= 0 &&
        (lo = hexval(path.ptr[i + 2])) >= 0) {
      dec[dl++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      dec[dl++] = path.ptr[i];
    }
  }
  const char *pi = dec;
  size_t pil = dl;
  if (root_len > 0 && dl >= (size_t)root_len &&
      memcmp(dec, root, (size_t)root_len) == 0 &&
      (dl == (size_t)root_len || dec[root_len] == '/')) {
    pi = dec + root_len;
    pil = dl - (size_t)root_len;
  }
  int rc = set_item(env, "PATH_INFO",
                    PyUnicode_DecodeLatin1(pi, (Py_ssize_t)pil, NULL));
  if (dec != stackbuf)
    PyMem_Free(dec);
  if (rc < 0)
    goto fail;
  if (set_item(env, "SCRIPT_NAME",
               PyUnicode_DecodeLatin1(root, root_len, NULL)) < 0 ||
      set_item(env, "QUERY_STRING", latin1(piston_req_query(req))) < 0 ||
      set_item(env, "RAW_URI", latin1(piston_req_target(req))) < 0 ||
      set_item(env, "SERVER_PROTOCOL",
               PyUnicode_FromString(
                   piston_req_http_minor(req) ? "HTTP/1.1" : "HTTP/1.0")) < 0)
    goto fail;
  int port = 0;
  const char *addr = piston_req_remote_addr(req, &port);
  if (set_item(env, "REMOTE_ADDR", PyUnicode_FromString(addr ? addr : "")) < 0)
    goto fail;
  if (addr && addr[0]) {
    if (set_item(env, "REMOTE_PORT", PyUnicode_FromFormat("%d", port)) < 0)
      goto fail;
    int lport = piston_req_local_port(req);
    if (lport > 0 &&
        set_item(env, "SERVER_PORT", PyUnicode_FromFormat("%d", lport)) < 0)
      goto fail;
  }

  /* Headers: HTTP_NAME, duplicates joined with ", "; names with '_' are
   * dropped (they would be indistinguishable from '-' once mapped). */
  size_t n = piston_req_header_count(req);
  char key[256];
  for (size_t i = 0; i < n; i++) {
    piston_header hd = piston_req_header_at(req, i);
    if (hd.name.len + 6 > sizeof key || memchr(hd.name.ptr, '_', hd.name.len))
      continue;
    size_t off = 5;
    memcpy(key, "HTTP_", 5);
    if ((hd.name.len == 12 &&
         PyOS_strnicmp(hd.name.ptr, "content-type", 12) == 0) ||
        (hd.name.len == 14 &&
         PyOS_strnicmp(hd.name.ptr, "content-length", 14) == 0))
      off = 0;
    for (size_t k = 0; k < hd.name.len; k++) {
      char c = hd.name.ptr[k];
      if (c == '-')
        c = '_';
      else if (c >= 'a' && c <= 'z')
        c = (char)(c - 32);
      key[off + k] = c;
    }
    key[off + hd.name.len] = 0;
    PyObject *val = latin1(hd.value);
    if (!val)
      goto fail;
    PyObject *old = PyDict_GetItemString(env, key); /* borrowed */
    if (old && off) {
      PyObject *joined = PyUnicode_FromFormat("%U, %U", old, val);
      Py_DECREF(val);
      val = joined;
    }
    if (set_item(env, key, val) < 0)
      goto fail;
  }
  return env;
fail:
  Py_DECREF(env);
  return NULL;
}

static PyObject *Request_start(RequestObject *r, PyObject *args) {
  int status;
  PyObject *headers, *reason = Py_None;
  if (!PyArg_ParseTuple(args, "iO|O", &status, &headers, &reason))
    return NULL;
  if (req_check(r) < 0)
    return NULL;
  /* the reason phrase: None for the engine's own, else a latin-1 str */
  PyObject *rbytes = NULL;
  if (reason != Py_None) {
    if (!PyUnicode_Check(reason)) {
      PyErr_Format(PyExc_TypeError, "reason must be str or None, not %.100s",
                   Py_TYPE(reason)->tp_name);
      return NULL;
    }
    rbytes = PyUnicode_AsLatin1String(reason);
    if (!rbytes)
      return NULL;
  }
  piston_py_hdrs a;
  if (piston_py_hdrs_from(headers, &a, PISTON_PY_HDRS_STR) < 0) {
    Py_XDECREF(rbytes);
    return NULL;
  }
  req_clear_events(r, PISTON_EV_DRAIN);
  int rc =
      rbytes
          ? piston_resp_start_reason(r->req, status, PyBytes_AS_STRING(rbytes),
                                     (size_t)PyBytes_GET_SIZE(rbytes), a.h, a.n)
          : piston_resp_start(r->req, status, a.h, a.n);
  if (rc >= 0)
    r->host_started = true;
  piston_py_hdrs_free(&a);
  Py_XDECREF(rbytes);
  if (rc == PISTON_EINVAL) {
    PyErr_SetString(PyExc_ValueError,
                    "invalid status, reason or header (CR, LF or a bad "
                    "name?)");
    return NULL;
  }
  if (rc < 0)
    return piston_py_raise(rc);
  if (rc == 1 &&
      (req_wait(r, PISTON_EV_DRAIN | PISTON_EV_CLOSED) & PISTON_EV_CLOSED))
    return piston_py_raise(PISTON_ECLOSED);
  Py_RETURN_NONE;
}

/* After a write: wait (GIL released) while the queue is over its mark. */
static PyObject *after_write(RequestObject *r, int rc) {
  if (rc < 0) {
    if (rc == PISTON_EINVAL) {
      PyErr_SetString(PyExc_ValueError,
                      "more body than the Content-Length announced");
      return NULL;
    }
    return piston_py_raise(rc);
  }
  if (rc == 1 &&
      (req_wait(r, PISTON_EV_DRAIN | PISTON_EV_CLOSED) & PISTON_EV_CLOSED))
    return piston_py_raise(PISTON_ECLOSED);
  Py_RETURN_NONE;
}

static PyObject *Request_write(RequestObject *r, PyObject *arg) {
  Py_buffer b;
  if (req_check(r) < 0)
    return NULL;
  if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0)
    return NULL;
  req_clear_events(r, PISTON_EV_DRAIN);
  int rc = piston_resp_write(r->req, b.buf, (size_t)b.len);
  PyBuffer_Release(&b);
  return after_write(r, rc);
}

static PyObject *Request_sendfile(RequestObject *r, PyObject *args) {
  int fd;
  long long off, len;
  if (!PyArg_ParseTuple(args, "iLL", &fd, &off, &len))
    return NULL;
  if (req_check(r) < 0)
    return NULL;
  if (off < 0 || len < 0) {
    PyErr_SetString(PyExc_ValueError, "negative offset or length");
    return NULL;
  }
  req_clear_events(r, PISTON_EV_DRAIN);
  int rc = piston_resp_sendfile(r->req, fd, (off_t)off, (size_t)len);
  return after_write(r, rc);
}

static PyObject *Request_end(RequestObject *r, PyObject *noargs) {
  (void)noargs;
  if (req_check(r) < 0)
    return NULL;
  int rc = piston_resp_end(r->req, NULL, 0);
  if (rc < 0)
    return piston_py_raise(rc);
  r->ended = true;
  Py_RETURN_NONE;
}

static PyObject *Request_send(RequestObject *r, PyObject *args) {
  int status;
  PyObject *headers;
  Py_buffer body;
  if (!PyArg_ParseTuple(args, "iOy*", &status, &headers, &body))
    return NULL;
  if (req_check(r) < 0) {
    PyBuffer_Release(&body);
    return NULL;
  }
  piston_py_hdrs a;
  if (piston_py_hdrs_from(headers, &a, PISTON_PY_HDRS_STR) < 0) {
    PyBuffer_Release(&body);
    return NULL;
  }
  int rc =
      piston_resp_send(r->req, status, a.h, a.n, body.buf, (size_t)body.len);
  piston_py_hdrs_free(&a);
  PyBuffer_Release(&body);
  if (rc == PISTON_EINVAL) {
    PyErr_SetString(PyExc_ValueError,
                    "invalid status or header (CR, LF, a bad name or a "
                    "Content-Length that does not match the body?)");
    return NULL;
  }
  if (rc < 0)
    return piston_py_raise(rc);
  r->ended = true;
  /* The response is complete; pressure does not matter any more. */
  Py_RETURN_NONE;
}

static PyObject *Request_abort(RequestObject *r, PyObject *noargs) {
  (void)noargs;
  if (r->req && !r->ended) {
    piston_resp_abort(r->req);
    r->ended = true;
  }
  Py_RETURN_NONE;
}

static PyObject *Request_started(RequestObject *r, void *closure) {
  (void)closure;
  return PyBool_FromLong(r->req ? piston_resp_started(r->req) : 1);
}

static PyObject *Request_closed(RequestObject *r, void *closure) {
  (void)closure;
  if (!r->req)
    Py_RETURN_TRUE;
  hub *h = r->server->h;
  pthread_mutex_lock(&h->mu);
  int ev = r->slot->events;
  pthread_mutex_unlock(&h->mu);
  return PyBool_FromLong(ev & PISTON_EV_CLOSED);
}

static PyObject *Request_method(RequestObject *r, void *closure) {
  (void)closure;
  if (req_check(r) < 0)
    return NULL;
  return latin1(piston_req_method(r->req));
}

static PyObject *Request_target(RequestObject *r, void *closure) {
  (void)closure;
  if (req_check(r) < 0)
    return NULL;
  return latin1(piston_req_target(r->req));
}

static PyObject *Request_content_length(RequestObject *r, void *closure) {
  (void)closure;
  if (req_check(r) < 0)
    return NULL;
  return PyLong_FromLongLong(piston_req_content_length(r->req));
}

/* ---- the body: raw reads, shared by the Input object ---- */

/* Reads up to len bytes, waiting (GIL released) until at least one byte or
 * the end. Returns the count, 0 at the end, -1 with an exception set. */
static Py_ssize_t body_read_some(RequestObject *r, char *buf, size_t len) {
  for (;;) {
    if (req_check(r) < 0)
      return -1;
    req_clear_events(r, PISTON_EV_BODY);
    int64_t n = piston_req_body_read(r->req, buf, len);
    if (n >= 0)
      return (Py_ssize_t)n;
    if (n != PISTON_EAGAIN) {
      /* Past the limit the engine answers 413 itself unless the host has
       * started a response: then there is nothing left to end. */
      if (n == PISTON_ETOOBIG && !r->host_started)
        r->ended = true;
      piston_py_raise((int)n);
      return -1;
    }
    if (req_wait(r, PISTON_EV_BODY | PISTON_EV_CLOSED) & PISTON_EV_CLOSED) {
      /* the body may still have been completed before the close */
      req_clear_events(r, PISTON_EV_BODY);
      n = piston_req_body_read(r->req, buf, len);
      if (n >= 0)
        return (Py_ssize_t)n;
      piston_py_raise(n == PISTON_EAGAIN ? PISTON_ECLOSED : (int)n);
      return -1;
    }
  }
}

static PyMethodDef Request_methods[] = {
    {"environ", (PyCFunction)Request_environ, METH_VARARGS,
     "environ(base, script_name='') -> WSGI environ dict"},
    {"start", (PyCFunction)Request_start, METH_VARARGS,
     "start(status, headers, reason=None): reason is the phrase of the "
     "status line (latin-1 str), None for the engine's own"},
    {"write", (PyCFunction)Request_write, METH_O,
     "write(bytes): blocks while the client is slow"},
    {"sendfile", (PyCFunction)Request_sendfile, METH_VARARGS,
     "sendfile(fd, offset, length)"},
    {"end", (PyCFunction)Request_end, METH_NOARGS, "end()"},
    {"send", (PyCFunction)Request_send, METH_VARARGS,
     "send(status, headers, body): a whole response with Content-Length"},
    {"abort", (PyCFunction)Request_abort, METH_NOARGS,
     "abort(): 500 if nothing was sent, else close the connection"},
    {"finish", (PyCFunction)Request_finish, METH_NOARGS,
     "finish(): release the handle (aborts an unended response)"},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef Request_getset[] = {
    {"started", (getter)Request_started, NULL, "response started", NULL},
    {"closed", (getter)Request_closed, NULL, "client went away", NULL},
    {"method", (getter)Request_method, NULL, NULL, NULL},
    {"target", (getter)Request_target, NULL, NULL, NULL},
    {"content_length", (getter)Request_content_length, NULL, "-1 when chunked",
     NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject RequestType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "piston._piston.Request",
    .tp_basicsize = sizeof(RequestObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A request handle taken from Server.next_request().",
    .tp_dealloc = (destructor)Request_dealloc,
    .tp_methods = Request_methods,
    .tp_getset = Request_getset,
};

/* ---- Input: wsgi.input ---- */

typedef struct {
  PyObject_HEAD RequestObject *req;
  char *buf; /* read ahead by readline */
  size_t len, pos, cap;
  bool eof;
} InputObject;

static PyObject *Input_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
  PyObject *req;
  static char *kwlist[] = {"request", NULL};
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O!", kwlist, &RequestType, &req))
    return NULL;
  InputObject *self = (InputObject *)type->tp_alloc(type, 0);
  if (!self)
    return NULL;
  Py_INCREF(req);
  self->req = (RequestObject *)req;
  return (PyObject *)self;
}

static void Input_dealloc(InputObject *self) {
  Py_XDECREF(self->req);
  PyMem_Free(self->buf);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static Py_ssize_t input_fill(InputObject *in) {
  if (in->eof)
    return 0;
  if (in->pos == in->len)
    in->pos = in->len = 0;
  if (in->cap - in->len < 16384) {
    if (in->pos > 0) {
      memmove(in->buf, in->buf + in->pos, in->len - in->pos);
      in->len -= in->pos;
      in->pos = 0;
    }
    if (in->cap - in->len < 16384) {
      size_t ncap = in->cap ? in->cap * 2 : 16384;
      char *nb = PyMem_Realloc(in->buf, ncap);
      if (!nb) {
        PyErr_NoMemory();
        return -1;
      }
      in->buf = nb;
      in->cap = ncap;
    }
  }
  Py_ssize_t n = body_read_some(in->req, in->buf + in->len, in->cap - in->len);
  if (n == 0)
    in->eof = true;
  if (n > 0)
    in->len += (size_t)n;
  return n;
}

static Py_ssize_t size_arg(PyObject *const *args, Py_ssize_t nargs) {
  if (nargs == 0 || args[0] == Py_None)
    return -1;
  Py_ssize_t v = PyNumber_AsSsize_t(args[0], PyExc_OverflowError);
  if (v == -1 && PyErr_Occurred())
    return -2;
  return v < 0 ? -1 : v;
}

static PyObject *Input_read(InputObject *in, PyObject *const *args,
                            Py_ssize_t nargs) {
  if (nargs > 1) {
    PyErr_SetString(PyExc_TypeError, "read() takes at most 1 argument");
    return NULL;
  }
  Py_ssize_t want = size_arg(args, nargs);
  if (want == -2)
    return NULL;
  if (want >= 0) {
    /* read(n): up to n bytes; less only at the end of the body */
    PyObject *out = PyBytes_FromStringAndSize(NULL, want);
    if (!out)
      return NULL;
    char *p = PyBytes_AS_STRING(out);
    Py_ssize_t got = 0;
    size_t buffered = in->len - in->pos;
    if (buffered) {
      size_t k = buffered < (size_t)want ? buffered : (size_t)want;
      memcpy(p, in->buf + in->pos, k);
      in->pos += k;
      got = (Py_ssize_t)k;
    }
    while (got < want && !in->eof) {
      Py_ssize_t n = body_read_some(in->req, p + got, (size_t)(want - got));
      if (n < 0) {
        Py_DECREF(out);
        return NULL;
      }
      if (n == 0)
        in->eof = true;
      got += n;
    }
    if (got < want && _PyBytes_Resize(&out, got) < 0)
      return NULL;
    return out;
  }
  /* read(): everything */
  for (;;) {
    Py_ssize_t n = input_fill(in);
    if (n < 0)
      return NULL;
    if (n == 0)
      break;
  }
  PyObject *out = PyBytes_FromStringAndSize(in->buf ? in->buf + in->pos : "",
                                            (Py_ssize_t)(in->len - in->pos));
  in->pos = in->len;
  return out;
}

static PyObject *Input_readline(InputObject *in, PyObject *const *args,
                                Py_ssize_t nargs) {
  if (nargs > 1) {
    PyErr_SetString(PyExc_TypeError, "readline() takes at most 1 argument");
    return NULL;
  }
  Py_ssize_t limit = size_arg(args, nargs);
  if (limit == -2)
    return NULL;
  size_t scanned = 0;
  for (;;) {
    size_t avail = in->len - in->pos;
    size_t cap = limit >= 0 && (size_t)limit < avail ? (size_t)limit : avail;
    char *nl = cap > scanned
                   ? memchr(in->buf + in->pos + scanned, '\n', cap - scanned)
                   : NULL;
    size_t take;
    if (nl)
      take = (size_t)(nl - (in->buf + in->pos)) + 1;
    else if ((limit >= 0 && avail >= (size_t)limit) || in->eof)
      take = cap;
    else {
      scanned = cap;
      Py_ssize_t n = input_fill(in);
      if (n < 0)
        return NULL;
      continue;
    }
    PyObject *out = PyBytes_FromStringAndSize(in->buf ? in->buf + in->pos : "",
                                              (Py_ssize_t)take);
    in->pos += take;
    return out;
  }
}

static PyObject *Input_readlines(InputObject *in, PyObject *const *args,
                                 Py_ssize_t nargs) {
  Py_ssize_t hint = size_arg(args, nargs);
  if (hint == -2)
    return NULL;
  PyObject *list = PyList_New(0);
  if (!list)
    return NULL;
  Py_ssize_t total = 0;
  for (;;) {
    PyObject *line = Input_readline(in, NULL, 0);
    if (!line) {
      Py_DECREF(list);
      return NULL;
    }
    Py_ssize_t n = PyBytes_GET_SIZE(line);
    if (n == 0) {
      Py_DECREF(line);
      break;
    }
    int rc = PyList_Append(list, line);
    Py_DECREF(line);
    if (rc < 0) {
      Py_DECREF(list);
      return NULL;
    }
    total += n;
    if (hint > 0 && total >= hint)
      break;
  }
  return list;
}

static PyObject *Input_iternext(InputObject *in) {
  PyObject *line = Input_readline(in, NULL, 0);
  if (line && PyBytes_GET_SIZE(line) == 0) {
    Py_DECREF(line);
    return NULL; /* StopIteration */
  }
  return line;
}

static PyObject *Input_close(InputObject *in, PyObject *noargs) {
  (void)in;
  (void)noargs;
  Py_RETURN_NONE;
}

static PyMethodDef Input_methods[] = {
    {"read", (PyCFunction)(void (*)(void))Input_read, METH_FASTCALL,
     "read(size=-1) -> bytes"},
    {"readline", (PyCFunction)(void (*)(void))Input_readline, METH_FASTCALL,
     "readline(size=-1) -> bytes"},
    {"readlines", (PyCFunction)(void (*)(void))Input_readlines, METH_FASTCALL,
     "readlines(hint=-1) -> list of bytes"},
    {"close", (PyCFunction)Input_close, METH_NOARGS, "no-op"},
    {NULL, NULL, 0, NULL}};

static PyTypeObject InputType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "piston._piston.Input",
    .tp_basicsize = sizeof(InputObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "wsgi.input: the request body, read as it arrives.",
    .tp_new = Input_new,
    .tp_dealloc = (destructor)Input_dealloc,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)Input_iternext,
    .tp_methods = Input_methods,
};

/* ---- module ---- */

static PyObject *mod_strerror(PyObject *m, PyObject *arg) {
  (void)m;
  long v = PyLong_AsLong(arg);
  if (v == -1 && PyErr_Occurred())
    return NULL;
  return PyUnicode_FromString(piston_strerror((int)v));
}

/* The engine's own reason phrases: the WSGI host uses them to keep the
 * one-call send() for statuses that carry the engine's phrase. */
static PyObject *mod_reason(PyObject *m, PyObject *arg) {
  (void)m;
  long v = PyLong_AsLong(arg);
  if (v == -1 && PyErr_Occurred())
    return NULL;
  const char *p = v >= 100 && v <= 999 ? piston_status_reason((int)v) : NULL;
  if (!p)
    Py_RETURN_NONE;
  return PyUnicode_FromString(p);
}

static PyMethodDef module_methods[] = {
    {"strerror", mod_strerror, METH_O, "strerror(code) -> message"},
    {"reason", mod_reason, METH_O,
     "reason(status) -> the engine's reason phrase for it, or None"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    "piston._piston",
    "The CPython binding of the Piston HTTP/1.1 engine.",
    -1,
    module_methods,
    NULL,
    NULL,
    NULL,
    NULL};

PyMODINIT_FUNC PyInit__piston(void);
PyMODINIT_FUNC PyInit__piston(void) {
  if (PyType_Ready(&ServerType) < 0 || PyType_Ready(&RequestType) < 0 ||
      PyType_Ready(&InputType) < 0)
    return NULL;
  PyObject *m = PyModule_Create(&moduledef);
  if (!m)
    return NULL;
  PistonError = PyErr_NewExceptionWithDoc(
      "piston._piston.Error", "An engine error: args are (code, message).",
      PyExc_OSError, NULL);
  ClientDisconnected =
      PyErr_NewExceptionWithDoc("piston._piston.ClientDisconnected",
                                "The client went away.", PistonError, NULL);
  BodyTooLarge = PyErr_NewExceptionWithDoc(
      "piston._piston.BodyTooLarge",
      "The request body is over the configured limit (the engine answers "
      "413).",
      PistonError, NULL);
  if (!PistonError || !ClientDisconnected || !BodyTooLarge)
    goto fail;
  Py_INCREF(&ServerType);
  Py_INCREF(&RequestType);
  Py_INCREF(&InputType);
  Py_INCREF(PistonError);
  Py_INCREF(ClientDisconnected);
  Py_INCREF(BodyTooLarge);
  if (PyModule_AddObject(m, "Server", (PyObject *)&ServerType) < 0 ||
      PyModule_AddObject(m, "Request", (PyObject *)&RequestType) < 0 ||
      PyModule_AddObject(m, "Input", (PyObject *)&InputType) < 0 ||
      PyModule_AddObject(m, "Error", PistonError) < 0 ||
      PyModule_AddObject(m, "ClientDisconnected", ClientDisconnected) < 0 ||
      PyModule_AddObject(m, "BodyTooLarge", BodyTooLarge) < 0)
    goto fail;
  static const struct {
    const char *name;
    int value;
  } consts[] = {
#define OPT_CONST_(name, doc) {"OPT_" #name, PISTON_OPT_##name},
      PISTON_OPTION_MAP(OPT_CONST_)
#undef OPT_CONST_
          {"E_CLOSED", PISTON_ECLOSED},
      {"E_ADDRINUSE", PISTON_EADDRINUSE},
      {"E_ADDRNOTAVAIL", PISTON_EADDRNOTAVAIL},
      {"E_ACCES", PISTON_EACCES},
      {"E_RESOLVE", PISTON_ERESOLVE},
      {"E_INVAL", PISTON_EINVAL},
  };
  for (size_t i = 0; i < sizeof consts / sizeof consts[0]; i++)
    if (PyModule_AddIntConstant(m, consts[i].name, consts[i].value) < 0)
      goto fail;
  extern int piston_asgi_init(PyObject * m); /* _piston_asgi.c */
  if (piston_asgi_init(m) < 0)
    goto fail;
  return m;
fail:
  Py_DECREF(m);
  return NULL;
}
