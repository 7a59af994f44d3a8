/* Header lists from Python to the engine's piston_header[], shared by the
 * WSGI (str pairs, PEP 3333) and ASGI (bytes pairs) sides of the
 * extension. Views point into the Python objects where possible; encoded
 * copies are kept alive in `keep` until piston_py_hdrs_free. */
#ifndef PISTON_PY_HDRS_H
#define PISTON_PY_HDRS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "piston.h"

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

#endif
