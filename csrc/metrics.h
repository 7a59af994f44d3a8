/* Metrics: counters a Prometheus scraper reads (piston_server_metrics),
 * kept in a region of slots, one per process. The region is an anonymous
 * MAP_SHARED mapping made before the workers fork (piston_metrics_new), so
 * that whichever worker answers the scrape sums every worker's slot; each
 * process claims a free slot (one whose owner pid is 0 or gone) with a
 * compare-and-swap, and counts into it with relaxed atomics: no lock, no
 * syscall, nothing shared between loops but cache lines. Owned by
 * metrics.c. */
#ifndef PISTON_METRICS_H
#define PISTON_METRICS_H

#include "piston.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define PISTON__M_METHODS 8  /* GET HEAD POST PUT DELETE PATCH OPTIONS other */
#define PISTON__M_CLASSES 5  /* 1xx..5xx */
#define PISTON__M_BUCKETS 15 /* latency buckets, the last one +Inf */
#define PISTON__M_REJECTS 10 /* 400 408 413 414 417 431 501 503 505 other */

typedef struct piston__mslot {
  _Atomic int32_t owner; /* pid, 0: free */
  _Atomic uint64_t requests[PISTON__M_METHODS][PISTON__M_CLASSES];
  _Atomic uint64_t latency[PISTON__M_BUCKETS];
  _Atomic uint64_t latency_sum_us;
  _Atomic int64_t in_flight, connections;
  _Atomic uint64_t bytes_in, bytes_out;
  _Atomic uint64_t rejected[PISTON__M_REJECTS];
  char pad[64];
} piston__mslot;

struct piston_metrics {
  size_t nslots;
  size_t map_len;
  piston__mslot slots[];
};

/* This process's slot of m, claimed on first use (NULL: the region is
 * full). */
piston__mslot *piston__metrics_slot(struct piston_metrics *m);
void piston__metrics_request(piston__mslot *s, const char *method, size_t mlen,
                             int status, uint64_t us);
void piston__metrics_reject(piston__mslot *s, int status);
/* The text exposition format (version 0.0.4), summed over the slots, with
 * per-worker families beside, and the response cache's counters of the
 * process that answers (cache: NULL without a cache); *out is malloc'd.
 * Returns its length, or -1 without memory. */
long piston__metrics_render(const struct piston_metrics *m,
                            const piston_cache_stats *cache, char **out);

static inline void piston__m_add(_Atomic uint64_t *c, uint64_t n) {
  atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}
static inline void piston__m_gauge(_Atomic int64_t *g, int64_t d) {
  atomic_fetch_add_explicit(g, d, memory_order_relaxed);
}

#endif
