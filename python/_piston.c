/* piston._piston: the CPython face of the engine (csrc/piston.h). It only
 * translates: engine handles become Python objects and Python calls become
 * engine calls.
 *
 * This file is the module: its functions, its exceptions, its constants
 * (made from the X-macro maps of piston.h, so that every engine error,
 * option and event has its name here without a copy) and the types of the
 * two hosts: WSGI (wsgi.h: wsgi_server.c, wsgi_request.c, wsgi_environ.c,
 * wsgi_input.c) and ASGI (asgi.h: _piston_asgi.c, asgi_scope.c,
 * asgi_send.c). */
#include "asgi.h"
#include "wsgi.h"

static PyObject *mod_strerror(PyObject *m, PyObject *arg) {
  (void)m;
  long v = PyLong_AsLong(arg);
  if (v == -1 && PyErr_Occurred())
    return NULL;
  return PyUnicode_FromString(piston_strerror((int)v));
}

/* The engine's own reason phrases: the WSGI host passes no reason for a
 * status that carries the engine's phrase, so the engine's ready-made
 * status line is used. */
static PyObject *mod_reason(PyObject *m, PyObject *arg) {
  (void)m;
  long v = PyLong_AsLong(arg);
  if (v == -1 && PyErr_Occurred())
    return NULL;
  const char *p = v >= 100 && v <= 999 ? piston_status_reason((int)v) : NULL;
  if (!p)
    Py_RETURN_NONE;
  return PyUnicode_FromString(p);
}

/* metrics_region(nslots): a shared region for piston_server_metrics, made
 * before the workers fork (a capsule; it lives as long as the process, and
 * its memory is the workers' too). */
static PyObject *mod_metrics_region(PyObject *m, PyObject *arg) {
  (void)m;
  long n = PyLong_AsLong(arg);
  if (n == -1 && PyErr_Occurred())
    return NULL;
  piston_metrics *r = n > 0 ? piston_metrics_new((size_t)n) : NULL;
  if (!r)
    return PyErr_NoMemory();
  return PyCapsule_New(r, "piston.metrics", NULL);
}

static PyMethodDef module_methods[] = {
    {"metrics_region", mod_metrics_region, METH_O,
     "metrics_region(nslots) -> a region shared by forked workers"},
    {"strerror", mod_strerror, METH_O, "strerror(code) -> message"},
    {"reason", mod_reason, METH_O,
     "reason(status) -> the engine's reason phrase for it, or None"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    "piston._piston",
    "The CPython binding of the Piston HTTP/1.1 engine.",
    -1,
    module_methods,
    NULL,
    NULL,
    NULL,
    NULL};

/* E_<name> for each engine error, OPT_<name> for each option, EV_<name>
 * for each request event, TLS_<name> for each TLS setting. */
static int add_constants(PyObject *m) {
  static const struct {
    const char *name;
    int value;
  } consts[] = {
#define ERR_CONST_(name, value, msg) {"E_" #name, PISTON_E##name},
      PISTON_ERRNO_MAP(ERR_CONST_)
#undef ERR_CONST_
#define OPT_CONST_(name, doc) {"OPT_" #name, PISTON_OPT_##name},
          PISTON_OPTION_MAP(OPT_CONST_)
#undef OPT_CONST_
#define EV_CONST_(name, bit, doc) {"EV_" #name, PISTON_EV_##name},
              PISTON_EVENT_MAP(EV_CONST_)
#undef EV_CONST_
#define TLS_CONST_(name, doc) {"TLS_" #name, PISTON_TLS_##name},
                  PISTON_TLS_OPTION_MAP(TLS_CONST_)
#undef TLS_CONST_
  };
  for (size_t i = 0; i < sizeof consts / sizeof consts[0]; i++)
    if (PyModule_AddIntConstant(m, consts[i].name, consts[i].value) < 0)
      return -1;
  return 0;
}

/* The WSGI types, by the names the module gives them. */
static const struct {
  const char *name;
  PyTypeObject *type;
} wsgi_types[] = {
    {"Server", &piston_wsgi_ServerType},
    {"Request", &piston_wsgi_RequestType},
    {"Input", &piston_wsgi_InputType},
};

PyMODINIT_FUNC PyInit__piston(void);
PyMODINIT_FUNC PyInit__piston(void) {
  for (size_t i = 0; i < sizeof wsgi_types / sizeof wsgi_types[0]; i++)
    if (PyType_Ready(wsgi_types[i].type) < 0)
      return NULL;
  PyObject *m = PyModule_Create(&moduledef);
  if (!m)
    return NULL;
  piston_py_Error = PyErr_NewExceptionWithDoc(
      "piston._piston.Error", "An engine error: args are (code, message).",
      PyExc_OSError, NULL);
  piston_py_ClientDisconnected =
      PyErr_NewExceptionWithDoc("piston._piston.ClientDisconnected",
                                "The client went away.", piston_py_Error, NULL);
  piston_py_BodyTooLarge = PyErr_NewExceptionWithDoc(
      "piston._piston.BodyTooLarge",
      "The request body is over the configured limit (the engine answers "
      "413).",
      piston_py_Error, NULL);
  if (!piston_py_Error || !piston_py_ClientDisconnected ||
      !piston_py_BodyTooLarge)
    goto fail;
  for (size_t i = 0; i < sizeof wsgi_types / sizeof wsgi_types[0]; i++)
    if (piston_py_add_object(m, wsgi_types[i].name,
                             (PyObject *)wsgi_types[i].type) < 0)
      goto fail;
  if (piston_py_add_object(m, "Error", piston_py_Error) < 0 ||
      piston_py_add_object(m, "ClientDisconnected",
                           piston_py_ClientDisconnected) < 0 ||
      piston_py_add_object(m, "BodyTooLarge", piston_py_BodyTooLarge) < 0 ||
      add_constants(m) < 0 || piston_wsgi_environ_init() < 0 ||
      piston_asgi_init(m) < 0)
    goto fail;
  return m;
fail:
  Py_DECREF(m);
  return NULL;
}
