/* The TLS transport: OpenSSL on the connection's socket, non-blocking. The
 * handshake happens inside the first reads (a protocol handler sees only
 * application bytes, and none until the handshake is done); the output
 * queue is encrypted record by record from where it is, so that a full
 * socket leaves the queue as the only copy of what is unsent, as with the
 * plain transport. File ranges are read and encrypted here, unless the
 * kernel took the encryption over (kTLS), when they go with SSL_sendfile.
 *
 * Edge-triggered epoll needs care: a read that returns less than asked
 * must mean the socket is empty (conn.c then waits for the next edge), so
 * reads here go on until OpenSSL says it wants more from the socket. */
#define _GNU_SOURCE
#include "conn.h"
#include "tlsctx.h"
#include "util.h"

#include <assert.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RECORD 16384 /* the largest TLS record's plaintext */

static SSL *ssl_of(piston__conn *c) {
  return c->tls;
}

static void handshake_over(piston__conn *c) {
  if (c->tls_handshaking) {
    c->tls_handshaking = false;
    piston__loop_handshake_done(c->io.loop);
  }
}

/* ---- what the handshake negotiated ---- */

typedef struct {
  char buf[4096];
  size_t n;
  uint32_t off[PISTON_TLSI__COUNT], len[PISTON_TLSI__COUNT];
} info_builder;

static void put(info_builder *b, int what, const void *p, size_t n) {
  if (n > sizeof b->buf - b->n)
    n = 0; /* a field that does not fit is left empty, not cut */
  if (n)
    memcpy(b->buf + b->n, p, n);
  b->off[what] = (uint32_t)b->n;
  b->len[what] = (uint32_t)n;
  b->n += n;
}

static void put_str(info_builder *b, int what, const char *s) {
  if (s)
    put(b, what, s, strlen(s));
}

static void put_name(info_builder *b, int what, X509_NAME *name) {
  BIO *bio = BIO_new(BIO_s_mem());
  if (!bio)
    return;
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  char *p;
  long n = BIO_get_mem_data(bio, &p);
  put(b, what, p, n > 0 ? (size_t)n : 0);
  BIO_free(bio);
}

static void put_time(info_builder *b, int what, const ASN1_TIME *t) {
  BIO *bio = BIO_new(BIO_s_mem());
  if (!bio)
    return;
  ASN1_TIME_print(bio, t);
  char *p;
  long n = BIO_get_mem_data(bio, &p);
  put(b, what, p, n > 0 ? (size_t)n : 0);
  BIO_free(bio);
}

static void put_peer(info_builder *b, SSL *ssl) {
  X509 *peer = SSL_get1_peer_certificate(ssl);
  if (!peer) {
    put_str(b, PISTON_TLSI_VERIFY, "NONE");
    return;
  }
  long v = SSL_get_verify_result(ssl);
  char verdict[160];
  if (v == X509_V_OK)
    snprintf(verdict, sizeof verdict, "SUCCESS");
  else
    snprintf(verdict, sizeof verdict, "FAILED:%s",
             X509_verify_cert_error_string(v));
  put_str(b, PISTON_TLSI_VERIFY, verdict);
  put_name(b, PISTON_TLSI_PEER_SUBJECT, X509_get_subject_name(peer));
  put_name(b, PISTON_TLSI_PEER_ISSUER, X509_get_issuer_name(peer));
  BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(peer), NULL);
  char *hex = bn ? BN_bn2hex(bn) : NULL;
  put_str(b, PISTON_TLSI_PEER_SERIAL, hex);
  OPENSSL_free(hex);
  BN_free(bn);
  put_time(b, PISTON_TLSI_PEER_NOT_BEFORE, X509_get0_notBefore(peer));
  put_time(b, PISTON_TLSI_PEER_NOT_AFTER, X509_get0_notAfter(peer));
  unsigned char *der = NULL;
  int n = i2d_X509(peer, &der);
  if (n > 0)
    put(b, PISTON_TLSI_PEER_CERT, der, (size_t)n);
  OPENSSL_free(der);
  X509_free(peer);
}

static void make_info(piston__conn *c, SSL *ssl) {
  info_builder *b = calloc(1, sizeof *b);
  if (!b)
    return; /* the hosts then see a plain-looking connection's empty info */
  put_str(b, PISTON_TLSI_VERSION, SSL_get_version(ssl));
  const SSL_CIPHER *ci = SSL_get_current_cipher(ssl);
  if (ci) {
    put_str(b, PISTON_TLSI_CIPHER, SSL_CIPHER_get_name(ci));
    char id[8];
    snprintf(id, sizeof id, "%04X", SSL_CIPHER_get_protocol_id(ci));
    put_str(b, PISTON_TLSI_CIPHER_ID, id);
  }
  const unsigned char *alpn;
  unsigned alpn_len;
  SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
  put(b, PISTON_TLSI_ALPN, alpn, alpn_len);
  put_str(b, PISTON_TLSI_SNI,
          SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));
  put_peer(b, ssl);
  unsigned char *der = NULL;
  int n = piston__tls_local_cert_der(ssl, &der);
  if (n > 0)
    put(b, PISTON_TLSI_LOCAL_CERT, der, (size_t)n);
  OPENSSL_free(der);
  piston__tlsinfo *ti = malloc(sizeof *ti + b->n);
  if (ti) {
    atomic_init(&ti->refs, 1);
    memcpy(ti->off, b->off, sizeof b->off);
    memcpy(ti->len, b->len, sizeof b->len);
    memcpy(ti->data, b->buf, b->n);
    c->tlsinfo = ti;
  }
  free(b);
}

void piston__tlsinfo_unref(piston__tlsinfo *ti) {
  if (ti && atomic_fetch_sub(&ti->refs, 1) == 1)
    free(ti);
}

/* ---- a client that does not speak TLS ---- */

static const char plain_http_answer[] =
    "HTTP/1.1 400 Bad Request\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 48\r\n"
    "Connection: close\r\n"
    "\r\n"
    "The plain HTTP request was sent to HTTPS port.\r\n";

/* Before the handshake: a TLS connection starts with a handshake record
 * (0x16). A letter is a plain HTTP request: it gets nginx's answer, in
 * clear text, then the close. Anything else only the close. */
static bool looks_wrong(piston__conn *c) {
  unsigned char first;
  ssize_t n = recv(c->fd, &first, 1, MSG_PEEK);
  if (n != 1)
    return false; /* nothing yet: look at the first byte when it comes */
  c->tls_checked = true;
  if (first == 0x16)
    return false;
  if (first >= 'A' && first <= 'Z') {
    ssize_t w = send(c->fd, plain_http_answer, sizeof plain_http_answer - 1,
                     MSG_NOSIGNAL);
    (void)w; /* best effort: the close follows either way */
    piston__debug("TLS: plain HTTP on a TLS port from connection %llu",
                  (unsigned long long)c->id);
  } else {
    piston__debug("TLS: connection %llu began with byte 0x%02x, not a TLS "
                  "handshake",
                  (unsigned long long)c->id, first);
  }
  /* Closing with the bytes unread would reset the connection (under the
   * answer): take in what has come, and send our FIN first. */
  char sink[4096];
  for (int i = 0; i < 16 && recv(c->fd, sink, sizeof sink, MSG_DONTWAIT) > 0;
       i++)
    ;
  shutdown(c->fd, SHUT_WR);
  return true;
}

static void log_failure(piston__conn *c, const char *what) {
  unsigned long e = ERR_peek_last_error();
  char why[160] = "the connection ended";
  if (e)
    ERR_error_string_n(e, why, sizeof why);
  ERR_clear_error();
  piston__debug("TLS %s on connection %llu: %s", what,
                (unsigned long long)c->id, why);
}

/* ---- the transport ---- */

static ssize_t tls_read_guarded(piston__conn *c, void *buf, size_t len);

/* OpenSSL writes to the socket itself (handshake messages inside a read,
 * records, close_notify) with no MSG_NOSIGNAL: guard every call. */
static ssize_t tls_read(piston__conn *c, void *buf, size_t len) {
  piston__nosigpipe g;
  piston__nosigpipe_begin(&g);
  ssize_t n = tls_read_guarded(c, buf, len);
  piston__nosigpipe_end(&g);
  return n;
}

static ssize_t tls_read_guarded(piston__conn *c, void *buf, size_t len) {
  SSL *ssl = ssl_of(c);
  if (!c->tls_checked && looks_wrong(c)) {
    errno = EPROTO;
    return -1;
  }
  size_t got = 0;
  c->read_wants_write = false;
  while (got < len) {
    int n = SSL_read(ssl, (char *)buf + got,
                     (int)(len - got > INT32_MAX ? INT32_MAX : len - got));
    if (c->tls_handshaking && SSL_is_init_finished(ssl)) {
      handshake_over(c);
      make_info(c, ssl);
    }
    if (n > 0) {
      got += (size_t)n;
      continue;
    }
    switch (SSL_get_error(ssl, n)) {
    case SSL_ERROR_WANT_READ: break;
    case SSL_ERROR_WANT_WRITE:
      /* a handshake message waits for room in the socket: read again when
       * it is writable */
      c->read_wants_write = true;
      c->writable = false;
      break;
    case SSL_ERROR_ZERO_RETURN: /* close_notify, or EOF (tlsctx.c) */
      if (got)
        return (ssize_t)got;
      return 0;
    case SSL_ERROR_SYSCALL:
    default:
      /* Reading on consumed the socket's error (a reset): epoll will not
       * report it again, so say it now, or after the bytes already read. */
      log_failure(c, c->tls_handshaking ? "handshake" : "read");
      if (got) {
        c->read_failed = true;
        return (ssize_t)got;
      }
      errno = EPROTO;
      return -1;
    }
    break;
  }
  if (got)
    return (ssize_t)got;
  errno = EAGAIN;
  return -1;
}

static int tls_flush_guarded(piston__conn *c, piston__outq *q);

static int tls_flush(piston__conn *c, piston__outq *q) {
  piston__nosigpipe g;
  piston__nosigpipe_begin(&g);
  /* more than one record: each SSL_write is a write of its own, pushed at
   * once (TCP_NODELAY); corked, the records leave in full segments */
  int one = 1, zero = 0;
  bool cork = q->pending > RECORD && !c->tls_handshaking;
  if (cork)
    setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &one, sizeof one);
  int rc = tls_flush_guarded(c, q);
  if (cork)
    setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &zero, sizeof zero);
  piston__nosigpipe_end(&g);
  return rc;
}

static int tls_flush_guarded(piston__conn *c, piston__outq *q) {
  SSL *ssl = ssl_of(c);
  if (c->tls_handshaking)
    return q->pending ? 1 : 0; /* nothing may go out before the handshake */
  static _Thread_local char stage[RECORD];
  c->flush_wants_read = false;
  while (q->pending) {
    const char *p;
    size_t n;
    int fd;
    uint64_t off;
    if (piston__outq_front(q, &fd, &off, &n) == 1) {
#ifdef SSL_OP_ENABLE_KTLS
      if (BIO_get_ktls_send(SSL_get_wbio(ssl))) {
        ossl_ssize_t s = SSL_sendfile(ssl, fd, (off_t)off,
                                      n > (1u << 30) ? (1u << 30) : n, 0);
        if (s > 0) {
          piston__outq_consume(q, (size_t)s);
          continue;
        }
        if (SSL_get_error(ssl, (int)s) == SSL_ERROR_WANT_WRITE)
          return 1;
        return -EPIPE;
      }
#endif
      /* Read again from the same offset on each try: a retried SSL_write
       * must offer the same bytes, and the file holds them. */
      size_t want = n < sizeof stage ? n : sizeof stage;
      ssize_t r = pread(fd, stage, want, (off_t)off);
      if (r <= 0)
        return -EIO; /* the file shrank under us: the framing is now a lie */
      p = stage;
      n = (size_t)r;
    } else {
      /* small pieces (a head, then its body) are gathered into one record */
      p = piston__outq_gather(q, stage, sizeof stage, &n);
    }
    int w = SSL_write(ssl, p, (int)n);
    if (w > 0) {
      piston__outq_consume(q, (size_t)w);
      continue;
    }
    switch (SSL_get_error(ssl, w)) {
    case SSL_ERROR_WANT_WRITE: return 1;
    case SSL_ERROR_WANT_READ: c->flush_wants_read = true; return 1;
    default: log_failure(c, "write"); return -EPIPE;
    }
  }
  return 0;
}

static void tls_shutdown_write(piston__conn *c) {
  SSL *ssl = ssl_of(c);
  piston__nosigpipe g;
  piston__nosigpipe_begin(&g);
  if (!c->tls_handshaking)
    SSL_shutdown(ssl); /* close_notify: the response is complete */
  piston__nosigpipe_end(&g);
  ERR_clear_error();
  shutdown(c->fd, SHUT_WR);
}

static void tls_close(piston__conn *c) {
  handshake_over(c);
  if (c->tls) {
    piston__tls_ssl_free(c->tls);
    c->tls = NULL;
  }
  ERR_clear_error(); /* the thread's queue must not carry this conn's errors */
  piston__tlsinfo_unref(c->tlsinfo);
  c->tlsinfo = NULL;
}

const piston__transport piston__transport_tls = {
    .read = tls_read,
    .flush = tls_flush,
    .shutdown_write = tls_shutdown_write,
    .close = tls_close,
};

int piston__tls_attach(piston__conn *c, struct piston__tlsconf *conf) {
  piston_loop *l = c->io.loop;
  if (!piston__loop_handshake_begin(l))
    return PISTON_EAGAIN;
  SSL *ssl = piston__tls_ssl_new(conf);
  if (!ssl || SSL_set_fd(ssl, c->fd) != 1) {
    if (ssl)
      piston__tls_ssl_free(ssl);
    piston__loop_handshake_done(l);
    return PISTON_ENOMEM;
  }
  c->tls = ssl;
  c->tls_handshaking = true;
  c->tp = &piston__transport_tls;
  return 0;
}
