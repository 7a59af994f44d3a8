/* The PROXY protocol (HAProxy's, versions 1 and 2): the header a proxy
 * writes at the start of a TCP connection to say whom it accepted it from.
 * Read before anything else on a connection from a trusted proxy, before
 * a TLS handshake too, and never more than the header: the bytes after it
 * stay in the socket for the transport. Owned by proxyproto.c. */
#ifndef PISTON_PROXYPROTO_H
#define PISTON_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* v1's longest line, CRLF included (the specification's 107 bytes) */
#define PISTON_PROXY_V1_MAX 107

typedef struct {
  /* the client's address and port; false when the header names none to
   * use (v2 LOCAL, v1 UNKNOWN, v2 UNSPEC or AF_UNIX): the socket's peer
   * stays */
  bool has_src;
  struct sockaddr_storage src;
  socklen_t src_len;
} piston__proxy_info;

/* Parses a header at the start of p[0, n): its length (> 0) and *out, 0
 * if what is there may be the start of a valid header (more is needed),
 * -1 if it cannot be one. TLVs of v2 are skipped. */
int piston__proxy_parse(const uint8_t *p, size_t n, piston__proxy_info *out);

struct piston__conn;
/* Reads the header of c (which waits for one: proxy_wait) from its socket:
 * 0 once it is read (the peer replaced by the client it names), -1 while
 * it is incomplete (readable cleared), -2 if c was closed (garbage, a
 * header too long, the peer's EOF before the end of it; no answer is
 * sent, as nothing HTTP was said). */
int piston__proxy_read(struct piston__conn *c);

#endif
