/* PROXY protocol v1 and v2 (proxyproto.h), as HAProxy's specification
 * (doc/proxy-protocol.txt) writes them.
 *
 * The header is looked at with MSG_PEEK and only its own bytes are then
 * read, so whatever follows (a TLS ClientHello, an HTTP head, pipelined
 * requests) is left in the socket for the transport's first read. A
 * header that has not all arrived is peeked again at the next edge of the
 * socket; the head timeout, which runs from accept, bounds the wait. */
#define _GNU_SOURCE
#include "proxyproto.h"
#include "conn.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

static const uint8_t v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                   0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* A decimal port, 0-65535, without a sign or leading zeros. */
static bool v1_port(const char *p, size_t n, uint16_t *out) {
  if (n == 0 || n > 5 || (n > 1 && p[0] == '0'))
    return false;
  unsigned v = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9')
      return false;
    v = v * 10 + (unsigned)(p[i] - '0');
  }
  if (v > 65535)
    return false;
  *out = (uint16_t)v;
  return true;
}

/* "PROXY TCP4 src dst sport dport\r\n" (or TCP6, or UNKNOWN ...): the
 * line without its CRLF. */
static int v1_line(const char *line, size_t n, piston__proxy_info *out) {
  const char *f[6];
  size_t fl[6], nf = 0;
  size_t i = 0;
  while (i <= n && nf < 6) {
    size_t s = i;
    while (i < n && line[i] != ' ')
      i++;
    f[nf] = line + s;
    fl[nf++] = i - s;
    if (i == n)
      break;
    i++;
  }
  if (nf < 2 || fl[0] != 5 || memcmp(f[0], "PROXY", 5) != 0)
    return -1;
  if (fl[1] == 7 && memcmp(f[1], "UNKNOWN", 7) == 0)
    return 0; /* the rest is to be ignored */
  int family;
  if (fl[1] == 4 && memcmp(f[1], "TCP4", 4) == 0)
    family = AF_INET;
  else if (fl[1] == 4 && memcmp(f[1], "TCP6", 4) == 0)
    family = AF_INET6;
  else
    return -1;
  if (nf != 6 || i != n)
    return -1;
  char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
  uint16_t sport, dport;
  if (fl[2] == 0 || fl[2] >= sizeof a || fl[3] == 0 || fl[3] >= sizeof b ||
      !v1_port(f[4], fl[4], &sport) || !v1_port(f[5], fl[5], &dport))
    return -1;
  memcpy(a, f[2], fl[2]);
  a[fl[2]] = '\0';
  memcpy(b, f[3], fl[3]);
  b[fl[3]] = '\0';
  uint8_t dst[16];
  memset(&out->src, 0, sizeof out->src);
  if (family == AF_INET) {
    struct sockaddr_in *s = (struct sockaddr_in *)&out->src;
    if (inet_pton(AF_INET, a, &s->sin_addr) != 1 ||
        inet_pton(AF_INET, b, dst) != 1)
      return -1;
    s->sin_family = AF_INET;
    s->sin_port = htons(sport);
    out->src_len = sizeof *s;
  } else {
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src;
    if (inet_pton(AF_INET6, a, &s->sin6_addr) != 1 ||
        inet_pton(AF_INET6, b, dst) != 1)
      return -1;
    s->sin6_family = AF_INET6;
    s->sin6_port = htons(sport);
    out->src_len = sizeof *s;
  }
  out->has_src = true;
  return 0;
}

static int parse_v1(const uint8_t *p, size_t n, piston__proxy_info *out) {
  size_t lim = n < PISTON_PROXY_V1_MAX ? n : PISTON_PROXY_V1_MAX;
  for (size_t i = 0; i < lim; i++) {
    if (p[i] == '\r') {
      if (i + 1 == n)
        return 0; /* its LF has not come yet */
      if (i + 1 >= PISTON_PROXY_V1_MAX || p[i + 1] != '\n')
        return -1;
      return v1_line((const char *)p, i, out) < 0 ? -1 : (int)(i + 2);
    }
    if (p[i] < 0x20 || p[i] > 0x7e)
      return -1; /* a bare LF, a NUL, a byte no header has */
  }
  return n >= PISTON_PROXY_V1_MAX ? -1 : 0;
}

static int parse_v2(const uint8_t *p, size_t n, piston__proxy_info *out) {
  if (n < 16)
    return 0;
  if ((p[12] >> 4) != 2)
    return -1; /* version 2 only */
  int cmd = p[12] & 0x0f;
  if (cmd > 1)
    return -1; /* LOCAL (0) and PROXY (1) are all there is */
  size_t len = (size_t)p[14] << 8 | p[15];
  int fam = p[13];
  size_t need = fam == 0x11 ? 12 : fam == 0x21 ? 36 : fam == 0x31 ? 216 : 0;
  if (fam != 0x00 && fam != 0x11 && fam != 0x21 && fam != 0x31)
    return -1; /* UDP or unknown: nothing HTTP can run over */
  if (len < need)
    return -1;
  if (n < 16 + len)
    return 0;
  if (cmd == 0 || fam == 0x00 || fam == 0x31)
    return (int)(16 + len); /* LOCAL (a health check), UNSPEC, AF_UNIX */
  const uint8_t *a = p + 16;
  memset(&out->src, 0, sizeof out->src);
  if (fam == 0x11) {
    struct sockaddr_in *s = (struct sockaddr_in *)&out->src;
    s->sin_family = AF_INET;
    memcpy(&s->sin_addr, a, 4);
    memcpy(&s->sin_port, a + 8, 2);
    out->src_len = sizeof *s;
  } else {
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src;
    s->sin6_family = AF_INET6;
    memcpy(&s->sin6_addr, a, 16);
    memcpy(&s->sin6_port, a + 32, 2);
    out->src_len = sizeof *s;
  }
  out->has_src = true;
  return (int)(16 + len);
}

int piston__proxy_parse(const uint8_t *p, size_t n, piston__proxy_info *out) {
  out->has_src = false;
  if (n == 0)
    return 0;
  size_t k = n < sizeof v2_sig ? n : sizeof v2_sig;
  if (memcmp(p, v2_sig, k) == 0)
    return k < sizeof v2_sig ? 0 : parse_v2(p, n, out);
  k = n < 6 ? n : 6;
  if (memcmp(p, "PROXY ", k) == 0)
    return k < 6 ? 0 : parse_v1(p, n, out);
  return -1;
}

static int reject(piston__conn *c, const char *why) {
  piston__debug("PROXY protocol: %s on connection %llu: closed", why,
                (unsigned long long)c->id);
  piston__conn_close(c);
  return -2;
}

int piston__proxy_read(piston__conn *c) {
  if (!piston__conn_rbuf_take(c))
    return -2;
  /* the read buffer is empty while the header is awaited: peek into it */
  size_t cap = piston__conn_rbuf_size(c);
  if (cap > 16 + 65535)
    cap = 16 + 65535;
  for (;;) {
    ssize_t n = recv(c->fd, c->rbuf, cap, MSG_PEEK);
    if (n == 0)
      return reject(c, "the connection ended before its header");
    if (n < 0) {
      int rc = piston__conn_read_failed(c);
      if (rc != 0)
        return rc;
      continue;
    }
    piston__proxy_info info;
    int len = piston__proxy_parse((const uint8_t *)c->rbuf, (size_t)n, &info);
    if (len < 0)
      return reject(c, "not a valid header");
    if (len == 0) {
      if ((size_t)n == cap)
        return reject(c, "a header longer than the read buffer");
      /* a peek never sees the FIN that follows the bytes it shows: epoll's
       * RDHUP says nothing more will come */
      if (c->rdhup)
        return reject(c, "the connection ended within its header");
      /* the rest comes with the socket's next edge */
      c->readable = false;
      return -1;
    }
    /* take exactly the header: it is all there, as the peek showed */
    ssize_t got = recv(c->fd, c->rbuf, (size_t)len, 0);
    if (got != len)
      return reject(c, "a short read of a peeked header");
    if (info.has_src) {
      memcpy(&c->peer, &info.src, info.src_len);
      c->peer_len = info.src_len;
    }
    c->proxy_wait = false;
    return 0;
  }
}
