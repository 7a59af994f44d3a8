/* piston._piston.Request: one request handle taken from
 * Server.next_request(), and its response (python/piston/wsgi.py). A call
 * that meets write pressure waits, GIL released, for PISTON_EV_DRAIN. See
 * wsgi.h. */
#include "wsgi.h"

int piston_wsgi_req_check(RequestObject *r) {
  if (!r->req) {
    PyErr_SetString(PyExc_RuntimeError, "the request is finished");
    return -1;
  }
  return 0;
}

void piston_wsgi_req_clear_events(RequestObject *r, int bits) {
  hub *h = r->server->h;
  pthread_mutex_lock(&h->mu);
  r->slot->events &= ~bits;
  pthread_mutex_unlock(&h->mu);
}

int piston_wsgi_req_wait(RequestObject *r, int mask) {
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
  piston_wsgi_slot_put_locked(h, r->slot, req);
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

/* environ(base, script_name) -> a copy of base with the request's keys. */
static PyObject *Request_environ(RequestObject *r, PyObject *args) {
  PyObject *base;
  const char *root = "";
  Py_ssize_t root_len = 0;
  if (!PyArg_ParseTuple(args, "O!|s#", &PyDict_Type, &base, &root, &root_len))
    return NULL;
  if (piston_wsgi_req_check(r) < 0)
    return NULL;
  return piston_wsgi_environ(r->req, base, root, root_len);
}

/* The reason phrase of the status line: None for the engine's own (*out
 * stays NULL), else a latin-1 str, encoded into *out (a new reference).
 * Returns 0, or -1 with an exception set. */
static int reason_arg(PyObject *reason, PyObject **out) {
  *out = NULL;
  if (reason == Py_None)
    return 0;
  if (!PyUnicode_Check(reason)) {
    PyErr_Format(PyExc_TypeError, "reason must be str or None, not %.100s",
                 Py_TYPE(reason)->tp_name);
    return -1;
  }
  *out = PyUnicode_AsLatin1String(reason);
  return *out ? 0 : -1;
}

/* The engine's error for rc as an exception, NULL: PISTON_EINVAL is the
 * app's mistake, a ValueError saying what it may be (einval). */
static PyObject *resp_error(int rc, const char *einval) {
  if (rc == PISTON_EINVAL) {
    PyErr_SetString(PyExc_ValueError, einval);
    return NULL;
  }
  return piston_py_raise(rc);
}

/* After start or a write: the error, or a wait (GIL released) while the
 * queue is over its high-water mark. */
static PyObject *after_write(RequestObject *r, int rc, const char *einval) {
  if (rc < 0)
    return resp_error(rc, einval);
  if (rc == 1 && (piston_wsgi_req_wait(r, PISTON_EV_DRAIN | PISTON_EV_CLOSED) &
                  PISTON_EV_CLOSED))
    return piston_py_raise(PISTON_ECLOSED);
  Py_RETURN_NONE;
}

static PyObject *Request_start(RequestObject *r, PyObject *args) {
  int status;
  PyObject *headers, *reason = Py_None, *rbytes;
  if (!PyArg_ParseTuple(args, "iO|O", &status, &headers, &reason))
    return NULL;
  if (piston_wsgi_req_check(r) < 0 || reason_arg(reason, &rbytes) < 0)
    return NULL;
  piston_py_hdrs a;
  if (piston_py_hdrs_from(headers, &a, PISTON_PY_HDRS_STR) < 0) {
    Py_XDECREF(rbytes);
    return NULL;
  }
  piston_wsgi_req_clear_events(r, PISTON_EV_DRAIN);
  int rc =
      rbytes
          ? piston_resp_start_reason(r->req, status, PyBytes_AS_STRING(rbytes),
                                     (size_t)PyBytes_GET_SIZE(rbytes), a.h, a.n)
          : piston_resp_start(r->req, status, a.h, a.n);
  if (rc >= 0)
    r->host_started = true;
  piston_py_hdrs_free(&a);
  Py_XDECREF(rbytes);
  return after_write(r, rc,
                     "invalid status, reason or header (CR, LF or a bad "
                     "name?)");
}

static PyObject *Request_write(RequestObject *r, PyObject *arg) {
  Py_buffer b;
  if (piston_wsgi_req_check(r) < 0)
    return NULL;
  if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0)
    return NULL;
  piston_wsgi_req_clear_events(r, PISTON_EV_DRAIN);
  int rc = piston_resp_write(r->req, b.buf, (size_t)b.len);
  PyBuffer_Release(&b);
  return after_write(r, rc, "more body than the Content-Length announced");
}

static PyObject *Request_sendfile(RequestObject *r, PyObject *args) {
  int fd;
  long long off, len;
  if (!PyArg_ParseTuple(args, "iLL", &fd, &off, &len))
    return NULL;
  if (piston_wsgi_req_check(r) < 0)
    return NULL;
  if (off < 0 || len < 0) {
    PyErr_SetString(PyExc_ValueError, "negative offset or length");
    return NULL;
  }
  piston_wsgi_req_clear_events(r, PISTON_EV_DRAIN);
  int rc = piston_resp_sendfile(r->req, fd, (off_t)off, (size_t)len);
  return after_write(r, rc, "more body than the Content-Length announced");
}

static PyObject *Request_end(RequestObject *r, PyObject *noargs) {
  (void)noargs;
  if (piston_wsgi_req_check(r) < 0)
    return NULL;
  int rc = piston_resp_end(r->req, NULL, 0);
  if (rc < 0)
    return piston_py_raise(rc);
  r->ended = true;
  Py_RETURN_NONE;
}

/* send(status, headers, body, reason=None): the whole response in one
 * engine call, which adds the Content-Length. */
static PyObject *Request_send(RequestObject *r, PyObject *args) {
  int status;
  PyObject *headers, *reason = Py_None, *rbytes;
  Py_buffer body;
  if (!PyArg_ParseTuple(args, "iOy*|O", &status, &headers, &body, &reason))
    return NULL;
  if (piston_wsgi_req_check(r) < 0 || reason_arg(reason, &rbytes) < 0) {
    PyBuffer_Release(&body);
    return NULL;
  }
  piston_py_hdrs a;
  if (piston_py_hdrs_from(headers, &a, PISTON_PY_HDRS_STR) < 0) {
    Py_XDECREF(rbytes);
    PyBuffer_Release(&body);
    return NULL;
  }
  int rc = piston_resp_send_reason(
      r->req, status, rbytes ? PyBytes_AS_STRING(rbytes) : NULL,
      rbytes ? (size_t)PyBytes_GET_SIZE(rbytes) : 0, a.h, a.n, body.buf,
      (size_t)body.len);
  if (rc >= 0)
    r->host_started = true;
  piston_py_hdrs_free(&a);
  Py_XDECREF(rbytes);
  PyBuffer_Release(&body);
  if (rc < 0)
    return resp_error(rc, "invalid status, reason or header (CR, LF, a bad "
                          "name or a Content-Length that does not match the "
                          "body?)");
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
  if (piston_wsgi_req_check(r) < 0)
    return NULL;
  return piston_py_latin1(piston_req_method(r->req));
}

static PyObject *Request_target(RequestObject *r, void *closure) {
  (void)closure;
  if (piston_wsgi_req_check(r) < 0)
    return NULL;
  return piston_py_latin1(piston_req_target(r->req));
}

static PyObject *Request_content_length(RequestObject *r, void *closure) {
  (void)closure;
  if (piston_wsgi_req_check(r) < 0)
    return NULL;
  return PyLong_FromLongLong(piston_req_content_length(r->req));
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
     "send(status, headers, body, reason=None): a whole response, with the "
     "engine's Content-Length"},
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

PyTypeObject piston_wsgi_RequestType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "piston._piston.Request",
    .tp_basicsize = sizeof(RequestObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A request handle taken from Server.next_request().",
    .tp_dealloc = (destructor)Request_dealloc,
    .tp_methods = Request_methods,
    .tp_getset = Request_getset,
};
