/* piston._piston.Input: wsgi.input, the request body read as it arrives
 * (piston_req_body_read); when nothing is buffered it waits for
 * PISTON_EV_BODY with the GIL released. */
#include "wsgi.h"

#include <string.h>

/* Reads up to len bytes, waiting (GIL released) until at least one byte or
 * the end. Returns the count, 0 at the end, -1 with an exception set. */
static Py_ssize_t body_read_some(RequestObject *r, char *buf, size_t len) {
  for (;;) {
    if (piston_wsgi_req_check(r) < 0)
      return -1;
    piston_wsgi_req_clear_events(r, PISTON_EV_BODY);
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
    if (piston_wsgi_req_wait(r, PISTON_EV_BODY | PISTON_EV_CLOSED) &
        PISTON_EV_CLOSED) {
      /* the body may still have been completed before the close */
      piston_wsgi_req_clear_events(r, PISTON_EV_BODY);
      n = piston_req_body_read(r->req, buf, len);
      if (n >= 0)
        return (Py_ssize_t)n;
      piston_py_raise(n == PISTON_EAGAIN ? PISTON_ECLOSED : (int)n);
      return -1;
    }
  }
}

typedef struct {
  PyObject_HEAD RequestObject *req;
  char *buf; /* read ahead by readline */
  size_t len, pos, cap;
  bool eof;
} InputObject;

static PyObject *Input_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
  PyObject *req;
  static char *kwlist[] = {"request", NULL};
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O!", kwlist,
                                   &piston_wsgi_RequestType, &req))
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

PyTypeObject piston_wsgi_InputType = {
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
