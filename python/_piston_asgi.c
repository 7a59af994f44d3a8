/* piston._piston.AsgiServer / AsgiRequest: the engine embedded in an
 * asyncio loop (the ASGI host, python/piston/asgi.py).
 *
 * Unlike the WSGI Server, nothing here runs on a thread of its own: the
 * asyncio loop watches AsgiServer.fd() and calls poll(), which runs one
 * non-blocking pass of the engine loop on the calling thread with the GIL
 * held. The request callback and the per-request event callback therefore
 * run inside poll(), on the asyncio thread, and call straight into Python:
 * on_request(exchange, scope) gets the request (an instance of the Python
 * subclass given as exchange_class) with its scope built here, and starts
 * the app; the engine's events (body, drain, closed, a WebSocket message)
 * wake the coroutines waiting on the exchange. A valid WebSocket handshake
 * gets a websocket scope (asgi_ws.c has its messages); a flawed one the
 * engine's refusal, without the app.
 *
 * Ownership: an AsgiRequest owns the engine's reference to its handle and
 * drops it in release() (or when it is freed); a response the host never
 * ended is aborted then. Each AsgiRequest holds its AsgiServer, so the
 * engine server and loop outlive every handle. */
#include "asgi.h"

#include <structmember.h>

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static PyTypeObject AsgiServerType, AsgiRequestType;

/* ---- engine callbacks: inside poll(), GIL held ---- */

static void a_on_event(piston_req *req, int events, void *ud) {
  (void)ud;
  AsgiRequestObject *r = piston_req_userdata(req);
  if (!r || r->req != req)
    return;
  if (events & PISTON_EV_CLOSED)
    r->closed = 1;
  if (events & PISTON_EV_DRAIN)
    r->ws_pressure = 0;
  Py_INCREF(r);
  if (piston_asgi_wake(r) < 0)
    PyErr_WriteUnraisable((PyObject *)r);
  if (events & PISTON_EV_TIMEOUT) {
    /* the engine answered for an app past the handler timeout: the Python
     * side cancels its task */
    PyObject *res = PyObject_CallMethod((PyObject *)r, "_timed_out", NULL);
    if (!res)
      PyErr_WriteUnraisable((PyObject *)r);
    Py_XDECREF(res);
  }
  Py_DECREF(r);
}

static void a_on_request(piston_req *req, void *ud) {
  AsgiServerObject *s = ud;
  int ws = s->websocket ? piston_ws_handshake(req) : 0;
  if (ws && ws != 101) {
    /* a flawed attempt (400) or another version (426): the engine's
     * answer, as the websockets library gives it under uvicorn */
    if (piston_ws_refuse(req) < 0)
      piston_resp_abort(req);
    piston_req_release(req);
    return;
  }
  AsgiRequestObject *r = (AsgiRequestObject *)s->cls->tp_alloc(s->cls, 0);
  if (!r) {
    PyErr_WriteUnraisable((PyObject *)s);
    piston_resp_abort(req);
    piston_req_release(req);
    return;
  }
  /* tp_alloc zeroed the exchange's state and tracks it for the GC */
  Py_INCREF(s);
  r->server = s;
  r->req = req;
  s->live++;
  piston_req_set_userdata(req, r); /* borrowed; cleared in release */
  piston_req_on_event(req, a_on_event, NULL);
  r->ws = ws == 101;
  PyObject *scope =
      r->ws ? piston_asgi_ws_scope(s, req) : piston_asgi_scope(s, req);
  PyObject *res = NULL;
  if (scope) {
    PyObject *args[] = {(PyObject *)r, scope};
    res = PyObject_Vectorcall(s->on_request, args, 2, NULL);
    Py_DECREF(scope);
  }
  if (!res) {
    PyErr_WriteUnraisable(s->on_request);
    if (r->req && !r->ended) {
      piston_resp_abort(r->req);
      r->ended = true;
    }
  }
  Py_XDECREF(res);
  Py_DECREF(r);
}

/* ---- AsgiRequest ---- */

static void a_release(AsgiRequestObject *r) {
  if (!r->req)
    return;
  piston_req *req = r->req;
  r->req = NULL;
  piston_req_on_event(req, NULL, NULL);
  piston_req_set_userdata(req, NULL);
  if (!r->ended)
    piston_resp_abort(req);
  r->ended = true;
  piston_req_release(req);
  r->server->live--;
}

static int AsgiRequest_traverse(AsgiRequestObject *r, visitproc visit,
                                void *arg) {
  Py_VISIT(r->headers);
  Py_VISIT(r->waiters);
  Py_VISIT(r->server);
  return 0;
}

static int AsgiRequest_clear(AsgiRequestObject *r) {
  Py_CLEAR(r->headers);
  Py_CLEAR(r->waiters);
  return 0;
}

static void AsgiRequest_dealloc(AsgiRequestObject *r) {
  PyObject_GC_UnTrack(r);
  a_release(r);
  Py_CLEAR(r->headers);
  Py_CLEAR(r->waiters);
  Py_CLEAR(r->server);
  Py_TYPE(r)->tp_free((PyObject *)r); /* a subclass instance, usually */
}

int piston_asgi_check(AsgiRequestObject *r) {
  if (!r->req) {
    PyErr_SetString(PyExc_RuntimeError, "the request was released");
    return -1;
  }
  return 0;
}

/* body_read(max) -> bytes (b"" at the end) or None when nothing is buffered
 * yet (wait for PISTON_EV_BODY); raises ClientDisconnected / BodyTooLarge. */
static PyObject *AsgiRequest_body_read(AsgiRequestObject *r, PyObject *arg) {
  if (piston_asgi_check(r) < 0)
    return NULL;
  Py_ssize_t max = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
  if (max == -1 && PyErr_Occurred())
    return NULL;
  if (max <= 0)
    max = 65536;
  PyObject *out = PyBytes_FromStringAndSize(NULL, max);
  if (!out)
    return NULL;
  int64_t n = piston_req_body_read(r->req, PyBytes_AS_STRING(out), (size_t)max);
  if (n == PISTON_EAGAIN) {
    Py_DECREF(out);
    Py_RETURN_NONE;
  }
  if (n < 0) {
    Py_DECREF(out);
    if (n == PISTON_ETOOBIG && !piston_resp_started(r->req))
      r->ended = true; /* the engine answers 413 itself */
    return piston_py_raise((int)n);
  }
  if (n < max && _PyBytes_Resize(&out, (Py_ssize_t)n) < 0)
    return NULL;
  return out;
}

/* start(status, headers): headers are (bytes, bytes) pairs. */
static PyObject *AsgiRequest_start(AsgiRequestObject *r, PyObject *args) {
  int status;
  PyObject *headers;
  if (!PyArg_ParseTuple(args, "iO", &status, &headers))
    return NULL;
  if (piston_asgi_check(r) < 0)
    return NULL;
  piston_py_hdrs a;
  if (piston_py_hdrs_from(headers, &a, PISTON_PY_HDRS_BYTES) < 0)
    return NULL;
  int rc = piston_resp_start(r->req, status, a.h, a.n);
  piston_py_hdrs_free(&a);
  if (rc < 0)
    return piston_asgi_resp_err(rc);
  Py_RETURN_NONE;
}

/* write(bytes) -> 1 when the queue is over its high-water mark (wait for
 * PISTON_EV_DRAIN), else 0. */
static PyObject *AsgiRequest_write(AsgiRequestObject *r, PyObject *data) {
  if (piston_asgi_check(r) < 0)
    return NULL;
  Py_buffer b;
  if (PyObject_GetBuffer(data, &b, PyBUF_SIMPLE) < 0)
    return NULL;
  int rc = b.len ? piston_resp_write(r->req, b.buf, (size_t)b.len) : 0;
  PyBuffer_Release(&b);
  if (rc < 0)
    return piston_asgi_resp_err(rc);
  return PyLong_FromLong(rc);
}

static PyObject *AsgiRequest_sendfile(AsgiRequestObject *r, PyObject *args) {
  int fd;
  long long off, len;
  if (!PyArg_ParseTuple(args, "iLL", &fd, &off, &len))
    return NULL;
  if (piston_asgi_check(r) < 0)
    return NULL;
  if (off < 0 || len < 0) {
    PyErr_SetString(PyExc_ValueError, "negative offset or length");
    return NULL;
  }
  int rc = piston_resp_sendfile(r->req, fd, (off_t)off, (size_t)len);
  if (rc < 0)
    return piston_asgi_resp_err(rc);
  return PyLong_FromLong(rc);
}

/* end(trailers=None) */
static PyObject *AsgiRequest_end(AsgiRequestObject *r, PyObject *args) {
  PyObject *trailers = Py_None;
  if (!PyArg_ParseTuple(args, "|O", &trailers))
    return NULL;
  if (piston_asgi_check(r) < 0)
    return NULL;
  piston_py_hdrs a;
  if (piston_py_hdrs_from(trailers, &a, PISTON_PY_HDRS_BYTES) < 0)
    return NULL;
  int rc = piston_resp_end(r->req, a.h, a.n);
  piston_py_hdrs_free(&a);
  if (rc < 0)
    return piston_asgi_resp_err(rc);
  r->ended = true;
  Py_RETURN_NONE;
}

static PyObject *AsgiRequest_abort(AsgiRequestObject *r, PyObject *noargs) {
  (void)noargs;
  if (r->req && !r->ended) {
    piston_resp_abort(r->req);
    r->ended = true;
  }
  Py_RETURN_NONE;
}

static PyObject *AsgiRequest_release(AsgiRequestObject *r, PyObject *noargs) {
  (void)noargs;
  a_release(r);
  Py_RETURN_NONE;
}

static PyObject *AsgiRequest_content_length(AsgiRequestObject *r, void *c) {
  (void)c;
  if (piston_asgi_check(r) < 0)
    return NULL;
  return PyLong_FromLongLong(piston_req_content_length(r->req));
}

static PyObject *AsgiRequest_connection_id(AsgiRequestObject *r, void *c) {
  (void)c;
  if (piston_asgi_check(r) < 0)
    return NULL;
  return PyLong_FromUnsignedLongLong(piston_req_connection_id(r->req));
}

static PyObject *AsgiRequest_wake(AsgiRequestObject *r, PyObject *noargs) {
  (void)noargs;
  if (piston_asgi_wake(r) < 0)
    return NULL;
  Py_RETURN_NONE;
}

static PyMethodDef AsgiRequest_methods[] = {
    {"send", (PyCFunction)piston_asgi_send, METH_O,
     "send(message): the ASGI send callable -> an awaitable"},
    {"ws_recv", (PyCFunction)piston_asgi_ws_recv, METH_NOARGS,
     "ws_recv() -> websocket.receive / websocket.disconnect, or None: wait"},
    {"wake", (PyCFunction)AsgiRequest_wake, METH_NOARGS,
     "wake(): resolve the futures in waiters"},
    {"body_read", (PyCFunction)AsgiRequest_body_read, METH_O,
     "body_read(max) -> bytes, b'' at the end, None if nothing yet"},
    {"start", (PyCFunction)AsgiRequest_start, METH_VARARGS,
     "start(status, headers)"},
    {"write", (PyCFunction)AsgiRequest_write, METH_O,
     "write(data) -> 1 if the client is behind (wait for EV_DRAIN)"},
    {"sendfile", (PyCFunction)AsgiRequest_sendfile, METH_VARARGS,
     "sendfile(fd, offset, length) -> 1 if the client is behind"},
    {"end", (PyCFunction)AsgiRequest_end, METH_VARARGS, "end(trailers=None)"},
    {"abort", (PyCFunction)AsgiRequest_abort, METH_NOARGS,
     "abort(): 500 if nothing was sent, else close the connection"},
    {"release", (PyCFunction)AsgiRequest_release, METH_NOARGS,
     "release(): drop the handle (aborts an unended response)"},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef AsgiRequest_getset[] = {
    {"content_length", (getter)AsgiRequest_content_length, NULL,
     "-1 when chunked", NULL},
    {"connection_id", (getter)AsgiRequest_connection_id, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL}};

/* The exchange's state, for the Python subclass */
static PyMemberDef AsgiRequest_members[] = {
    {"status", T_INT, offsetof(AsgiRequestObject, status), 0,
     "from http.response.start; 0: none yet"},
    {"headers", T_OBJECT, offsetof(AsgiRequestObject, headers), 0, NULL},
    {"trailers", T_BOOL, offsetof(AsgiRequestObject, trailers), 0, NULL},
    {"started", T_BOOL, offsetof(AsgiRequestObject, started), 0,
     "the engine has the status and headers"},
    {"complete", T_BOOL, offsetof(AsgiRequestObject, complete), 0,
     "the engine has the whole response"},
    {"closed", T_BOOL, offsetof(AsgiRequestObject, closed), 0,
     "the client went away, or the exchange is over"},
    {"body_done", T_BOOL, offsetof(AsgiRequestObject, body_done), 0, NULL},
    {"waiters", T_OBJECT, offsetof(AsgiRequestObject, waiters), 0,
     "a list of futures that the next event resolves, or None"},
    {"ws", T_BOOL, offsetof(AsgiRequestObject, ws), READONLY,
     "a websocket scope"},
    {"ws_state", T_BYTE, offsetof(AsgiRequestObject, ws_state), READONLY,
     "0 connecting, 1 accepted, 2 closed by the app, 3 HTTP response"},
    {"ws_pressure", T_BOOL, offsetof(AsgiRequestObject, ws_pressure), 0,
     "a websocket.send is waiting for EV_DRAIN"},
    {"ws_connected", T_BOOL, offsetof(AsgiRequestObject, ws_connected), 0,
     "receive() returned websocket.connect"},
    {NULL, 0, 0, 0, NULL}};

static PyTypeObject AsgiRequestType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "piston._piston.AsgiRequest",
    .tp_basicsize = sizeof(AsgiRequestObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_doc = "One request and its response, made by AsgiServer (as its "
              "exchange_class) and given to on_request.",
    .tp_members = AsgiRequest_members,
    .tp_dealloc = (destructor)AsgiRequest_dealloc,
    .tp_traverse = (traverseproc)AsgiRequest_traverse,
    .tp_clear = (inquiry)AsgiRequest_clear,
    .tp_methods = AsgiRequest_methods,
    .tp_getset = AsgiRequest_getset,
};

/* ---- AsgiServer ---- */

static int AsgiServer_init(AsgiServerObject *self, PyObject *args,
                           PyObject *kw) {
  static char *kwlist[] = {"on_request", "exchange_class", NULL};
  PyObject *cb;
  PyTypeObject *cls = &AsgiRequestType;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O!", kwlist, &cb, &PyType_Type,
                                   &cls))
    return -1;
  if (!PyCallable_Check(cb)) {
    PyErr_SetString(PyExc_TypeError, "on_request must be callable");
    return -1;
  }
  if (!PyType_IsSubtype(cls, &AsgiRequestType)) {
    PyErr_SetString(PyExc_TypeError,
                    "exchange_class must be a subclass of AsgiRequest");
    return -1;
  }
  if (self->srv) {
    PyErr_SetString(PyExc_RuntimeError, "already initialised");
    return -1;
  }
  self->srv = piston_server_new();
  if (!self->srv) {
    PyErr_NoMemory();
    return -1;
  }
  self->on_request = Py_NewRef(cb);
  self->cls = (PyTypeObject *)Py_NewRef(cls);
  self->root_path = PyUnicode_FromString("");
  self->server = Py_NewRef(Py_None);
  self->websocket = true;
  if (!self->root_path)
    return -1;
  piston_server_on_request(self->srv, a_on_request, self);
  return 0;
}

static void AsgiServer_dealloc(AsgiServerObject *self) {
  if (self->live == 0) {
    if (self->loop)
      piston_loop_free(self->loop);
    if (self->srv)
      piston_server_free(self->srv);
  }
  Py_CLEAR(self->on_request);
  Py_CLEAR(self->cls);
  Py_CLEAR(self->root_path);
  Py_CLEAR(self->server);
  Py_CLEAR(self->state);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

/* set_scope(root_path, server, state): the scope keys every request shares
 * (state is the lifespan state dict, copied into each scope). */
static PyObject *AsgiServer_set_scope(AsgiServerObject *self, PyObject *args) {
  PyObject *root, *server, *state;
  if (!PyArg_ParseTuple(args, "UOO!", &root, &server, &PyDict_Type, &state))
    return NULL;
  if (server != Py_None && !PyTuple_Check(server)) {
    PyErr_SetString(PyExc_TypeError, "server must be a (host, port) tuple "
                                     "or None");
    return NULL;
  }
  Py_XSETREF(self->root_path, Py_NewRef(root));
  Py_XSETREF(self->server, Py_NewRef(server));
  Py_XSETREF(self->state, Py_NewRef(state));
  Py_RETURN_NONE;
}

/* set_websocket(on): whether valid WebSocket handshakes become websocket
 * scopes (on by default); off, they reach the app as plain HTTP. */
static PyObject *AsgiServer_set_websocket(AsgiServerObject *self,
                                          PyObject *on) {
  int v = PyObject_IsTrue(on);
  if (v < 0)
    return NULL;
  self->websocket = v;
  Py_RETURN_NONE;
}

static PyObject *AsgiServer_set_option(AsgiServerObject *self, PyObject *args) {
  return piston_py_set_option(self->srv, self->loop != NULL, args);
}

static PyObject *AsgiServer_listen_tcp(AsgiServerObject *self, PyObject *args) {
  return piston_py_listen_tcp(self->srv, args);
}

static PyObject *AsgiServer_listen_unix(AsgiServerObject *self,
                                        PyObject *args) {
  return piston_py_listen_unix(self->srv, args);
}

static PyObject *AsgiServer_tls_cert(AsgiServerObject *self, PyObject *args) {
  return piston_py_tls_cert(self->srv, args);
}

static PyObject *AsgiServer_tls_set(AsgiServerObject *self, PyObject *args) {
  return piston_py_tls_set(self->srv, args);
}

static PyObject *AsgiServer_listener_tls(AsgiServerObject *self,
                                         PyObject *args) {
  return piston_py_listener_tls(self->srv, args);
}

static PyObject *AsgiServer_tls_reload(AsgiServerObject *self,
                                       PyObject *unused) {
  (void)unused;
  return piston_py_tls_reload(self->srv);
}

static PyObject *AsgiServer_listen_fd(AsgiServerObject *self, PyObject *args) {
  return piston_py_listen_fd(self->srv, args);
}

static PyObject *AsgiServer_cache_purge(AsgiServerObject *self,
                                        PyObject *args) {
  return piston_py_cache_purge(self->srv, args);
}

static PyObject *AsgiServer_cache_route(AsgiServerObject *self,
                                        PyObject *args) {
  return piston_py_cache_route(self->srv, args);
}

static PyObject *AsgiServer_cache_stats(AsgiServerObject *self,
                                        PyObject *unused) {
  (void)unused;
  return piston_py_cache_stats(self->srv);
}

static PyObject *AsgiServer_route_fixed(AsgiServerObject *self,
                                        PyObject *args) {
  return piston_py_route_fixed(self->srv, args, PISTON_PY_HDRS_BYTES);
}

static PyObject *AsgiServer_trust_proxies(AsgiServerObject *self,
                                          PyObject *args) {
  return piston_py_trust_proxies(self->srv, args);
}

static PyObject *AsgiServer_access_log(AsgiServerObject *self, PyObject *args) {
  return piston_py_access_log(self->srv, args);
}

static PyObject *AsgiServer_reopen_logs(AsgiServerObject *self,
                                        PyObject *unused) {
  (void)unused;
  return piston_py_reopen_logs(self->srv);
}

static PyObject *AsgiServer_metrics(AsgiServerObject *self, PyObject *args) {
  return piston_py_metrics(self->srv, args);
}

static PyObject *AsgiServer_health(AsgiServerObject *self, PyObject *args) {
  return piston_py_health(self->srv, args);
}

static PyObject *AsgiServer_route_dir(AsgiServerObject *self, PyObject *args) {
  return piston_py_route_dir(self->srv, args);
}

/* start(): creates the one loop (binding its sockets); serve it by watching
 * fd() and calling poll(). */
static PyObject *AsgiServer_start(AsgiServerObject *self, PyObject *noargs) {
  (void)noargs;
  if (self->loop) {
    PyErr_SetString(PyExc_RuntimeError, "the server is already running");
    return NULL;
  }
  int err = 0;
  self->loop = piston_loop_new(self->srv, &err);
  if (!self->loop)
    return piston_py_raise_srv(self->srv, err ? err : PISTON_ESYS);
  Py_RETURN_NONE;
}

static PyObject *AsgiServer_fd(AsgiServerObject *self, PyObject *noargs) {
  (void)noargs;
  if (!self->loop) {
    PyErr_SetString(PyExc_RuntimeError, "not started");
    return NULL;
  }
  return PyLong_FromLong(piston_loop_fd(self->loop));
}

/* poll() -> True while the loop is live, False once stopped and drained. */
static PyObject *AsgiServer_poll(AsgiServerObject *self, PyObject *noargs) {
  (void)noargs;
  if (!self->loop)
    Py_RETURN_FALSE;
  int rc = piston_loop_poll(self->loop);
  if (PyErr_Occurred()) /* never expected: callbacks report their own */
    PyErr_WriteUnraisable((PyObject *)self);
  if (rc < 0)
    return piston_py_raise(rc);
  return PyBool_FromLong(rc);
}

static PyObject *AsgiServer_stop(AsgiServerObject *self, PyObject *args) {
  int deadline_ms = 30000;
  if (!PyArg_ParseTuple(args, "|i", &deadline_ms))
    return NULL;
  if (self->loop)
    piston_loop_stop(self->loop, deadline_ms);
  Py_RETURN_NONE;
}

static PyObject *AsgiServer_close_idle(AsgiServerObject *self,
                                       PyObject *noargs) {
  (void)noargs;
  if (self->loop)
    piston_loop_close_idle(self->loop);
  Py_RETURN_NONE;
}

static PyObject *AsgiServer_port(AsgiServerObject *self, PyObject *args) {
  Py_ssize_t i = 0;
  if (!PyArg_ParseTuple(args, "|n", &i))
    return NULL;
  return PyLong_FromLong(piston_server_port(self->srv, (size_t)i));
}

static PyObject *AsgiServer_connections(AsgiServerObject *self,
                                        PyObject *noargs) {
  (void)noargs;
  return PyLong_FromSize_t(self->loop ? piston_loop_connections(self->loop)
                                      : 0);
}

static PyObject *AsgiServer_live(AsgiServerObject *self, void *c) {
  (void)c;
  return PyLong_FromLong(self->live);
}

static PyMethodDef AsgiServer_methods[] = {
    {"set_option", (PyCFunction)AsgiServer_set_option, METH_VARARGS, NULL},
    {"set_scope", (PyCFunction)AsgiServer_set_scope, METH_VARARGS,
     "set_scope(root_path, server, state)"},
    {"set_websocket", (PyCFunction)AsgiServer_set_websocket, METH_O,
     "set_websocket(on): websocket scopes for valid handshakes"},
    {"listen_tcp", (PyCFunction)AsgiServer_listen_tcp, METH_VARARGS, NULL},
    {"listen_unix", (PyCFunction)AsgiServer_listen_unix, METH_VARARGS, NULL},
    {"listen_fd", (PyCFunction)AsgiServer_listen_fd, METH_VARARGS, NULL},
    {"tls_cert", (PyCFunction)AsgiServer_tls_cert, METH_VARARGS,
     "tls_cert(cert_file, key_file, ocsp_file=None)"},
    {"tls_set", (PyCFunction)AsgiServer_tls_set, METH_VARARGS,
     "tls_set(TLS_*, value)"},
    {"listener_tls", (PyCFunction)AsgiServer_listener_tls, METH_VARARGS,
     "listener_tls(i): the i-th listener speaks TLS"},
    {"tls_reload", (PyCFunction)AsgiServer_tls_reload, METH_NOARGS,
     "tls_reload(): read the certificate files again"},
    {"route_fixed", (PyCFunction)AsgiServer_route_fixed, METH_VARARGS, NULL},
    {"cache_purge", (PyCFunction)AsgiServer_cache_purge, METH_VARARGS,
     "cache_purge(target, prefix=False) -> responses dropped"},
    {"cache_route", (PyCFunction)AsgiServer_cache_route, METH_VARARGS,
     "cache_route(prefix, ttl, swr=0, sie=0): GET responses under prefix "
     "cacheable"},
    {"cache_stats", (PyCFunction)AsgiServer_cache_stats, METH_NOARGS,
     "cache_stats() -> the response cache's counters"},
    {"route_dir", (PyCFunction)AsgiServer_route_dir, METH_VARARGS, NULL},
    {"trust_proxies", (PyCFunction)AsgiServer_trust_proxies, METH_VARARGS,
     "trust_proxies(list): --forwarded-allow-ips"},
    {"access_log", (PyCFunction)AsgiServer_access_log, METH_VARARGS,
     "access_log(path or None, format or None)"},
    {"reopen_logs", (PyCFunction)AsgiServer_reopen_logs, METH_NOARGS,
     "reopen_logs(): the access log file again (SIGUSR1)"},
    {"metrics", (PyCFunction)AsgiServer_metrics, METH_VARARGS,
     "metrics(region or None, path or None)"},
    {"health", (PyCFunction)AsgiServer_health, METH_VARARGS, "health(path)"},
    {"start", (PyCFunction)AsgiServer_start, METH_NOARGS,
     "start(): create the loop and bind"},
    {"fd", (PyCFunction)AsgiServer_fd, METH_NOARGS,
     "fd(): readable when poll() has work"},
    {"poll", (PyCFunction)AsgiServer_poll, METH_NOARGS,
     "poll() -> False once stopped and drained; never blocks"},
    {"stop", (PyCFunction)AsgiServer_stop, METH_VARARGS, "stop(deadline_ms)"},
    {"close_idle", (PyCFunction)AsgiServer_close_idle, METH_NOARGS, NULL},
    {"port", (PyCFunction)AsgiServer_port, METH_VARARGS, NULL},
    {"connections", (PyCFunction)AsgiServer_connections, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef AsgiServer_getset[] = {
    {"live", (getter)AsgiServer_live, NULL, "request handles held", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject AsgiServerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "piston._piston.AsgiServer",
    .tp_basicsize = sizeof(AsgiServerObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "AsgiServer(on_request, exchange_class=AsgiRequest): an engine "
              "loop embedded in the caller's event loop.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)AsgiServer_init,
    .tp_dealloc = (destructor)AsgiServer_dealloc,
    .tp_methods = AsgiServer_methods,
    .tp_getset = AsgiServer_getset,
};

/* Called from PyInit__piston once Error and its subclasses are on m. */
int piston_asgi_init(PyObject *m) {
  if (PyType_Ready(&AsgiServerType) < 0 || PyType_Ready(&AsgiRequestType) < 0 ||
      piston_asgi_scope_init() < 0 || piston_asgi_send_init(m) < 0 ||
      piston_asgi_ws_init() < 0)
    return -1;
  if (piston_py_add_object(m, "AsgiServer", (PyObject *)&AsgiServerType) < 0 ||
      piston_py_add_object(m, "AsgiRequest", (PyObject *)&AsgiRequestType) < 0)
    return -1;
  return 0;
}
