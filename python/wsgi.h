/* The WSGI side of the extension: the types shared by wsgi_server.c (the
 * queue and the Server), wsgi_request.c (the Request handle and its
 * response), wsgi_environ.c (the environ) and wsgi_input.c (wsgi.input).
 *
 * The engine's loops run on C threads of their own and never touch Python:
 * the request callback pushes the handle onto a queue (a thread-local list
 * per loop, moved to the shared queue once per batch). Python worker
 * threads take handles from that queue with Server.next_request(),
 * releasing the GIL only while the queue is empty, and answer them with the
 * Request methods, which release the GIL only to wait for PISTON_EV_DRAIN or
 * PISTON_EV_BODY.
 *
 * Events: each request taken by a worker gets a slot (a condition variable
 * plus event bits) from a pool that is never freed. The engine's event
 * callback runs on the loop thread; under the hub's mutex it finds the slot
 * through piston_req_userdata(), which the worker sets and clears under the
 * same mutex, so a late event can never reach a slot that was recycled.
 *
 * Ownership: the engine gives the host one reference per request; the
 * Request object owns it and drops it in finish() (or when it is freed). */
#ifndef PISTON_PY_WSGI_H
#define PISTON_PY_WSGI_H

#include "common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

typedef struct slot {
  struct slot *next_free;
  piston_req *req;
  int events;
  pthread_cond_t cv;
} slot;

/* What the loops and the pool threads of one Server share; touched without
 * the GIL, so it holds no Python object. */
typedef struct hub {
  pthread_mutex_t mu;
  pthread_cond_t queue_cv;
  piston_req **queue; /* ring buffer */
  size_t qcap, qhead, qlen;
  int waiters;
  bool closing;
  slot *free_slots;
  atomic_long live; /* handles held by the host */
  atomic_long requests;
} hub;

typedef struct {
  PyObject_HEAD piston_server *srv;
  hub *h;
  piston_loop **loops;
  pthread_t *threads;
  int nloops;
  bool started, joined;
} ServerObject;

typedef struct {
  PyObject_HEAD ServerObject *server; /* strong */
  piston_req *req;                    /* NULL once finished */
  slot *slot;
  bool ended;        /* end/send/abort done: finish() must not abort */
  bool host_started; /* start/send was called */
} RequestObject;

extern PyTypeObject piston_wsgi_ServerType, piston_wsgi_RequestType,
    piston_wsgi_InputType;

/* wsgi_server.c: gives the slot back to the pool and unlinks it from req;
 * h->mu held. */
void piston_wsgi_slot_put_locked(hub *h, slot *s, piston_req *req);

/* wsgi_request.c */
/* 0, or -1 with RuntimeError once the request is finished. */
int piston_wsgi_req_check(RequestObject *r);
void piston_wsgi_req_clear_events(RequestObject *r, int bits);
/* Waits with the GIL released until one of mask's bits is set; returns the
 * events. */
int piston_wsgi_req_wait(RequestObject *r, int mask);

/* wsgi_environ.c: the keys every environ has, made once at import */
int piston_wsgi_environ_init(void);
/* wsgi_environ.c: a copy of base with the request's CGI keys; root is the
 * SCRIPT_NAME, taken off the front of PATH_INFO. NULL with an exception. */
PyObject *piston_wsgi_environ(piston_req *req, PyObject *base, const char *root,
                              Py_ssize_t root_len);

#endif
