#include "common.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

PyObject *piston_py_cache_purge(piston_server *srv, PyObject *args) {
  const char *t;
  Py_ssize_t n;
  int prefix = 0;
  if (!PyArg_ParseTuple(args, "s#|p", &t, &n, &prefix))
    return NULL;
  return PyLong_FromSize_t(
      piston_server_cache_purge(srv, t, (size_t)n, prefix));
}

PyObject *piston_py_cache_route(piston_server *srv, PyObject *args) {
  const char *prefix;
  int ttl, swr = 0, sie = 0;
  if (!PyArg_ParseTuple(args, "si|ii", &prefix, &ttl, &swr, &sie))
    return NULL;
  return done(piston_server_cache_route(srv, prefix, ttl, swr, sie));
}

PyObject *piston_py_cache_stats(piston_server *srv) {
  piston_cache_stats st;
  piston_server_cache_stats(srv, &st);
  return Py_BuildValue(
      "{sKsKsKsKsKsKsKsKsKsK}", "hits", (unsigned long long)st.hits,
      "stale_hits", (unsigned long long)st.stale_hits, "misses",
      (unsigned long long)st.misses, "coalesced",
      (unsigned long long)st.coalesced, "stores", (unsigned long long)st.stores,
      "uncacheable", (unsigned long long)st.uncacheable, "evictions",
      (unsigned long long)st.evictions, "purged", (unsigned long long)st.purged,
      "bytes", (unsigned long long)st.bytes, "entries",
      (unsigned long long)st.entries);
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

PyObject *piston_py_trust_proxies(piston_server *srv, PyObject *args) {
  const char *list;
  if (!PyArg_ParseTuple(args, "s", &list))
    return NULL;
  return done(piston_server_trust_proxies(srv, list));
}

PyObject *piston_py_access_log(piston_server *srv, PyObject *args) {
  const char *path = NULL, *format = NULL;
  if (!PyArg_ParseTuple(args, "zz", &path, &format))
    return NULL;
  int rc = piston_server_access_log(srv, path, format);
  if (rc == PISTON_EINVAL) {
    PyErr_Format(PyExc_ValueError, "unknown access log atom %s",
                 piston_server_access_log_error(srv));
    return NULL;
  }
  return done(rc);
}

PyObject *piston_py_metrics(piston_server *srv, PyObject *args) {
  PyObject *region;
  const char *path;
  if (!PyArg_ParseTuple(args, "Oz", &region, &path))
    return NULL;
  piston_metrics *m = NULL;
  if (region != Py_None &&
      !(m = PyCapsule_GetPointer(region, "piston.metrics")))
    return NULL;
  return done(piston_server_metrics(srv, m, path));
}

PyObject *piston_py_health(piston_server *srv, PyObject *args) {
  const char *path;
  if (!PyArg_ParseTuple(args, "s", &path))
    return NULL;
  return done(piston_server_health(srv, path));
}

PyObject *piston_py_reopen_logs(piston_server *srv) {
  return done(piston_server_reopen_logs(srv));
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

/* the methods most requests use, as shared str objects */
static PyObject *m_get, *m_post, *m_head, *m_put, *m_delete, *m_patch,
    *m_options;
static const piston_py_name methods[] = {
    {&m_get, "GET"},         {&m_post, "POST"},     {&m_head, "HEAD"},
    {&m_put, "PUT"},         {&m_delete, "DELETE"}, {&m_patch, "PATCH"},
    {&m_options, "OPTIONS"},
};

int piston_py_methods_init(void) {
  if (m_get) /* both hosts' inits ask */
    return 0;
  return piston_py_intern(methods, sizeof methods / sizeof methods[0]);
}

PyObject *piston_py_method(piston_str m) {
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
    if (strlen(methods[i].text) == m.len &&
        memcmp(methods[i].text, m.ptr, m.len) == 0)
      return Py_NewRef(*methods[i].obj);
  return piston_py_latin1(m);
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

/* ---- TLS: configuration, and what a request's handshake negotiated ---- */

PyObject *piston_py_raise_srv(piston_server *srv, int rc) {
  if (rc != PISTON_ETLS)
    return piston_py_raise(rc);
  PyObject *args = Py_BuildValue("(is)", rc, piston_server_tls_error(srv));
  if (args) {
    PyErr_SetObject(piston_py_Error, args);
    Py_DECREF(args);
  }
  return NULL;
}

static PyObject *tls_done(piston_server *srv, int rc) {
  return rc < 0 ? piston_py_raise_srv(srv, rc) : done(rc);
}

PyObject *piston_py_tls_cert(piston_server *srv, PyObject *args) {
  const char *cert, *key, *ocsp = NULL;
  if (!PyArg_ParseTuple(args, "ss|z", &cert, &key, &ocsp))
    return NULL;
  return tls_done(srv, piston_server_tls_cert(srv, cert, key, ocsp));
}

PyObject *piston_py_tls_set(piston_server *srv, PyObject *args) {
  int opt;
  const char *value;
  if (!PyArg_ParseTuple(args, "is", &opt, &value))
    return NULL;
  if (opt < 0 || opt >= PISTON_TLS__COUNT) {
    PyErr_SetString(PyExc_ValueError, "unknown TLS option");
    return NULL;
  }
  return tls_done(srv,
                  piston_server_tls_set(srv, (piston_tls_option)opt, value));
}

PyObject *piston_py_listener_tls(piston_server *srv, PyObject *args) {
  Py_ssize_t i;
  if (!PyArg_ParseTuple(args, "n", &i))
    return NULL;
  return done(i < 0 ? PISTON_EINVAL
                    : piston_server_listener_tls(srv, (size_t)i));
}

PyObject *piston_py_tls_reload(piston_server *srv) {
  int rc;
  Py_BEGIN_ALLOW_THREADS rc = piston_server_tls_reload(srv);
  Py_END_ALLOW_THREADS return tls_done(srv, rc);
}

/* DER -> PEM ("-----BEGIN CERTIFICATE-----", base64 in lines of 64) */
static PyObject *pem(piston_str der) {
  if (der.len == 0)
    Py_RETURN_NONE;
  size_t b64 = 4 * ((der.len + 2) / 3);
  size_t cap = b64 + b64 / 64 + 2 + 64;
  char *out = PyMem_Malloc(cap);
  if (!out)
    return PyErr_NoMemory();
  size_t n = (size_t)sprintf(out, "-----BEGIN CERTIFICATE-----\n");
  for (size_t off = 0; off < der.len; off += 48) {
    size_t take = der.len - off < 48 ? der.len - off : 48;
    n += (size_t)EVP_EncodeBlock((unsigned char *)out + n,
                                 (const unsigned char *)der.ptr + off,
                                 (int)take);
    out[n++] = '\n';
  }
  PyObject *s = PyUnicode_FromStringAndSize(out, (Py_ssize_t)n);
  PyMem_Free(out);
  if (s) {
    PyObject *end = PyUnicode_FromString("-----END CERTIFICATE-----\n");
    PyUnicode_AppendAndDel(&s, end);
  }
  return s;
}

static PyObject *tls_text(piston_req *q, piston_tls_info what) {
  piston_str v = piston_req_tls(q, what);
  if (v.len == 0)
    Py_RETURN_NONE;
  return PyUnicode_DecodeUTF8(v.ptr, (Py_ssize_t)v.len, "replace");
}

static int put_tls(PyObject *d, const char *key, PyObject *v) {
  if (!v)
    return -1;
  int rc = PyDict_SetItemString(d, key, v);
  Py_DECREF(v);
  return rc;
}

bool piston_py_is_tls(piston_req *q) {
  return piston_req_tls(q, PISTON_TLSI_VERSION).len > 0;
}

int piston_py_tls_environ(PyObject *env, piston_req *q) {
  if (!piston_py_is_tls(q))
    return 0;
  /* mod_ssl's names, which Django, Flask and gunicorn's users know */
  static const struct {
    const char *key;
    piston_tls_info what;
  } vars[] = {
      {"SSL_PROTOCOL", PISTON_TLSI_VERSION},
      {"SSL_CIPHER", PISTON_TLSI_CIPHER},
      {"SSL_TLS_SNI", PISTON_TLSI_SNI},
      {"SSL_CLIENT_VERIFY", PISTON_TLSI_VERIFY},
      {"SSL_CLIENT_S_DN", PISTON_TLSI_PEER_SUBJECT},
      {"SSL_CLIENT_I_DN", PISTON_TLSI_PEER_ISSUER},
      {"SSL_CLIENT_M_SERIAL", PISTON_TLSI_PEER_SERIAL},
      {"SSL_CLIENT_V_START", PISTON_TLSI_PEER_NOT_BEFORE},
      {"SSL_CLIENT_V_END", PISTON_TLSI_PEER_NOT_AFTER},
  };
  if (put_tls(env, "wsgi.url_scheme", PyUnicode_FromString("https")) < 0 ||
      put_tls(env, "HTTPS", PyUnicode_FromString("on")) < 0)
    return -1;
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
    piston_str v = piston_req_tls(q, vars[i].what);
    if (v.len &&
        put_tls(env, vars[i].key,
                PyUnicode_DecodeLatin1(v.ptr, (Py_ssize_t)v.len, NULL)) < 0)
      return -1;
  }
  piston_str der = piston_req_tls(q, PISTON_TLSI_PEER_CERT);
  if (der.len && put_tls(env, "SSL_CLIENT_CERT", pem(der)) < 0)
    return -1;
  return 0;
}

/* What a trusted proxy said, over what the connection is: the scheme
 * (wsgi.url_scheme, HTTPS) and the server's name and port. */
int piston_py_forwarded_environ(PyObject *env, piston_req *q) {
  bool secure = piston_req_secure(q), tls = piston_py_is_tls(q);
  if (secure != tls) {
    if (put_tls(env, "wsgi.url_scheme",
                PyUnicode_FromString(secure ? "https" : "http")) < 0)
      return -1;
    if (secure ? put_tls(env, "HTTPS", PyUnicode_FromString("on")) < 0
               : PyDict_DelItemString(env, "HTTPS") < 0)
      return -1;
  }
  int port;
  piston_str host = piston_req_forwarded_host(q, &port);
  if (host.ptr &&
      (put_tls(env, "SERVER_NAME", piston_py_latin1(host)) < 0 ||
       put_tls(env, "SERVER_PORT", PyUnicode_FromFormat("%d", port)) < 0))
    return -1;
  return 0;
}

int piston_py_forwarded_scope(PyObject *scope, piston_req *q, bool ws) {
  bool secure = piston_req_secure(q), tls = piston_py_is_tls(q);
  if (secure != tls &&
      put_tls(scope, "scheme",
              PyUnicode_FromString(secure ? (ws ? "wss" : "https")
                                          : (ws ? "ws" : "http"))) < 0)
    return -1;
  int port;
  piston_str host = piston_req_forwarded_host(q, &port);
  if (host.ptr) {
    PyObject *h = piston_py_latin1(host);
    PyObject *p = h ? PyLong_FromLong(port) : NULL;
    PyObject *t = p ? PyTuple_Pack(2, h, p) : NULL;
    Py_XDECREF(h);
    Py_XDECREF(p);
    if (put_tls(scope, "server", t) < 0)
      return -1;
  }
  return 0;
}

static long cipher_id(piston_req *q) {
  piston_str v = piston_req_tls(q, PISTON_TLSI_CIPHER_ID);
  char hex[8] = "0";
  if (v.len > 0 && v.len < sizeof hex) {
    memcpy(hex, v.ptr, v.len);
    hex[v.len] = '\0';
  }
  return strtol(hex, NULL, 16);
}

int piston_py_tls_scope(PyObject *scope, piston_req *q, bool ws) {
  if (!piston_py_is_tls(q))
    return 0;
  if (put_tls(scope, "scheme", PyUnicode_FromString(ws ? "wss" : "https")) < 0)
    return -1;
  PyObject *ext = PyDict_GetItemString(scope, "extensions"); /* borrowed */
  if (!ext)
    return 0;
  /* the ASGI TLS extension */
  PyObject *t = PyDict_New();
  if (!t)
    return -1;
  piston_str ver = piston_req_tls(q, PISTON_TLSI_VERSION);
  long version = ver.len == 7 && ver.ptr[6] == '3' ? 0x0304 : 0x0303;
  piston_str peer = piston_req_tls(q, PISTON_TLSI_PEER_CERT);
  piston_str verdict = piston_req_tls(q, PISTON_TLSI_VERIFY);
  PyObject *chain = PyList_New(0);
  int rc = chain ? 0 : -1;
  if (rc == 0 && peer.len) {
    PyObject *p = pem(peer);
    rc = p ? PyList_Append(chain, p) : -1;
    Py_XDECREF(p);
  }
  if (rc == 0)
    rc = put_tls(t, "client_cert_chain", chain);
  else
    Py_XDECREF(chain);
  bool failed = verdict.len > 7 && memcmp(verdict.ptr, "FAILED:", 7) == 0;
  if (rc < 0 ||
      put_tls(t, "server_cert",
              pem(piston_req_tls(q, PISTON_TLSI_LOCAL_CERT))) < 0 ||
      put_tls(t, "client_cert_name", tls_text(q, PISTON_TLSI_PEER_SUBJECT)) <
          0 ||
      put_tls(t, "client_cert_error",
              failed ? PyUnicode_DecodeLatin1(verdict.ptr + 7,
                                              (Py_ssize_t)verdict.len - 7, NULL)
                     : Py_NewRef(Py_None)) < 0 ||
      put_tls(t, "tls_version", PyLong_FromLong(version)) < 0 ||
      put_tls(t, "cipher_suite", PyLong_FromLong(cipher_id(q))) < 0) {
    Py_DECREF(t);
    return -1;
  }
  return put_tls(ext, "tls", t);
}
