/* The ASGI HTTP and WebSocket connection scopes of a request, built in one
 * call from the engine's views of the head: every key of the spec, headers
 * as lower-case byte pairs in the order received. The keys are interned once,
 * and what is the same for every request (root_path, server) is shared. */
#include "asgi.h"

#include <string.h>
#include <strings.h>

static PyObject *k_type, *k_asgi, *k_version, *k_spec_version, *k_http_version,
    *k_method, *k_scheme, *k_path, *k_raw_path, *k_query_string, *k_root_path,
    *k_headers, *k_client, *k_server, *k_state, *k_extensions, *k_pathsend,
    *k_trailers, *k_subprotocols, *k_ws_response, *k_pubsub, *v_http,
    *v_websocket, *v_ws, *v_asgi3, *v_spec, *v_11, *v_10, *v_2;

int piston_asgi_scope_init(void) {
  static const piston_py_name names[] = {
      {&k_type, "type"},
      {&k_asgi, "asgi"},
      {&k_version, "version"},
      {&k_spec_version, "spec_version"},
      {&k_http_version, "http_version"},
      {&k_method, "method"},
      {&k_scheme, "scheme"},
      {&k_path, "path"},
      {&k_raw_path, "raw_path"},
      {&k_query_string, "query_string"},
      {&k_root_path, "root_path"},
      {&k_headers, "headers"},
      {&k_client, "client"},
      {&k_server, "server"},
      {&k_state, "state"},
      {&k_extensions, "extensions"},
      {&k_pathsend, "http.response.pathsend"},
      {&k_trailers, "http.response.trailers"},
      {&k_subprotocols, "subprotocols"},
      {&k_ws_response, "websocket.http.response"},
      {&k_pubsub, "piston.pubsub"},
      {&v_http, "http"},
      {&v_websocket, "websocket"},
      {&v_ws, "ws"},
      {&v_asgi3, "3.0"},
      {&v_spec, "2.5"},
      {&v_11, "1.1"},
      {&v_10, "1.0"},
      {&v_2, "2"},
  };
  if (piston_py_intern(names, sizeof names / sizeof names[0]) < 0 ||
      piston_py_methods_init() < 0)
    return -1;
  return 0;
}

static PyObject *bytes_of(piston_str s) {
  return PyBytes_FromStringAndSize(s.ptr ? s.ptr : "", (Py_ssize_t)s.len);
}

/* [(name lower-cased, value)] as bytes, in order */
static PyObject *header_list(piston_req *q) {
  size_t n = piston_req_header_count(q);
  PyObject *hs = PyList_New((Py_ssize_t)n);
  if (!hs)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    piston_header h = piston_req_header_at(q, i);
    PyObject *name = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)h.name.len);
    if (name) {
      char *p = PyBytes_AS_STRING(name);
      for (size_t k = 0; k < h.name.len; k++) {
        char c = h.name.ptr[k];
        p[k] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
      }
    }
    PyObject *value = name ? bytes_of(h.value) : NULL;
    PyObject *t = value ? PyTuple_Pack(2, name, value) : NULL;
    Py_XDECREF(name);
    Py_XDECREF(value);
    if (!t) {
      Py_DECREF(hs);
      return NULL;
    }
    PyList_SET_ITEM(hs, (Py_ssize_t)i, t);
  }
  return hs;
}

static PyObject *client_of(piston_req *q) {
  int port = 0;
  const char *addr = piston_req_remote_addr(q, &port);
  if (!addr || !*addr)
    Py_RETURN_NONE; /* a Unix socket */
  PyObject *host = PyUnicode_FromString(addr);
  PyObject *p = host ? PyLong_FromLong(port) : NULL;
  PyObject *t = p ? PyTuple_Pack(2, host, p) : NULL;
  Py_XDECREF(host);
  Py_XDECREF(p);
  return t;
}

/* "path" is raw_path percent-decoded, as UTF-8 (invalid sequences become
 * U+FFFD, as urllib's unquote does). The engine admits only ASCII in a
 * target, so the bytes that are not escapes are ASCII already. */
static PyObject *path_of(piston_str raw) {
  piston_py_path dec;
  if (piston_py_path_decode(raw, &dec) < 0)
    return NULL;
  PyObject *path =
      PyUnicode_DecodeUTF8(dec.ptr, (Py_ssize_t)dec.len, "replace");
  piston_py_path_free(&dec);
  return path;
}

/* Sets d[k] = v and drops the reference to v; -1 if v is NULL. */
static int put(PyObject *d, PyObject *k, PyObject *v) {
  if (!v)
    return -1;
  int rc = PyDict_SetItem(d, k, v);
  Py_DECREF(v);
  return rc;
}

static PyObject *asgi_info(void) {
  PyObject *d = PyDict_New();
  if (d && (PyDict_SetItem(d, k_version, v_asgi3) < 0 ||
            PyDict_SetItem(d, k_spec_version, v_spec) < 0))
    Py_CLEAR(d);
  return d;
}

static PyObject *extensions(void) {
  PyObject *d = PyDict_New();
  if (d && (put(d, k_pathsend, PyDict_New()) < 0 ||
            put(d, k_trailers, PyDict_New()) < 0))
    Py_CLEAR(d);
  return d;
}

static PyObject *state_copy(AsgiServerObject *s) {
  if (s->state && PyDict_Check(s->state) && PyDict_GET_SIZE(s->state) > 0)
    return PyDict_Copy(s->state);
  return PyDict_New();
}

/* The keys both scopes have, from the target on: -1 on an error. */
static int connection_keys(PyObject *d, AsgiServerObject *s, piston_req *q) {
  piston_str raw = piston_req_path(q);
  if (put(d, k_path, path_of(raw)) < 0 ||
      put(d, k_raw_path, bytes_of(raw)) < 0 ||
      put(d, k_query_string, bytes_of(piston_req_query(q))) < 0 ||
      PyDict_SetItem(d, k_root_path, s->root_path) < 0 ||
      put(d, k_headers, header_list(q)) < 0 ||
      put(d, k_client, client_of(q)) < 0 ||
      PyDict_SetItem(d, k_server, s->server) < 0)
    return -1;
  return 0;
}

PyObject *piston_asgi_scope(AsgiServerObject *s, piston_req *q) {
  PyObject *d = PyDict_New();
  if (!d)
    return NULL;
  if (PyDict_SetItem(d, k_type, v_http) < 0 ||
      put(d, k_asgi, asgi_info()) < 0 ||
      PyDict_SetItem(d, k_http_version,
                     piston_req_http_version(q) == 20   ? v_2
                     : piston_req_http_version(q) == 11 ? v_11
                                                        : v_10) < 0 ||
      put(d, k_method, piston_py_method(piston_req_method(q))) < 0 ||
      PyDict_SetItem(d, k_scheme, v_http) < 0 || connection_keys(d, s, q) < 0 ||
      put(d, k_state, state_copy(s)) < 0 ||
      put(d, k_extensions, extensions()) < 0 ||
      piston_py_tls_scope(d, q, false) < 0 ||
      piston_py_forwarded_scope(d, q, false) < 0)
    Py_CLEAR(d);
  return d;
}

/* The offered subprotocols: every Sec-WebSocket-Protocol field, split at
 * commas, without the spaces around the tokens, in order. */
static PyObject *subprotocols(piston_req *q) {
  PyObject *out = PyList_New(0);
  size_t n = piston_req_header_count(q);
  for (size_t i = 0; out && i < n; i++) {
    piston_header h = piston_req_header_at(q, i);
    if (h.name.len != 22 ||
        strncasecmp(h.name.ptr, "sec-websocket-protocol", 22) != 0)
      continue;
    piston_str rest = h.value, tok;
    while (piston_list_next(&rest, &tok)) {
      PyObject *t = piston_py_latin1(tok);
      if (!t || PyList_Append(out, t) < 0)
        Py_CLEAR(out);
      Py_XDECREF(t);
      if (!out)
        break;
    }
  }
  return out;
}

static PyObject *ws_extensions(void) {
  PyObject *d = PyDict_New();
  if (d && (put(d, k_ws_response, PyDict_New()) < 0 ||
            put(d, k_pubsub, PyDict_New()) < 0))
    Py_CLEAR(d);
  return d;
}

PyObject *piston_asgi_ws_scope(AsgiServerObject *s, piston_req *q) {
  PyObject *d = PyDict_New();
  if (!d)
    return NULL;
  if (PyDict_SetItem(d, k_type, v_websocket) < 0 ||
      put(d, k_asgi, asgi_info()) < 0 ||
      PyDict_SetItem(d, k_http_version, v_11) < 0 ||
      PyDict_SetItem(d, k_scheme, v_ws) < 0 || connection_keys(d, s, q) < 0 ||
      put(d, k_subprotocols, subprotocols(q)) < 0 ||
      put(d, k_state, state_copy(s)) < 0 ||
      put(d, k_extensions, ws_extensions()) < 0 ||
      piston_py_tls_scope(d, q, true) < 0 ||
      piston_py_forwarded_scope(d, q, true) < 0)
    Py_CLEAR(d);
  return d;
}
