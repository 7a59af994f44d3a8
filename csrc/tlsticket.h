/* Session-ticket keys (stateless TLS resumption), for tlsctx.c.
 *
 * Two ways to have them:
 *  - random keys of this process's own (the default): a key encrypts new
 *    tickets for one rotation period, then only decrypts (asking for a
 *    renewed ticket) for one more, then is forgotten;
 *  - keys derived from a secret shared by several processes (the workers of
 *    one supervisor, or servers on several machines behind one balancer):
 *    the key of period N is HMAC-SHA256 of the secret and N, where N counts
 *    rotation periods of the wall clock since the epoch, so every process
 *    holding the secret issues and accepts the same tickets with no talk
 *    between them, and they rotate together. A ticket of the period before
 *    still resumes (and is renewed); one of the period after too, for
 *    clocks a little apart.
 * Either way the keys never leave the process; the secret is wiped on free.
 */
#ifndef PISTON_TLSTICKET_H
#define PISTON_TLSTICKET_H

#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* AES-256-CBC + HMAC-SHA256, as OpenSSL's own tickets. */
typedef struct {
  unsigned char name[16], aes[32], hmac[32];
  int64_t made_ms; /* CLOCK_MONOTONIC: whole seconds would cut periods */
  bool live;
} piston__ticket_key;

enum { PISTON__TICKET_SECRET_MIN = 32, PISTON__TICKET_SECRET_MAX = 128 };

typedef struct {
  pthread_mutex_t lock;       /* keys (random mode) */
  piston__ticket_key keys[2]; /* [0] encrypts; [1] still decrypts */
  long rotate_s;              /* 0: no tickets */
  unsigned char secret[PISTON__TICKET_SECRET_MAX];
  size_t secret_len; /* 0: random keys */
} piston__tickets;

void piston__tickets_init(piston__tickets *k);
void piston__tickets_free(piston__tickets *k);
/* Derive the keys from SECRET (PISTON__TICKET_SECRET_MIN to _MAX bytes)
 * from now on; 0, or -1 for a length out of range. */
int piston__tickets_set_secret(piston__tickets *k, const unsigned char *secret,
                               size_t len);
/* OpenSSL's ticket key callback (SSL_CTX_set_tlsext_ticket_key_evp_cb):
 * 1 use, 2 valid but renew, 0 unknown key (a full handshake), -1 failure. */
int piston__tickets_cb(piston__tickets *k, unsigned char name[16],
                       unsigned char *iv, EVP_CIPHER_CTX *cctx,
                       EVP_MAC_CTX *hctx, int enc);

#endif
