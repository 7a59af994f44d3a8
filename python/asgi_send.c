/* The app's send(message) for the two messages of every response,
 * http.response.start and http.response.body, in C: no coroutine frame per
 * call, and when nothing needs waiting for (a body that fits the
 * connection's queue, the usual case) the awaitable returned is already
 * done, so `await send(...)` costs no trip through the event loop. A write
 * that fills the queue returns the Python side's _drain() coroutine; the
 * rare messages (pathsend, trailers, unknown types) go to its
 * _send_other(); a websocket scope's messages go to asgi_ws.c. The checks
 * and errors are those of the ASGI spec. */
#include "asgi.h"

static PyObject *k_type, *k_status, *k_headers, *k_trailers, *k_body,
    *k_more_body, *t_start, *t_body, *m_drain, *m_send_other, *m_done,
    *m_set_result, *empty_bytes;

/* ---- an awaitable that is finished from the start ---- */

/* await calls am_await for an iterator, and the iterator's first next()
 * ends it: NULL with no exception set is StopIteration, result None. It
 * has no state, so one instance serves every call. */
typedef struct {
  PyObject_HEAD
} DoneObject;

static PyObject *done_await(PyObject *self) {
  return Py_NewRef(self);
}

static PyObject *done_next(PyObject *self) {
  (void)self;
  return NULL;
}

/* send/throw/close make it a collections.abc.Coroutine too, so that
 * asyncio.create_task() takes it as it takes an `async def` send's
 * coroutine: its first send() finishes it. */
static PyObject *done_send(PyObject *self, PyObject *value) {
  (void)self;
  (void)value;
  PyErr_SetNone(PyExc_StopIteration);
  return NULL;
}

static PyObject *done_throw(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *typ, *val = NULL, *tb = NULL;
  if (!PyArg_UnpackTuple(args, "throw", 1, 3, &typ, &val, &tb))
    return NULL;
  if (PyExceptionInstance_Check(typ))
    PyErr_SetObject((PyObject *)Py_TYPE(typ), typ);
  else
    PyErr_SetObject(typ, val);
  return NULL;
}

static PyObject *done_close(PyObject *self, PyObject *noargs) {
  (void)self;
  (void)noargs;
  Py_RETURN_NONE;
}

static PyMethodDef done_methods[] = {{"send", done_send, METH_O, NULL},
                                     {"throw", done_throw, METH_VARARGS, NULL},
                                     {"close", done_close, METH_NOARGS, NULL},
                                     {NULL, NULL, 0, NULL}};

static PyAsyncMethods done_async = {.am_await = done_await};

static PyTypeObject DoneType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "piston._piston.Done",
    .tp_basicsize = sizeof(DoneObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "What send() returns when the message was taken at once.",
    .tp_as_async = &done_async,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = done_next,
    .tp_methods = done_methods,
};

static PyObject *done;

int piston_asgi_send_init(PyObject *m) {
  (void)m;
  if (PyType_Ready(&DoneType) < 0)
    return -1;
  done = PyType_GenericAlloc(&DoneType, 0);
  if (!done)
    return -1;
  static const piston_py_name names[] = {
      {&k_type, "type"},
      {&k_status, "status"},
      {&k_headers, "headers"},
      {&k_trailers, "trailers"},
      {&k_body, "body"},
      {&k_more_body, "more_body"},
      {&t_start, "http.response.start"},
      {&t_body, "http.response.body"},
      {&m_drain, "_drain"},
      {&m_send_other, "_send_other"},
      {&m_done, "done"},
      {&m_set_result, "set_result"},
  };
  if (piston_py_intern(names, sizeof names / sizeof names[0]) < 0)
    return -1;
  empty_bytes = PyBytes_FromStringAndSize(NULL, 0);
  return empty_bytes ? 0 : -1;
}

/* ---- waking the coroutines waiting on the exchange ---- */

int piston_asgi_wake(AsgiRequestObject *r) {
  PyObject *ws = r->waiters;
  if (!ws)
    return 0;
  r->waiters = NULL;
  int rc = 0;
  Py_ssize_t n = PyList_Check(ws) ? PyList_GET_SIZE(ws) : 0;
  for (Py_ssize_t i = 0; i < n && rc == 0; i++) {
    PyObject *f = PyList_GET_ITEM(ws, i);
    PyObject *is_done = PyObject_CallMethodNoArgs(f, m_done);
    int d = is_done ? PyObject_IsTrue(is_done) : -1;
    Py_XDECREF(is_done);
    PyObject *res =
        d == 0 ? PyObject_CallMethodOneArg(f, m_set_result, Py_None) : NULL;
    if (d < 0 || (d == 0 && !res))
      rc = -1;
    Py_XDECREF(res);
  }
  Py_DECREF(ws);
  return rc;
}

PyObject *piston_asgi_done(void) {
  return Py_NewRef(done);
}

PyObject *piston_asgi_disconnected(void) {
  PyObject *args =
      Py_BuildValue("(is)", PISTON_ECLOSED, "the client went away");
  if (args) {
    PyErr_SetObject(piston_py_ClientDisconnected, args);
    Py_DECREF(args);
  }
  return NULL;
}

PyObject *piston_asgi_resp_err(int rc) {
  if (rc == PISTON_EINVAL) {
    PyErr_SetString(PyExc_ValueError,
                    "invalid status or header (CR, LF, a bad name or a "
                    "Content-Length that does not match the body?)");
    return NULL;
  }
  return piston_py_raise(rc);
}

/* ---- the messages ---- */

/* message[key], or dflt (borrowed either way); NULL with an error set. */
static PyObject *get(PyObject *message, PyObject *key, PyObject *dflt) {
  PyObject *v = PyDict_GetItemWithError(message, key);
  if (!v && !PyErr_Occurred())
    v = dflt;
  return v;
}

PyObject *piston_asgi_response_start(AsgiRequestObject *r, PyObject *message) {
  if (r->status) {
    PyErr_SetString(PyExc_RuntimeError, "http.response.start sent twice");
    return NULL;
  }
  PyObject *status = get(message, k_status, NULL);
  if (!status) {
    if (!PyErr_Occurred())
      PyErr_SetObject(PyExc_KeyError, k_status);
    return NULL;
  }
  long st = PyLong_Check(status) ? PyLong_AsLong(status) : -1;
  if (st == -1 && PyErr_Occurred())
    PyErr_Clear(); /* overflow: reported as a bad status below */
  if (st < 100 || st > 999) {
    PyErr_Format(PyExc_ValueError, "bad status %R", status);
    return NULL;
  }
  PyObject *headers = get(message, k_headers, Py_None);
  PyObject *trailers = headers ? get(message, k_trailers, Py_False) : NULL;
  int has_trailers = trailers ? PyObject_IsTrue(trailers) : -1;
  int has_headers = has_trailers < 0 ? -1 : PyObject_IsTrue(headers);
  if (has_headers < 0)
    return NULL;
  r->status = (int)st;
  Py_XSETREF(r->headers, Py_NewRef(has_headers ? headers : Py_None));
  r->trailers = (char)has_trailers;
  return Py_NewRef(done);
}

/* An engine call's result; an error becomes the exception. */
static int step(int rc) {
  if (rc < 0) {
    piston_asgi_resp_err(rc);
    return -1;
  }
  return rc;
}

PyObject *piston_asgi_response_body(AsgiRequestObject *r, PyObject *message) {
  if (!r->status) {
    PyErr_SetString(PyExc_RuntimeError,
                    "http.response.body before http.response.start");
    return NULL;
  }
  if (r->complete) {
    PyErr_SetString(PyExc_RuntimeError,
                    "http.response.body after the response was complete");
    return NULL;
  }
  PyObject *body = get(message, k_body, empty_bytes);
  PyObject *more_obj = body ? get(message, k_more_body, Py_False) : NULL;
  int more = more_obj ? PyObject_IsTrue(more_obj) : -1;
  if (more < 0)
    return NULL;
  if (r->closed) {
    if (!more)
      return Py_NewRef(done);
    return piston_asgi_disconnected();
  }
  if (!r->req) {
    PyErr_SetString(PyExc_RuntimeError, "the request was released");
    return NULL;
  }
  Py_buffer b;
  if (PyObject_GetBuffer(body, &b, PyBUF_SIMPLE) < 0)
    return NULL;
  piston_py_hdrs h;
  bool have_h = false;
  int pressure = 0;
  PyObject *result = NULL;
  if (!r->started) {
    r->started = 1;
    if (piston_py_hdrs_from(r->headers ? r->headers : Py_None, &h,
                            PISTON_PY_HDRS_BYTES) < 0)
      goto out;
    have_h = true;
    if (!more && !r->trailers) {
      /* the whole response in one engine call, with Content-Length */
      r->complete = 1;
      if (step(piston_resp_send(r->req, r->status, h.h, h.n, b.buf,
                                (size_t)b.len)) < 0)
        goto out;
      r->ended = true;
      if (piston_asgi_wake(r) == 0)
        result = Py_NewRef(done);
      goto out;
    }
    if (step(piston_resp_start(r->req, r->status, h.h, h.n)) < 0)
      goto out;
  }
  if (b.len &&
      (pressure = step(piston_resp_write(r->req, b.buf, (size_t)b.len))) < 0)
    goto out;
  if (!more) {
    if (!r->trailers) {
      r->complete = 1;
      if (step(piston_resp_end(r->req, NULL, 0)) < 0)
        goto out;
      r->ended = true;
      if (piston_asgi_wake(r) < 0)
        goto out;
    }
    result = Py_NewRef(done);
  } else if (pressure) {
    result = PyObject_CallMethodNoArgs((PyObject *)r, m_drain);
  } else {
    result = Py_NewRef(done);
  }
out:
  if (have_h)
    piston_py_hdrs_free(&h);
  PyBuffer_Release(&b);
  return result;
}

PyObject *piston_asgi_send(AsgiRequestObject *r, PyObject *message) {
  PyObject *type = PyDict_Check(message) ? get(message, k_type, NULL) : NULL;
  if (type && PyUnicode_Check(type)) {
    if (r->ws)
      return piston_asgi_ws_send(r, type, message);
    if (type == t_body || PyUnicode_Compare(type, t_body) == 0)
      return piston_asgi_response_body(r, message);
    if (type == t_start || PyUnicode_Compare(type, t_start) == 0)
      return piston_asgi_response_start(r, message);
  }
  if (PyErr_Occurred())
    return NULL;
  /* the rest, and anything not a dict with a str type: the Python side */
  return PyObject_CallMethodOneArg((PyObject *)r, m_send_other, message);
}
