/* The response cache's protocol side (cache.h). A GET or HEAD that no
 * native route takes is looked up here before any host sees it: a fresh
 * stored response answers it at once, as a native route does; a key whose
 * miss is already with the host makes it wait (bounded) for that answer;
 * otherwise it goes to the host, the first such GET marked as the miss's
 * filler, whose response cachecap.c stores. */
#define _GNU_SOURCE
#include "cache.h"
#include "http1.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

piston_str piston__cache_req_field(void *req, const char *name, size_t len) {
  return piston_req_header(req, name, len);
}

bool piston__cache_key(const piston_req *r, piston_str *host,
                       piston_str *target) {
  *target = piston_req_target(r);
  *host = piston_req_header(r, "host", 4);
  if (!host->ptr)
    *host = (piston_str){"", 0};
  /* origin-form only; a request with credentials is never answered from
   * (nor stored into) a cache shared by every client */
  return target->len > 0 && target->ptr[0] == '/' &&
         !piston_req_header(r, "authorization", 13).ptr;
}

static bool method_is(piston_str m, const char *name, size_t n) {
  return m.len == n && memcmp(m.ptr, name, n) == 0;
}

/* ---- answers from a stored response ---- */

static const char *conn_line(bool keep, int minor) {
  if (!keep)
    return "Connection: close\r\n";
  return minor == 0 ? "Connection: keep-alive\r\n" : "";
}

/* Which part of o, and with which status, the request gets. */
typedef struct {
  int status;
  uint64_t first, len; /* body bytes */
  bool fields;         /* o's fields (else its 304 ones) */
  bool range;          /* a Content-Range line */
} answer;

static answer choose(piston_req *r, const piston__cobj *o) {
  answer a = {o->status, 0, o->body_len, true, false};
  if (o->status != 200)
    return a;
  piston__file_cond cond = {
      .if_none_match = piston_req_header(r, "if-none-match", 13),
      .if_modified_since = piston_req_header(r, "if-modified-since", 17),
      .range = piston_req_header(r, "range", 5),
      .if_range = piston_req_header(r, "if-range", 8),
  };
  const char *etag = o->data + o->etag_off;
  size_t etag_len = o->etag_len;
  /* If-None-Match compares weakly (the list's W/ are dropped, so ours
   * goes too); If-Range only ever matches a strong tag */
  bool weak = etag_len > 2 && etag[0] == 'W' && etag[1] == '/';
  const char *strong = weak ? "" : etag;
  size_t strong_len = weak ? 0 : etag_len;
  if (weak)
    etag += 2, etag_len -= 2;
  time_t lm = (time_t)o->last_modified;
  if (o->last_modified < 0) /* no date to compare with */
    cond.if_modified_since.ptr = NULL;
  if ((cond.if_none_match.ptr || cond.if_modified_since.ptr) &&
      piston__cond_not_modified(&cond, etag, etag_len, lm)) {
    a.status = 304, a.len = 0, a.fields = false;
    return a;
  }
  uint64_t first, last;
  int rg = 0;
  if (cond.range.ptr && method_is(piston_req_method(r), "GET", 3) &&
      (!cond.if_range.ptr ||
       piston__cond_if_range(cond.if_range, strong, strong_len, lm)))
    rg = piston__range_pick(cond.range, o->body_len, &first, &last);
  if (rg > 0)
    a.status = 206, a.first = first, a.len = last - first + 1, a.range = true;
  else if (rg < 0)
    a.status = 416, a.len = 0, a.fields = false, a.range = true;
  return a;
}

int piston__cache_emit(piston_req *r, piston__outq *q, const piston__cobj *o,
                       bool keep, uint64_t now_ms) {
  answer a = choose(r, o);
  bool body = !r->is_head && a.status != 204 && a.status != 304;
  size_t flen = a.fields ? o->f_len : (a.status == 304 ? o->v_len : 0);
  const char *f = o->data + (a.fields ? o->f_off : o->v_off);
  /* the lines after the status line and Date: the stored fields, Age,
   * Content-Range, Content-Length */
  size_t cap = flen + 128;
  char stack[2048];
  char *lines = cap <= sizeof stack ? stack : malloc(cap);
  if (!lines)
    return PISTON_ENOMEM;
  memcpy(lines, f, flen);
  size_t n = flen;
  uint64_t age = now_ms > o->created_ms ? (now_ms - o->created_ms) / 1000 : 0;
  if (a.status != 416)
    n += (size_t)snprintf(lines + n, cap - n, "Age: %" PRIu64 "\r\n", age);
  if (a.range && a.status == 206)
    n +=
        (size_t)snprintf(lines + n, cap - n,
                         "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%zu\r\n",
                         a.first, a.first + a.len - 1, o->body_len);
  else if (a.range)
    n += (size_t)snprintf(lines + n, cap - n, "Content-Range: bytes */%zu\r\n",
                          o->body_len);
  if (a.status != 204 && a.status != 304)
    n += (size_t)snprintf(lines + n, cap - n, "Content-Length: %" PRIu64 "\r\n",
                          a.len);
  int rc = 0;
  if (r->h2) {
    rc = piston__h2_native_head(r, a.status, lines, n);
  } else {
    size_t sl_len;
    const char *sl = a.status == o->status
                         ? o->data + o->sl_off
                         : piston__status_line(a.status, &sl_len);
    if (a.status == o->status)
      sl_len = o->sl_len;
    const char *cl = conn_line(keep, r->minor);
    size_t cl_len = strlen(cl);
    size_t total = sl_len + PISTON_DATE_LINE_LEN + n + cl_len + 2;
    char *p = piston__outq_reserve(q, total);
    if (!p) {
      rc = PISTON_ENOMEM;
    } else {
      char *s = p;
      memcpy(p, sl, sl_len), p += sl_len;
      memcpy(p, piston__date_line(), PISTON_DATE_LINE_LEN);
      p += PISTON_DATE_LINE_LEN;
      memcpy(p, lines, n), p += n;
      memcpy(p, cl, cl_len), p += cl_len;
      memcpy(p, "\r\n", 2), p += 2;
      piston__outq_commit(q, (size_t)(p - s));
    }
  }
  if (lines != stack)
    free(lines);
  if (rc == 0 && body && a.len)
    rc = piston__outq_append(q, o->data + o->body_off + a.first, a.len);
  if (rc != 0)
    return rc;
  r->resp_bytes = body ? a.len : 0;
  return a.status;
}

/* ---- waiting on another request's miss ---- */

static piston_req *req_of_wait(piston__cwaiter *w) {
  return (piston_req *)(void *)((char *)w - offsetof(piston_req, cache_wait));
}

static piston_req *req_of_post(piston__post *p) {
  return (piston_req *)(void *)((char *)p - offsetof(piston_req, cache_post));
}

static void wait_hold(piston__post *p) {
  atomic_fetch_add(&req_of_post(p)->refs, 1); /* the inbox's reference */
}

static bool servable(const piston__cobj *o, uint64_t now) {
  /* a waiter takes any answer the miss left: fresh, or stale within its
   * windows (the refresh failed: stale-if-error) */
  return !piston__cobj_is_pass(o) &&
         (now < o->fresh_until_ms || now < o->swr_until_ms ||
          now < o->sie_until_ms);
}

/* Loop thread: the miss this waiter waited on is over. It is answered from
 * the store, or goes to the host after all (the response was not stored,
 * or is of another variant); the cache held the host's reference for it. */
static void wait_apply(piston__post *p) {
  piston_req *r = req_of_post(p);
  piston_loop *loop = r->loop;
  piston__cache *cache = loop->srv->cache;
  pthread_mutex_lock(&r->lock);
  piston__conn *c = r->conn;
  bool live = c && !r->closed && r->resp == RESP_NONE;
  int st = 0;
  bool keep = r->keepalive && !loop->stopping;
  if (live) {
    piston_str host, target;
    if (piston__cache_key(r, &host, &target)) {
      uint64_t now = piston__now_ms();
      pthread_mutex_lock(&cache->lock);
      piston__cobj *o =
          piston__cache_find(cache, piston__cache_hash(host, target), host,
                             target, piston__cache_req_field, r);
      if (o && servable(o, now)) {
        st = piston__cache_emit(r, piston__req_sink(r), o, keep, now);
        if (now < o->fresh_until_ms)
          cache->stats.hits++;
        else
          cache->stats.stale_hits++;
      }
      pthread_mutex_unlock(&cache->lock);
    }
    if (st != 0) {
      r->status = st < 0 ? 500 : st;
      r->resp = RESP_ENDED;
      if (!keep || st < 0)
        r->close_after = true;
      if (st < 0)
        r->abort_requested = true;
    }
  }
  r->cache_parked = false;
  pthread_mutex_unlock(&r->lock);
  if (live && st != 0) {
    piston__req_access_log(r);
    piston__req_loop_end(r);
    piston__conn_mark_pending(c);
    piston__conn_mark_dirty(c);
  }
  if (live && st == 0) {
    loop->dispatched = true;
    loop->srv->on_request(r, loop->srv->on_request_ud); /* takes the ref */
  } else {
    piston_req_release(r); /* the host's reference, which the cache held */
  }
  piston_req_release(r); /* the inbox's */
}

static const piston__post_ops wait_ops = {.hold = wait_hold,
                                          .apply = wait_apply};

void piston__cache_wake(piston__cwaiter *w) {
  while (w) {
    piston__cwaiter *next = w->next;
    piston_req *r = req_of_wait(w);
    w->next = NULL;
    pthread_mutex_lock(&r->lock);
    bool gone = r->closed || !r->conn;
    pthread_mutex_unlock(&r->lock);
    /* a waiter whose client left needs no answer, and its loop may have
     * stopped since: only the cache's reference is left to drop */
    if (gone)
      piston_req_release(r);
    else
      piston__loop_post(r->loop, &r->cache_post, &wait_ops);
    w = next;
  }
}

piston__cwaiter *piston__cache_fill_done(piston__cache *c, piston_req *r) {
  piston__cpend *p = r->cache_pend;
  r->cache_pend = NULL;
  return p ? piston__cache_pend_done(c, p) : NULL;
}

void piston__cache_cap_free(piston__ccap *cap) {
  if (cap)
    free(cap->o);
  free(cap);
}

/* The request ends (reset, free) or its client left (detach): a miss it
 * was filling will not be filled by it. */
static void leave(piston_req *r) {
  if (!r->cache_lead && !r->cache_cap)
    return;
  pthread_mutex_lock(&r->lock);
  piston__cache_cap_free(r->cache_cap);
  r->cache_cap = NULL;
  pthread_mutex_unlock(&r->lock);
  piston__cache *c = r->loop->srv->cache;
  pthread_mutex_lock(&c->lock);
  piston__cwaiter *w = piston__cache_fill_done(c, r);
  pthread_mutex_unlock(&c->lock);
  piston__cache_wake(w);
}

/* ---- the lookup ---- */

/* PURGE target from a loopback peer (PISTON_OPT_CACHE_PURGE) */
static int purge_request(piston__conn *c, piston_req *r, bool keep,
                         int *status) {
  int port;
  const char *addr = piston_req_remote_addr(r, &port);
  bool local = strncmp(addr, "127.", 4) == 0 || strcmp(addr, "::1") == 0 ||
               strcmp(addr, "::ffff:127.0.0.1") == 0 || addr[0] == '\0';
  if (!local) {
    *status = 403;
    return r->h2 ? PISTON_EINVAL /* reset */
                 : piston__h1_simple(&c->out, 403, NULL, keep, false);
  }
  piston_str t = piston_req_target(r);
  bool prefix = t.len > 0 && t.ptr[t.len - 1] == '*';
  size_t n =
      piston_server_cache_purge(c->io.loop->srv, t.ptr, t.len - prefix, prefix);
  char line[64];
  snprintf(line, sizeof line, "Piston-Purged: %zu\r\n", n);
  *status = 200;
  return r->h2 ? PISTON_EINVAL
               : piston__h1_simple(&c->out, 200, line, keep, false);
}

int piston__cache_route(piston__conn *c, piston_req *r, bool keep,
                        int *status) {
  piston_server *srv = c->io.loop->srv;
  piston__cache *cache = srv->cache;
  piston_str m = piston_req_method(r);
  if (!method_is(m, "GET", 3) && !r->is_head) {
    if (srv->opt[PISTON_OPT_CACHE_PURGE] && method_is(m, "PURGE", 5))
      return purge_request(c, r, keep, status);
    return 1;
  }
  piston_str host, target;
  if (!piston__cache_key(r, &host, &target) || r->has_upgrade)
    return 1;
  r->cache_leave = leave;
  uint64_t hash = piston__cache_hash(host, target);
  uint64_t now = c->io.loop->now_ms;
  int rc = 1;
  piston__cwaiter *released = NULL;
  pthread_mutex_lock(&cache->lock);
  piston__cobj *o =
      piston__cache_find(cache, hash, host, target, piston__cache_req_field, r);
  piston__cpend *p = piston__cache_pend_find(cache, hash, host, target);
  bool pass = o && piston__cobj_is_pass(o);
  if (pass && now >= o->fresh_until_ms) {
    piston__cache_remove(cache, o); /* passed long enough: try again */
    o = NULL;
    pass = false;
  }
  if (p && !p->expired &&
      now - p->started_ms > (uint64_t)srv->opt[PISTON_OPT_CACHE_WAIT_MS]) {
    /* the miss is taking too long: its waiters go to the host */
    p->expired = true;
    released = p->waiters;
    p->waiters = NULL;
    p->wtail = &p->waiters;
    p->nwaiters = 0;
  }
  if (pass) {
    cache->stats.misses++; /* to the host, beside the others */
  } else if (o && (now < o->fresh_until_ms || (p && now < o->swr_until_ms))) {
    /* fresh, or stale while another request refreshes it */
    rc = piston__cache_emit(r, r->h2 ? &r->h2_out : &c->out, o, keep, now);
    if (rc >= 0) {
      *status = rc;
      rc = 0;
    }
    if (now < o->fresh_until_ms)
      cache->stats.hits++;
    else
      cache->stats.stale_hits++;
  } else if (p && !p->expired &&
             p->nwaiters < (size_t)srv->opt[PISTON_OPT_CACHE_MAX_WAITERS]) {
    r->cache_wait.next = NULL;
    *p->wtail = &r->cache_wait;
    p->wtail = &r->cache_wait.next;
    p->nwaiters++;
    r->cache_parked = true;
    cache->stats.coalesced++;
  } else {
    cache->stats.misses++;
    if (!p && !r->is_head) {
      r->cache_pend = piston__cache_pend_new(cache, hash, host, target, now);
      r->cache_lead = r->cache_pend != NULL;
    }
  }
  pthread_mutex_unlock(&cache->lock);
  piston__cache_wake(released);
  return rc;
}

/* ---- the public API ---- */

void piston_server_cache_stats(const piston_server *srv,
                               piston_cache_stats *out) {
  piston__cache *c = srv->cache;
  pthread_mutex_lock(&c->lock);
  *out = c->stats;
  out->bytes = c->bytes;
  out->entries = c->nobjs;
  pthread_mutex_unlock(&c->lock);
}

size_t piston_server_cache_purge(piston_server *srv, const char *target,
                                 size_t target_len, int prefix) {
  if (!target)
    return 0;
  piston__cache *c = srv->cache;
  pthread_mutex_lock(&c->lock);
  size_t n =
      piston__cache_purge(c, (piston_str){target, target_len}, prefix != 0);
  pthread_mutex_unlock(&c->lock);
  return n;
}
