/* The HTTP/2 protocol handler (RFC 9113), on nghttp2: framing, HPACK, flow
 * control and the protocol's verdicts are nghttp2's; each stream is an
 * exchange with the same request handle the hosts use on HTTP/1.1. It takes
 * a connection over from the HTTP/1.1 handler (whose memory it shares, as
 * the WebSocket handler does): after ALPN chose h2, or when the client
 * opened with the HTTP/2 preface (h2c with prior knowledge). Owned by
 * h2.c. */
#ifndef PISTON_H2_H
#define PISTON_H2_H

#include "http1.h"

/* The client preface (RFC 9113 3.4) */
#define PISTON_H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define PISTON_H2_PREFACE_LEN 24

/* Takes h's connection over; what is in its read buffer (the preface
 * first) is HTTP/2's. */
void piston__h2_start(piston__h1 *h);
void piston__h2_free(void *h2);
/* HTTP/1.1's Upgrade: h2c (RFC 7540 3.2), for h->req, a complete request
 * just parsed: if h2c is on and the request may upgrade, the 101 is
 * queued, the request becomes stream 1 and the connection is HTTP/2's
 * (true); otherwise it stays an HTTP/1.1 request (false). */
bool piston__h2_upgrade(piston__h1 *h);

#endif
