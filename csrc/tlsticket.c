/* Session-ticket keys: random and rotating, or derived from a shared secret
 * (see tlsticket.h). */
#define _GNU_SOURCE
#include "tlsticket.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <string.h>
#include <time.h>

void piston__tickets_init(piston__tickets *k) {
  memset(k, 0, sizeof *k);
  pthread_mutex_init(&k->lock, NULL);
  k->rotate_s = 3600;
}

void piston__tickets_free(piston__tickets *k) {
  pthread_mutex_destroy(&k->lock);
  OPENSSL_cleanse(k, sizeof *k);
}

int piston__tickets_set_secret(piston__tickets *k, const unsigned char *secret,
                               size_t len) {
  if (len < PISTON__TICKET_SECRET_MIN || len > PISTON__TICKET_SECRET_MAX)
    return -1;
  pthread_mutex_lock(&k->lock);
  memcpy(k->secret, secret, len);
  k->secret_len = len;
  pthread_mutex_unlock(&k->lock);
  return 0;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int random_key(piston__ticket_key *key) {
  if (RAND_bytes(key->name, sizeof key->name) != 1 ||
      RAND_bytes(key->aes, sizeof key->aes) != 1 ||
      RAND_bytes(key->hmac, sizeof key->hmac) != 1)
    return -1;
  key->made_ms = now_ms();
  key->live = true;
  return 0;
}

/* The key of rotation period N: a master key for the period from the
 * secret, then one HMAC of it per part, each with its own label, so that
 * the name (sent in clear in every ticket) tells nothing of the others. */
static int derived_key(const piston__tickets *k, uint64_t period,
                       piston__ticket_key *key) {
  unsigned char msg[32] = "piston ticket key period ";
  const size_t label = 25;
  for (int i = 0; i < 7; i++) /* big-endian, 56 bits: periods of >= 1 s */
    msg[label + i] = (unsigned char)(period >> (8 * (6 - i)));
  unsigned char master[32], part[32];
  unsigned int n;
  if (!HMAC(EVP_sha256(), k->secret, (int)k->secret_len, msg, label + 7, master,
            &n))
    return -1;
  static const char *const labels[3] = {"name", "aes", "hmac"};
  unsigned char *const out[3] = {key->name, key->aes, key->hmac};
  const size_t size[3] = {sizeof key->name, sizeof key->aes, sizeof key->hmac};
  for (int i = 0; i < 3; i++) {
    if (!HMAC(EVP_sha256(), master, sizeof master,
              (const unsigned char *)labels[i], strlen(labels[i]), part, &n))
      return -1;
    memcpy(out[i], part, size[i]);
  }
  OPENSSL_cleanse(master, sizeof master);
  OPENSSL_cleanse(part, sizeof part);
  key->live = true;
  return 0;
}

static int set_mac(EVP_MAC_CTX *hctx, unsigned char *key) {
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key, 32),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256",
                                       0),
      OSSL_PARAM_construct_end()};
  return EVP_MAC_CTX_set_params(hctx, params);
}

static int encrypt_with(piston__ticket_key *key, unsigned char name[16],
                        unsigned char *iv, EVP_CIPHER_CTX *cctx,
                        EVP_MAC_CTX *hctx) {
  if (!key->live || RAND_bytes(iv, 16) != 1 ||
      EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, key->aes, iv) != 1 ||
      set_mac(hctx, key->hmac) != 1)
    return -1;
  memcpy(name, key->name, 16);
  return 1;
}

static int decrypt_with(piston__ticket_key *key, unsigned char *iv,
                        EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int rc) {
  if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, key->aes, iv) != 1 ||
      set_mac(hctx, key->hmac) != 1)
    return -1;
  return rc;
}

/* Derived keys: nothing is kept, each handshake derives what it needs (six
 * HMACs at most, little beside its signature). */
static int derived_cb(piston__tickets *k, unsigned char name[16],
                      unsigned char *iv, EVP_CIPHER_CTX *cctx,
                      EVP_MAC_CTX *hctx, int enc) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts); /* the clock every process shares */
  uint64_t period = (uint64_t)ts.tv_sec / (uint64_t)k->rotate_s;
  piston__ticket_key key;
  int rc = 0;
  if (enc) {
    rc = derived_key(k, period, &key) < 0
             ? -1
             : encrypt_with(&key, name, iv, cctx, hctx);
  } else {
    /* this period's key, the one before (renew), the one after (a clock
     * ahead of ours issued it) */
    static const int delta[3] = {0, -1, 1};
    for (int i = 0; i < 3; i++) {
      if (derived_key(k, period + (uint64_t)(int64_t)delta[i], &key) < 0) {
        rc = -1;
        break;
      }
      if (memcmp(name, key.name, 16) == 0) {
        rc = decrypt_with(&key, iv, cctx, hctx, delta[i] < 0 ? 2 : 1);
        break;
      }
    }
  }
  OPENSSL_cleanse(&key, sizeof key);
  return rc;
}

/* Random keys: a key encrypts new tickets for rotate_s seconds, then only
 * decrypts (asking for a renewed ticket) for as long again, then is
 * forgotten. */
static int random_cb(piston__tickets *k, unsigned char name[16],
                     unsigned char *iv, EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx,
                     int enc) {
  int64_t now = now_ms(), period = (int64_t)k->rotate_s * 1000;
  if (!k->keys[0].live || now - k->keys[0].made_ms >= period) {
    piston__ticket_key fresh;
    if (random_key(&fresh) == 0) {
      /* a key older than two periods decrypts nothing any more */
      k->keys[1] = k->keys[0];
      if (k->keys[1].live && now - k->keys[1].made_ms >= 2 * period)
        k->keys[1].live = false;
      k->keys[0] = fresh;
    }
  }
  if (enc)
    return encrypt_with(&k->keys[0], name, iv, cctx, hctx);
  for (int i = 0; i < 2; i++) {
    piston__ticket_key *key = &k->keys[i];
    if (!key->live || memcmp(name, key->name, 16) != 0)
      continue;
    if (i == 1 && now - key->made_ms >= 2 * period)
      return 0; /* expired with its second period */
    return decrypt_with(key, iv, cctx, hctx, i == 0 ? 1 : 2);
  }
  return 0; /* unknown key: a full handshake */
}

int piston__tickets_cb(piston__tickets *k, unsigned char name[16],
                       unsigned char *iv, EVP_CIPHER_CTX *cctx,
                       EVP_MAC_CTX *hctx, int enc) {
  pthread_mutex_lock(&k->lock);
  int rc = k->secret_len ? derived_cb(k, name, iv, cctx, hctx, enc)
                         : random_cb(k, name, iv, cctx, hctx, enc);
  pthread_mutex_unlock(&k->lock);
  return rc;
}
