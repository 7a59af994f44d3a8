/* The access log (accesslog.h): format compilation and one line per
 * response, built from the request handle when the response ends.
 *
 * gunicorn's atoms, with its meanings: h remote address, l "-", u the user
 * of an "Authorization: Basic" field (nginx's $remote_user; "-" without
 * one), t [time] in UTC, r the
 * request line, m method, U path, q query, H protocol, s status, B body
 * bytes, b body bytes or "-", f referer, a user agent, T seconds, M
 * milliseconds, D microseconds, L decimal seconds, p <pid>, {name}i a
 * request header, {name}o a response header, {name}e "-" (the engine has
 * no environ). Field text is escaped as nginx does: '"', '\' and bytes
 * outside printable ASCII as \xHH, so a line cannot be forged by a client. */
#define _GNU_SOURCE
#include "accesslog.h"
#include "metrics.h"
#include "req.h"
#include "server.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

enum {
  A_LIT,
  A_REMOTE,
  A_DASH,
  A_USER,
  A_TIME,
  A_REQLINE,
  A_METHOD,
  A_PATH,
  A_QUERY,
  A_PROTO,
  A_STATUS,
  A_BYTES,
  A_BYTES_DASH,
  A_REFERER,
  A_UA,
  A_SECS,
  A_MSECS,
  A_USECS,
  A_DSECS,
  A_PID,
  A_REQ_HDR,
  A_RESP_HDR,
};

static const char common_fmt[] =
    "%(h)s %(l)s %(u)s %(t)s \"%(r)s\" %(s)s %(b)s";
static const char combined_fmt[] =
    "%(h)s %(l)s %(u)s %(t)s \"%(r)s\" %(s)s %(b)s \"%(f)s\" \"%(a)s\"";

static int letter_kind(char c) {
  static const char letters[] = "hlutrmUqHsBbfaTMDLp";
  static const uint8_t kinds[] = {
      A_REMOTE, A_DASH,  A_USER,   A_TIME,  A_REQLINE,    A_METHOD,  A_PATH,
      A_QUERY,  A_PROTO, A_STATUS, A_BYTES, A_BYTES_DASH, A_REFERER, A_UA,
      A_SECS,   A_MSECS, A_USECS,  A_DSECS, A_PID};
  const char *at = c ? strchr(letters, c) : NULL;
  return at ? kinds[at - letters] : -1;
}

static int compile(piston__alog *a, const char *fmt, char *err, size_t cap) {
  size_t n = strlen(fmt), most = 1;
  for (size_t i = 0; i < n; i++)
    most += fmt[i] == '%';
  a->atoms = calloc(most * 2 + 1, sizeof *a->atoms);
  a->text = strdup(fmt);
  if (!a->atoms || !a->text)
    return PISTON_ENOMEM;
  size_t i = 0, lit = 0;
  while (i <= n) {
    bool atom = i + 1 < n && fmt[i] == '%' && fmt[i + 1] == '(';
    if (i == n || atom) {
      if (i > lit)
        a->atoms[a->natoms++] =
            (piston__alog_atom){A_LIT, (uint32_t)lit, (uint32_t)(i - lit)};
      if (i == n)
        break;
      const char *close = strstr(fmt + i + 2, ")s");
      if (!close)
        goto bad;
      size_t s = i + 2, e = (size_t)(close - fmt);
      piston__alog_atom at = {0, 0, 0};
      if (e - s == 1 && letter_kind(fmt[s]) >= 0) {
        at.kind = (uint8_t)letter_kind(fmt[s]);
      } else if (e - s >= 4 && fmt[s] == '{' && fmt[e - 2] == '}' &&
                 strchr("ioe", fmt[e - 1])) {
        char k = fmt[e - 1];
        at.kind = k == 'i' ? A_REQ_HDR : k == 'o' ? A_RESP_HDR : A_DASH;
        at.off = (uint32_t)(s + 1);
        at.len = (uint32_t)(e - s - 3);
        if (k == 'o')
          a->resp_headers = true;
      } else {
        goto bad;
      }
      a->atoms[a->natoms++] = at;
      i = e + 2;
      lit = i;
      continue;
    bad:
      if (err && cap) {
        size_t k = close ? (size_t)(close - fmt) + 2 - i : n - i;
        snprintf(err, cap, "%.*s", (int)(k > 40 ? 40 : k), fmt + i);
      }
      return PISTON_EINVAL;
    }
    i++;
  }
  return 0;
}

void piston__alog_free(piston__alog *a) {
  if (!a)
    return;
  if (a->own)
    close(a->fd);
  free(a->path);
  free(a->atoms);
  free(a->text);
  free(a);
}

static int open_log(const char *path) {
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  return fd < 0 ? piston__sys_err(errno) : fd;
}

int piston__alog_new(const char *path, const char *format, piston__alog **out,
                     char *err, size_t errcap) {
  piston__alog *a = calloc(1, sizeof *a);
  if (!a)
    return PISTON_ENOMEM;
  a->fd = 2;
  if (!format || strcmp(format, "combined") == 0)
    format = combined_fmt;
  else if (strcmp(format, "common") == 0)
    format = common_fmt;
  else if (strcmp(format, "json") == 0)
    a->json = true;
  int rc = a->json ? 0 : compile(a, format, err, errcap);
  if (rc == 0 && path && strcmp(path, "-") == 0) {
    a->fd = 1;
  } else if (rc == 0 && path && *path) {
    a->path = strdup(path);
    rc = a->path ? open_log(path) : PISTON_ENOMEM;
    if (rc >= 0) {
      a->fd = rc;
      a->own = true;
      rc = 0;
    }
  }
  if (rc < 0) {
    piston__alog_free(a);
    return rc;
  }
  *out = a;
  return 0;
}

int piston__alog_reopen(piston__alog *a) {
  if (!a->own)
    return 0;
  int fd = open_log(a->path);
  if (fd < 0)
    return fd;
  int rc = dup2(fd, a->fd) < 0 ? piston__sys_err(errno) : 0;
  close(fd);
  return rc;
}

/* ---- one line ---- */

typedef struct {
  char *p;
  size_t n, cap;
} line_t;

static void put(line_t *l, const char *s, size_t n) {
  if (n > l->cap - l->n)
    n = l->cap - l->n;
  memcpy(l->p + l->n, s, n);
  l->n += n;
}

static void putc_(line_t *l, char c) {
  if (l->n < l->cap)
    l->p[l->n++] = c;
}

/* text escaped for a quoted log field (or a JSON string: \u00HH there) */
static void put_esc(line_t *l, const char *s, size_t n, bool json) {
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < n && l->n < l->cap; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      l->p[l->n++] = (char)c;
    } else if (json && (c == '"' || c == '\\')) {
      putc_(l, '\\');
      putc_(l, (char)c);
    } else if (json) {
      put(l, "\\u00", 4);
      putc_(l, hex[c >> 4]);
      putc_(l, hex[c & 15]);
    } else {
      put(l, "\\x", 2);
      putc_(l, hex[c >> 4]);
      putc_(l, hex[c & 15]);
    }
  }
}

static void put_or_dash(line_t *l, piston_str v, bool json) {
  if (v.ptr && v.len)
    put_esc(l, v.ptr, v.len, json);
  else
    putc_(l, '-');
}

static void put_fmt(line_t *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void put_fmt(line_t *l, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(l->p + l->n, l->cap - l->n, fmt, ap);
  va_end(ap);
  if (k > 0)
    l->n += (size_t)k < l->cap - l->n ? (size_t)k : l->cap - l->n - 1;
}

/* A time's text in a per-thread cache, rebuilt when the second changes. */
typedef struct {
  char text[32];
  time_t sec;
} time_cache;

static const char *cached_time(time_cache *c, const char *fmt, time_t now) {
  if (now != c->sec) {
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(c->text, sizeof c->text, fmt, &tm);
    c->sec = now;
  }
  return c->text;
}

/* "[02/Dec/2026:05:23:53 +0000]" */
static const char *clf_time(void) {
  static _Thread_local time_cache c = {"", -1};
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return cached_time(&c, "[%d/%b/%Y:%H:%M:%S +0000]", ts.tv_sec);
}

static const char *proto_of(const piston_req *r) {
  return r->h2 ? "HTTP/2.0" : r->minor ? "HTTP/1.1" : "HTTP/1.0";
}

/* A captured response header (piston__alog_capture's records). */
static piston_str resp_header(const piston_req *r, uint32_t atom) {
  size_t i = 0;
  while (i + 8 <= r->alog_out_len) {
    uint32_t idx, len;
    memcpy(&idx, r->alog_out + i, 4);
    memcpy(&len, r->alog_out + i + 4, 4);
    if (idx == atom)
      return (piston_str){r->alog_out + i + 8, len};
    i += 8 + len;
  }
  return (piston_str){NULL, 0};
}

/* The user name of "Authorization: Basic base64(user:password)", as
 * gunicorn's %(u)s takes it (what comes before the first ':'); {NULL, 0}
 * for another scheme or a value that does not decode. The password is
 * never looked at beyond the ':'. */
static piston_str basic_user(const piston_req *r, char *out, size_t cap) {
  piston_str v = piston_req_header(r, "authorization", 13);
  if (!v.ptr || v.len < 6 || strncasecmp(v.ptr, "basic ", 6) != 0)
    return (piston_str){NULL, 0};
  const char *p = v.ptr + 6;
  size_t n = v.len - 6;
  while (n && *p == ' ')
    p++, n--;
  while (n && p[n - 1] == ' ')
    n--;
  if (n == 0 || n % 4 != 0 || n / 4 * 3 > cap)
    return (piston_str){NULL, 0};
  int k =
      EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)p, (int)n);
  if (k < 0)
    return (piston_str){NULL, 0};
  /* EVP_DecodeBlock counts the bytes the '=' padding stands for */
  size_t len = (size_t)k - (p[n - 1] == '=') - (p[n - 2] == '=');
  const char *colon = memchr(out, ':', len);
  return (piston_str){out, colon ? (size_t)(colon - out) : len};
}

static void put_atom(line_t *l, const piston__alog *a, uint32_t idx,
                     piston_req *r, uint64_t us) {
  const piston__alog_atom *at = &a->atoms[idx];
  piston_str m = piston_req_method(r);
  switch (at->kind) {
  case A_LIT: put(l, a->text + at->off, at->len); break;
  case A_REMOTE: {
    const char *addr = piston_req_remote_addr(r, NULL);
    put_or_dash(l, (piston_str){addr, strlen(addr)}, false);
    break;
  }
  case A_DASH: putc_(l, '-'); break;
  case A_USER: {
    char user[768];
    put_or_dash(l, basic_user(r, user, sizeof user), false);
    break;
  }
  case A_TIME: put(l, clf_time(), 28); break;
  case A_REQLINE:
    put_esc(l, m.ptr, m.len, false);
    putc_(l, ' ');
    put_esc(l, r->base + r->target_off, r->target_len, false);
    putc_(l, ' ');
    put(l, proto_of(r), 8);
    break;
  case A_METHOD: put_esc(l, m.ptr, m.len, false); break;
  case A_PATH: put_esc(l, r->base + r->path_off, r->path_len, false); break;
  case A_QUERY: put_esc(l, r->base + r->query_off, r->query_len, false); break;
  case A_PROTO: put(l, proto_of(r), 8); break;
  case A_STATUS: put_fmt(l, "%d", r->status); break;
  case A_BYTES: put_fmt(l, "%" PRIu64, r->resp_bytes); break;
  case A_BYTES_DASH:
    if (r->resp_bytes)
      put_fmt(l, "%" PRIu64, r->resp_bytes);
    else
      putc_(l, '-');
    break;
  case A_REFERER:
    put_or_dash(l, piston_req_header(r, "referer", 7), false);
    break;
  case A_UA:
    put_or_dash(l, piston_req_header(r, "user-agent", 10), false);
    break;
  case A_SECS: put_fmt(l, "%" PRIu64, us / 1000000); break;
  case A_MSECS: put_fmt(l, "%" PRIu64, us / 1000); break;
  case A_USECS: put_fmt(l, "%" PRIu64, us); break;
  case A_DSECS:
    put_fmt(l, "%" PRIu64 ".%06" PRIu64, us / 1000000, us % 1000000);
    break;
  case A_PID: put_fmt(l, "<%d>", (int)getpid()); break;
  case A_REQ_HDR:
    put_or_dash(l, piston_req_header(r, a->text + at->off, at->len), false);
    break;
  case A_RESP_HDR: put_or_dash(l, resp_header(r, idx), false); break;
  }
}

static void json_str(line_t *l, const char *key, piston_str v) {
  put_fmt(l, ",\"%s\":", key);
  if (!v.ptr) {
    put(l, "null", 4);
    return;
  }
  putc_(l, '"');
  put_esc(l, v.ptr, v.len, true);
  putc_(l, '"');
}

static void json_line(line_t *l, piston_req *r, uint64_t us) {
  static _Thread_local time_cache c = {"", -1};
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  const char *when = cached_time(&c, "%Y-%m-%dT%H:%M:%S", ts.tv_sec);
  int port;
  const char *addr = piston_req_remote_addr(r, &port);
  put_fmt(l, "{\"time\":\"%s.%03ldZ\"", when, ts.tv_nsec / 1000000);
  json_str(l, "remote_addr", (piston_str){addr, strlen(addr)});
  put_fmt(l, ",\"remote_port\":%d", port);
  json_str(l, "method", piston_req_method(r));
  json_str(l, "path", piston_req_path(r));
  json_str(l, "query", piston_req_query(r));
  put_fmt(l,
          ",\"protocol\":\"%s\",\"scheme\":\"%s\",\"status\":%d,"
          "\"bytes\":%" PRIu64 ",\"duration_us\":%" PRIu64,
          proto_of(r), piston_req_secure(r) ? "https" : "http", r->status,
          r->resp_bytes, us);
  json_str(l, "host", piston_req_header(r, "host", 4));
  json_str(l, "referer", piston_req_header(r, "referer", 7));
  json_str(l, "user_agent", piston_req_header(r, "user-agent", 10));
  char user[768];
  json_str(l, "user", basic_user(r, user, sizeof user));
  putc_(l, '}');
}

void piston__req_access_log(piston_req *r) {
  const piston_server *srv = r->loop->srv;
  piston__req_inflight_done(r);
  bool log = srv->opt[PISTON_OPT_ACCESS_LOG] && srv->alog;
  if (!log && !srv->mslot)
    return;
  uint64_t us = (piston__mono_ns() - r->t_start_ns) / 1000;
  if (srv->mslot)
    piston__metrics_request(srv->mslot, r->base + r->method_off, r->method_len,
                            r->status, us);
  if (!log)
    return;
  const piston__alog *a = srv->alog;
  if (r->path_len == 0 && r->target_len > 0)
    piston__req_split_target(r); /* an engine answer before the dispatch */
  char buf[4096];
  line_t l = {buf, 0, sizeof buf - 1};
  if (a->json)
    json_line(&l, r, us);
  else
    for (uint32_t i = 0; i < a->natoms; i++)
      put_atom(&l, a, i, r, us);
  buf[l.n++] = '\n';
  piston_loop *loop = r->loop;
  if (piston__logbuf_append(&loop->alog, buf, l.n) &&
      piston__current_loop != loop)
    piston__loop_wake(loop); /* a host thread: the next pass writes it */
}

void piston__alog_capture(piston_req *r, const piston_header *h, size_t n) {
  const piston__alog *a = r->loop->srv->alog;
  r->alog_out_len = 0;
  if (!a || !a->resp_headers || !r->loop->srv->opt[PISTON_OPT_ACCESS_LOG])
    return;
  for (uint32_t k = 0; k < a->natoms; k++) {
    const piston__alog_atom *at = &a->atoms[k];
    if (at->kind != A_RESP_HDR)
      continue;
    for (size_t i = 0; i < n; i++) {
      if (h[i].name.len != at->len ||
          strncasecmp(h[i].name.ptr, a->text + at->off, at->len) != 0)
        continue;
      uint32_t len = h[i].value.len > 1024 ? 1024 : (uint32_t)h[i].value.len;
      if (r->alog_out_cap - r->alog_out_len < 8 + (size_t)len) {
        size_t ncap = (r->alog_out_cap ? r->alog_out_cap * 2 : 256) + 8 + len;
        char *g = realloc(r->alog_out, ncap);
        if (!g)
          return;
        r->alog_out = g;
        r->alog_out_cap = ncap;
      }
      memcpy(r->alog_out + r->alog_out_len, &k, 4);
      memcpy(r->alog_out + r->alog_out_len + 4, &len, 4);
      memcpy(r->alog_out + r->alog_out_len + 8, h[i].value.ptr, len);
      r->alog_out_len += 8 + len;
      break;
    }
  }
}
