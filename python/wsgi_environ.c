/* The WSGI environ of a request (PEP 3333's CGI keys), built in one call
 * from the engine's views of the head. The keys every request has are
 * interned once: a key given as a C string is made and interned again on
 * every call (PyDict_SetItemString); that and the ports' printf were about
 * 4% of a raw WSGI app's profile. */
#include "wsgi.h"

#include <string.h>

static PyObject *k_request_method, *k_path_info, *k_script_name,
    *k_query_string, *k_raw_uri, *k_server_protocol, *k_remote_addr,
    *k_remote_port, *k_server_port, *v_http11, *v_http10, *v_http2;

int piston_wsgi_environ_init(void) {
  static const piston_py_name names[] = {
      {&k_request_method, "REQUEST_METHOD"},
      {&k_path_info, "PATH_INFO"},
      {&k_script_name, "SCRIPT_NAME"},
      {&k_query_string, "QUERY_STRING"},
      {&k_raw_uri, "RAW_URI"},
      {&k_server_protocol, "SERVER_PROTOCOL"},
      {&k_remote_addr, "REMOTE_ADDR"},
      {&k_remote_port, "REMOTE_PORT"},
      {&k_server_port, "SERVER_PORT"},
      {&v_http11, "HTTP/1.1"},
      {&v_http10, "HTTP/1.0"},
      {&v_http2, "HTTP/2"},
  };
  if (piston_py_intern(names, sizeof names / sizeof names[0]) < 0)
    return -1;
  return piston_py_methods_init();
}

/* Sets d[key] = v and drops the reference to v; -1 if v is NULL. */
static int set_item(PyObject *d, PyObject *key, PyObject *v) {
  if (!v)
    return -1;
  int rc = PyDict_SetItem(d, key, v);
  Py_DECREF(v);
  return rc;
}

/* A port as a str, without printf's machinery */
static PyObject *port_str(int port) {
  char d[12];
  size_t n = sizeof d;
  unsigned u = port > 0 ? (unsigned)port : 0;
  do {
    d[--n] = (char)('0' + u % 10);
    u /= 10;
  } while (u && n > 0);
  return PyUnicode_DecodeLatin1(d + n, (Py_ssize_t)(sizeof d - n), NULL);
}

/* PATH_INFO: percent-decoded bytes, as Latin-1 (PEP 3333), less the
 * SCRIPT_NAME when the path starts with it. */
static PyObject *path_info(piston_req *req, const char *root,
                           Py_ssize_t root_len) {
  piston_py_path dec;
  if (piston_py_path_decode(piston_req_path(req), &dec) < 0)
    return NULL;
  const char *pi = dec.ptr;
  size_t pil = dec.len;
  if (root_len > 0 && dec.len >= (size_t)root_len &&
      memcmp(dec.ptr, root, (size_t)root_len) == 0 &&
      (dec.len == (size_t)root_len || dec.ptr[root_len] == '/')) {
    pi += root_len;
    pil -= (size_t)root_len;
  }
  PyObject *v = PyUnicode_DecodeLatin1(pi, (Py_ssize_t)pil, NULL);
  piston_py_path_free(&dec);
  return v;
}

PyObject *piston_wsgi_environ(piston_req *req, PyObject *base, const char *root,
                              Py_ssize_t root_len) {
  PyObject *env = PyDict_Copy(base);
  if (!env)
    return NULL;
  PyObject *proto = piston_req_http_version(req) == 20 ? v_http2
                    : piston_req_http_minor(req)       ? v_http11
                                                       : v_http10;
  if (set_item(env, k_request_method,
               piston_py_method(piston_req_method(req))) < 0 ||
      set_item(env, k_path_info, path_info(req, root, root_len)) < 0)
    goto fail;
  if (set_item(env, k_script_name,
               PyUnicode_DecodeLatin1(root, root_len, NULL)) < 0 ||
      set_item(env, k_query_string, piston_py_latin1(piston_req_query(req))) <
          0 ||
      set_item(env, k_raw_uri, piston_py_latin1(piston_req_target(req))) < 0 ||
      set_item(env, k_server_protocol, Py_NewRef(proto)) < 0)
    goto fail;
  if (piston_py_tls_environ(env, req) < 0)
    goto fail;
  int port = 0;
  const char *addr = piston_req_remote_addr(req, &port);
  if (set_item(env, k_remote_addr, PyUnicode_FromString(addr ? addr : "")) < 0)
    goto fail;
  if (addr && addr[0]) {
    if (set_item(env, k_remote_port, port_str(port)) < 0)
      goto fail;
    int lport = piston_req_local_port(req);
    if (lport > 0 && set_item(env, k_server_port, port_str(lport)) < 0)
      goto fail;
  }
  if (piston_py_forwarded_environ(env, req) < 0)
    goto fail;

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
    /* one key object for the lookup and the store; not interned (the
     * app's lookups hash it once, and most header names come once) */
    PyObject *k =
        PyUnicode_DecodeLatin1(key, (Py_ssize_t)(off + hd.name.len), NULL);
    PyObject *val = k ? piston_py_latin1(hd.value) : NULL;
    if (!val) {
      Py_XDECREF(k);
      goto fail;
    }
    PyObject *old = PyDict_GetItemWithError(env, k); /* borrowed */
    if (old && off) {
      PyObject *joined = PyUnicode_FromFormat("%U, %U", old, val);
      Py_DECREF(val);
      val = joined;
    } else if (!old && PyErr_Occurred()) {
      Py_DECREF(val);
      val = NULL;
    }
    int rc = set_item(env, k, val);
    Py_DECREF(k);
    if (rc < 0)
      goto fail;
  }
  return env;
fail:
  Py_DECREF(env);
  return NULL;
}
