/* The websocket scope's messages in C, where a session spends its time:
 * send() of websocket.send (piston_ws_send; the finished awaitable unless
 * the queue is over its high-water mark), websocket.accept and
 * websocket.close, the websocket.http.response extension (the HTTP
 * response code of asgi_send.c), and ws_recv(), which receive() (Python,
 * python/piston/asgi.py) calls for each websocket.receive or
 * websocket.disconnect. The engine does the framing and the protocol's
 * rules; the states and errors here are the ASGI spec's, and uvicorn's
 * where the spec leaves them open. The piston.pubsub extension's messages
 * (piston.subscribe, piston.unsubscribe, piston.publish) are the engine's
 * publish/subscribe calls, one each. */
#include "asgi.h"

#include <string.h>

static PyObject *k_type, *k_text, *k_bytes, *k_code, *k_reason, *k_subprotocol,
    *k_headers, *k_topic, *k_include_self, *t_send, *t_accept, *t_close,
    *t_resp_start, *t_resp_body, *t_receive, *t_disconnect, *t_subscribe,
    *t_unsubscribe, *t_publish, *h_protocol, *m_drain;

int piston_asgi_ws_init(void) {
  static const piston_py_name names[] = {
      {&k_type, "type"},
      {&k_text, "text"},
      {&k_bytes, "bytes"},
      {&k_code, "code"},
      {&k_reason, "reason"},
      {&k_subprotocol, "subprotocol"},
      {&k_headers, "headers"},
      {&k_topic, "topic"},
      {&k_include_self, "include_self"},
      {&t_subscribe, "piston.subscribe"},
      {&t_unsubscribe, "piston.unsubscribe"},
      {&t_publish, "piston.publish"},
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

/* ---- the piston.pubsub extension ---- */

/* A str (as UTF-8) or any buffer, named what in errors. */
typedef struct {
  const char *p;
  Py_ssize_t n;
  Py_buffer b;
  bool held;
} data_view;

static int view_of(PyObject *message, PyObject *key, const char *what,
                   data_view *v) {
  bool err = false;
  PyObject *o = opt(message, key, &err);
  v->held = false;
  if (err)
    return -1;
  if (!o) {
    PyErr_Format(PyExc_ValueError, "%s needs %R (str or bytes)", what, key);
    return -1;
  }
  if (PyUnicode_Check(o))
    return (v->p = PyUnicode_AsUTF8AndSize(o, &v->n)) ? 0 : -1;
  if (PyObject_GetBuffer(o, &v->b, PyBUF_SIMPLE) < 0)
    return -1;
  v->held = true;
  v->p = v->b.buf;
  v->n = v->b.len;
  return 0;
}

static void view_release(data_view *v) {
  if (v->held)
    PyBuffer_Release(&v->b);
}

/* piston.subscribe / piston.unsubscribe {"topic": str | bytes} */
static PyObject *ws_subscription(AsgiRequestObject *r, PyObject *message,
                                 bool on) {
  if (r->closed)
    return piston_asgi_disconnected();
  data_view t;
  if (piston_asgi_check(r) < 0 ||
      view_of(message, k_topic, on ? "piston.subscribe" : "piston.unsubscribe",
              &t) < 0)
    return NULL;
  int rc = on ? piston_ws_subscribe(r->req, t.p, (size_t)t.n)
              : piston_ws_unsubscribe(r->req, t.p, (size_t)t.n);
  view_release(&t);
  if (rc == PISTON_ECLOSED)
    return piston_asgi_disconnected(); /* its session has ended */
  if (rc < 0)
    return piston_asgi_resp_err(rc);
  return piston_asgi_done();
}

/* piston.publish {"topic", "text" | "bytes", "include_self": bool}: to
 * every subscriber of the topic on this server, the sender excluded unless
 * include_self */
static PyObject *ws_publish(AsgiRequestObject *r, PyObject *message) {
  bool err = false;
  PyObject *self = opt(message, k_include_self, &err);
  PyObject *bytes = err ? NULL : opt(message, k_bytes, &err);
  if (err)
    return NULL;
  int include = self ? PyObject_IsTrue(self) : 0;
  if (include < 0 || piston_asgi_check(r) < 0)
    return NULL;
  data_view t, d;
  if (view_of(message, k_topic, "piston.publish", &t) < 0)
    return NULL;
  if (view_of(message, bytes ? k_bytes : k_text, "piston.publish", &d) < 0) {
    view_release(&t);
    return NULL;
  }
  int rc = piston_ws_publish(r->server->srv, t.p, (size_t)t.n,
                             bytes ? PISTON_WS_BINARY : PISTON_WS_TEXT, d.p,
                             (size_t)d.n, include ? NULL : r->req);
  view_release(&t);
  view_release(&d);
  if (rc < 0)
    return piston_asgi_resp_err(rc);
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
    if (is(type, t_publish))
      return ws_publish(r, message);
    if (is(type, t_subscribe) || is(type, t_unsubscribe))
      return ws_subscription(r, message, is(type, t_subscribe));
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

/* websocket.disconnect with the code and the reason of the peer's close
 * frame ("" if none: spec 2.5) */
static PyObject *disconnect_message(AsgiRequestObject *r) {
  int code = r->req ? piston_ws_close_code(r->req) : 0;
  piston_str why = r->req ? piston_ws_close_reason(r->req) : (piston_str){0};
  PyObject *c = PyLong_FromLong(code ? code : 1006);
  /* the engine checked the reason is UTF-8 */
  PyObject *reason = c ? PyUnicode_DecodeUTF8(why.ptr ? why.ptr : "",
                                              (Py_ssize_t)why.len, "strict")
                       : NULL;
  PyObject *m = reason ? PyDict_New() : NULL;
  if (m && (PyDict_SetItem(m, k_type, t_disconnect) < 0 ||
            PyDict_SetItem(m, k_code, c) < 0 ||
            PyDict_SetItem(m, k_reason, reason) < 0))
    Py_CLEAR(m);
  Py_XDECREF(c);
  Py_XDECREF(reason);
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
