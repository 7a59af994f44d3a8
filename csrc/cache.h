/* The response cache's protocol side: a request's key, answers from a
 * stored response (HTTP/1.1 bytes or an HTTP/2 stream's fields, HEAD, 304,
 * byte ranges, Age), the requests that wait on another's miss, and the
 * miss's end. The store is cachestore.h; the capture of a host's response,
 * cachecap.c. Owned by cache.c. */
#ifndef PISTON_CACHE_H
#define PISTON_CACHE_H

#include "cachestore.h"
#include "req.h"

static inline bool piston__cache_on(const piston_server *srv) {
  return srv->opt[PISTON_OPT_CACHE_SIZE] > 0;
}

/* Loop thread, from the router, for a request no native route took: 1 when
 * the cache does not answer it (it may have become the miss's filler, or a
 * waiter: req->cache_parked, whose handler then hands it to no host), else
 * 0 or a PISTON_E* code as a native route's answer, *status what was
 * sent. */
int piston__cache_route(piston__conn *c, piston_req *r, bool keep, int *status);

/* The request's key parts; false when it has none the cache can use. */
bool piston__cache_key(const piston_req *r, piston_str *host,
                       piston_str *target);
/* piston__cfield_fn on a request */
piston_str piston__cache_req_field(void *req, const char *name, size_t len);

/* Writes o's answer to r onto q: on HTTP/1.1 the whole response, on HTTP/2
 * the head as the stream's fields (RESP_STARTED) and the body onto q. The
 * store's lock held. Returns the status sent or a PISTON_E* code. */
int piston__cache_emit(piston_req *r, piston__outq *q, const piston__cobj *o,
                       bool keep, uint64_t now_ms);

/* A host's response being captured (cachecap.c; guarded by the request's
 * lock). */
typedef struct piston__ccap {
  piston__cobj *o; /* being built; the body grows at the end of its data */
  size_t room;     /* bytes of o->data allocated */
  uint64_t ttl_ms, swr_ms, sie_ms;
  bool stale_served; /* a 5xx was answered with the stale response */
  bool failed;       /* cannot be stored after all */
} piston__ccap;
void piston__cache_cap_free(piston__ccap *cap);

/* Any thread, the store's lock held: the miss r was filling is over (the
 * response stored, or not); returns its waiters, to be woken with
 * piston__cache_wake once the lock is released. */
piston__cwaiter *piston__cache_fill_done(piston__cache *c, piston_req *r);
/* Any thread, no lock held: each waiter is answered from the store on its
 * loop, or goes to the host. */
void piston__cache_wake(piston__cwaiter *w);

#endif
