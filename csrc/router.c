/* Native routes: fixed responses and file mounts, answered on the loop
 * thread as soon as the HTTP/1.1 handler (or the HTTP/2 one, for a stream)
 * has a complete head, so a request for them never reaches the host. The route
 * list is short and scanned in order; fixed routes first. */
#define _GNU_SOURCE
#include "cache.h"
#include "http1.h"
#include "metrics.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool keep_alive(const piston__conn *c, const piston_req *r) {
  /* a body we would have to drain, or a client waiting for 100-continue,
   * are not worth keeping the connection for */
  return r->keepalive && !c->io.loop->stopping &&
         !(r->expect_continue && r->content_length != 0);
}

static const char *conn_line(bool keep, int minor) {
  if (!keep)
    return "Connection: close\r\n";
  return minor == 0 ? "Connection: keep-alive\r\n" : "";
}

static bool method_is(piston_str m, const char *name) {
  size_t n = strlen(name);
  return m.len == n && memcmp(m.ptr, name, n) == 0;
}

/* ---- HTTP/2: the same answers as a stream's fields and body ---- */

/* Fields given as HTTP/1.1 lines ("Name: value\r\n"...) */
static int h2_lines(piston_req *r, const char *p, size_t n) {
  const char *end = p + n;
  while (p < end) {
    const char *eol = memchr(p, '\r', (size_t)(end - p));
    const char *colon = memchr(p, ':', (size_t)(end - p));
    if (!eol || !colon || colon > eol)
      break;
    const char *v = colon + 1;
    while (v < eol && *v == ' ')
      v++;
    int rc = piston__h2_field_add(&r->h2_head, &r->h2_head_len, &r->h2_head_cap,
                                  p, (size_t)(colon - p), v, (size_t)(eol - v));
    if (rc != 0)
      return rc;
    p = eol + 2;
  }
  return 0;
}

/* The head of an engine-made answer on a stream: :status, date, then the
 * route's own lines (which carry its Content-Length). */
int piston__h2_native_head(piston_req *r, int status, const char *lines,
                           size_t n) {
  char code[4];
  snprintf(code, sizeof code, "%03d", status);
  r->h2_head_len = 0;
  const char *d = piston__date_line();
  int rc = piston__h2_field_add(&r->h2_head, &r->h2_head_len, &r->h2_head_cap,
                                ":status", 7, code, 3);
  if (rc == 0)
    rc = piston__h2_field_add(&r->h2_head, &r->h2_head_len, &r->h2_head_cap,
                              "date", 4, d + 6, PISTON_DATE_LINE_LEN - 8);
  if (rc == 0)
    rc = h2_lines(r, lines, n);
  r->status = status;
  r->resp = RESP_STARTED; /* the handler submits it (h2.c) */
  return rc;
}

/* piston__h1_simple's answer: the reason phrase as text/plain */
static int h2_simple(piston_req *r, int status, const char *extra) {
  const char *reason = piston__reason(status);
  char lines[256];
  size_t rl = strlen(reason);
  int n = snprintf(lines, sizeof lines,
                   "Content-Type: text/plain; charset=utf-8\r\n%s"
                   "Content-Length: %zu\r\n",
                   extra ? extra : "", r->is_head ? 0 : rl + 1);
  int rc = piston__h2_native_head(r, status, lines, (size_t)n);
  if (rc == 0 && !r->is_head)
    rc = piston__outq_append(&r->h2_out, reason, rl) ||
         piston__outq_append(&r->h2_out, "\n", 1);
  return rc ? PISTON_ENOMEM : 0;
}

static int send_fixed(piston__conn *c, piston_req *r,
                      const piston__fixed_route *f, bool keep) {
  if (r->h2) {
    int rc = piston__h2_native_head(r, f->status, f->fields, f->fields_len);
    if (rc == 0 && !r->is_head && f->status != 204 && f->status != 304)
      rc = piston__outq_append(&r->h2_out, f->body, f->body_len);
    return rc;
  }
  const char *cl = conn_line(keep, r->minor);
  size_t cl_len = strlen(cl);
  bool body = !r->is_head && f->status != 204 && f->status != 304;
  size_t n = f->status_line_len + PISTON_DATE_LINE_LEN + f->fields_len +
             cl_len + 2 + (body ? f->body_len : 0);
  char *p = piston__outq_reserve(&c->out, n);
  if (!p)
    return PISTON_ENOMEM;
  memcpy(p, f->status_line, f->status_line_len);
  p += f->status_line_len;
  memcpy(p, piston__date_line(), PISTON_DATE_LINE_LEN);
  p += PISTON_DATE_LINE_LEN;
  memcpy(p, f->fields, f->fields_len);
  p += f->fields_len;
  memcpy(p, cl, cl_len);
  p += cl_len;
  memcpy(p, "\r\n", 2);
  p += 2;
  if (body)
    memcpy(p, f->body, f->body_len);
  piston__outq_commit(&c->out, n);
  return 0;
}

static int simple(piston__conn *c, piston_req *r, int status, const char *extra,
                  bool keep) {
  return r->h2 ? h2_simple(r, status, extra)
               : piston__h1_simple(&c->out, status, extra, keep, r->is_head);
}

/* A body made for this request (metrics, health), with its Content-Type. */
static int send_body(piston__conn *c, piston_req *r, int status,
                     const char *type, const char *body, size_t len,
                     bool keep) {
  char lines[160];
  int n = snprintf(lines, sizeof lines,
                   "Content-Type: %s\r\nCache-Control: no-store\r\n"
                   "Content-Length: %zu\r\n",
                   type, len);
  if (r->h2) {
    int rc = piston__h2_native_head(r, status, lines, (size_t)n);
    if (rc == 0 && !r->is_head)
      rc = piston__outq_append(&r->h2_out, body, len) ? PISTON_ENOMEM : 0;
    return rc;
  }
  size_t sl_len;
  const char *sl = piston__status_line(status, &sl_len);
  const char *cl = conn_line(keep, r->minor);
  size_t cl_len = strlen(cl), blen = r->is_head ? 0 : len;
  size_t total = sl_len + PISTON_DATE_LINE_LEN + (size_t)n + cl_len + 2 + blen;
  char *p = piston__outq_reserve(&c->out, total);
  if (!p)
    return PISTON_ENOMEM;
  memcpy(p, sl, sl_len);
  memcpy(p + sl_len, piston__date_line(), PISTON_DATE_LINE_LEN);
  char *q = p + sl_len + PISTON_DATE_LINE_LEN;
  memcpy(q, lines, (size_t)n);
  memcpy(q + n, cl, cl_len);
  memcpy(q + n + cl_len, "\r\n", 2);
  memcpy(q + n + cl_len + 2, body, blen);
  piston__outq_commit(&c->out, total);
  return 0;
}

static bool path_is(piston_str path, const char *p, size_t n) {
  return p && path.len == n && memcmp(path.ptr, p, n) == 0;
}

/* The metrics and health routes: 1 if not one of them, else as send_*. */
static int send_ops(piston__conn *c, piston_req *r, bool keep, int *status) {
  const piston_server *srv = c->io.loop->srv;
  piston_str path = piston_req_path(r);
  if (path_is(path, srv->health_path, srv->health_path_len)) {
    bool up = !atomic_load(&c->io.loop->stopping);
    *status = up ? 200 : 503;
    return send_body(c, r, *status, "text/plain; charset=utf-8",
                     up ? "OK\n" : "draining\n", up ? 3 : 9, keep && up);
  }
  if (path_is(path, srv->metrics_path, srv->metrics_path_len)) {
    char *text;
    piston_cache_stats cs;
    bool cached = srv->cache && srv->opt[PISTON_OPT_CACHE_SIZE] > 0;
    if (cached)
      piston_server_cache_stats(srv, &cs);
    long n = piston__metrics_render(srv->metrics, cached ? &cs : NULL, &text);
    if (n < 0) {
      *status = 503;
      return simple(c, r, 503, NULL, keep);
    }
    *status = 200;
    int rc = send_body(c, r, 200, "text/plain; version=0.0.4; charset=utf-8",
                       text, (size_t)n, keep);
    free(text);
    return rc;
  }
  return 1;
}

static int send_file(piston__conn *c, piston_req *r, const piston__dir_route *d,
                     bool keep, int *status) {
  piston_str path = piston_req_path(r);
  piston_str sub = {path.ptr + d->prefix_len, path.len - d->prefix_len};
  piston__file_cond cond = {
      .if_none_match = piston_req_header(r, "if-none-match", 13),
      .if_modified_since = piston_req_header(r, "if-modified-since", 17),
      .range = piston_req_header(r, "range", 5),
      .if_range = piston_req_header(r, "if-range", 8),
  };
  piston__file_reply fr;
  int rc = piston__file_serve(&d->mount, sub, &cond, &fr);
  *status = rc < 0 ? 500 : fr.status;
  if (rc < 0)
    return simple(c, r, rc == PISTON_ENOMEM ? 503 : 500, NULL, false);
  if (fr.status == 404)
    return simple(c, r, 404, NULL, keep);
  if (r->h2) {
    char cl[48];
    int n = snprintf(cl, sizeof cl, "Content-Length: %" PRIu64 "\r\n",
                     fr.status == 416 ? (uint64_t)0 : fr.length);
    rc = piston__h2_native_head(r, fr.status, fr.headers, fr.headers_len);
    if (rc == 0 && fr.status != 304)
      rc = h2_lines(r, cl, (size_t)n);
    if (fr.fd >= 0) {
      if (rc != 0 || r->is_head || fr.status == 416)
        close(fr.fd);
      else
        rc = piston__outq_append_file(&r->h2_out, fr.fd, fr.offset, fr.length);
    }
    return rc;
  }
  size_t sl_len;
  const char *sl = piston__status_line(fr.status, &sl_len);
  const char *cl = conn_line(keep, r->minor);
  size_t cap = sl_len + PISTON_DATE_LINE_LEN + fr.headers_len + 64 + 26;
  char *p = piston__outq_reserve(&c->out, cap);
  if (!p) {
    if (fr.fd >= 0)
      close(fr.fd);
    return PISTON_ENOMEM;
  }
  int n;
  if (fr.status == 304)
    n = snprintf(p, cap, "%s%s%.*s%s\r\n", sl, piston__date_line(),
                 (int)fr.headers_len, fr.headers, cl);
  else
    n = snprintf(p, cap, "%s%s%.*sContent-Length: %" PRIu64 "\r\n%s\r\n", sl,
                 piston__date_line(), (int)fr.headers_len, fr.headers,
                 fr.status == 416 ? (uint64_t)0 : fr.length, cl);
  piston__outq_commit(&c->out, (size_t)n);
  if (fr.fd >= 0) {
    if (r->is_head || fr.status == 416)
      close(fr.fd);
    else
      return piston__outq_append_file(&c->out, fr.fd, fr.offset, fr.length);
  }
  return 0;
}

static bool under_prefix(piston_str path, const piston__dir_route *d) {
  if (d->prefix_len == 0)
    return true;
  return path.len >= d->prefix_len &&
         memcmp(path.ptr, d->prefix, d->prefix_len) == 0 &&
         (path.len == d->prefix_len || path.ptr[d->prefix_len] == '/');
}

static bool fixed_at(const piston__fixed_route *f, piston_str path) {
  return f->path_len == path.len && memcmp(f->path, path.ptr, path.len) == 0;
}

/* The Allow line of a 405: the methods of the native routes at the path.
 * Made only when a 405 is sent, not on every request a route answers. */
static void allow_line(const piston_server *srv, piston_str path, char *allow,
                       size_t cap) {
  size_t alen = (size_t)snprintf(allow, cap, "Allow: ");
  bool fixed = false;
  for (size_t i = 0; i < srv->nfixed; i++) {
    const piston__fixed_route *f = &srv->fixed[i];
    if (!fixed_at(f, path))
      continue;
    fixed = true;
    const char *m = f->method ? f->method : "GET, HEAD";
    if (alen + strlen(m) + 5 < cap)
      alen += (size_t)snprintf(allow + alen, cap - alen, "%s%s",
                               alen > 7 ? ", " : "", m);
  }
  if (!fixed) /* a file mount: the other loop's only way to know a path */
    alen += (size_t)snprintf(allow + alen, cap - alen, "GET, HEAD");
  snprintf(allow + alen, cap - alen, "\r\n");
}

bool piston__route(piston__h1 *h, piston_req *r) {
  return piston__route_exchange(&h->conn, r);
}

bool piston__route_exchange(piston__conn *c, piston_req *r) {
  const piston_server *srv = c->io.loop->srv;
  /* first: the native routes' log lines and the host see the client */
  piston__forwarded_apply(r, srv);
  piston_str path = piston_req_path(r), method = piston_req_method(r);
  bool get = method_is(method, "GET") || r->is_head;
  bool keep = keep_alive(c, r);
  int rc = 1; /* 1: not ours */
  int status = 0;
  bool path_known = false;
  if (get && (srv->health_path || srv->metrics_path))
    rc = send_ops(c, r, keep, &status);
  for (size_t i = 0; i < srv->nfixed && rc == 1; i++) {
    const piston__fixed_route *f = &srv->fixed[i];
    if (!fixed_at(f, path))
      continue;
    path_known = true;
    if (f->method ? method_is(method, f->method) ||
                        (r->is_head && strcmp(f->method, "GET") == 0)
                  : get) {
      status = f->status;
      rc = send_fixed(c, r, f, keep);
    }
  }
  for (size_t i = 0; i < srv->ndirs && rc == 1 && !path_known; i++) {
    if (!under_prefix(path, &srv->dirs[i]))
      continue;
    path_known = true;
    if (get)
      rc = send_file(c, r, &srv->dirs[i], keep, &status);
  }
  if (rc == 1 && !path_known && srv->on_request && piston__cache_on(srv))
    rc = piston__cache_route(c, r, keep, &status);
  if (rc == 1 && (path_known || !srv->on_request)) {
    /* a native path asked with another method, or no host to ask */
    char allow[128];
    status = path_known ? 405 : 404;
    if (path_known)
      allow_line(srv, path, allow, sizeof allow);
    rc = simple(c, r, status, path_known ? allow : NULL, keep);
  }
  if (rc == 1) {
    /* the host's: within the concurrency limit, or the engine's 503 */
    piston_server *msrv = c->io.loop->srv;
    long limit = (long)srv->opt[PISTON_OPT_LIMIT_CONCURRENCY];
    if (limit > 0 && atomic_load(&msrv->inflight) >= limit) {
      status = 503;
      rc = simple(c, r, 503, NULL, keep);
      if (msrv->mslot)
        piston__metrics_reject(msrv->mslot, 503);
    } else {
      atomic_fetch_add(&msrv->inflight, 1);
      if (msrv->mslot)
        piston__m_gauge(&msrv->mslot->in_flight, 1);
      atomic_store(&r->inflight, true);
      return false;
    }
  }
  if (r->h2) {
    /* h2_head marked the head as made; the answer is whole (the handler
     * submits it), and a failed one resets the stream */
    r->resp = RESP_NONE;
    r->abort_requested = rc < 0;
  }
  piston__req_native_answered(r, rc < 0 ? 500 : status, rc < 0 || !keep);
  piston__conn_mark_dirty(c);
  return true;
}
