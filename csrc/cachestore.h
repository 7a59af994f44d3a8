/* The response cache's store: stored responses by key, the misses being
 * filled (one request with the host per key, the others waiting on it),
 * LRU eviction under a byte budget, purge and counters. One store per
 * server, shared by every loop thread under one mutex: a hit holds the lock
 * only while it copies an entry (bounded by the maximum entry size), so
 * every loop sees every purge at once and the byte budget is the process's.
 * Knows nothing of requests or HTTP: keys, bytes and opaque waiters. Owned
 * by cachestore.c. */
#ifndef PISTON_CACHESTORE_H
#define PISTON_CACHESTORE_H

#include "piston.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A stored response. Its key (host, target), its head as HTTP/1.1 lines
 * and its body live in data[]; the slices are offsets into it. Immutable
 * once inserted (deadlines excepted), freed only under the store's lock. */
typedef struct piston__cobj {
  struct piston__cobj *hnext, *lprev, *lnext;
  uint64_t hash;
  uint32_t host_len, target_len; /* data[0, host_len) then the target */
  uint32_t sl_off, sl_len;       /* "HTTP/1.1 200 OK\r\n" */
  uint32_t f_off, f_len;         /* the fields a hit repeats */
  uint32_t v_off, v_len;         /* the fields a 304 repeats */
  uint32_t vary_off, vary_len;   /* varied-on request fields, see below */
  uint32_t etag_off, etag_len;   /* 0 length: none */
  uint32_t body_off;
  size_t body_len;
  int status;
  int64_t last_modified;   /* seconds, or -1: none */
  uint64_t created_ms;     /* when the host's answer was stored */
  uint64_t fresh_until_ms; /* served as is before */
  uint64_t swr_until_ms;   /* served stale while a refresh runs before */
  uint64_t sie_until_ms;   /* served stale after a failed refresh before */
  size_t size;             /* bytes charged to the budget */
  char data[];
} piston__cobj;

/* The vary section: for each varied-on field a u16 name length, the name in
 * lower case, a u32 (value length + 1, 0: the field was absent), the
 * value. */
typedef piston_str (*piston__cfield_fn)(void *ctx, const char *name,
                                        size_t len);

/* Something waiting for a miss to be filled (intrusive). */
typedef struct piston__cwaiter {
  struct piston__cwaiter *next;
} piston__cwaiter;

/* A key whose miss is with the host. */
typedef struct piston__cpend {
  struct piston__cpend *hnext;
  uint64_t hash;
  char *key; /* host, then target */
  uint32_t host_len, target_len;
  piston__cwaiter *waiters, **wtail;
  size_t nwaiters;
  uint64_t started_ms;
  bool expired; /* waited too long: no more waiters */
} piston__cpend;

typedef struct piston__cache {
  pthread_mutex_t lock;
  piston__cobj **buckets;
  size_t nbuckets, nobjs;
  piston__cobj *lru_head, *lru_tail; /* head: the most recently used */
  piston__cpend **pbuckets;
  size_t npbuckets;
  size_t bytes, max_bytes, max_entry;
  piston_cache_stats stats;
} piston__cache;

piston__cache *piston__cache_new(void);
void piston__cache_free(piston__cache *c);

uint64_t piston__cache_hash(piston_str host, piston_str target);

/* All of the following: the store's lock held. */
/* The stored response for the key whose varied-on fields get() gives the
 * same values, or NULL; a hit moves it to the LRU's head. */
piston__cobj *piston__cache_find(piston__cache *c, uint64_t hash,
                                 piston_str host, piston_str target,
                                 piston__cfield_fn get, void *ctx);
piston__cpend *piston__cache_pend_find(piston__cache *c, uint64_t hash,
                                       piston_str host, piston_str target);
/* NULL on OOM */
piston__cpend *piston__cache_pend_new(piston__cache *c, uint64_t hash,
                                      piston_str host, piston_str target,
                                      uint64_t now_ms);
/* Takes p out of the store and returns its waiters; frees p. */
piston__cwaiter *piston__cache_pend_done(piston__cache *c, piston__cpend *p);
/* Stores o (taking it), replacing a stored response of the same key and
 * variant, and evicts from the LRU's tail to stay within max_bytes. An
 * entry over max_entry is freed and not stored (returns false). */
bool piston__cache_insert(piston__cache *c, piston__cobj *o);
/* Drops o (a lookup found it unusable, or a refresh made it wrong). */
void piston__cache_remove(piston__cache *c, piston__cobj *o);
/* Drops every response whose target is target (prefix: starts with it),
 * on any host and in every variant; returns how many. */
size_t piston__cache_purge(piston__cache *c, piston_str target, bool prefix);

/* A pass marker (status 0, no head, no body): the key's last response
 * could not be stored, so until fresh_until_ms its requests go to the host
 * side by side instead of waiting on each other (Varnish's hit-for-miss). */
static inline bool piston__cobj_is_pass(const piston__cobj *o) {
  return o->status == 0;
}

/* NULL on OOM */
piston__cobj *piston__cache_pass_new(uint64_t hash, piston_str host,
                                     piston_str target, uint64_t until_ms);

#endif
