/* The WebSocket protocol handler (RFC 6455): it takes a connection over
 * from the HTTP/1.1 handler once the host's 101 is queued, and carries the
 * same exchange's messages. Owned by ws.c. */
#ifndef PISTON_WS_H
#define PISTON_WS_H

#include "http1.h"

/* ws.c: the HTTP/1.1 handler hands its connection over (h->req is the
 * accepted exchange; bytes behind its head are WebSocket frames). */
void piston__ws_start(piston__h1 *h);
/* raw.c: the same hand-off to the raw byte stream a host took over. */
void piston__raw_start(piston__h1 *h);
/* Frees what the handler allocated (from the connection's destroy). */
void piston__ws_free(void *ws);
/* With an opcode: the frame's payload is compressed (permessage-deflate). */
#define PISTON__WS_RSV1 0x40
/* Appends one unfragmented, unmasked frame: opcode, then pre[0, plen)
 * and data[0, len) as the payload. */
int piston__ws_frame(piston__outq *q, int opcode, const void *pre, size_t plen,
                     const void *data, size_t len);
/* A close code a peer or host may send (RFC 6455 7.4). */
bool piston__ws_code_valid(int code);

#endif
