/* llhttp glue. llhttp runs strict (no lenient flag, ever); these callbacks
 * record the head as offsets into the connection's read buffer and add what
 * llhttp leaves to a server: size and count limits, the protocol and major
 * version, Host rules, Transfer-Encoding on HTTP/1.0, Expect.
 *
 * Callbacks only record and check: they never close the connection, route
 * or call the host. A complete head pauses llhttp (H1_AT_HEAD) and the end
 * of a message pauses it again (H1_AT_END); a rejection sets reject_status
 * and fails the callback. http1.c acts on each once llhttp_execute has
 * returned. */
#define _GNU_SOURCE
#include "http1.h"
#include "util.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static piston__h1 *h1_of(llhttp_t *p) {
  return p->data;
}

static int reject(piston__h1 *h, int status) {
  h->reject_status = status;
  return -1;
}

/* Spans may arrive in pieces across reads; the buffer does not move during a
 * head, so the pieces are contiguous and the first offset plus a growing
 * length describes the whole. */
static void span(piston__h1 *h, const char *at, size_t len, uint32_t *off,
                 uint32_t *slen) {
  if (*slen == 0)
    *off = (uint32_t)(at - h->conn.rbuf);
  *slen += (uint32_t)len;
  h->keep = (uint32_t)(at + len - h->conn.rbuf);
}

static int on_message_begin(llhttp_t *p) {
  piston__h1 *h = h1_of(p);
  piston_req *req = h->spare;
  h->spare = NULL;
  if (!req && !(req = piston__req_new(&h->conn)))
    return reject(h, 503);
  piston__req_reset(req, &h->conn);
  h->req = req;
  return 0;
}

static int on_method(llhttp_t *p, const char *at, size_t len) {
  piston__h1 *h = h1_of(p);
  span(h, at, len, &h->req->method_off, &h->req->method_len);
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  piston__h1 *h = h1_of(p);
  piston_req *r = h->req;
  span(h, at, len, &r->target_off, &r->target_len);
  if (r->target_len >
      (uint64_t)h->conn.io.loop->srv->opt[PISTON_OPT_MAX_URL_SIZE])
    return reject(h, 414);
  return 0;
}

static int on_url_complete(llhttp_t *p) {
  h1_of(p)->req->url_done = true;
  return 0;
}

static int on_version(llhttp_t *p, const char *at, size_t len) {
  piston__h1 *h = h1_of(p);
  piston_req *r = h->req;
  /* llhttp also accepts RTSP and ICE request lines; only HTTP is ours.
   * The version may come in pieces: the protocol precedes the first. */
  bool first = r->version_len == 0;
  span(h, at, len, &r->version_off, &r->version_len);
  if (first && (at - h->conn.rbuf < 5 || memcmp(at - 5, "HTTP/", 5) != 0))
    return reject(h, 505);
  return 0;
}

static int on_version_complete(llhttp_t *p) {
  piston__h1 *h = h1_of(p);
  if (p->http_major != 1)
    return reject(h, 505);
  h->req->minor = (int8_t)p->http_minor;
  return 0;
}

static int header_slot(piston__h1 *h) {
  piston_req *r = h->req;
  if (r->hdr_open)
    return 0;
  if (r->nhdrs >= (uint64_t)h->conn.io.loop->srv->opt[PISTON_OPT_MAX_HEADERS])
    return reject(h, 431);
  if (r->nhdrs == r->hdrcap) {
    uint32_t ncap = r->hdrcap * 2;
    piston__hdr *grown = malloc(ncap * sizeof *grown);
    if (!grown)
      return reject(h, 503);
    memcpy(grown, r->hdrs, r->nhdrs * sizeof *grown);
    if (r->hdrs != r->hdr_inline)
      free(r->hdrs);
    r->hdrs = grown;
    r->hdrcap = ncap;
  }
  r->hdrs[r->nhdrs] = (piston__hdr){0, 0, 0, 0};
  r->hdr_open = true;
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  piston__h1 *h = h1_of(p);
  piston_req *r = h->req;
  if (r->headers_done) { /* a trailer: counted, not kept */
    r->body_total += len;
    return 0;
  }
  if (header_slot(h) != 0)
    return -1;
  span(h, at, len, &r->hdrs[r->nhdrs].name_off, &r->hdrs[r->nhdrs].name_len);
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  piston__h1 *h = h1_of(p);
  piston_req *r = h->req;
  if (r->headers_done) {
    r->body_total += len;
    return 0;
  }
  span(h, at, len, &r->hdrs[r->nhdrs].value_off, &r->hdrs[r->nhdrs].value_len);
  return 0;
}

static int on_header_value_complete(llhttp_t *p) {
  piston__h1 *h = h1_of(p);
  piston_req *r = h->req;
  if (r->headers_done)
    return 0;
  piston__hdr *f = &r->hdrs[r->nhdrs];
  const char *buf = h->conn.rbuf;
  if (f->value_len == 0)
    f->value_off = f->name_off + f->name_len;
  /* llhttp keeps trailing whitespace in the value; RFC 9110 excludes it */
  while (f->value_len > 0 && (buf[f->value_off + f->value_len - 1] == ' ' ||
                              buf[f->value_off + f->value_len - 1] == '\t'))
    f->value_len--;
  if (f->name_len == 4 && strncasecmp(buf + f->name_off, "host", 4) == 0)
    r->nhost++;
  r->nhdrs++;
  r->hdr_open = false;
  return 0;
}

/* Every Transfer-Encoding field lists "chunked" and nothing else. */
static bool only_chunked(const piston_req *r) {
  for (uint32_t i = 0; i < r->nhdrs; i++) {
    piston_header h = piston_req_header_at(r, i);
    if (h.name.len != 17 || strncasecmp(h.name.ptr, "transfer-encoding", 17))
      continue;
    /* RFC 9110 5.6.1: empty list elements do not count */
    piston_str rest = h.value, t;
    while (piston_list_next(&rest, &t))
      if (t.len != 7 || strncasecmp(t.ptr, "chunked", 7) != 0)
        return false;
  }
  return true;
}

/* every request's Host goes through here: a switch (a bit test once
 * compiled) rather than a strchr per character */
static bool is_unreserved_or_sub_delim(unsigned char ch) {
  if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
      (ch >= '0' && ch <= '9'))
    return true;
  switch (ch) {
  case '-':
  case '.':
  case '_':
  case '~':
  case '!':
  case '$':
  case '&':
  case '\'':
  case '(':
  case ')':
  case '*':
  case '+':
  case ',':
  case ';':
  case '=': return true;
  default: return false;
  }
}

static bool is_hex(unsigned char ch) {
  return (ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f');
}

/* RFC 9112 3.2: a Host that is not uri-host [ ":" port ] (RFC 3986 3.2.2)
 * is a 400, whatever the app would make of it. An empty value is allowed
 * (the client's way of saying the target has no authority). The uri-host
 * is an IP-literal in brackets or a reg-name (IPv4 addresses are reg-names
 * by their syntax); the port is digits. */
static bool valid_host(piston_str v) {
  const unsigned char *s = (const unsigned char *)v.ptr;
  size_t n = v.len, i = 0;
  if (n > 0 && s[0] == '[') {
    const unsigned char *close = memchr(s, ']', n);
    if (!close)
      return false;
    size_t lit = (size_t)(close - s) - 1;
    if (lit > 0 && (s[1] | 0x20) == 'v') {
      /* IPvFuture: "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ) */
      size_t k = 2;
      while (k <= lit && is_hex(s[k]))
        k++;
      if (k == 2 || k > lit || s[k] != '.' || k == lit)
        return false;
      for (k++; k <= lit; k++)
        if (s[k] != ':' && !is_unreserved_or_sub_delim(s[k]))
          return false;
    } else {
      char addr[INET6_ADDRSTRLEN];
      struct in6_addr a6;
      if (lit == 0 || lit >= sizeof addr)
        return false;
      memcpy(addr, s + 1, lit);
      addr[lit] = '\0';
      if (inet_pton(AF_INET6, addr, &a6) != 1)
        return false;
    }
    i = lit + 2;
  } else {
    while (i < n && s[i] != ':') {
      if (s[i] == '%') {
        if (i + 2 >= n || !is_hex(s[i + 1]) || !is_hex(s[i + 2]))
          return false;
        i += 3;
      } else if (is_unreserved_or_sub_delim(s[i])) {
        i++;
      } else {
        return false;
      }
    }
  }
  if (i == n)
    return true;
  if (s[i] != ':')
    return false;
  for (i++; i < n; i++)
    if (s[i] < '0' || s[i] > '9')
      return false;
  return true;
}

static int on_headers_complete(llhttp_t *p) {
  piston__h1 *h = h1_of(p);
  piston_req *r = h->req;
  const piston_server *srv = h->conn.io.loop->srv;
  r->headers_done = true;
  /* llhttp takes "GET /path" with no version as HTTP/0.9 without calling
   * the version callbacks; there is no such thing as a 0.9 request here */
  if (r->version_len == 0)
    return reject(h, 400);
  /* a head that arrived whole in one read was never measured on the way */
  if (h->keep - r->method_off > (uint64_t)srv->opt[PISTON_OPT_MAX_HEAD_SIZE])
    return reject(h, 431);
  if (r->minor >= 1 ? r->nhost != 1 : r->nhost > 1)
    return reject(h, 400);
  if (r->nhost == 1 && !valid_host(piston_req_header(r, "host", 4)))
    return reject(h, 400);
  /* RFC 9112 6.3: a request whose Transfer-Encoding does not end in
   * chunked has no reliable length; llhttp lets it through */
  if ((p->flags & F_TRANSFER_ENCODING) && !(p->flags & F_CHUNKED))
    return reject(h, 400);
  /* chunked is the only coding decoded here: a body under gzip or another
   * coding would reach the host still encoded (RFC 9112 6.1: 501) */
  if ((p->flags & F_TRANSFER_ENCODING) && !only_chunked(r))
    return reject(h, 501);
  /* HTTP/1.0 has no chunked coding: a Transfer-Encoding there is framing
   * the peer and any proxy may disagree on (RFC 9112 6.1) */
  if ((p->flags & F_TRANSFER_ENCODING) && r->minor == 0)
    return reject(h, 400);
  if (p->flags & F_CHUNKED)
    r->content_length = -1;
  else if (p->flags & F_CONTENT_LENGTH)
    r->content_length = (int64_t)p->content_length;
  else
    r->content_length = 0;
  int64_t max_body = srv->opt[PISTON_OPT_MAX_BODY_SIZE];
  if (max_body > 0 && r->content_length > max_body)
    return reject(h, 413);
  piston_str expect = piston_req_header(r, "expect", 6);
  if (expect.ptr) {
    bool cont =
        expect.len == 12 && strncasecmp(expect.ptr, "100-continue", 12) == 0;
    if (!cont && !srv->opt[PISTON_OPT_EXPECT_TO_HOST])
      return reject(h, 417);
    r->expect_continue = cont && r->minor >= 1 && r->content_length != 0;
  }
  r->keepalive = llhttp_should_keep_alive(p) != 0;
  r->is_head = p->method == HTTP_HEAD;
  r->has_upgrade = (p->flags & F_UPGRADE) != 0;
  piston__req_split_target(r);
  /* http1.c dispatches the head once llhttp_execute returns. A body must
   * wait for that (the host or a native route decides what becomes of it),
   * so llhttp pauses here; without one it runs on to the message's end,
   * which pauses anyway: one llhttp_execute per request, as pipelined
   * batches want. */
  h->head_ready = true;
  if (r->content_length == 0)
    return 0;
  h->paused = H1_AT_HEAD;
  return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  piston__h1 *h = h1_of(p);
  piston_req *r = h->req;
  r->body_total += len;
  int64_t max_body = h->conn.io.loop->srv->opt[PISTON_OPT_MAX_BODY_SIZE];
  if (max_body > 0 && r->body_total > (uint64_t)max_body)
    return reject(h, 413);
  if (r->discard_body)
    return 0;
  if (piston__req_body_append(r, at, len) != 0)
    return reject(h, 503);
  return 0;
}

/* A declared chunk that would cross the limit is refused before its bytes
 * arrive. llhttp puts the chunk size in content_length here. */
static int on_chunk_header(llhttp_t *p) {
  piston__h1 *h = h1_of(p);
  int64_t max_body = h->conn.io.loop->srv->opt[PISTON_OPT_MAX_BODY_SIZE];
  if (max_body > 0 &&
      h->req->body_total + p->content_length > (uint64_t)max_body)
    return reject(h, 413);
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  piston__h1 *h = h1_of(p);
  pthread_mutex_lock(&h->req->lock);
  h->req->body_done = true;
  pthread_mutex_unlock(&h->req->lock);
  /* Stop here: the next pipelined request waits for this response. */
  h->paused = H1_AT_END;
  return HPE_PAUSED;
}

const llhttp_settings_t piston__parser_settings = {
    .on_message_begin = on_message_begin,
    .on_method = on_method,
    .on_url = on_url,
    .on_url_complete = on_url_complete,
    .on_version = on_version,
    .on_version_complete = on_version_complete,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_chunk_header = on_chunk_header,
    .on_message_complete = on_message_complete,
};
