/* permessage-deflate (RFC 7692): negotiation and the (de)compression of
 * whole messages. Owned by wsdeflate.c. */
#ifndef PISTON_WSDEFLATE_H
#define PISTON_WSDEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* messages shorter than this go uncompressed: below it deflate costs more
 * than it saves */
#define PISTON__PMD_MIN 64

typedef struct {
  bool on;
  bool client_nct; /* client_no_context_takeover agreed */
  int client_bits; /* the client's window (our inflater's) */
  int server_bits; /* our window */
} piston__pmd;

/* The Sec-WebSocket-Extensions values of a request: accepts the first
 * permessage-deflate offer it can, fills *out and the response's value
 * (resp, cap bytes); false if none. */
bool piston__pmd_negotiate(const char *const *values, const size_t *lens,
                           size_t n, piston__pmd *out, char *resp, size_t cap);

typedef struct piston__inflater piston__inflater;
/* Decompressed bytes go to a sink, which may refuse them with a close
 * code (too big, not UTF-8). */
typedef int (*piston__pmd_sink)(void *ud, const uint8_t *p, size_t n);
/* A raw-deflate inflater for a window of 2^bits bytes; NULL on no memory. */
piston__inflater *piston__inflater_new(int bits);
/* 0 or a close code (1007 for data that is not deflate). */
int piston__inflate(piston__inflater *f, const uint8_t *in, size_t n,
                    piston__pmd_sink sink, void *ud);
/* The end of a message; reset: no context is kept for the next. */
int piston__inflate_end(piston__inflater *f, bool reset, piston__pmd_sink sink,
                        void *ud);
void piston__inflater_free(piston__inflater *f);

/* Compresses one message with the calling thread's deflater (reset per
 * message): the payload to send with RSV1, valid until the thread's next
 * call, or NULL (send it uncompressed then). */
const uint8_t *piston__pmd_deflate(const piston__pmd *o, const void *data,
                                   size_t len, size_t *out_len);

#endif
