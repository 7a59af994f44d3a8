/* Metrics (metrics.h): the shared region, slots, and the text format. */
#define _GNU_SOURCE
#include "metrics.h"
#include "piston.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* seconds: the upper bounds of the latency buckets but +Inf */
static const double bounds[PISTON__M_BUCKETS - 1] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1,    0.25,  0.5,    1,     2.5,  5,     10};
static const char *const methods[PISTON__M_METHODS] = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other"};
static const int rejects[PISTON__M_REJECTS - 1] = {400, 408, 413, 414, 417,
                                                   431, 501, 503, 505};

piston_metrics *piston_metrics_new(size_t nslots) {
  if (nslots == 0 || nslots > 4096)
    return NULL;
  size_t len = sizeof(piston_metrics) + nslots * sizeof(piston__mslot);
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                 -1, 0);
  if (p == MAP_FAILED)
    return NULL;
  piston_metrics *m = p; /* zero-filled: every slot free */
  m->nslots = nslots;
  m->map_len = len;
  return m;
}

piston_metrics *piston_metrics_open(const char *path, size_t nslots) {
  if (!path || nslots == 0 || nslots > 4096) {
    errno = EINVAL;
    return NULL;
  }
  size_t len = sizeof(piston_metrics) + nslots * sizeof(piston__mslot);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return NULL;
  struct stat st;
  int err = 0;
  if (fstat(fd, &st) != 0)
    err = errno;
  /* in a shared directory (/dev/shm) a file of another user, or one others
   * may write, could feed the counters: only one of ours, ours alone */
  else if (st.st_uid != geteuid() || (st.st_mode & 077) || !S_ISREG(st.st_mode))
    err = EPERM;
  /* the first to open it sizes it, zero-filled: every slot free (two at
   * once truncate to the same size); another size is another layout */
  else if (st.st_size == 0 && ftruncate(fd, (off_t)len) != 0)
    err = errno;
  else if (st.st_size != 0 && (size_t)st.st_size != len)
    err = EINVAL;
  void *p = err ? MAP_FAILED
                : mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (!err && p == MAP_FAILED)
    err = errno;
  close(fd);
  if (err) {
    errno = err;
    return NULL;
  }
  piston_metrics *m = p;
  m->nslots = nslots; /* the same values from every process */
  m->map_len = len;
  return m;
}

void piston_metrics_free(piston_metrics *m) {
  if (m)
    munmap(m, m->map_len);
}

/* a slot's owner that exited (a replaced worker) leaves it to the next */
static bool gone(int32_t pid) {
  return pid != 0 && kill(pid, 0) < 0 && errno == ESRCH;
}

piston__mslot *piston__metrics_slot(piston_metrics *m) {
  int32_t me = (int32_t)getpid();
  for (size_t i = 0; i < m->nslots; i++)
    if (atomic_load(&m->slots[i].owner) == me)
      return &m->slots[i];
  for (size_t i = 0; i < m->nslots; i++) {
    piston__mslot *s = &m->slots[i];
    int32_t cur = atomic_load(&s->owner);
    if ((cur == 0 || gone(cur)) &&
        atomic_compare_exchange_strong(&s->owner, &cur, me)) {
      /* counters go on from the previous owner's (a counter must not go
       * back); its gauges died with it */
      atomic_store(&s->in_flight, 0);
      atomic_store(&s->connections, 0);
      return s;
    }
  }
  return NULL;
}

static int method_index(const char *m, size_t n) {
  for (int i = 0; i < PISTON__M_METHODS - 1; i++)
    if (strlen(methods[i]) == n && memcmp(methods[i], m, n) == 0)
      return i;
  return PISTON__M_METHODS - 1;
}

void piston__metrics_request(piston__mslot *s, const char *method, size_t mlen,
                             int status, uint64_t us) {
  int c = status / 100 - 1;
  if (c < 0 || c >= PISTON__M_CLASSES)
    c = PISTON__M_CLASSES - 1;
  piston__m_add(&s->requests[method_index(method, mlen)][c], 1);
  int b = 0;
  while (b < PISTON__M_BUCKETS - 1 && (double)us > bounds[b] * 1e6)
    b++;
  piston__m_add(&s->latency[b], 1);
  piston__m_add(&s->latency_sum_us, us);
}

void piston__metrics_reject(piston__mslot *s, int status) {
  int i = 0;
  while (i < PISTON__M_REJECTS - 1 && rejects[i] != status)
    i++;
  piston__m_add(&s->rejected[i], 1);
}

/* ---- the text format ---- */

typedef struct {
  char *p;
  size_t n, cap;
  bool failed;
} out_t;

static void emit(out_t *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void emit(out_t *o, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int k = o->failed ? 0 : vsnprintf(o->p + o->n, o->cap - o->n, fmt, ap);
    va_end(ap);
    if (o->failed || k < 0)
      return;
    if ((size_t)k < o->cap - o->n) {
      o->n += (size_t)k;
      return;
    }
    char *g = realloc(o->p, o->cap * 2 + (size_t)k);
    if (!g) {
      o->failed = true;
      return;
    }
    o->p = g;
    o->cap = o->cap * 2 + (size_t)k;
  }
}

static uint64_t ld(const _Atomic uint64_t *c) {
  return atomic_load_explicit(c, memory_order_relaxed);
}
static int64_t ldg(const _Atomic int64_t *g) {
  return atomic_load_explicit(g, memory_order_relaxed);
}

static void family(out_t *o, const char *name, const char *type,
                   const char *help) {
  emit(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The cache is each process's own (not in the shared slots): its counters
 * are the answering worker's, labelled with its pid, as the per-worker
 * families are. */
static void render_cache(out_t *o, const piston_cache_stats *c) {
  const struct {
    const char *name, *type, *help;
    uint64_t v;
  } f[] = {
      {"hits_total", "counter", "Requests answered from a fresh entry.",
       c->hits},
      {"stale_hits_total", "counter",
       "Requests answered from a stale entry (stale-while-revalidate, "
       "stale-if-error).",
       c->stale_hits},
      {"misses_total", "counter", "Cacheable requests that went to the app.",
       c->misses},
      {"coalesced_total", "counter",
       "Requests that waited for another request's miss of their key.",
       c->coalesced},
      {"stores_total", "counter", "Responses stored.", c->stores},
      {"uncacheable_total", "counter",
       "Responses to a miss that could not be stored.", c->uncacheable},
      {"evictions_total", "counter", "Entries dropped for room (LRU).",
       c->evictions},
      {"purged_total", "counter", "Entries dropped by a purge.", c->purged},
      {"bytes", "gauge", "Bytes the cache holds.", c->bytes},
      {"entries", "gauge", "Entries the cache holds.", c->entries},
  };
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
    char name[64];
    snprintf(name, sizeof name, "piston_cache_%s", f[i].name);
    family(o, name, f[i].type, f[i].help);
    emit(o, "%s{worker=\"%d\"} %llu\n", name, (int)getpid(),
         (unsigned long long)f[i].v);
  }
}

long piston__metrics_render(const piston_metrics *m,
                            const piston_cache_stats *cache, char **out) {
  out_t o = {malloc(8192), 0, 8192, false};
  if (!o.p)
    return -1;
  const piston__mslot *s = m->slots;
  size_t ns = m->nslots;
  family(&o, "piston_requests_total", "counter",
         "Responses, by request method and status class, all workers.");
  for (int i = 0; i < PISTON__M_METHODS; i++)
    for (int c = 0; c < PISTON__M_CLASSES; c++) {
      uint64_t v = 0;
      for (size_t k = 0; k < ns; k++)
        v += ld(&s[k].requests[i][c]);
      emit(&o, "piston_requests_total{method=\"%s\",status=\"%dxx\"} %llu\n",
           methods[i], c + 1, (unsigned long long)v);
    }
  family(&o, "piston_request_duration_seconds", "histogram",
         "From the first byte of a request to the end of its response.");
  uint64_t cum = 0, sum_us = 0;
  for (int b = 0; b < PISTON__M_BUCKETS; b++) {
    for (size_t k = 0; k < ns; k++)
      cum += ld(&s[k].latency[b]);
    if (b < PISTON__M_BUCKETS - 1)
      emit(&o, "piston_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
           bounds[b], (unsigned long long)cum);
    else
      emit(&o, "piston_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
           (unsigned long long)cum);
  }
  for (size_t k = 0; k < ns; k++)
    sum_us += ld(&s[k].latency_sum_us);
  emit(&o, "piston_request_duration_seconds_sum %.6f\n", (double)sum_us / 1e6);
  emit(&o, "piston_request_duration_seconds_count %llu\n",
       (unsigned long long)cum);
  family(&o, "piston_rejected_total", "counter",
         "Requests the engine answered itself (malformed, too large, too "
         "slow, over a limit), by status.");
  for (int i = 0; i < PISTON__M_REJECTS; i++) {
    uint64_t v = 0;
    for (size_t k = 0; k < ns; k++)
      v += ld(&s[k].rejected[i]);
    if (i < PISTON__M_REJECTS - 1)
      emit(&o, "piston_rejected_total{status=\"%d\"} %llu\n", rejects[i],
           (unsigned long long)v);
    else
      emit(&o, "piston_rejected_total{status=\"other\"} %llu\n",
           (unsigned long long)v);
  }
  /* the rest per worker and summed */
  static const struct {
    const char *name, *type, *help;
    int which;
  } per[] = {
      {"in_flight_requests", "gauge", "Requests with the app now.", 0},
      {"open_connections", "gauge", "Client connections open now.", 1},
      {"received_bytes_total", "counter", "Bytes read from clients.", 2},
      {"sent_bytes_total", "counter", "Bytes written to clients.", 3},
  };
  for (size_t f = 0; f < sizeof per / sizeof per[0]; f++) {
    char name[64], wname[80];
    snprintf(name, sizeof name, "piston_%s", per[f].name);
    snprintf(wname, sizeof wname, "piston_worker_%s", per[f].name);
    int64_t total = 0;
    for (size_t k = 0; k < ns; k++) {
      const piston__mslot *x = &s[k];
      total += per[f].which == 0   ? ldg(&x->in_flight)
               : per[f].which == 1 ? ldg(&x->connections)
               : per[f].which == 2 ? (int64_t)ld(&x->bytes_in)
                                   : (int64_t)ld(&x->bytes_out);
    }
    family(&o, name, per[f].type, per[f].help);
    emit(&o, "%s %lld\n", name, (long long)total);
    family(&o, wname, per[f].type, per[f].help);
    for (size_t k = 0; k < ns; k++) {
      const piston__mslot *x = &s[k];
      int32_t pid = atomic_load(&x->owner);
      if (pid == 0)
        continue;
      int64_t v = per[f].which == 0   ? ldg(&x->in_flight)
                  : per[f].which == 1 ? ldg(&x->connections)
                  : per[f].which == 2 ? (int64_t)ld(&x->bytes_in)
                                      : (int64_t)ld(&x->bytes_out);
      emit(&o, "%s{worker=\"%d\"} %lld\n", wname, (int)pid, (long long)v);
    }
  }
  if (cache)
    render_cache(&o, cache);
  if (o.failed) {
    free(o.p);
    return -1;
  }
  *out = o.p;
  return (long)o.n;
}
