/* TLS configuration: certificates, keys and settings, turned into OpenSSL
 * contexts (one per certificate, chosen by SNI) that every loop's
 * connections share. A configuration is built into a generation; a reload
 * builds a new one from the same files and swaps it in, while connections
 * that began on the old one keep it (a reference each) until they close.
 * Session-ticket keys belong to the configuration, not the generation, so
 * that a reload does not cost clients their resumption. Owned by tlsctx.c;
 * the connection side (the transport) is tls.c. */
#ifndef PISTON_TLSCTX_H
#define PISTON_TLSCTX_H

#include "piston.h"

#include <openssl/ssl.h>
#include <stdbool.h>

typedef struct piston__tlsconf piston__tlsconf;

piston__tlsconf *piston__tlsconf_new(void);
void piston__tlsconf_free(piston__tlsconf *t);
/* Validates the files now (so that a mistake is reported where it is
 * made) and keeps their names for the build and every reload. */
int piston__tlsconf_add_cert(piston__tlsconf *t, const char *cert,
                             const char *key, const char *ocsp);
/* The same from PEM text, as certificate i (i == the count: a new one; a
 * smaller i replaces that one, for the next build). */
int piston__tlsconf_add_pem(piston__tlsconf *t, size_t i, const char *cert,
                            size_t clen, const char *key, size_t klen);
int piston__tlsconf_set(piston__tlsconf *t, int opt, const char *value);
/* The ALPN list, unless the host chose one. */
void piston__tlsconf_default_alpn(piston__tlsconf *t, const char *list);
/* Builds a generation from the files as they are now and makes it the
 * current one. PISTON_ETLS with the reason in piston__tlsconf_error. */
int piston__tlsconf_build(piston__tlsconf *t);
bool piston__tlsconf_built(const piston__tlsconf *t);
size_t piston__tlsconf_count(const piston__tlsconf *t); /* certificates */
const char *piston__tlsconf_error(const piston__tlsconf *t);
/* A new server-side SSL on the current generation (NULL: no memory); its
 * generation stays alive until piston__tls_ssl_free. */
SSL *piston__tls_ssl_new(piston__tlsconf *t);
void piston__tls_ssl_free(SSL *ssl);
/* The DER of the certificate the handshake chose (for the hosts). */
int piston__tls_local_cert_der(SSL *ssl, unsigned char **der);

#endif
