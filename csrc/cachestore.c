/* The response cache's store (cachestore.h): a chained hash table of stored
 * responses with an LRU list through them, and a second, smaller table of
 * the keys whose miss is with the host. */
#include "cachestore.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PEND_BUCKETS 256

piston__cache *piston__cache_new(void) {
  piston__cache *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->nbuckets = 64;
  c->buckets = calloc(c->nbuckets, sizeof *c->buckets);
  c->npbuckets = PEND_BUCKETS;
  c->pbuckets = calloc(c->npbuckets, sizeof *c->pbuckets);
  if (!c->buckets || !c->pbuckets) {
    free(c->buckets);
    free(c->pbuckets);
    free(c);
    return NULL;
  }
  pthread_mutex_init(&c->lock, NULL);
  return c;
}

void piston__cache_free(piston__cache *c) {
  if (!c)
    return;
  for (piston__cobj *o = c->lru_head, *n; o; o = n) {
    n = o->lnext;
    free(o);
  }
  for (size_t i = 0; i < c->npbuckets; i++)
    for (piston__cpend *p = c->pbuckets[i], *n; p; p = n) {
      n = p->hnext;
      free(p->key);
      free(p);
    }
  free(c->buckets);
  free(c->pbuckets);
  pthread_mutex_destroy(&c->lock);
  free(c);
}

/* FNV-1a over the host (case-insensitive, as hosts are) and the target */
uint64_t piston__cache_hash(piston_str host, piston_str target) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < host.len; i++) {
    unsigned char ch = (unsigned char)host.ptr[i];
    h = (h ^ (unsigned char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch)) *
        1099511628211ull;
  }
  h = (h ^ 0xff) * 1099511628211ull;
  for (size_t i = 0; i < target.len; i++)
    h = (h ^ (unsigned char)target.ptr[i]) * 1099511628211ull;
  return h;
}

static bool key_is(const char *key, uint32_t hl, uint32_t tl, piston_str host,
                   piston_str target) {
  return hl == host.len && tl == target.len &&
         strncasecmp(key, host.ptr, hl) == 0 &&
         memcmp(key + hl, target.ptr, tl) == 0;
}

/* Do the request's fields match the ones o was stored for? */
static bool vary_matches(const piston__cobj *o, piston__cfield_fn get,
                         void *ctx) {
  const unsigned char *p = (const unsigned char *)o->data + o->vary_off;
  const unsigned char *end = p + o->vary_len;
  while (p < end) {
    uint16_t nl;
    uint32_t vl;
    memcpy(&nl, p, 2);
    const char *name = (const char *)p + 2;
    memcpy(&vl, p + 2 + nl, 4);
    const char *val = (const char *)p + 6 + nl;
    piston_str got = get(ctx, name, nl);
    if (vl == 0 ? got.ptr != NULL
                : !got.ptr || got.len != vl - 1 ||
                      memcmp(got.ptr, val, vl - 1) != 0)
      return false;
    p += 6 + nl + (vl ? vl - 1 : 0);
  }
  return true;
}

static void lru_unlink(piston__cache *c, piston__cobj *o) {
  if (o->lprev)
    o->lprev->lnext = o->lnext;
  else
    c->lru_head = o->lnext;
  if (o->lnext)
    o->lnext->lprev = o->lprev;
  else
    c->lru_tail = o->lprev;
  o->lprev = o->lnext = NULL;
}

static void lru_push(piston__cache *c, piston__cobj *o) {
  o->lprev = NULL;
  o->lnext = c->lru_head;
  if (c->lru_head)
    c->lru_head->lprev = o;
  else
    c->lru_tail = o;
  c->lru_head = o;
}

piston__cobj *piston__cache_find(piston__cache *c, uint64_t hash,
                                 piston_str host, piston_str target,
                                 piston__cfield_fn get, void *ctx) {
  for (piston__cobj *o = c->buckets[hash & (c->nbuckets - 1)]; o;
       o = o->hnext) {
    if (o->hash != hash ||
        !key_is(o->data, o->host_len, o->target_len, host, target) ||
        !vary_matches(o, get, ctx))
      continue;
    if (c->lru_head != o) {
      lru_unlink(c, o);
      lru_push(c, o);
    }
    return o;
  }
  return NULL;
}

static void unchain(piston__cache *c, piston__cobj *o) {
  piston__cobj **pp = &c->buckets[o->hash & (c->nbuckets - 1)];
  while (*pp != o)
    pp = &(*pp)->hnext;
  *pp = o->hnext;
  lru_unlink(c, o);
  c->bytes -= o->size;
  c->nobjs--;
}

void piston__cache_remove(piston__cache *c, piston__cobj *o) {
  unchain(c, o);
  free(o);
}

/* Same key and same variant (the same varied-on fields and values); a
 * pass marker stands for every variant of its key */
static bool same_variant(const piston__cobj *a, const piston__cobj *b) {
  return a->hash == b->hash && a->host_len == b->host_len &&
         a->target_len == b->target_len &&
         strncasecmp(a->data, b->data, a->host_len) == 0 &&
         memcmp(a->data + a->host_len, b->data + b->host_len, a->target_len) ==
             0 &&
         ((a->vary_len == b->vary_len &&
           memcmp(a->data + a->vary_off, b->data + b->vary_off, a->vary_len) ==
               0) ||
          piston__cobj_is_pass(a) || piston__cobj_is_pass(b));
}

static void grow(piston__cache *c) {
  size_t n = c->nbuckets * 2;
  piston__cobj **b = calloc(n, sizeof *b);
  if (!b)
    return; /* longer chains, still correct */
  for (size_t i = 0; i < c->nbuckets; i++)
    for (piston__cobj *o = c->buckets[i], *next; o; o = next) {
      next = o->hnext;
      o->hnext = b[o->hash & (n - 1)];
      b[o->hash & (n - 1)] = o;
    }
  free(c->buckets);
  c->buckets = b;
  c->nbuckets = n;
}

bool piston__cache_insert(piston__cache *c, piston__cobj *o) {
  if (o->size > c->max_entry || o->size > c->max_bytes) {
    free(o);
    return false;
  }
  for (piston__cobj *e = c->buckets[o->hash & (c->nbuckets - 1)], *next; e;
       e = next) {
    next = e->hnext;
    if (same_variant(e, o))
      piston__cache_remove(c, e);
  }
  while (c->bytes + o->size > c->max_bytes && c->lru_tail) {
    piston__cache_remove(c, c->lru_tail);
    c->stats.evictions++;
  }
  if (c->nobjs >= c->nbuckets)
    grow(c);
  piston__cobj **head = &c->buckets[o->hash & (c->nbuckets - 1)];
  o->hnext = *head;
  *head = o;
  lru_push(c, o);
  c->bytes += o->size;
  c->nobjs++;
  if (!piston__cobj_is_pass(o))
    c->stats.stores++;
  return true;
}

size_t piston__cache_purge(piston__cache *c, piston_str target, bool prefix) {
  size_t n = 0;
  for (piston__cobj *o = c->lru_head, *next; o; o = next) {
    next = o->lnext;
    const char *t = o->data + o->host_len;
    bool hit = prefix ? o->target_len >= target.len &&
                            memcmp(t, target.ptr, target.len) == 0
                      : o->target_len == target.len &&
                            memcmp(t, target.ptr, target.len) == 0;
    if (hit) {
      piston__cache_remove(c, o);
      n++;
    }
  }
  c->stats.purged += n;
  return n;
}

piston__cobj *piston__cache_pass_new(uint64_t hash, piston_str host,
                                     piston_str target, uint64_t until_ms) {
  piston__cobj *o = calloc(1, sizeof *o + host.len + target.len);
  if (!o)
    return NULL;
  o->hash = hash;
  o->host_len = (uint32_t)host.len;
  o->target_len = (uint32_t)target.len;
  if (host.len)
    memcpy(o->data, host.ptr, host.len);
  memcpy(o->data + host.len, target.ptr, target.len);
  o->body_off = o->sl_off = o->f_off = o->v_off = o->vary_off =
      (uint32_t)(host.len + target.len);
  o->last_modified = -1;
  o->fresh_until_ms = until_ms;
  o->size = sizeof *o + host.len + target.len;
  return o;
}

piston__cpend *piston__cache_pend_find(piston__cache *c, uint64_t hash,
                                       piston_str host, piston_str target) {
  for (piston__cpend *p = c->pbuckets[hash & (c->npbuckets - 1)]; p;
       p = p->hnext)
    if (p->hash == hash &&
        key_is(p->key, p->host_len, p->target_len, host, target))
      return p;
  return NULL;
}

piston__cpend *piston__cache_pend_new(piston__cache *c, uint64_t hash,
                                      piston_str host, piston_str target,
                                      uint64_t now_ms) {
  piston__cpend *p = calloc(1, sizeof *p);
  char *key = malloc(host.len + target.len + 1);
  if (!p || !key) {
    free(p);
    free(key);
    return NULL;
  }
  if (host.len)
    memcpy(key, host.ptr, host.len);
  memcpy(key + host.len, target.ptr, target.len);
  p->key = key;
  p->hash = hash;
  p->host_len = (uint32_t)host.len;
  p->target_len = (uint32_t)target.len;
  p->wtail = &p->waiters;
  p->started_ms = now_ms;
  piston__cpend **head = &c->pbuckets[hash & (c->npbuckets - 1)];
  p->hnext = *head;
  *head = p;
  return p;
}

piston__cwaiter *piston__cache_pend_done(piston__cache *c, piston__cpend *p) {
  piston__cpend **pp = &c->pbuckets[p->hash & (c->npbuckets - 1)];
  while (*pp != p)
    pp = &(*pp)->hnext;
  *pp = p->hnext;
  piston__cwaiter *w = p->waiters;
  free(p->key);
  free(p);
  return w;
}
