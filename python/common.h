/* What the WSGI and ASGI sides of the extension share: engine errors as
 * Python exceptions, the server-configuration methods, header lists from
 * Python to piston_header[], and decoded request paths. */
#ifndef PISTON_PY_COMMON_H
#define PISTON_PY_COMMON_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "piston.h"

#include <stdbool.h>

/* piston._piston.Error(OSError) and its subclasses; set by PyInit. */
extern PyObject *piston_py_Error, *piston_py_ClientDisconnected,
    *piston_py_BodyTooLarge;
/* Raises the exception for a PISTON_E* code; returns NULL. */
PyObject *piston_py_raise(int rc);
/* piston_py_raise, with the engine's sentence of what to fix for
 * PISTON_ETLS (piston_server_tls_error). */
PyObject *piston_py_raise_srv(piston_server *srv, int rc);
/* m.name = o, with a new reference to o. Returns 0, or -1 with an
 * exception set. */
int piston_py_add_object(PyObject *m, const char *name, PyObject *o);

typedef enum {
  PISTON_PY_HDRS_STR,   /* WSGI: a list of (str, str) tuples, Latin-1 */
  PISTON_PY_HDRS_BYTES, /* ASGI: pairs of bytes (bytearray and str taken) */
} piston_py_hdrs_mode;

typedef struct {
  piston_header *h;
  size_t n;
  PyObject *keep; /* list of encoded copies, or NULL */
  piston_header inline_[16];
} piston_py_hdrs;

/* seq may be None (no headers). Returns 0, or -1 with an exception set. */
int piston_py_hdrs_from(PyObject *seq, piston_py_hdrs *a,
                        piston_py_hdrs_mode mode);
void piston_py_hdrs_free(piston_py_hdrs *a);

/* A str of the slice's bytes, one character per byte. */
PyObject *piston_py_latin1(piston_str s);

/* A request path percent-decoded by the engine (piston_percent_decode,
 * lenient: a '%' without two hex digits stays as it is). The bytes are in
 * inline_ when they fit, else in PyMem memory that piston_py_path_free
 * frees. */
typedef struct {
  char *ptr;
  size_t len;
  char inline_[1024];
} piston_py_path;
/* Returns 0, or -1 with MemoryError set. */
int piston_py_path_decode(piston_str raw, piston_py_path *out);
void piston_py_path_free(piston_py_path *p);

/* Interned str objects made once at import, for keys and values used on
 * every request. */
typedef struct {
  PyObject **obj;
  const char *text;
} piston_py_name;
int piston_py_intern(const piston_py_name *names, size_t n);
/* A request method as a str: one shared object for the common ones
 * (piston_py_methods_init makes them). */
int piston_py_methods_init(void);
PyObject *piston_py_method(piston_str m);

/* Server configuration, the same for both server types: each is the body
 * of a method taking the method's args. `running`: options are fixed. */
PyObject *piston_py_set_option(piston_server *srv, bool running,
                               PyObject *args);
PyObject *piston_py_listen_tcp(piston_server *srv, PyObject *args);
/* cache_purge(target, prefix=False) -> count; cache_stats() -> dict */
PyObject *piston_py_cache_purge(piston_server *srv, PyObject *args);
PyObject *piston_py_cache_stats(piston_server *srv);
/* cache_route(prefix, ttl, swr=0, sie=0) */
PyObject *piston_py_cache_route(piston_server *srv, PyObject *args);
PyObject *piston_py_listen_unix(piston_server *srv, PyObject *args);
PyObject *piston_py_listen_fd(piston_server *srv, PyObject *args);
PyObject *piston_py_route_fixed(piston_server *srv, PyObject *args,
                                piston_py_hdrs_mode mode);
PyObject *piston_py_route_dir(piston_server *srv, PyObject *args);
PyObject *piston_py_trust_proxies(piston_server *srv, PyObject *args);
PyObject *piston_py_access_log(piston_server *srv, PyObject *args);
PyObject *piston_py_reopen_logs(piston_server *srv);
PyObject *piston_py_metrics(piston_server *srv, PyObject *args);
PyObject *piston_py_health(piston_server *srv, PyObject *args);
/* TLS: tls_cert(cert, key, ocsp=None), tls_set(TLS_*, value),
 * listener_tls(i), tls_reload(); PISTON_ETLS raises Error with the
 * engine's reason. */
PyObject *piston_py_tls_cert(piston_server *srv, PyObject *args);
PyObject *piston_py_tls_set(piston_server *srv, PyObject *args);
PyObject *piston_py_listener_tls(piston_server *srv, PyObject *args);
PyObject *piston_py_tls_reload(piston_server *srv);
bool piston_py_is_tls(piston_req *q);
/* WSGI: wsgi.url_scheme https, HTTPS=on and mod_ssl's SSL_* variables */
int piston_py_tls_environ(PyObject *env, piston_req *q);
/* ASGI: scheme https/wss and the tls extension */
int piston_py_tls_scope(PyObject *scope, piston_req *q, bool ws);
/* A trusted proxy's word (piston_req_secure, piston_req_forwarded_host)
 * over the connection's: the scheme, HTTPS, SERVER_NAME/SERVER_PORT; the
 * ASGI scheme and server. After the TLS keys are in. */
int piston_py_forwarded_environ(PyObject *env, piston_req *q);
int piston_py_forwarded_scope(PyObject *scope, piston_req *q, bool ws);

#endif
