/* Trusted-proxy lists: parsing and matching (trust.h). */
#define _GNU_SOURCE
#include "trust.h"
#include "piston.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

bool piston__addr_parse(const char *p, size_t n, struct sockaddr_storage *ss) {
  char buf[INET6_ADDRSTRLEN + 2];
  if (n >= 2 && p[0] == '[' && p[n - 1] == ']') {
    p++;
    n -= 2;
  }
  if (n == 0 || n >= sizeof buf)
    return false;
  memcpy(buf, p, n);
  buf[n] = '\0';
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, buf, &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    return true;
  }
  if (inet_pton(AF_INET6, buf, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    return true;
  }
  return false;
}

/* One entry: an address, or an address and a prefix length. */
static bool parse_cidr(const char *p, size_t n, piston__cidr *c) {
  const char *slash = memchr(p, '/', n);
  size_t alen = slash ? (size_t)(slash - p) : n;
  struct sockaddr_storage ss;
  if (!piston__addr_parse(p, alen, &ss))
    return false;
  int max;
  if (ss.ss_family == AF_INET) {
    c->family = AF_INET;
    memcpy(c->addr, &((struct sockaddr_in *)&ss)->sin_addr, 4);
    max = 32;
  } else {
    c->family = AF_INET6;
    memcpy(c->addr, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
    max = 128;
  }
  int bits = max;
  if (slash) {
    const char *d = slash + 1, *end = p + n;
    if (d == end || end - d > 3)
      return false;
    bits = 0;
    for (; d < end; d++) {
      if (*d < '0' || *d > '9')
        return false;
      bits = bits * 10 + (*d - '0');
    }
    if (bits > max)
      return false;
  }
  c->bits = (uint8_t)bits;
  return true;
}

int piston__trust_parse(const char *list, piston__trust **out, char *bad,
                        size_t cap) {
  size_t len = list ? strlen(list) : 0, most = 1;
  for (size_t i = 0; i < len; i++)
    most += list[i] == ',' || list[i] == ' ';
  piston__trust *t = calloc(1, sizeof *t + most * sizeof t->cidr[0]);
  if (!t)
    return PISTON_ENOMEM;
  size_t i = 0;
  while (i < len) {
    while (i < len && (list[i] == ',' || list[i] == ' ' || list[i] == '\t'))
      i++;
    size_t s = i;
    while (i < len && list[i] != ',' && list[i] != ' ' && list[i] != '\t')
      i++;
    size_t n = i - s;
    if (n == 0)
      continue;
    const char *e = list + s;
    if (n == 1 && e[0] == '*')
      t->any = true;
    else if (n == 5 && memcmp(e, "unix:", 5) == 0)
      t->local = true;
    else if (!parse_cidr(e, n, &t->cidr[t->n]))
      goto fail;
    else
      t->n++;
    continue;
  fail:
    if (bad && cap) {
      size_t k = n < cap - 1 ? n : cap - 1;
      memcpy(bad, e, k);
      bad[k] = '\0';
    }
    free(t);
    return PISTON_EINVAL;
  }
  *out = t;
  return 0;
}

static bool prefix_match(const uint8_t *a, const uint8_t *b, int bits) {
  int whole = bits / 8, rest = bits % 8;
  if (memcmp(a, b, (size_t)whole) != 0)
    return false;
  if (rest == 0)
    return true;
  uint8_t mask = (uint8_t)(0xff << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

bool piston__trust_peer(const piston__trust *t, const struct sockaddr *sa) {
  if (!t)
    return false;
  if (t->any)
    return true;
  const uint8_t *a;
  int family = sa->sa_family;
  if (family == AF_INET) {
    a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
  } else if (family == AF_INET6) {
    a = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0,    0,
                                       0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(a, mapped, 12) == 0) { /* ::ffff:a.b.c.d, a dual-stack peer */
      a += 12;
      family = AF_INET;
    }
  } else {
    return t->local; /* AF_UNIX (or unnamed) */
  }
  for (size_t i = 0; i < t->n; i++)
    if (t->cidr[i].family == family &&
        prefix_match(a, t->cidr[i].addr, t->cidr[i].bits))
      return true;
  return false;
}
