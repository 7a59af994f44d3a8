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
  bool websocket;      /* valid WebSocket handshakes get a websocket scope */
} AsgiServerObject;

/* The states of a websocket scope (AsgiRequestObject.ws_state) */
enum {
  ASGI_WS_CONNECTING, /* no answer to the handshake yet */
  ASGI_WS_OPEN,       /* accepted: the engine has the 101 */
  ASGI_WS_CLOSED,     /* the app sent websocket.close (or denied it) */
  ASGI_WS_RESPONSE,   /* websocket.http.response.start: an HTTP answer */
};

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
  char ws;           /* a websocket scope (the handshake was valid) */
  char ws_state;     /* ASGI_WS_* */
  char ws_pressure;  /* a send reported pressure; cleared by EV_DRAIN */
  char ws_connected; /* receive() returned websocket.connect */
} AsgiRequestObject;

/* _piston_asgi.c: adds AsgiServer and AsgiRequest to m; called from
 * PyInit__piston once Error and its subclasses exist. */
int piston_asgi_init(PyObject *m);
/* 0 while r has its handle, else -1 with RuntimeError set */
int piston_asgi_check(AsgiRequestObject *r);

/* asgi_scope.c */
int piston_asgi_scope_init(void);
/* A new HTTP scope dict for q; NULL with an exception set. */
PyObject *piston_asgi_scope(AsgiServerObject *s, piston_req *q);

/* A new websocket scope dict for q; NULL with an exception set. */
PyObject *piston_asgi_ws_scope(AsgiServerObject *s, piston_req *q);

/* asgi_ws.c: the websocket messages of send(), and receive()'s helper */
int piston_asgi_ws_init(void);
/* send(message) of a websocket scope, type its "type" (a str) */
PyObject *piston_asgi_ws_send(AsgiRequestObject *r, PyObject *type,
                              PyObject *message);
/* AsgiRequest.ws_recv() -> a websocket.receive or websocket.disconnect
 * message, or None when the app must wait for the next event. */
PyObject *piston_asgi_ws_recv(AsgiRequestObject *r, PyObject *noargs);

/* asgi_send.c */
int piston_asgi_send_init(PyObject *m);
/* AsgiRequest.send(message): the ASGI send callable. */
PyObject *piston_asgi_send(AsgiRequestObject *r, PyObject *message);
/* Resolves every waiting future (an engine event, or the response done). */
int piston_asgi_wake(AsgiRequestObject *r);
/* The engine's error for rc as a Python exception; NULL. */
PyObject *piston_asgi_resp_err(int rc);
/* http.response.start / http.response.body of message, also the
 * websocket.http.response extension's */
PyObject *piston_asgi_response_start(AsgiRequestObject *r, PyObject *message);
PyObject *piston_asgi_response_body(AsgiRequestObject *r, PyObject *message);
/* The finished awaitable (a new reference) */
PyObject *piston_asgi_done(void);
/* ClientDisconnected("the client went away"); NULL */
PyObject *piston_asgi_disconnected(void);

#endif
