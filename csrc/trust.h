/* Trusted proxies: the addresses whose X-Forwarded-* / Forwarded fields
 * and PROXY protocol headers the engine believes (uvicorn's and gunicorn's
 * --forwarded-allow-ips). A list of IPv4/IPv6 addresses and CIDR blocks,
 * "unix:" for peers on a Unix socket and "*" for every peer. Parsed once
 * when the server is configured, read-only afterwards. Owned by trust.c. */
#ifndef PISTON_TRUST_H
#define PISTON_TRUST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct {
  uint8_t family; /* AF_INET or AF_INET6 */
  uint8_t bits;   /* prefix length */
  uint8_t addr[16];
} piston__cidr;

typedef struct piston__trust {
  bool any;   /* "*" */
  bool local; /* "unix:" */
  size_t n;
  piston__cidr cidr[];
} piston__trust;

/* Parses a comma- or space-separated list. NULL list or "" is an empty
 * list (nothing trusted). Returns 0 and *out (free() it), or PISTON_EINVAL
 * with the first bad entry copied to bad (NUL-terminated, cut to cap). */
int piston__trust_parse(const char *list, piston__trust **out, char *bad,
                        size_t cap);
/* Whether a socket peer is trusted (IPv4-mapped IPv6 counts as IPv4). */
bool piston__trust_peer(const piston__trust *t, const struct sockaddr *sa);
/* Parses an address as text (IPv4, or IPv6 with or without brackets)
 * into *ss; false if it is none. */
bool piston__addr_parse(const char *p, size_t n, struct sockaddr_storage *ss);

#endif
