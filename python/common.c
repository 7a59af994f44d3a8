#include "common.h"

PyObject *piston_py_Error, *piston_py_ClientDisconnected,
    *piston_py_BodyTooLarge;

PyObject *piston_py_raise(int rc) {
  PyObject *type = piston_py_Error;
  if (rc == PISTON_ECLOSED)
    type = piston_py_ClientDisconnected;
  else if (rc == PISTON_ETOOBIG)
    type = piston_py_BodyTooLarge;
  else if (rc == PISTON_ENOMEM)
    return PyErr_NoMemory();
  PyObject *args = Py_BuildValue("(is)", rc, piston_strerror(rc));
  if (args) {
    PyErr_SetObject(type, args);
    Py_DECREF(args);
  }
  return NULL;
}

int piston_py_add_object(PyObject *m, const char *name, PyObject *o) {
  Py_INCREF(o);
  if (PyModule_AddObject(m, name, o) < 0) { /* it steals only on success */
    Py_DECREF(o);
    return -1;
  }
  return 0;
}

static PyObject *done(int rc) {
  if (rc < 0)
    return piston_py_raise(rc);
  Py_RETURN_NONE;
}

PyObject *piston_py_set_option(piston_server *srv, bool running,
                               PyObject *args) {
  int opt;
  long long v;
  if (!PyArg_ParseTuple(args, "iL", &opt, &v))
    return NULL;
  if (running) {
    PyErr_SetString(PyExc_RuntimeError, "the server is already running");
    return NULL;
  }
  if (opt < 0 || opt >= PISTON_OPT__COUNT) {
    PyErr_SetString(PyExc_ValueError, "unknown option");
    return NULL;
  }
  return done(piston_server_set(srv, (piston_option)opt, v));
}

PyObject *piston_py_listen_tcp(piston_server *srv, PyObject *args) {
  const char *host;
  int port;
  if (!PyArg_ParseTuple(args, "si", &host, &port))
    return NULL;
  return done(piston_server_listen_tcp(srv, host, port));
}

PyObject *piston_py_listen_unix(piston_server *srv, PyObject *args) {
  const char *path;
  if (!PyArg_ParseTuple(args, "s", &path))
    return NULL;
  return done(piston_server_listen_unix(srv, path));
}

PyObject *piston_py_listen_fd(piston_server *srv, PyObject *args) {
  int fd;
  if (!PyArg_ParseTuple(args, "i", &fd))
    return NULL;
  return done(piston_server_listen_fd(srv, fd));
}

PyObject *piston_py_route_dir(piston_server *srv, PyObject *args) {
  const char *prefix, *dir;
  if (!PyArg_ParseTuple(args, "ss", &prefix, &dir))
    return NULL;
  return done(piston_server_route_dir(srv, prefix, dir));
}

static int keep_view(PyObject *b, piston_str *out, piston_py_hdrs *a) {
  if (!a->keep && !(a->keep = PyList_New(0))) {
    Py_DECREF(b);
    return -1;
  }
  int rc = PyList_Append(a->keep, b);
  Py_DECREF(b);
  if (rc < 0)
    return -1;
  out->ptr = PyBytes_AS_STRING(b);
  out->len = (size_t)PyBytes_GET_SIZE(b);
  return 0;
}

static int view(PyObject *o, piston_str *out, piston_py_hdrs *a,
                piston_py_hdrs_mode mode, const char *what) {
  if (mode == PISTON_PY_HDRS_BYTES && PyBytes_Check(o)) {
    out->ptr = PyBytes_AS_STRING(o);
    out->len = (size_t)PyBytes_GET_SIZE(o);
    return 0;
  }
  if (PyUnicode_Check(o)) {
    if (PyUnicode_IS_ASCII(o)) { /* the common case: a view, no copy */
      Py_ssize_t len;
      const char *p = PyUnicode_AsUTF8AndSize(o, &len);
      if (!p)
        return -1;
      out->ptr = p;
      out->len = (size_t)len;
      return 0;
    }
    PyObject *b = PyUnicode_AsLatin1String(o);
    if (!b) {
      PyErr_Clear();
      PyErr_Format(PyExc_ValueError,
                   "header %s is not encodable as Latin-1: %R", what, o);
      return -1;
    }
    return keep_view(b, out, a);
  }
  if (mode == PISTON_PY_HDRS_BYTES && PyByteArray_Check(o)) {
    PyObject *b = PyBytes_FromObject(o);
    return b ? keep_view(b, out, a) : -1;
  }
  PyErr_Format(PyExc_TypeError, "header %s must be %s, not %.100s", what,
               mode == PISTON_PY_HDRS_STR ? "str" : "bytes",
               Py_TYPE(o)->tp_name);
  return -1;
}

void piston_py_hdrs_free(piston_py_hdrs *a) {
  if (a->h && a->h != a->inline_)
    PyMem_Free(a->h);
  Py_CLEAR(a->keep);
  a->h = NULL;
}

int piston_py_hdrs_from(PyObject *seq, piston_py_hdrs *a,
                        piston_py_hdrs_mode mode) {
  a->h = a->inline_;
  a->n = 0;
  a->keep = NULL;
  if (seq == Py_None)
    return 0;
  PyObject *fast = PySequence_Fast(seq, mode == PISTON_PY_HDRS_STR
                                            ? "headers must be a list of tuples"
                                            : "headers must be an iterable "
                                              "of pairs");
  if (!fast)
    return -1;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
  if ((size_t)n > sizeof a->inline_ / sizeof a->inline_[0]) {
    a->h = PyMem_Malloc((size_t)n * sizeof *a->h);
    if (!a->h) {
      Py_DECREF(fast);
      PyErr_NoMemory();
      return -1;
    }
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *t = PySequence_Fast_GET_ITEM(fast, i);
    /* PEP 3333 asks for tuples; ASGI for any iterable pair */
    PyObject *pair = mode == PISTON_PY_HDRS_STR && !PyTuple_Check(t)
                         ? NULL
                         : PySequence_Fast(t, "");
    if (!pair || PySequence_Fast_GET_SIZE(pair) != 2) {
      Py_XDECREF(pair);
      PyErr_Clear();
      PyErr_Format(PyExc_TypeError,
                   "each header must be a (name, value) %s, not %R",
                   mode == PISTON_PY_HDRS_STR ? "tuple" : "pair", t);
      goto fail;
    }
    int rc =
        view(PySequence_Fast_GET_ITEM(pair, 0), &a->h[i].name, a, mode, "name");
    if (rc == 0)
      rc = view(PySequence_Fast_GET_ITEM(pair, 1), &a->h[i].value, a, mode,
                "value");
    Py_DECREF(pair);
    if (rc < 0)
      goto fail;
    a->n = (size_t)i + 1;
  }
  Py_DECREF(fast);
  return 0;
fail:
  Py_DECREF(fast);
  piston_py_hdrs_free(a);
  return -1;
}

PyObject *piston_py_route_fixed(piston_server *srv, PyObject *args,
                                piston_py_hdrs_mode mode) {
  PyObject *method, *headers;
  const char *path;
  int status;
  Py_buffer body;
  if (!PyArg_ParseTuple(args, "OsiOy*", &method, &path, &status, &headers,
                        &body))
    return NULL;
  const char *m = NULL;
  piston_py_hdrs a;
  if ((method != Py_None && !(m = PyUnicode_AsUTF8(method))) ||
      piston_py_hdrs_from(headers, &a, mode) < 0) {
    PyBuffer_Release(&body);
    return NULL;
  }
  int rc = piston_server_route_fixed(srv, m, path, status, a.h, a.n, body.buf,
                                     (size_t)body.len);
  piston_py_hdrs_free(&a);
  PyBuffer_Release(&body);
  return done(rc);
}

int piston_py_intern(const piston_py_name *names, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!(*names[i].obj = PyUnicode_InternFromString(names[i].text)))
      return -1;
  return 0;
}

PyObject *piston_py_latin1(piston_str s) {
  return PyUnicode_DecodeLatin1(s.ptr ? s.ptr : "", (Py_ssize_t)s.len, NULL);
}

int piston_py_path_decode(piston_str raw, piston_py_path *out) {
  out->ptr = out->inline_;
  out->len = 0;
  if (raw.len > sizeof out->inline_ && !(out->ptr = PyMem_Malloc(raw.len))) {
    out->ptr = out->inline_;
    PyErr_NoMemory();
    return -1;
  }
  /* never fails without PISTON_PCT_STRICT; decoding only shrinks */
  ptrdiff_t n =
      raw.len ? piston_percent_decode(raw.ptr, raw.len, out->ptr, 0) : 0;
  out->len = (size_t)n;
  return 0;
}

void piston_py_path_free(piston_py_path *p) {
  if (p->ptr != p->inline_)
    PyMem_Free(p->ptr);
  p->ptr = p->inline_;
}
