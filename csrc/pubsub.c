/* WebSocket publish/subscribe: the server's topics, each with the sessions
 * subscribed to it. One lock (the server's pubsub_lock) guards the table
 * and every session's list of topics; a publish frames its message once,
 * outside the lock, and queues the same bytes to each subscriber through
 * the writer (direct on the subscriber's loop thread, posted to its loop
 * otherwise), so no host code runs per subscriber.
 *
 * Lock order: pubsub_lock, then a request's lock (the writer's). Nothing
 * takes them the other way round: subscribe and the end of a session take
 * only pubsub_lock. The table holds a reference to each subscriber. */
#define _GNU_SOURCE
#include "util.h"
#include "writer.h"
#include "ws.h"

#include <stdlib.h>
#include <string.h>

typedef struct topic {
  struct topic *next; /* in its bucket */
  uint64_t hash;
  size_t len;
  piston_req **subs;
  size_t nsubs, csubs;
  char name[];
} topic;

struct piston__pubsub {
  topic **buckets;
  size_t nbuckets, ntopics;
};

static uint64_t hash_of(const void *p, size_t n) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (size_t i = 0; i < n; i++)
    h = (h ^ ((const unsigned char *)p)[i]) * 1099511628211ull;
  return h;
}

/* Lock held. */
static topic **slot_of(struct piston__pubsub *ps, const void *name, size_t len,
                       uint64_t h) {
  topic **pp = &ps->buckets[h & (ps->nbuckets - 1)];
  while (*pp && !((*pp)->hash == h && (*pp)->len == len &&
                  memcmp((*pp)->name, name, len) == 0))
    pp = &(*pp)->next;
  return pp;
}

/* Lock held: doubles the table when it holds more topics than buckets. */
static int grow(struct piston__pubsub *ps) {
  size_t n = ps->nbuckets ? ps->nbuckets * 2 : 64;
  topic **b = calloc(n, sizeof *b);
  if (!b)
    return PISTON_ENOMEM;
  for (size_t i = 0; i < ps->nbuckets; i++) {
    while (ps->buckets[i]) {
      topic *t = ps->buckets[i];
      ps->buckets[i] = t->next;
      t->next = b[t->hash & (n - 1)];
      b[t->hash & (n - 1)] = t;
    }
  }
  free(ps->buckets);
  ps->buckets = b;
  ps->nbuckets = n;
  return 0;
}

static int push(void ***arr, size_t *n, size_t *cap, void *v) {
  if (*n == *cap) {
    size_t nc = *cap ? *cap * 2 : 4;
    void **g = realloc(*arr, nc * sizeof *g);
    if (!g)
      return PISTON_ENOMEM;
    *arr = g;
    *cap = nc;
  }
  (*arr)[(*n)++] = v;
  return 0;
}

/* Lock held: removes v from arr (order does not matter); true if found. */
static bool drop(void **arr, size_t *n, const void *v) {
  for (size_t i = 0; i < *n; i++) {
    if (arr[i] == v) {
      arr[i] = arr[--*n];
      return true;
    }
  }
  return false;
}

/* Lock held: frees t if nobody is subscribed any more. */
static void maybe_remove(struct piston__pubsub *ps, topic *t) {
  if (t->nsubs)
    return;
  topic **pp = slot_of(ps, t->name, t->len, t->hash);
  *pp = t->next;
  ps->ntopics--;
  free(t->subs);
  free(t);
}

/* The end of a session (ws.c, through req->ws_unsub; piston_ws_abort at
 * once): every subscription goes, with the table's references. Once is
 * enough: a second call finds none. */
void piston__ws_unsubscribe_all(piston_req *r) {
  piston_server *srv = r->loop->srv;
  pthread_mutex_lock(&srv->pubsub_lock);
  size_t n = r->ws_ntopics;
  for (size_t i = 0; i < n; i++) {
    topic *t = r->ws_topics[i];
    drop((void **)t->subs, &t->nsubs, r);
    maybe_remove(srv->pubsub, t);
  }
  r->ws_ntopics = 0;
  r->ws_topics_closed = true;
  pthread_mutex_unlock(&srv->pubsub_lock);
  for (size_t i = 0; i < n; i++)
    piston_req_release(r);
}

int piston_ws_subscribe(piston_req *r, const void *name, size_t len) {
  if (len && !name)
    return PISTON_EINVAL;
  piston_server *srv = r->loop->srv;
  uint64_t h = hash_of(name, len);
  pthread_mutex_lock(&srv->pubsub_lock);
  pthread_mutex_lock(&r->lock);
  int rc = r->upgrade != UPGRADE_WS && r->upgrade != UPGRADE_WS_OPEN
               ? PISTON_ESTATE
               : 0;
  pthread_mutex_unlock(&r->lock);
  if (rc == 0 && r->ws_topics_closed)
    rc = PISTON_ECLOSED; /* its end came first: nothing would drop it */
  if (rc < 0)
    goto out;
  struct piston__pubsub *ps = srv->pubsub;
  if (!ps && !(ps = srv->pubsub = calloc(1, sizeof *ps))) {
    rc = PISTON_ENOMEM;
    goto out;
  }
  if (ps->ntopics >= ps->nbuckets && (rc = grow(ps)) < 0)
    goto out;
  topic **pp = slot_of(ps, name, len, h);
  topic *t = *pp;
  if (!t) {
    if (!(t = calloc(1, sizeof *t + len + 1))) {
      rc = PISTON_ENOMEM;
      goto out;
    }
    t->hash = h;
    t->len = len;
    if (len)
      memcpy(t->name, name, len);
    *pp = t;
    ps->ntopics++;
  }
  for (size_t i = 0; i < t->nsubs; i++)
    if (t->subs[i] == r)
      goto out; /* already */
  if ((rc = push((void ***)&t->subs, &t->nsubs, &t->csubs, r)) < 0 ||
      (rc = push(&r->ws_topics, &r->ws_ntopics, &r->ws_ctopics, t)) < 0) {
    drop((void **)t->subs, &t->nsubs, r);
    maybe_remove(ps, t);
    goto out;
  }
  r->ws_unsub = piston__ws_unsubscribe_all;
  piston_req_retain(r); /* the table's */
out:
  pthread_mutex_unlock(&srv->pubsub_lock);
  return rc;
}

int piston_ws_unsubscribe(piston_req *r, const void *name, size_t len) {
  piston_server *srv = r->loop->srv;
  pthread_mutex_lock(&srv->pubsub_lock);
  topic *t =
      srv->pubsub ? *slot_of(srv->pubsub, name, len, hash_of(name, len)) : NULL;
  bool was = t && drop((void **)t->subs, &t->nsubs, r);
  if (was) {
    drop(r->ws_topics, &r->ws_ntopics, t);
    maybe_remove(srv->pubsub, t);
  }
  pthread_mutex_unlock(&srv->pubsub_lock);
  if (was)
    piston_req_release(r);
  return was;
}

int piston_ws_is_subscribed(const piston_req *r, const void *name, size_t len) {
  piston_server *srv = r->loop->srv;
  pthread_mutex_lock(&srv->pubsub_lock);
  /* the session's own list: usually far shorter than the topic's */
  bool is = false;
  for (size_t i = 0; i < r->ws_ntopics && !is; i++) {
    const topic *t = r->ws_topics[i];
    is = t->len == len && (len == 0 || memcmp(t->name, name, len) == 0);
  }
  pthread_mutex_unlock(&srv->pubsub_lock);
  return is;
}

size_t piston_ws_subscribers(piston_server *srv, const void *name, size_t len) {
  pthread_mutex_lock(&srv->pubsub_lock);
  topic *t =
      srv->pubsub ? *slot_of(srv->pubsub, name, len, hash_of(name, len)) : NULL;
  size_t n = t ? t->nsubs : 0;
  pthread_mutex_unlock(&srv->pubsub_lock);
  return n;
}

int piston_ws_publish(piston_server *srv, const void *name, size_t len,
                      int opcode, const void *data, size_t dlen,
                      const piston_req *except) {
  if ((opcode != PISTON_WS_TEXT && opcode != PISTON_WS_BINARY) ||
      (dlen && !data) || (len && !name))
    return PISTON_EINVAL;
  /* framed once, for every subscriber */
  piston__outq frame;
  piston__outq_init(&frame);
  int rc = piston__ws_frame(&frame, opcode, NULL, 0, data, dlen);
  if (rc < 0) {
    piston__outq_free(&frame);
    return rc;
  }
  int sent = 0;
  pthread_mutex_lock(&srv->pubsub_lock);
  topic *t =
      srv->pubsub ? *slot_of(srv->pubsub, name, len, hash_of(name, len)) : NULL;
  for (size_t i = 0; t && i < t->nsubs; i++)
    if (t->subs[i] != except)
      sent += piston__ws_queue_frame(t->subs[i], frame.buf, frame.len);
  pthread_mutex_unlock(&srv->pubsub_lock);
  piston__outq_free(&frame);
  return sent;
}

void piston__pubsub_free(piston_server *srv) {
  struct piston__pubsub *ps = srv->pubsub;
  if (!ps)
    return;
  for (size_t i = 0; i < ps->nbuckets; i++) {
    while (ps->buckets[i]) {
      topic *t = ps->buckets[i];
      ps->buckets[i] = t->next;
      free(t->subs);
      free(t);
    }
  }
  free(ps->buckets);
  free(ps);
  srv->pubsub = NULL;
}
