/* The ASGI side of the extension: the types shared by _piston_asgi.c (the
 * server and the request handle), asgi_scope.c (the HTTP scope) and
 * asgi_send.c (the app's send callable). */
#ifndef PISTON_PY_ASGI_H
#define PISTON_PY_ASGI_H

#include "common.h"

typedef struct {
  PyObject_HEAD piston_server *srv;
  piston_loop *loop;
  PyObject *on_request; /* callable(exchange, scope) */
  PyTypeObject *cls;    /* what a_on_request makes: AsgiRequest or a subclass */
  long live;            /* handles held */
  /* scope parts that are the same for every request (set_scope) */
  PyObject *root_path; /* str */
  PyObject *server;    /* (host, port) or None: a tuple, shared */
  PyObject *state;     /* the lifespan state: copied into each scope */
} AsgiServerObject;

/* One request and its response. The exchange's state lives here, in C, so
 * that send() of the common messages runs without a Python frame; the
 * Python subclass (python/piston/asgi.py Exchange) reads and writes the
 * same fields as attributes for the rarer paths (receive, pathsend,
 * trailers, the end of the app). */
typedef struct {
  PyObject_HEAD AsgiServerObject *server; /* strong */
  piston_req *req;                        /* NULL once released */
  bool ended;                             /* the engine has the end or abort */
  int status;        /* from http.response.start; 0: none yet */
  PyObject *headers; /* ... and its headers */
  char trailers;     /* the app will send http.response.trailers */
  char started;      /* the engine has the status and headers */
  char complete;     /* the engine has the whole response */
  char closed;       /* the client went away (or the exchange is over) */
  char body_done;    /* receive() returned the last body message */
  PyObject *waiters; /* futures to wake on the next event, or NULL */
} AsgiRequestObject;

/* _piston_asgi.c: adds AsgiServer and AsgiRequest to m; called from
 * PyInit__piston once Error and its subclasses exist. */
int piston_asgi_init(PyObject *m);

/* asgi_scope.c */
int piston_asgi_scope_init(void);
/* A new HTTP scope dict for q; NULL with an exception set. */
PyObject *piston_asgi_scope(AsgiServerObject *s, piston_req *q);

/* asgi_send.c */
int piston_asgi_send_init(PyObject *m);
/* AsgiRequest.send(message): the ASGI send callable. */
PyObject *piston_asgi_send(AsgiRequestObject *r, PyObject *message);
/* Resolves every waiting future (an engine event, or the response done). */
int piston_asgi_wake(AsgiRequestObject *r);
/* The engine's error for rc as a Python exception; NULL. */
PyObject *piston_asgi_resp_err(int rc);

#endif
