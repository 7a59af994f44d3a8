/* TLS configuration and its OpenSSL contexts (see tlsctx.h).
 *
 * Each certificate gets an SSL_CTX of its own with the same settings; the
 * first one's servername callback moves a handshake to the context whose
 * certificate matches the SNI name. Handshakes read nothing from the
 * configuration but the ticket keys (under their own lock), so a reload
 * only swaps the current generation under the configuration's lock. */
#define _GNU_SOURCE
#include "tlsctx.h"
#include "tlsticket.h"
#include "util.h"

#include <assert.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CERTS 32

/* Mozilla's "intermediate" TLS 1.2 list: forward secrecy and AEAD only. */
static const char default_ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

typedef struct piston__tlsgen piston__tlsgen;

/* One certificate of a generation: its context, and what the callbacks need
 * (reached through SSL_CTX_get_app_data). */
typedef struct {
  SSL_CTX *ctx;
  X509 *leaf; /* owned by ctx */
  unsigned char *ocsp;
  long ocsp_len;
  piston__tlsgen *gen;
} piston__tlscert;

struct piston__tlsgen {
  atomic_int refs; /* the configuration's (while current) + one per SSL */
  piston__tlsconf *conf;
  size_t ncerts;
  piston__tlscert certs[MAX_CERTS];
};

/* Where a certificate chain or key comes from: a file (read again on each
 * build) or PEM text the host gave (Node's key and cert options). */
typedef struct {
  char *path;
  char *pem;
  size_t len;
} piston__tlssrc;

struct piston__tlsconf {
  struct {
    piston__tlssrc cert, key;
    char *ocsp;
  } files[MAX_CERTS];
  size_t nfiles;
  char *opt[PISTON_TLS__COUNT];
  unsigned char alpn[256]; /* wire format: length-prefixed names */
  size_t alpn_len;
  pthread_mutex_t build_lock; /* files, while a build reads them */
  pthread_mutex_t lock;       /* cur, err */
  piston__tlsgen *cur;
  char err[512];
  piston__tickets tickets; /* their own lock */
};

static void src_free(piston__tlssrc *src);

static int ssl_gen_index = -1;
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

static void make_index(void) {
  ssl_gen_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static int fail(piston__tlsconf *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int fail(piston__tlsconf *t, const char *fmt, ...) {
  char msg[384];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  /* OpenSSL's own reason, when it has one, after ours */
  unsigned long e = ERR_peek_last_error();
  char why[128] = "";
  if (e)
    ERR_error_string_n(e, why, sizeof why);
  ERR_clear_error();
  pthread_mutex_lock(&t->lock);
  snprintf(t->err, sizeof t->err, "%s%s%s", msg, why[0] ? " (OpenSSL: " : "",
           why[0] ? why : "");
  if (why[0])
    strncat(t->err, ")", sizeof t->err - strlen(t->err) - 1);
  pthread_mutex_unlock(&t->lock);
  return PISTON_ETLS;
}

piston__tlsconf *piston__tlsconf_new(void) {
  pthread_once(&index_once, make_index);
  piston__tlsconf *t = calloc(1, sizeof *t);
  if (!t)
    return NULL;
  pthread_mutex_init(&t->lock, NULL);
  pthread_mutex_init(&t->build_lock, NULL);
  piston__tickets_init(&t->tickets);
  static const char h11[] = "\x08http/1.1";
  memcpy(t->alpn, h11, sizeof h11 - 1);
  t->alpn_len = sizeof h11 - 1;
  return t;
}

static void gen_unref(piston__tlsgen *g) {
  if (!g || atomic_fetch_sub(&g->refs, 1) != 1)
    return;
  for (size_t i = 0; i < g->ncerts; i++) {
    SSL_CTX_free(g->certs[i].ctx);
    OPENSSL_free(g->certs[i].ocsp);
  }
  free(g);
}

void piston__tlsconf_free(piston__tlsconf *t) {
  if (!t)
    return;
  gen_unref(t->cur);
  for (size_t i = 0; i < t->nfiles; i++) {
    src_free(&t->files[i].cert);
    src_free(&t->files[i].key);
    free(t->files[i].ocsp);
  }
  for (int i = 0; i < PISTON_TLS__COUNT; i++)
    free(t->opt[i]);
  piston__tickets_free(&t->tickets);
  pthread_mutex_destroy(&t->lock);
  pthread_mutex_destroy(&t->build_lock);
  free(t);
}

const char *piston__tlsconf_error(const piston__tlsconf *t) {
  return t ? t->err : "";
}

bool piston__tlsconf_built(const piston__tlsconf *t) {
  return t && t->cur;
}

size_t piston__tlsconf_count(const piston__tlsconf *t) {
  return t->nfiles;
}

/* ---- loading files ---- */

/* OpenSSL's default asks for a passphrase on the terminal, which hangs a
 * server: answer nothing and remember that one was wanted. */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
  (void)buf;
  (void)size;
  (void)rwflag;
  *(bool *)u = true;
  return 0;
}

static void src_free(piston__tlssrc *src) {
  free(src->path);
  if (src->pem)
    OPENSSL_clear_free(src->pem, src->len); /* a key's text */
  src->path = src->pem = NULL;
}

static int src_copy(piston__tlssrc *dst, const piston__tlssrc *src) {
  memset(dst, 0, sizeof *dst);
  if (src->path && !(dst->path = strdup(src->path)))
    return PISTON_ENOMEM;
  if (src->pem) {
    if (!(dst->pem = OPENSSL_memdup(src->pem, src->len))) {
      src_free(dst);
      return PISTON_ENOMEM;
    }
    dst->len = src->len;
  }
  return 0;
}

/* "the certificate file X" or "the PEM certificate given", for messages */
static const char *src_name(const piston__tlssrc *src, const char *what,
                            char *buf, size_t cap) {
  if (src->path)
    snprintf(buf, cap, "%s", src->path);
  else
    snprintf(buf, cap, "the PEM %s given", what);
  return buf;
}

static BIO *src_open(piston__tlsconf *t, const piston__tlssrc *src,
                     const char *what, int *rc) {
  BIO *b = src->path ? BIO_new_file(src->path, "r")
                     : BIO_new_mem_buf(src->pem, (int)src->len);
  if (!b)
    *rc = src->path ? fail(t, "cannot open the %s file %s: %s", what, src->path,
                           strerror(errno))
                    : PISTON_ENOMEM;
  return b;
}

/* The leaf, then any intermediates, from one PEM source. */
static int load_chain(piston__tlsconf *t, SSL_CTX *ctx,
                      const piston__tlssrc *src) {
  int rc = 0;
  char name[300];
  BIO *b = src_open(t, src, "certificate", &rc);
  if (!b)
    return rc;
  X509 *leaf = PEM_read_bio_X509_AUX(b, NULL, NULL, NULL);
  if (!leaf || SSL_CTX_use_certificate(ctx, leaf) != 1) {
    X509_free(leaf);
    BIO_free(b);
    return fail(t, "%s holds no PEM certificate chain",
                src_name(src, "certificate", name, sizeof name));
  }
  X509_free(leaf);
  SSL_CTX_clear_chain_certs(ctx);
  X509 *ca;
  while ((ca = PEM_read_bio_X509(b, NULL, NULL, NULL)))
    if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) { /* takes ca */
      X509_free(ca);
      BIO_free(b);
      return fail(t, "a certificate of the chain in %s cannot be used",
                  src_name(src, "certificate", name, sizeof name));
    }
  ERR_clear_error(); /* the end of the PEM data */
  BIO_free(b);
  return 0;
}

static int load_pair(piston__tlsconf *t, SSL_CTX *ctx,
                     const piston__tlssrc *cert, const piston__tlssrc *key) {
  int rc = load_chain(t, ctx, cert);
  if (rc < 0)
    return rc;
  char kname[300], cname[300];
  src_name(key, "key", kname, sizeof kname);
  src_name(cert, "certificate", cname, sizeof cname);
  BIO *b = src_open(t, key, "key", &rc);
  if (!b)
    return rc;
  bool asked = false;
  EVP_PKEY *pk = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, &asked);
  BIO_free(b);
  if (!pk && asked) {
    ERR_clear_error();
    return fail(t,
                "the key in %s is protected by a passphrase; give a key "
                "without one (openssl pkey -in KEY -out plain.key)",
                kname);
  }
  if (!pk)
    return fail(t, "%s holds no PEM private key", kname);
  X509 *leaf = SSL_CTX_get0_certificate(ctx);
  if (leaf && X509_check_private_key(leaf, pk) != 1) {
    EVP_PKEY_free(pk);
    ERR_clear_error();
    return fail(t, "the key in %s does not match the certificate in %s", kname,
                cname);
  }
  int ok = SSL_CTX_use_PrivateKey(ctx, pk);
  EVP_PKEY_free(pk);
  if (ok != 1)
    return fail(t, "the key in %s cannot be used", kname);
  return 0;
}

static int load_ocsp(piston__tlsconf *t, const char *path, unsigned char **out,
                     long *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return fail(t, "cannot open the OCSP response %s: %s", path,
                strerror(errno));
  unsigned char *buf = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n == cap) {
      cap = cap ? cap * 2 : 4096;
      unsigned char *nb = cap > (1u << 20) ? NULL : OPENSSL_realloc(buf, cap);
      if (!nb) {
        fclose(f);
        OPENSSL_free(buf);
        return fail(t, "the OCSP response %s is larger than 1 MiB", path);
      }
      buf = nb;
    }
    size_t r = fread(buf + n, 1, cap - n, f);
    n += r;
    if (r == 0)
      break;
  }
  fclose(f);
  /* a DER OCSPResponse is a SEQUENCE: catch a PEM or empty file here */
  if (n < 2 || buf[0] != 0x30) {
    OPENSSL_free(buf);
    return fail(t, "%s is not a DER OCSP response", path);
  }
  *out = buf;
  *len = (long)n;
  return 0;
}

/* ---- callbacks ---- */

static piston__tlscert *cert_of(SSL *ssl) {
  return SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
}

static int on_servername(SSL *ssl, int *alert, void *arg) {
  (void)alert;
  piston__tlsgen *g = arg;
  const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name)
    return SSL_TLSEXT_ERR_OK; /* the default certificate */
  for (size_t i = 1; i < g->ncerts; i++) {
    if (X509_check_host(g->certs[i].leaf, name, 0, 0, NULL) == 1) {
      SSL_set_SSL_CTX(ssl, g->certs[i].ctx);
      break;
    }
  }
  return SSL_TLSEXT_ERR_OK;
}

static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg) {
  (void)ssl;
  piston__tlsconf *t = arg;
  unsigned char *sel;
  if (SSL_select_next_proto(&sel, outlen, t->alpn, (unsigned)t->alpn_len, in,
                            inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_ALERT_FATAL; /* RFC 7301 3.2: no_application_protocol
                                        */
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

static int on_status(SSL *ssl, void *arg) {
  (void)arg;
  piston__tlscert *c = cert_of(ssl);
  if (!c || !c->ocsp)
    return SSL_TLSEXT_ERR_NOACK;
  unsigned char *copy = OPENSSL_memdup(c->ocsp, (size_t)c->ocsp_len);
  if (!copy)
    return SSL_TLSEXT_ERR_NOACK;
  SSL_set_tlsext_status_ocsp_resp(ssl, copy, c->ocsp_len); /* takes copy */
  return SSL_TLSEXT_ERR_OK;
}

static int on_ticket(SSL *ssl, unsigned char name[16], unsigned char *iv,
                     EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc) {
  return piston__tickets_cb(&cert_of(ssl)->gen->conf->tickets, name, iv, cctx,
                            hctx, enc);
}

/* ---- settings ---- */

static int verify_mode(const char *v, int *mode) {
  if (!v || !strcmp(v, "none"))
    *mode = SSL_VERIFY_NONE;
  else if (!strcmp(v, "optional") || !strcmp(v, "optional_no_ca"))
    *mode = SSL_VERIFY_PEER;
  else if (!strcmp(v, "required"))
    *mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  else
    return -1;
  return 0;
}

/* optional_no_ca: any certificate is accepted; the host sees the verdict
 * (piston_req_tls VERIFY), as Node's rejectUnauthorized: false does. */
static int accept_any(int ok, X509_STORE_CTX *store) {
  (void)ok;
  (void)store;
  return 1;
}

void piston__tlsconf_default_alpn(piston__tlsconf *t, const char *list) {
  if (!t->opt[PISTON_TLS_ALPN])
    (void)piston__tlsconf_set(t, PISTON_TLS_ALPN, list);
}

static int hex_digit(char c) {
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

/* A shared ticket secret: hex text, or the bytes of a file (as nginx's
 * ssl_session_ticket_key: `openssl rand 80 > ticket.key`). */
static int ticket_secret(piston__tlsconf *t, int opt, const char *value) {
  unsigned char secret[PISTON__TICKET_SECRET_MAX + 1];
  size_t n = 0;
  if (opt == PISTON_TLS_TICKET_SECRET) {
    size_t len = strlen(value);
    for (; n < sizeof secret && 2 * n + 1 < len; n++) {
      int hi = hex_digit(value[2 * n]), lo = hex_digit(value[2 * n + 1]);
      if (hi < 0 || lo < 0)
        break;
      secret[n] = (unsigned char)(hi << 4 | lo);
    }
    if (2 * n != len)
      n = 0; /* odd length, a non-hex character, or too long */
  } else {
    FILE *f = fopen(value, "rb");
    if (!f)
      return fail(t, "cannot open the ticket key file %s: %s", value,
                  strerror(errno));
    n = fread(secret, 1, sizeof secret, f);
    fclose(f);
    if (n < PISTON__TICKET_SECRET_MIN || n > PISTON__TICKET_SECRET_MAX) {
      OPENSSL_cleanse(secret, sizeof secret);
      return fail(
          t,
          "the ticket key file %s has %s%zu bytes: make one of %d to "
          "%d random bytes (openssl rand 80 > FILE)",
          value, n > PISTON__TICKET_SECRET_MAX ? "over " : "",
          n > PISTON__TICKET_SECRET_MAX ? (size_t)PISTON__TICKET_SECRET_MAX : n,
          PISTON__TICKET_SECRET_MIN, PISTON__TICKET_SECRET_MAX);
    }
  }
  int rc = piston__tickets_set_secret(&t->tickets, secret, n);
  OPENSSL_cleanse(secret, sizeof secret);
  if (rc < 0)
    return fail(t,
                "ticket secret: say %d to %d bytes as hex digits (%d to %d "
                "characters)",
                PISTON__TICKET_SECRET_MIN, PISTON__TICKET_SECRET_MAX,
                2 * PISTON__TICKET_SECRET_MIN, 2 * PISTON__TICKET_SECRET_MAX);
  return 0;
}

int piston__tlsconf_set(piston__tlsconf *t, int opt, const char *value) {
  if (opt < 0 || opt >= PISTON_TLS__COUNT || !value)
    return PISTON_EINVAL;
  int mode;
  switch (opt) {
  case PISTON_TLS_VERIFY_CLIENT:
    if (verify_mode(value, &mode) < 0)
      return fail(t,
                  "client verification \"%s\": say none, optional, "
                  "optional_no_ca or required",
                  value);
    break;
  case PISTON_TLS_MIN_VERSION:
  case PISTON_TLS_MAX_VERSION:
    if (strcmp(value, "1.2") && strcmp(value, "1.3"))
      return fail(t, "%s TLS version \"%s\": say 1.2 or 1.3",
                  opt == PISTON_TLS_MIN_VERSION ? "minimum" : "maximum", value);
    break;
  case PISTON_TLS_TICKET_SECRET:
  case PISTON_TLS_TICKET_KEY_FILE: {
    int rc = ticket_secret(t, opt, value);
    if (rc)
      return rc;
    break;
  }
  case PISTON_TLS_CA_FILE: {
    FILE *f = fopen(value, "r");
    if (!f)
      return fail(t, "cannot open the CA file %s: %s", value, strerror(errno));
    fclose(f);
    break;
  }
  case PISTON_TLS_ALPN: {
    unsigned char wire[sizeof t->alpn];
    size_t n = 0;
    piston_str rest = {value, strlen(value)}, item;
    while (piston_list_next(&rest, &item)) {
      if (item.len > 255 || n + 1 + item.len > sizeof wire)
        return fail(t, "ALPN list \"%s\" is too long", value);
      wire[n++] = (unsigned char)item.len;
      memcpy(wire + n, item.ptr, item.len);
      n += item.len;
    }
    if (n == 0)
      return fail(t, "ALPN list is empty: name at least http/1.1");
    memcpy(t->alpn, wire, n);
    t->alpn_len = n;
    break;
  }
  case PISTON_TLS_TICKET_ROTATE_S: {
    char *end;
    long s = strtol(value, &end, 10);
    if (*value == '\0' || *end != '\0' || s < 0 || s > 7 * 86400)
      return fail(t,
                  "ticket key rotation \"%s\": say a number of seconds "
                  "(0 to 604800)",
                  value);
    t->tickets.rotate_s = s;
    break;
  }
  default: break;
  }
  char *copy = strdup(value);
  if (!copy)
    return PISTON_ENOMEM;
  free(t->opt[opt]);
  t->opt[opt] = copy;
  return 0;
}

static bool is_13(const char *v) {
  return v && !strcmp(v, "1.3");
}

static int configure(piston__tlsconf *t, piston__tlsgen *g, SSL_CTX *ctx) {
  const char *min = t->opt[PISTON_TLS_MIN_VERSION],
             *max = t->opt[PISTON_TLS_MAX_VERSION];
  if (is_13(min) && max && !is_13(max))
    return fail(t, "the minimum TLS version (1.3) is above the maximum (%s)",
                max);
  SSL_CTX_set_min_proto_version(ctx,
                                is_13(min) ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(ctx, !max || is_13(max) ? TLS1_3_VERSION
                                                        : TLS1_2_VERSION);
  long opts = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
              SSL_OP_CIPHER_SERVER_PREFERENCE;
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
  /* HTTP frames its own messages: a client that closes without
   * close_notify has said all it meant to */
  opts |= SSL_OP_IGNORE_UNEXPECTED_EOF;
#endif
#ifdef SSL_OP_ENABLE_KTLS
  opts |= SSL_OP_ENABLE_KTLS; /* used only if the kernel has the tls ULP */
#endif
  SSL_CTX_set_options(ctx, opts);
  /* partial writes let a flush stop at a full socket with the queue as the
   * only copy of the bytes; released buffers keep idle connections small */
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  const char *ciphers = t->opt[PISTON_TLS_CIPHERS];
  if (SSL_CTX_set_cipher_list(ctx, ciphers ? ciphers : default_ciphers) != 1)
    return fail(t, "no usable cipher in the TLS 1.2 list \"%s\"", ciphers);
  if (t->opt[PISTON_TLS_CIPHERSUITES] &&
      SSL_CTX_set_ciphersuites(ctx, t->opt[PISTON_TLS_CIPHERSUITES]) != 1)
    return fail(t, "no usable suite in the TLS 1.3 list \"%s\"",
                t->opt[PISTON_TLS_CIPHERSUITES]);
  /* Stateless resumption only (tickets): no per-process session cache to
   * bound or share between workers. */
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  static const unsigned char sid_ctx[] = "piston";
  SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
  if (t->tickets.rotate_s > 0) {
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_timeout(ctx, 2 * t->tickets.rotate_s);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket);
  } else {
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 0);
  }
  SSL_CTX_set_alpn_select_cb(ctx, on_alpn, t);
  SSL_CTX_set_tlsext_status_cb(ctx, on_status);
  SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
  SSL_CTX_set_tlsext_servername_arg(ctx, g);
  int mode;
  verify_mode(t->opt[PISTON_TLS_VERIFY_CLIENT], &mode);
  const char *ca = t->opt[PISTON_TLS_CA_FILE];
  const char *ca_pem = t->opt[PISTON_TLS_CA_PEM];
  if (mode != SSL_VERIFY_NONE) {
    bool any = !strcmp(t->opt[PISTON_TLS_VERIFY_CLIENT], "optional_no_ca");
    if (!ca && !ca_pem && !any)
      return fail(t, "client verification \"%s\" needs a CA file",
                  t->opt[PISTON_TLS_VERIFY_CLIENT]);
    SSL_CTX_set_verify(ctx, mode, any ? accept_any : NULL);
  }
  if (ca) {
    if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
      return fail(t, "%s holds no PEM CA certificate", ca);
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
    if (names)
      SSL_CTX_set_client_CA_list(ctx, names); /* takes names */
  }
  if (ca_pem) {
    BIO *b = BIO_new_mem_buf(ca_pem, -1);
    X509 *x;
    int n = 0;
    while (b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
      X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), x);
      SSL_CTX_add_client_CA(ctx, x);
      X509_free(x);
      n++;
    }
    BIO_free(b);
    ERR_clear_error();
    if (n == 0)
      return fail(t, "the CA PEM given holds no certificate");
  }
  return 0;
}

static int build_cert(piston__tlsconf *t, piston__tlsgen *g, size_t i) {
  piston__tlscert *c = &g->certs[i];
  c->gen = g;
  if (!(c->ctx = SSL_CTX_new(TLS_server_method())))
    return fail(t, "OpenSSL could not make a TLS context");
  SSL_CTX_set_app_data(c->ctx, c);
  int rc = load_pair(t, c->ctx, &t->files[i].cert, &t->files[i].key);
  if (rc < 0)
    return rc;
  if ((rc = configure(t, g, c->ctx)) < 0)
    return rc;
  c->leaf = SSL_CTX_get0_certificate(c->ctx);
  if (t->files[i].ocsp &&
      (rc = load_ocsp(t, t->files[i].ocsp, &c->ocsp, &c->ocsp_len)) < 0)
    return rc;
  return 0;
}

/* Checks the pair now, in a context of its own, then keeps a copy of where
 * it comes from as certificate i. */
static int set_cert(piston__tlsconf *t, size_t i, const piston__tlssrc *cert,
                    const piston__tlssrc *key, const char *ocsp) {
  SSL_CTX *probe = SSL_CTX_new(TLS_server_method());
  if (!probe)
    return PISTON_ENOMEM;
  int rc = load_pair(t, probe, cert, key);
  SSL_CTX_free(probe);
  if (rc < 0)
    return rc;
  if (ocsp) {
    unsigned char *buf;
    long n;
    if ((rc = load_ocsp(t, ocsp, &buf, &n)) < 0)
      return rc;
    OPENSSL_free(buf);
  }
  piston__tlssrc c, k;
  char *o = ocsp ? strdup(ocsp) : NULL;
  if (src_copy(&c, cert) < 0 || (ocsp && !o)) {
    free(o);
    return PISTON_ENOMEM;
  }
  if (src_copy(&k, key) < 0) {
    src_free(&c);
    free(o);
    return PISTON_ENOMEM;
  }
  pthread_mutex_lock(&t->build_lock); /* a replace may race a build */
  if (i < t->nfiles) {
    src_free(&t->files[i].cert);
    src_free(&t->files[i].key);
    free(t->files[i].ocsp);
  }
  t->files[i].cert = c;
  t->files[i].key = k;
  t->files[i].ocsp = o;
  if (i == t->nfiles)
    t->nfiles++;
  pthread_mutex_unlock(&t->build_lock);
  return 0;
}

int piston__tlsconf_add_cert(piston__tlsconf *t, const char *cert,
                             const char *key, const char *ocsp) {
  if (!cert || !key)
    return PISTON_EINVAL;
  if (t->nfiles == MAX_CERTS)
    return fail(t, "more than %d certificates", MAX_CERTS);
  piston__tlssrc c = {.path = (char *)cert}, k = {.path = (char *)key};
  return set_cert(t, t->nfiles, &c, &k, ocsp);
}

int piston__tlsconf_add_pem(piston__tlsconf *t, size_t i, const char *cert,
                            size_t clen, const char *key, size_t klen) {
  if (!cert || !key || clen == 0 || klen == 0 || clen > INT32_MAX ||
      klen > INT32_MAX || i > t->nfiles || i == MAX_CERTS)
    return PISTON_EINVAL;
  piston__tlssrc c = {.pem = (char *)cert, .len = clen};
  piston__tlssrc k = {.pem = (char *)key, .len = klen};
  return set_cert(t, i, &c, &k, NULL);
}

static int build_locked(piston__tlsconf *t);

int piston__tlsconf_build(piston__tlsconf *t) {
  pthread_mutex_lock(&t->build_lock);
  int rc = build_locked(t);
  pthread_mutex_unlock(&t->build_lock);
  return rc;
}

static int build_locked(piston__tlsconf *t) {
  if (t->nfiles == 0)
    return fail(t, "TLS needs a certificate and its key");
  piston__tlsgen *g = calloc(1, sizeof *g);
  if (!g)
    return PISTON_ENOMEM;
  atomic_init(&g->refs, 1);
  g->conf = t;
  for (size_t i = 0; i < t->nfiles; i++) {
    g->ncerts = i + 1;
    int rc = build_cert(t, g, i);
    if (rc < 0) {
      gen_unref(g);
      return rc;
    }
  }
  pthread_mutex_lock(&t->lock);
  piston__tlsgen *old = t->cur;
  t->cur = g;
  t->err[0] = '\0';
  pthread_mutex_unlock(&t->lock);
  gen_unref(old); /* freed once its last connection is */
  return 0;
}

SSL *piston__tls_ssl_new(piston__tlsconf *t) {
  pthread_mutex_lock(&t->lock);
  piston__tlsgen *g = t->cur;
  assert(g);
  atomic_fetch_add(&g->refs, 1);
  pthread_mutex_unlock(&t->lock);
  SSL *ssl = SSL_new(g->certs[0].ctx);
  if (!ssl) {
    gen_unref(g);
    return NULL;
  }
  SSL_set_ex_data(ssl, ssl_gen_index, g);
  SSL_set_accept_state(ssl);
  return ssl;
}

void piston__tls_ssl_free(SSL *ssl) {
  piston__tlsgen *g = SSL_get_ex_data(ssl, ssl_gen_index);
  SSL_free(ssl);
  gen_unref(g);
}

int piston__tls_local_cert_der(SSL *ssl, unsigned char **der) {
  X509 *x = SSL_get_certificate(ssl);
  return x ? i2d_X509(x, der) : -1;
}
