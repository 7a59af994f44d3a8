/* piston._piston.Server: an engine server whose loops run on C threads of
 * their own, and the queue (the hub) that hands their requests to the pool
 * of Python threads (python/piston/server.py Worker). See wsgi.h. */
#include "wsgi.h"

#include <signal.h>
#include <stdlib.h>

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

/* A request the host cannot take (out of memory): the client gets a 500. */
static void drop_unserved(hub *h, piston_req *req) {
  piston_resp_abort(req);
  piston_req_release(req);
  atomic_fetch_sub(&h->live, 1);
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
      drop_unserved(h, req);
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
  for (size_t i = pushed; i < p->len; i++) /* out of memory */
    drop_unserved(h, p->items[i]);
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
  /* The loops and the engine server are freed only when nothing can still
   * use them: if the server ran and handles are still held, they are left
   * to the OS. (h is NULL only if Server_init ran out of memory.) */
  if (self->srv && self->h && (!self->started || self->joined) &&
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

static PyObject *Server_cache_purge(ServerObject *self, PyObject *args) {
  return piston_py_cache_purge(self->srv, args);
}

static PyObject *Server_cache_route(ServerObject *self, PyObject *args) {
  return piston_py_cache_route(self->srv, args);
}

static PyObject *Server_cache_stats(ServerObject *self, PyObject *unused) {
  (void)unused;
  return piston_py_cache_stats(self->srv);
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

static PyObject *Server_tls_cert(ServerObject *self, PyObject *args) {
  return piston_py_tls_cert(self->srv, args);
}

static PyObject *Server_tls_set(ServerObject *self, PyObject *args) {
  return piston_py_tls_set(self->srv, args);
}

static PyObject *Server_listener_tls(ServerObject *self, PyObject *args) {
  return piston_py_listener_tls(self->srv, args);
}

static PyObject *Server_tls_reload(ServerObject *self, PyObject *unused) {
  (void)unused;
  return piston_py_tls_reload(self->srv);
}

static PyObject *Server_listen_fd(ServerObject *self, PyObject *args) {
  return piston_py_listen_fd(self->srv, args);
}

static PyObject *Server_route_fixed(ServerObject *self, PyObject *args) {
  return piston_py_route_fixed(self->srv, args, PISTON_PY_HDRS_STR);
}

static PyObject *Server_trust_proxies(ServerObject *self, PyObject *args) {
  return piston_py_trust_proxies(self->srv, args);
}

static PyObject *Server_access_log(ServerObject *self, PyObject *args) {
  return piston_py_access_log(self->srv, args);
}

static PyObject *Server_reopen_logs(ServerObject *self, PyObject *unused) {
  (void)unused;
  return piston_py_reopen_logs(self->srv);
}

static PyObject *Server_metrics(ServerObject *self, PyObject *args) {
  return piston_py_metrics(self->srv, args);
}

static PyObject *Server_health(ServerObject *self, PyObject *args) {
  return piston_py_health(self->srv, args);
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
      return piston_py_raise_srv(self->srv, err ? err : PISTON_ESYS);
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

void piston_wsgi_slot_put_locked(hub *h, slot *s, piston_req *req) {
  piston_req_set_userdata(req, NULL);
  s->req = NULL;
  s->next_free = h->free_slots;
  h->free_slots = s;
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
  RequestObject *r =
      s ? PyObject_New(RequestObject, &piston_wsgi_RequestType) : NULL;
  if (!r) {
    if (s) {
      pthread_mutex_lock(&h->mu);
      piston_wsgi_slot_put_locked(h, s, req);
      pthread_mutex_unlock(&h->mu);
    }
    drop_unserved(h, req);
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
    {"cache_purge", (PyCFunction)Server_cache_purge, METH_VARARGS,
     "cache_purge(target, prefix=False) -> responses dropped"},
    {"cache_route", (PyCFunction)Server_cache_route, METH_VARARGS,
     "cache_route(prefix, ttl, swr=0, sie=0): GET responses under prefix "
     "cacheable"},
    {"cache_stats", (PyCFunction)Server_cache_stats, METH_NOARGS,
     "cache_stats() -> the response cache's counters"},
    {"listen_tcp", (PyCFunction)Server_listen_tcp, METH_VARARGS,
     "listen_tcp(host, port)"},
    {"listen_unix", (PyCFunction)Server_listen_unix, METH_VARARGS,
     "listen_unix(path)"},
    {"listen_fd", (PyCFunction)Server_listen_fd, METH_VARARGS,
     "listen_fd(fd): an already listening socket"},
    {"tls_cert", (PyCFunction)Server_tls_cert, METH_VARARGS,
     "tls_cert(cert_file, key_file, ocsp_file=None)"},
    {"tls_set", (PyCFunction)Server_tls_set, METH_VARARGS,
     "tls_set(TLS_*, value)"},
    {"listener_tls", (PyCFunction)Server_listener_tls, METH_VARARGS,
     "listener_tls(i): the i-th listener speaks TLS"},
    {"tls_reload", (PyCFunction)Server_tls_reload, METH_NOARGS,
     "tls_reload(): read the certificate files again"},
    {"route_fixed", (PyCFunction)Server_route_fixed, METH_VARARGS,
     "route_fixed(method or None, path, status, headers, body)"},
    {"route_dir", (PyCFunction)Server_route_dir, METH_VARARGS,
     "route_dir(prefix, directory)"},
    {"trust_proxies", (PyCFunction)Server_trust_proxies, METH_VARARGS,
     "trust_proxies(list): --forwarded-allow-ips"},
    {"access_log", (PyCFunction)Server_access_log, METH_VARARGS,
     "access_log(path or None, format or None)"},
    {"reopen_logs", (PyCFunction)Server_reopen_logs, METH_NOARGS,
     "reopen_logs(): the access log file again (SIGUSR1)"},
    {"metrics", (PyCFunction)Server_metrics, METH_VARARGS,
     "metrics(region or None, path or None)"},
    {"health", (PyCFunction)Server_health, METH_VARARGS, "health(path)"},
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

PyTypeObject piston_wsgi_ServerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "piston._piston.Server",
    .tp_basicsize = sizeof(ServerObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An engine server: options, listeners, native routes, loops.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Server_init,
    .tp_dealloc = (destructor)Server_dealloc,
    .tp_methods = Server_methods,
};
