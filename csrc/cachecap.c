/* The response cache's capture: the writer's hooks (response.c) that see
 * the response of a request filling a miss (req->cache_lead), decide
 * whether it may be stored, copy its head and body into an entry and
 * store it at the end; the Piston-Cache field that marks it is the
 * engine's and never reaches the client. Each hook runs under the
 * request's lock, on whichever thread the host writes from. */
#define _GNU_SOURCE
#include "cache.h"
#include "cachecap.h"
#include "httpdate.h"
#include "util.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* How long a key whose response could not be stored is passed to the host
 * without coalescing (its requests do not queue behind each other). */
#define PASS_MS 10000

static bool name_is(piston_str n, const char *lower, size_t len) {
  return n.len == len && strncasecmp(n.ptr, lower, len) == 0;
}

bool piston__cache_field_is_ours(piston_str name) {
  return name_is(name, "piston-cache", 12);
}

/* "name=N" among a field's elements: N in ms, or -1 */
static int64_t directive(piston_str item, const char *name) {
  size_t n = strlen(name);
  if (item.len <= n + 1 || strncasecmp(item.ptr, name, n) != 0 ||
      item.ptr[n] != '=')
    return -1;
  int64_t v = 0;
  for (size_t i = n + 1; i < item.len; i++) {
    if (item.ptr[i] < '0' || item.ptr[i] > '9' || v > 100000000)
      return -1;
    v = v * 10 + (item.ptr[i] - '0');
  }
  return v * 1000;
}

static bool token_is(piston_str item, const char *tok) {
  size_t n = strlen(tok);
  return item.len >= n && strncasecmp(item.ptr, tok, n) == 0 &&
         (item.len == n || item.ptr[n] == '=');
}

typedef struct {
  int64_t ttl, swr, sie;
  bool marked, refused;
} policy;

static void read_policy(policy *p, const piston_header *h, size_t nh,
                        bool s_maxage) {
  int64_t cc_ttl = -1, cc_swr = -1, cc_sie = -1;
  p->ttl = p->swr = p->sie = -1;
  for (size_t i = 0; i < nh; i++) {
    piston_str rest = h[i].value, item;
    if (piston__cache_field_is_ours(h[i].name)) {
      p->marked = true;
      while (piston_list_next(&rest, &item)) {
        int64_t v;
        if ((v = directive(item, "ttl")) >= 0)
          p->ttl = v;
        else if ((v = directive(item, "swr")) >= 0)
          p->swr = v;
        else if ((v = directive(item, "sie")) >= 0)
          p->sie = v;
      }
    } else if (name_is(h[i].name, "cache-control", 13)) {
      while (piston_list_next(&rest, &item)) {
        int64_t v;
        if (token_is(item, "private") || token_is(item, "no-store") ||
            token_is(item, "no-cache"))
          p->refused = true;
        else if ((v = directive(item, "s-maxage")) >= 0)
          cc_ttl = v;
        else if ((v = directive(item, "stale-while-revalidate")) >= 0)
          cc_swr = v;
        else if ((v = directive(item, "stale-if-error")) >= 0)
          cc_sie = v;
      }
    } else if (name_is(h[i].name, "set-cookie", 10)) {
      p->refused = true; /* one client's state, never everyone's */
    } else if (name_is(h[i].name, "vary", 4)) {
      while (piston_list_next(&rest, &item))
        if ((item.len == 1 && item.ptr[0] == '*') ||
            name_is(item, "cookie", 6) || name_is(item, "authorization", 13))
          p->refused = true; /* a variant per client */
    }
  }
  if (!p->marked && s_maxage && cc_ttl >= 0) {
    p->marked = true;
    p->ttl = cc_ttl, p->swr = cc_swr, p->sie = cc_sie;
  }
}

static bool status_storable(int s) {
  /* RFC 9110 15.1's heuristically cacheable statuses */
  return s == 200 || s == 203 || s == 204 || s == 300 || s == 301 || s == 308 ||
         s == 404 || s == 405 || s == 410 || s == 414 || s == 501;
}

/* fields a hit repeats: all but framing, connection management, the
 * per-response ones the engine writes (Date, Age) and the engine's own */
static bool repeated(piston_str n) {
  return !(name_is(n, "date", 4) || name_is(n, "age", 3) ||
           name_is(n, "content-length", 14) ||
           name_is(n, "transfer-encoding", 17) ||
           name_is(n, "connection", 10) || name_is(n, "keep-alive", 10) ||
           piston__cache_field_is_ours(n));
}

/* the fields a 304 repeats (RFC 9110 15.4.5) */
static bool validating(piston_str n) {
  return name_is(n, "etag", 4) || name_is(n, "last-modified", 13) ||
         name_is(n, "cache-control", 13) || name_is(n, "vary", 4) ||
         name_is(n, "expires", 7) || name_is(n, "content-location", 16);
}

/* The vary section (cachestore.h) at p, or only its size when p is NULL */
static size_t put_vary(char *p, piston_req *r, const piston_header *h,
                       size_t nh) {
  size_t n = 0;
  for (size_t i = 0; i < nh; i++) {
    if (!name_is(h[i].name, "vary", 4))
      continue;
    piston_str rest = h[i].value, item;
    while (piston_list_next(&rest, &item)) {
      if (item.len > 255)
        continue; /* no such field came: the head's limits are smaller */
      piston_str v = piston_req_header(r, item.ptr, item.len);
      uint16_t nl = (uint16_t)item.len;
      uint32_t vl = v.ptr ? (uint32_t)v.len + 1 : 0;
      size_t len = 6 + nl + (vl ? vl - 1 : 0);
      if (p) {
        char *e = p + n;
        memcpy(e, &nl, 2);
        for (size_t k = 0; k < item.len; k++) {
          char ch = item.ptr[k];
          e[2 + k] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
        }
        memcpy(e + 2 + nl, &vl, 4);
        if (vl > 1)
          memcpy(e + 6 + nl, v.ptr, v.len);
      }
      n += len;
    }
  }
  return n;
}

/* The entry's head: key, status line, fields, 304 fields, vary section;
 * room for body_hint body bytes after it. */
static piston__cobj *build(piston_req *r, int status, const piston_str *reason,
                           const piston_header *h, size_t nh, size_t body_hint,
                           size_t *room) {
  piston_str host, target;
  if (!piston__cache_key(r, &host, &target))
    return NULL;
  size_t fsize = 0;
  for (size_t i = 0; i < nh; i++)
    if (repeated(h[i].name))
      fsize += h[i].name.len + h[i].value.len + 4;
  size_t vsize = put_vary(NULL, r, h, nh);
  size_t sl_cap = 16 + (reason ? reason->len : 64);
  size_t head = host.len + target.len + sl_cap + 2 * fsize + vsize;
  *room = head + body_hint;
  piston__cobj *o = calloc(1, sizeof *o + *room);
  if (!o)
    return NULL;
  char *d = o->data, *p = d;
  o->hash = piston__cache_hash(host, target);
  o->host_len = (uint32_t)host.len;
  o->target_len = (uint32_t)target.len;
  memcpy(p, host.ptr, host.len), p += host.len;
  memcpy(p, target.ptr, target.len), p += target.len;
  o->sl_off = (uint32_t)(p - d);
  if (reason) {
    p += sprintf(p, "HTTP/1.1 %03d ", status);
    memcpy(p, reason->ptr, reason->len), p += reason->len;
    memcpy(p, "\r\n", 2), p += 2;
  } else {
    size_t n;
    const char *sl = piston__status_line(status, &n);
    memcpy(p, sl, n), p += n;
  }
  o->sl_len = (uint32_t)(p - d) - o->sl_off;
  o->f_off = (uint32_t)(p - d);
  o->last_modified = -1;
  for (size_t i = 0; i < nh; i++) {
    if (!repeated(h[i].name))
      continue;
    char *line = p;
    p = piston__field_put(p, &h[i]);
    if (name_is(h[i].name, "etag", 4)) {
      o->etag_off = (uint32_t)(line + h[i].name.len + 2 - d);
      o->etag_len = (uint32_t)h[i].value.len;
    } else if (name_is(h[i].name, "last-modified", 13)) {
      time_t t;
      if (piston__http_date_parse(h[i].value.ptr, h[i].value.len, &t) == 0)
        o->last_modified = (int64_t)t;
    }
  }
  o->f_len = (uint32_t)(p - d) - o->f_off;
  o->v_off = (uint32_t)(p - d);
  for (size_t i = 0; i < nh; i++)
    if (validating(h[i].name))
      p = piston__field_put(p, &h[i]);
  o->v_len = (uint32_t)(p - d) - o->v_off;
  o->vary_off = (uint32_t)(p - d);
  p += put_vary(p, r, h, nh);
  o->vary_len = (uint32_t)(p - d) - o->vary_off;
  o->body_off = (uint32_t)(p - d);
  o->status = status;
  return o;
}

/* The stale response in place of a failed refresh's 5xx: 1 if written. */
static int serve_stale(piston__wctx *w, bool keep) {
  piston_req *r = w->req;
  piston__cache *c = r->loop->srv->cache;
  piston_str host, target;
  if (!piston__cache_key(r, &host, &target))
    return 0;
  uint64_t now = piston__now_ms();
  int st = 0;
  pthread_mutex_lock(&c->lock);
  piston__cobj *o =
      piston__cache_find(c, piston__cache_hash(host, target), host, target,
                         piston__cache_req_field, r);
  if (o && !piston__cobj_is_pass(o) && now < o->sie_until_ms) {
    st = piston__cache_emit(r, w->q, o, keep, now);
    if (st > 0)
      c->stats.stale_hits++;
  }
  pthread_mutex_unlock(&c->lock);
  if (st <= 0)
    return 0;
  r->status = st;
  r->resp = RESP_STARTED;
  r->no_body = true; /* the host's body is dropped */
  r->chunked = false;
  r->resp_left = -1;
  return 1;
}

/* The server's cache route covering the request's path, or NULL */
static const piston__cache_rule *route_of(piston_req *r) {
  const piston_server *srv = r->loop->srv;
  piston_str path = piston_req_path(r);
  for (size_t i = 0; i < srv->ncache_routes; i++) {
    const piston__cache_rule *cr = &srv->cache_routes[i];
    if (path.len >= cr->prefix_len &&
        memcmp(path.ptr, cr->prefix, cr->prefix_len) == 0 &&
        (path.len == cr->prefix_len || path.ptr[cr->prefix_len] == '/'))
      return cr;
  }
  return NULL;
}

int piston__cache_capture_start(piston__wctx *w, int status,
                                const piston_str *reason,
                                const piston_header *h, size_t nh, bool keep,
                                int64_t content_length) {
  piston_req *r = w->req;
  piston_server *srv = r->loop->srv;
  assert(r->cache_lead && r->resp == RESP_NONE);
  piston__ccap *cap = calloc(1, sizeof *cap);
  if (!cap)
    return 0;
  piston__cache_cap_free(r->cache_cap);
  r->cache_cap = cap;
  cap->failed = true; /* until shown storable */
  if (status >= 500) {
    cap->stale_served = serve_stale(w, keep);
    return cap->stale_served;
  }
  policy p = {0};
  read_policy(&p, h, nh, srv->opt[PISTON_OPT_CACHE_S_MAXAGE] != 0);
  const piston__cache_rule *cr = p.marked ? NULL : route_of(r);
  if (cr) {
    p.marked = true;
    p.ttl = cr->ttl_ms, p.swr = cr->swr_ms, p.sie = cr->sie_ms;
  }
  size_t max = (size_t)srv->opt[PISTON_OPT_CACHE_MAX_ENTRY];
  if (!p.marked || p.refused || p.ttl <= 0 || !status_storable(status) ||
      (content_length >= 0 && (uint64_t)content_length > max))
    return 0;
  size_t hint = content_length >= 0 ? (size_t)content_length : 4096;
  cap->o = build(r, status, reason, h, nh, hint, &cap->room);
  if (!cap->o)
    return 0;
  cap->ttl_ms = (uint64_t)p.ttl;
  cap->swr_ms = p.swr > 0 ? (uint64_t)p.swr : 0;
  cap->sie_ms = p.sie > 0 ? (uint64_t)p.sie : 0;
  cap->failed = false;
  return 0;
}

void piston__cache_capture_body(piston_req *r, const void *data, size_t len) {
  piston__ccap *cap = r->cache_cap;
  if (!cap || cap->failed)
    return;
  piston__cobj *o = cap->o;
  size_t max = (size_t)r->loop->srv->opt[PISTON_OPT_CACHE_MAX_ENTRY];
  size_t used = o->body_off + o->body_len;
  if (used + len > max) {
    cap->failed = true;
    return;
  }
  if (used + len > cap->room) {
    size_t room = cap->room * 2 > used + len ? cap->room * 2 : used + len;
    piston__cobj *n = realloc(o, sizeof *o + room);
    if (!n) {
      cap->failed = true;
      return;
    }
    cap->o = o = n;
    cap->room = room;
  }
  memcpy(o->data + used, data, len);
  o->body_len += len;
}

void piston__cache_capture_fail(piston_req *r) {
  if (r->cache_cap)
    r->cache_cap->failed = true;
}

void piston__cache_capture_end(piston_req *r, bool whole) {
  piston__ccap *cap = r->cache_cap;
  piston__cache *c = r->loop->srv->cache;
  piston__cobj *o = NULL;
  uint64_t now = piston__now_ms();
  if (cap && !cap->failed && whole && !r->overflowed) {
    o = cap->o;
    cap->o = NULL;
    o->size = sizeof *o + o->body_off + o->body_len;
    o->created_ms = now;
    o->fresh_until_ms = now + cap->ttl_ms;
    o->swr_until_ms = o->fresh_until_ms + cap->swr_ms;
    o->sie_until_ms = o->fresh_until_ms + cap->sie_ms;
  }
  bool stale_served = cap && cap->stale_served;
  piston__cache_cap_free(cap);
  r->cache_cap = NULL;
  piston_str host, target;
  bool keyed = piston__cache_key(r, &host, &target);
  pthread_mutex_lock(&c->lock);
  c->max_bytes = (size_t)r->loop->srv->opt[PISTON_OPT_CACHE_SIZE];
  c->max_entry = (size_t)r->loop->srv->opt[PISTON_OPT_CACHE_MAX_ENTRY];
  if (o) {
    if (!piston__cache_insert(c, o))
      c->stats.uncacheable++;
  } else {
    c->stats.uncacheable++;
    /* a response that may not be stored replaces the stale one, unless
     * that stale one was just served for a failure (stale-if-error) */
    piston__cobj *old =
        keyed && !stale_served
            ? piston__cache_find(c, piston__cache_hash(host, target), host,
                                 target, piston__cache_req_field, r)
            : NULL;
    if (old)
      piston__cache_remove(c, old);
    /* a 5xx is no sign that the key is uncacheable: no pass marker */
    if (keyed && !stale_served && r->status < 500) {
      piston__cobj *pass = piston__cache_pass_new(
          piston__cache_hash(host, target), host, target, now + PASS_MS);
      if (pass)
        piston__cache_insert(c, pass);
    }
  }
  piston__cwaiter *w = piston__cache_fill_done(c, r);
  pthread_mutex_unlock(&c->lock);
  /* woken by the writer once it has released the request's lock: waking
   * takes each waiter's lock, and a request is a waiter at one time and a
   * filler at another */
  assert(!r->cache_woken);
  r->cache_woken = w;
}
