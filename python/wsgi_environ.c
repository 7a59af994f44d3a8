/* The WSGI environ of a request (PEP 3333's CGI keys), built in one call
 * from the engine's views of the head. */
#include "wsgi.h"

#include <string.h>

/* Sets d[key] = v and drops the reference to v; -1 if v is NULL. */
static int set_item(PyObject *d, const char *key, PyObject *v) {
  if (!v)
    return -1;
  int rc = PyDict_SetItemString(d, key, v);
  Py_DECREF(v);
  return rc;
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
  if (set_item(env, "REQUEST_METHOD",
               piston_py_latin1(piston_req_method(req))) < 0 ||
      set_item(env, "PATH_INFO", path_info(req, root, root_len)) < 0)
    goto fail;
  if (set_item(env, "SCRIPT_NAME",
               PyUnicode_DecodeLatin1(root, root_len, NULL)) < 0 ||
      set_item(env, "QUERY_STRING", piston_py_latin1(piston_req_query(req))) <
          0 ||
      set_item(env, "RAW_URI", piston_py_latin1(piston_req_target(req))) < 0 ||
      set_item(
          env, "SERVER_PROTOCOL",
          PyUnicode_FromString(piston_req_http_version(req) == 20 ? "HTTP/2"
                               : piston_req_http_minor(req)       ? "HTTP/1.1"
                                                            : "HTTP/1.0")) < 0)
    goto fail;
  if (piston_py_tls_environ(env, req) < 0)
    goto fail;
  int port = 0;
  const char *addr = piston_req_remote_addr(req, &port);
  if (set_item(env, "REMOTE_ADDR", PyUnicode_FromString(addr ? addr : "")) < 0)
    goto fail;
  if (addr && addr[0]) {
    if (set_item(env, "REMOTE_PORT", PyUnicode_FromFormat("%d", port)) < 0)
      goto fail;
    int lport = piston_req_local_port(req);
    if (lport > 0 &&
        set_item(env, "SERVER_PORT", PyUnicode_FromFormat("%d", lport)) < 0)
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
    key[off + hd.name.len] = 0;
    PyObject *val = piston_py_latin1(hd.value);
    if (!val)
      goto fail;
    PyObject *old = PyDict_GetItemString(env, key); /* borrowed */
    if (old && off) {
      PyObject *joined = PyUnicode_FromFormat("%U, %U", old, val);
      Py_DECREF(val);
      val = joined;
    }
    if (set_item(env, key, val) < 0)
      goto fail;
  }
  return env;
fail:
  Py_DECREF(env);
  return NULL;
}
