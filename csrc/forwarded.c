/* What a trusted proxy says about the client: X-Forwarded-For, -Proto,
 * -Host, -Port (and gunicorn's secure-scheme fields X-Forwarded-Ssl: on,
 * X-Forwarded-Protocol: ssl), or RFC 7239 Forwarded. Applied once per
 * request, before the native routes and the host see it, so that every
 * host reads the client through the same calls: piston_req_remote_addr,
 * piston_req_secure, piston_req_forwarded_host.
 *
 * The fields are believed only from a peer in the server's trusted list
 * (piston_server_trust_proxies); from any other peer they stay what they
 * are, plain headers the app may read. The fields themselves are never
 * changed or removed.
 *
 * The client is the rightmost address of X-Forwarded-For that is not a
 * trusted proxy (each proxy appends the address it received from, so
 * everything right of the first untrusted hop was written by proxies we
 * trust, and everything left of it by someone we do not); if every hop is
 * trusted, the leftmost; with "*" the leftmost (uvicorn's
 * ProxyHeadersMiddleware). Forwarded's for= parameters are read the same
 * way, and the scheme and host come from the element that named the
 * client. X-Forwarded-* wins when both kinds are present: nginx and most
 * balancers send it and pass a client's Forwarded through untouched. */
#define _GNU_SOURCE
#include "req.h"
#include "server.h"
#include "trust.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

static bool name_is(const piston__hdr *h, const char *base, const char *name,
                    size_t n) {
  return h->name_len == n && strncasecmp(base + h->name_off, name, n) == 0;
}

static piston_str trim(const char *p, size_t n) {
  while (n && (p[0] == ' ' || p[0] == '\t'))
    p++, n--;
  while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
    n--;
  return (piston_str){p, n};
}

/* Takes the last non-empty comma-separated element off *rest. */
static bool last_item(piston_str *rest, piston_str *item) {
  while (rest->len) {
    size_t i = rest->len;
    while (i > 0 && rest->ptr[i - 1] != ',')
      i--;
    *item = trim(rest->ptr + i, rest->len - i);
    rest->len = i ? i - 1 : 0;
    if (item->len)
      return true;
  }
  return false;
}

static bool first_item(piston_str v, piston_str *item) {
  return piston_list_next(&v, item) == 1;
}

/* "addr", "addr:port", "[v6]", "[v6]:port" (Forwarded's node syntax, also
 * accepted in X-Forwarded-For); *port 0 when none. */
static bool node_parse(piston_str v, struct sockaddr_storage *ss, int *port) {
  const char *p = v.ptr;
  size_t n = v.len, alen = n;
  const char *ps = NULL;
  if (n && p[0] == '[') {
    const char *close = memchr(p, ']', n);
    if (!close)
      return false;
    alen = (size_t)(close - p) + 1;
    if (alen < n) {
      if (p[alen] != ':')
        return false;
      ps = p + alen + 1;
    }
  } else {
    const char *colon = memchr(p, ':', n);
    if (colon && !memchr(colon + 1, ':', (size_t)(p + n - colon - 1))) {
      alen = (size_t)(colon - p); /* IPv4:port; more colons: bare IPv6 */
      ps = colon + 1;
    }
  }
  *port = 0;
  if (ps) {
    int num = 0;
    const char *end = p + n;
    if (ps == end || end - ps > 5)
      return false;
    for (const char *d = ps; d < end; d++) {
      if (*d < '0' || *d > '9')
        return false;
      num = num * 10 + (*d - '0');
    }
    if (num > 65535)
      return false;
    *port = num;
  }
  return piston__addr_parse(p, alen, ss);
}

static bool hop_trusted(const piston__trust *t, piston_str hop) {
  struct sockaddr_storage ss;
  int port;
  return node_parse(hop, &ss, &port) &&
         piston__trust_peer(t, (struct sockaddr *)&ss);
}

static void set_client(piston_req *r, piston_str node) {
  struct sockaddr_storage ss;
  int port;
  if (!node_parse(node, &ss, &port))
    return; /* "unknown", an obfuscated name: the peer stays */
  memset(&r->peer, 0, sizeof r->peer);
  if (ss.ss_family == AF_INET) {
    r->peer.in4 = *(struct sockaddr_in *)&ss;
    r->peer.in4.sin_port = htons((uint16_t)port);
  } else {
    r->peer.in6 = *(struct sockaddr_in6 *)&ss;
    r->peer.in6.sin6_port = htons((uint16_t)port);
  }
  r->peer_done = false;
  r->fwd_peer = true;
}

static void set_scheme(piston_req *r, piston_str v) {
  if ((v.len == 5 && strncasecmp(v.ptr, "https", 5) == 0) ||
      (v.len == 3 && strncasecmp(v.ptr, "wss", 3) == 0))
    r->fwd_scheme = 2;
  else if ((v.len == 4 && strncasecmp(v.ptr, "http", 4) == 0) ||
           (v.len == 2 && strncasecmp(v.ptr, "ws", 2) == 0))
    r->fwd_scheme = 1;
}

/* host[:port] into the request's forwarded host (without the port) */
static void set_host(piston_req *r, piston_str v) {
  size_t hlen = v.len;
  int port = 0;
  const char *colon = NULL;
  if (v.len && v.ptr[0] == '[') {
    const char *close = memchr(v.ptr, ']', v.len);
    if (!close)
      return;
    hlen = (size_t)(close - v.ptr) + 1;
    if (hlen < v.len && v.ptr[hlen] == ':')
      colon = v.ptr + hlen;
  } else if ((colon = memchr(v.ptr, ':', v.len))) {
    hlen = (size_t)(colon - v.ptr);
  }
  if (colon) {
    for (const char *d = colon + 1; d < v.ptr + v.len; d++) {
      if (*d < '0' || *d > '9' || port > 65535)
        return;
      port = port * 10 + (*d - '0');
    }
  }
  if (hlen == 0 || port > 65535)
    return;
  r->fwd_host_off = (uint32_t)(v.ptr - r->base);
  r->fwd_host_len = (uint32_t)hlen;
  r->fwd_port = port;
}

static void set_port(piston_req *r, piston_str v) {
  int port = 0;
  if (v.len == 0 || v.len > 5)
    return;
  for (size_t i = 0; i < v.len; i++) {
    if (v.ptr[i] < '0' || v.ptr[i] > '9')
      return;
    port = port * 10 + (v.ptr[i] - '0');
  }
  if (port > 0 && port <= 65535)
    r->fwd_xport = port;
}

/* ---- X-Forwarded-* ---- */

static void apply_x(piston_req *r, const piston__trust *t) {
  /* the client: walk the X-Forwarded-For fields from the last one */
  piston_str leftmost = {NULL, 0}, chosen = {NULL, 0};
  for (uint32_t i = r->nhdrs; i-- > 0 && !chosen.ptr;) {
    const piston__hdr *h = &r->hdrs[i];
    if (!name_is(h, r->base, "x-forwarded-for", 15))
      continue;
    piston_str rest = {r->base + h->value_off, h->value_len}, hop;
    while (last_item(&rest, &hop)) {
      leftmost = hop;
      if (!t->any && !hop_trusted(t, hop)) {
        chosen = hop;
        break;
      }
    }
  }
  if (!chosen.ptr)
    chosen = leftmost; /* every hop trusted (or "*"): the first one */
  if (chosen.ptr)
    set_client(r, chosen);
  /* scheme, host, port: the nearest proxy's word (the last element) */
  for (uint32_t i = 0; i < r->nhdrs; i++) {
    const piston__hdr *h = &r->hdrs[i];
    piston_str rest = {r->base + h->value_off, h->value_len}, v;
    if (name_is(h, r->base, "x-forwarded-proto", 17)) {
      if (last_item(&rest, &v))
        set_scheme(r, v);
    } else if (name_is(h, r->base, "x-forwarded-ssl", 15)) {
      if (first_item(rest, &v) && v.len == 2 &&
          strncasecmp(v.ptr, "on", 2) == 0)
        r->fwd_scheme = 2;
    } else if (name_is(h, r->base, "x-forwarded-protocol", 20)) {
      if (first_item(rest, &v) && v.len == 3 &&
          strncasecmp(v.ptr, "ssl", 3) == 0)
        r->fwd_scheme = 2;
    } else if (name_is(h, r->base, "x-forwarded-host", 16)) {
      if (last_item(&rest, &v))
        set_host(r, v);
    } else if (name_is(h, r->base, "x-forwarded-port", 16)) {
      if (last_item(&rest, &v))
        set_port(r, v);
    }
  }
}

/* ---- RFC 7239 Forwarded ---- */

typedef struct {
  piston_str for_, proto, host;
} fwd_elem;

#define MAX_ELEMS 32

/* A token or a quoted-string (without escapes: a backslash makes the whole
 * field unusable, as no real proxy writes one). Returns the bytes after. */
static const char *value_at(const char *p, const char *end, piston_str *v) {
  if (p < end && *p == '"') {
    const char *q = p + 1;
    while (q < end && *q != '"' && *q != '\\')
      q++;
    if (q == end || *q != '"')
      return NULL;
    *v = (piston_str){p + 1, (size_t)(q - p - 1)};
    return q + 1;
  }
  const char *q = p;
  while (q < end && *q != ';' && *q != ',' && *q != ' ' && *q != '\t')
    q++;
  *v = (piston_str){p, (size_t)(q - p)};
  return q;
}

/* Appends the field's elements to e[*n..]; keeps the last MAX_ELEMS (the
 * first one is remembered in *first). false: the field is malformed. */
static bool parse_forwarded(piston_str f, fwd_elem *e, size_t *n,
                            fwd_elem *first, bool *have_first) {
  const char *p = f.ptr, *end = f.ptr + f.len;
  fwd_elem cur = {{NULL, 0}, {NULL, 0}, {NULL, 0}};
  bool any = false;
  while (p <= end) {
    while (p < end && (*p == ' ' || *p == '\t'))
      p++;
    if (p == end || *p == ',') {
      if (any) {
        if (!*have_first) {
          *first = cur;
          *have_first = true;
        }
        if (*n == MAX_ELEMS) {
          memmove(e, e + 1, (MAX_ELEMS - 1) * sizeof *e);
          (*n)--;
        }
        e[(*n)++] = cur;
      }
      memset(&cur, 0, sizeof cur);
      any = false;
      if (p == end)
        break;
      p++;
      continue;
    }
    if (*p == ';') {
      p++;
      continue;
    }
    const char *eq = p;
    while (eq < end && *eq != '=' && *eq != ';' && *eq != ',')
      eq++;
    if (eq == end || *eq != '=')
      return false;
    piston_str name = trim(p, (size_t)(eq - p)), v;
    p = value_at(eq + 1, end, &v);
    if (!p)
      return false;
    any = true;
    if (name.len == 3 && strncasecmp(name.ptr, "for", 3) == 0)
      cur.for_ = v;
    else if (name.len == 5 && strncasecmp(name.ptr, "proto", 5) == 0)
      cur.proto = v;
    else if (name.len == 4 && strncasecmp(name.ptr, "host", 4) == 0)
      cur.host = v;
  }
  return true;
}

static void apply_forwarded(piston_req *r, const piston__trust *t) {
  fwd_elem e[MAX_ELEMS], first;
  size_t n = 0;
  bool have_first = false;
  for (uint32_t i = 0; i < r->nhdrs; i++) {
    const piston__hdr *h = &r->hdrs[i];
    if (name_is(h, r->base, "forwarded", 9) &&
        !parse_forwarded((piston_str){r->base + h->value_off, h->value_len}, e,
                         &n, &first, &have_first))
      return; /* one bad field: none of it is believed */
  }
  if (!have_first)
    return;
  const fwd_elem *chosen = NULL;
  for (size_t i = n; i-- > 0 && !t->any;)
    if (!e[i].for_.ptr || !hop_trusted(t, e[i].for_)) {
      chosen = &e[i];
      break;
    }
  if (!chosen)
    chosen = &first;
  if (chosen->for_.ptr)
    set_client(r, chosen->for_);
  if (chosen->proto.ptr)
    set_scheme(r, chosen->proto);
  if (chosen->host.ptr)
    set_host(r, chosen->host);
}

void piston__forwarded_apply(piston_req *r, const piston_server *srv) {
  if (!srv->opt[PISTON_OPT_PROXY_HEADERS] || !srv->trust ||
      !piston__trust_peer(srv->trust, &r->peer.sa))
    return;
  bool x = false, fwd = false;
  for (uint32_t i = 0; i < r->nhdrs; i++) {
    const piston__hdr *h = &r->hdrs[i];
    if (h->name_len >= 12 &&
        strncasecmp(r->base + h->name_off, "x-forwarded-", 12) == 0)
      x = true;
    else if (name_is(h, r->base, "forwarded", 9))
      fwd = true;
  }
  if (x)
    apply_x(r, srv->trust);
  else if (fwd)
    apply_forwarded(r, srv->trust);
}

int piston_req_secure(const piston_req *r) {
  if (r->fwd_scheme)
    return r->fwd_scheme == 2;
  return r->tls && r->tls->len[PISTON_TLSI_VERSION] > 0;
}

piston_str piston_req_forwarded_host(const piston_req *r, int *port) {
  if (r->fwd_host_len == 0) {
    if (port)
      *port = 0;
    return (piston_str){NULL, 0};
  }
  if (port)
    *port = r->fwd_xport           ? r->fwd_xport
            : r->fwd_port          ? r->fwd_port
            : piston_req_secure(r) ? 443
                                   : 80;
  return (piston_str){r->base + r->fwd_host_off, r->fwd_host_len};
}
