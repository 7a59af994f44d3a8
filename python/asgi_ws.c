/* The websocket scope's messages in C, where a session spends its time:
 * send() of websocket.send (piston_ws_send; the finished awaitable unless
 * the queue is over its high-water mark), websocket.accept and
 * websocket.close, the websocket.http.response extension (the HTTP
 * response code of asgi_send.c), and ws_recv(), which receive() (Python,
 * python/piston/asgi.py) calls for each websocket.receive or
 * websocket.disconnect. The engine does the framing and the protocol's
 * rules; the states and errors here are the ASGI spec's, and uvicorn's
 * where the spec leaves them open. */
#include "asgi.h"

#include <string.h>

static PyObject *k_type, *k_text, *k_bytes, *k_code, *k_reason, *k_subprotocol,
    *k_headers, *t_send, *t_accept, *t_close, *t_resp_start, *t_resp_body,
    *t_receive, *t_disconnect, *h_protocol, *m_drain;

int piston_asgi_ws_init(void) {
  static const piston_py_name names[] = {
      {&k_type, "type"},
      {&k_text, "text"},
      {&k_bytes, "bytes"},
      {&k_code, "code"},
      {&k_reason, "reason"},
      {&k_subprotocol, "subprotocol"},
      {&k_headers, "headers"},
      {&t_send, "websocket.send"},
      {&t_accept, "websocket.accept"},
      {&t_close, "websocket.close"},
      {&t_resp_start, "websocket.http.response.start"},
      {&t_resp_body, "websocket.http.response.body"},
      {&t_receive, "websocket.receive"},
      {&t_disconnect, "websocket.disconnect"},
      {&m_drain, "_ws_drain"},
  };
  if (piston_py_intern(names, sizeof names / sizeof names[0]) < 0)
    return -1;
  h_protocol = PyBytes_FromString("Sec-WebSocket-Protocol");
  return h_protocol ? 0 : -1;
}

static bool is(PyObject *type, PyObject *name) {
  return type == name || PyUnicode_Compare(type, name) == 0;
}

/* message[key] if present and not None (borrowed), else NULL; *err set
 * when the lookup failed. */
static PyObject *opt(PyObject *message, PyObject *key, bool *err) {
  PyObject *v = PyDict_GetItemWithError(message, key);
  if (!v && PyErr_Occurred())
    *err = true;
  return v == Py_None ? NULL : v;
}

static PyObject *unexpected(AsgiRequestObject *r, PyObject *type) {
  if (r->ws_state == ASGI_WS_CONNECTING)
    PyErr_Format(PyExc_RuntimeError,
                 "Expected ASGI message 'websocket.accept', 'websocket.close' "
                 "or 'websocket.http.response.start', but got %R",
                 type);
  else if (r->ws_state == ASGI_WS_OPEN)
    PyErr_Format(PyExc_RuntimeError,
                 "Expected ASGI message 'websocket.send' or "
                 "'websocket.close', but got %R",
                 type);
  else if (r->ws_state == ASGI_WS_RESPONSE)
    PyErr_Format(PyExc_RuntimeError,
                 "Expected ASGI message 'websocket.http.response.body', but "
                 "got %R",
                 type);
  else
    PyErr_Format(PyExc_RuntimeError,
                 "Unexpected ASGI message %R, after sending 'websocket.close'",
                 type);
  return NULL;
}

/* websocket.send: bytes (any buffer) or text (str) */
static PyObject *ws_send(AsgiRequestObject *r, PyObject *message) {
  bool err = false;
  PyObject *bytes = opt(message, k_bytes, &err);
  PyObject *text = err || bytes ? NULL : opt(message, k_text, &err);
  if (err)
    return NULL;
  if (r->closed)
    return piston_asgi_disconnected();
  if (piston_asgi_check(r) < 0)
    return NULL;
  int rc;
  if (bytes) {
    Py_buffer b;
    if (PyObject_GetBuffer(bytes, &b, PyBUF_SIMPLE) < 0)
      return NULL;
    rc = piston_ws_send(r->req, PISTON_WS_BINARY, b.buf, (size_t)b.len);
    PyBuffer_Release(&b);
  } else if (text) {
    if (!PyUnicode_Check(text)) {
      PyErr_Format(PyExc_TypeError,
                   "websocket.send text must be str, not %.100s",
                   Py_TYPE(text)->tp_name);
      return NULL;
    }
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(text, &n);
    if (!p)
      return NULL;
    rc = piston_ws_send(r->req, PISTON_WS_TEXT, p, (size_t)n);
  } else {
    PyErr_SetString(PyExc_ValueError,
                    "websocket.send needs 'bytes' or 'text' (not None)");
    return NULL;
  }
  if (rc == PISTON_ECLOSED)
    return piston_asgi_disconnected(); /* the session is closing */
  if (rc < 0)
    return piston_asgi_resp_err(rc);
  if (rc == 1) {
    r->ws_pressure = 1;
    return PyObject_CallMethodNoArgs((PyObject *)r, m_drain);
  }
  return piston_asgi_done();
}

/* websocket.accept: the 101 with Sec-WebSocket-Protocol and the app's
 * headers */
static PyObject *ws_accept(AsgiRequestObject *r, PyObject *message) {
  bool err = false;
  PyObject *sub = opt(message, k_subprotocol, &err);
  PyObject *headers = err ? NULL : opt(message, k_headers, &err);
  if (err)
    return NULL;
  if (sub && !PyUnicode_Check(sub)) {
    PyErr_SetString(PyExc_TypeError, "websocket.accept subprotocol must be "
                                     "a str or None");
    return NULL;
  }
  if (piston_asgi_check(r) < 0)
    return NULL;
  PyObject *all = headers ? PySequence_List(headers) : PyList_New(0);
  if (!all)
    return NULL;
  PyObject *result = NULL;
  if (sub) {
    PyObject *v = PyUnicode_AsEncodedString(sub, "latin-1", "strict");
    PyObject *t = v ? PyTuple_Pack(2, h_protocol, v) : NULL;
    Py_XDECREF(v);
    int rc = t ? PyList_Insert(all, 0, t) : -1;
    Py_XDECREF(t);
    if (rc < 0)
      goto out;
  }
  piston_py_hdrs h;
  if (piston_py_hdrs_from(all, &h, PISTON_PY_HDRS_BYTES) < 0)
    goto out;
  int rc = r->closed ? 0 : piston_ws_accept(r->req, h.h, h.n);
  piston_py_hdrs_free(&h);
  if (rc < 0 && rc != PISTON_ECLOSED) {
    piston_asgi_resp_err(rc);
    goto out;
  }
  /* the engine has the 101: the HTTP exchange is over (a client already
   * gone sees its websocket.disconnect in receive) */
  r->ws_state = ASGI_WS_OPEN;
  r->ended = true;
  r->started = r->complete = 1;
  /* a receive() waiting for the accept (from another task) goes on */
  if (piston_asgi_wake(r) == 0)
    result = piston_asgi_done();
out:
  Py_DECREF(all);
  return result;
}

/* websocket.close: before the accept a denial (403, as uvicorn), after it
 * the closing handshake with code and reason */
static PyObject *ws_close(AsgiRequestObject *r, PyObject *message) {
  bool err = false;
  PyObject *code_obj = opt(message, k_code, &err);
  PyObject *reason = err ? NULL : opt(message, k_reason, &err);
  if (err)
    return NULL;
  long code = 1000;
  if (code_obj) {
    code = PyLong_AsLong(code_obj);
    if (code == -1 && PyErr_Occurred())
      return NULL;
  }
  const char *rp = NULL;
  Py_ssize_t rn = 0;
  if (reason) {
    if (!PyUnicode_Check(reason)) {
      PyErr_SetString(PyExc_TypeError, "websocket.close reason must be a str");
      return NULL;
    }
    if (!(rp = PyUnicode_AsUTF8AndSize(reason, &rn)))
      return NULL;
  }
  if (piston_asgi_check(r) < 0)
    return NULL;
  if (r->ws_state == ASGI_WS_CONNECTING) {
    r->ws_state = ASGI_WS_CLOSED;
    r->status = 403;
    r->started = r->complete = 1;
    if (!r->closed) {
      int rc = piston_resp_send(r->req, 403, NULL, 0, "", 0);
      if (rc < 0 && rc != PISTON_ECLOSED)
        return piston_asgi_resp_err(rc);
    }
    r->ended = true;
    if (piston_asgi_wake(r) < 0)
      return NULL;
    return piston_asgi_done();
  }
  if (code < 1000 || code > 4999 || rn > 123) {
    PyErr_Format(PyExc_ValueError,
                 "websocket.close: code %ld or a reason of %zd bytes (at most "
                 "123) cannot be sent",
                 code, rn);
    return NULL;
  }
  r->ws_state = ASGI_WS_CLOSED;
  if (!r->closed) {
    int rc = piston_ws_close(r->req, (int)code, rp, (size_t)rn);
    if (rc < 0 && rc != PISTON_ECLOSED) {
      r->ws_state = ASGI_WS_OPEN;
      if (rc == PISTON_EINVAL) {
        PyErr_Format(PyExc_ValueError,
                     "websocket.close: code %ld may not be sent", code);
        return NULL;
      }
      return piston_asgi_resp_err(rc);
    }
  }
  if (piston_asgi_wake(r) < 0)
    return NULL;
  return piston_asgi_done();
}

PyObject *piston_asgi_ws_send(AsgiRequestObject *r, PyObject *type,
                              PyObject *message) {
  switch (r->ws_state) {
  case ASGI_WS_OPEN:
    if (is(type, t_send))
      return ws_send(r, message);
    if (is(type, t_close))
      return ws_close(r, message);
    break;
  case ASGI_WS_CONNECTING:
    if (is(type, t_accept))
      return ws_accept(r, message);
    if (is(type, t_close))
      return ws_close(r, message);
    if (is(type, t_resp_start)) {
      PyObject *res = piston_asgi_response_start(r, message);
      if (res)
        r->ws_state = ASGI_WS_RESPONSE;
      return res;
    }
    break;
  case ASGI_WS_RESPONSE:
    if (is(type, t_resp_body))
      return piston_asgi_response_body(r, message);
    break;
  default: break;
  }
  return unexpected(r, type);
}

/* ---- receive ---- */

static PyObject *disconnect_message(AsgiRequestObject *r) {
  int code = r->req ? piston_ws_close_code(r->req) : 0;
  PyObject *c = PyLong_FromLong(code ? code : 1006);
  if (!c)
    return NULL;
  PyObject *m = PyDict_New();
  if (m && (PyDict_SetItem(m, k_type, t_disconnect) < 0 ||
            PyDict_SetItem(m, k_code, c) < 0))
    Py_CLEAR(m);
  Py_DECREF(c);
  return m;
}

PyObject *piston_asgi_ws_recv(AsgiRequestObject *r, PyObject *noargs) {
  (void)noargs;
  switch (r->ws_state) {
  case ASGI_WS_CONNECTING:
    /* nothing to receive before the accept; a client that went away
     * ends the wait */
    if (r->closed || !r->req)
      return disconnect_message(r);
    Py_RETURN_NONE;
  case ASGI_WS_OPEN: break;
  default: /* closed by the app, denied, or answered with HTTP */
    return disconnect_message(r);
  }
  if (!r->req)
    return disconnect_message(r);
  int op;
  const void *data;
  size_t len;
  int rc = piston_ws_recv(r->req, &op, &data, &len);
  if (rc == 0)
    Py_RETURN_NONE;
  if (rc < 0)
    return disconnect_message(r);
  /* text is UTF-8: the engine checked it as it arrived */
  PyObject *v = op == PISTON_WS_TEXT
                    ? PyUnicode_DecodeUTF8(data, (Py_ssize_t)len, "strict")
                    : PyBytes_FromStringAndSize(data, (Py_ssize_t)len);
  if (!v)
    return NULL;
  PyObject *m = PyDict_New();
  if (m && (PyDict_SetItem(m, k_type, t_receive) < 0 ||
            PyDict_SetItem(m, op == PISTON_WS_TEXT ? k_text : k_bytes, v) < 0))
    Py_CLEAR(m);
  Py_DECREF(v);
  return m;
}
