/* The WebSocket opening handshake's key (RFC 6455 4.2.1, 4.2.2): a
 * Sec-WebSocket-Key must be 16 bytes in base64, and the answer's
 * Sec-WebSocket-Accept is base64(SHA-1(key + the RFC's GUID)). SHA-1 and
 * base64 come from OpenSSL's libcrypto. */
#include "wskey.h"

#include <openssl/evp.h>
#include <string.h>

static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

bool piston__ws_key_valid(const char *key, size_t len) {
  /* 16 bytes encode to 22 characters and "==" */
  if (len != 24 || key[22] != '=' || key[23] != '=')
    return false;
  unsigned char out[18];
  return EVP_DecodeBlock(out, (const unsigned char *)key, 24) == 18;
}

void piston__ws_accept_value(const char *key, size_t len,
                             char out[PISTON_WS_ACCEPT_LEN + 1]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) ||
      !EVP_DigestUpdate(ctx, key, len) ||
      !EVP_DigestUpdate(ctx, guid, sizeof guid - 1) ||
      !EVP_DigestFinal_ex(ctx, md, &mdlen) || mdlen != 20) {
    memset(md, 0, 20); /* no digest: an accept no client takes */
  }
  EVP_MD_CTX_free(ctx);
  EVP_EncodeBlock((unsigned char *)out, md, 20);
  out[PISTON_WS_ACCEPT_LEN] = '\0';
}
