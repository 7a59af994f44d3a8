/* What the WSGI and ASGI sides of the extension share: engine errors as
 * Python exceptions, the server-configuration methods, and header lists
 * from Python to piston_header[]. */
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

/* Interned str objects made once at import, for keys and values used on
 * every request. */
typedef struct {
  PyObject **obj;
  const char *text;
} piston_py_name;
int piston_py_intern(const piston_py_name *names, size_t n);

/* Server configuration, the same for both server types: each is the body
 * of a method taking the method's args. `running`: options are fixed. */
PyObject *piston_py_set_option(piston_server *srv, bool running,
                               PyObject *args);
PyObject *piston_py_listen_tcp(piston_server *srv, PyObject *args);
PyObject *piston_py_listen_unix(piston_server *srv, PyObject *args);
PyObject *piston_py_listen_fd(piston_server *srv, PyObject *args);
PyObject *piston_py_route_fixed(piston_server *srv, PyObject *args,
                                piston_py_hdrs_mode mode);
PyObject *piston_py_route_dir(piston_server *srv, PyObject *args);

#endif
