/* libFuzzer target: arbitrary bytes, split at arbitrary points, through the
 * engine's connection path (accept, read, parse, dispatch to a host,
 * respond, keep-alive, close), under ASan/UBSan.
 *
 * The first input byte seeds the split points; the rest is what a client
 * sends on one connection (a socketpair handed to the loop as if accepted).
 * The host answers in different ways by path, so that every response path
 * runs: sync send, chunked writes, reading the body first, abort, a
 * WebSocket echo, and responses marked for the response cache (on, with a
 * small budget, PURGE allowed), so that hits, 304s, ranges and HEAD run on
 * what earlier requests stored. With the seed's high bit set, a valid WebSocket
 * opening handshake goes first, so that the rest reaches the frame parser
 * (ws.c) directly. With 0x20 the connection is TLS (tls.c): with 0x10 as well
 * the input is the TLS feed itself (records as a client would send them),
 * otherwise an in-process OpenSSL client completes a handshake first and
 * the input goes through it as application data, so that the transport's
 * reads and writes carry the HTTP/1.1 and WebSocket paths. With 0x08 the
 * client opens with the HTTP/2 preface, so that the rest is frames for the
 * HTTP/2 handler (h2.c) and nghttp2. With 0x40 but not 0x80 the peer is a
 * trusted proxy that must open with a PROXY protocol header
 * (proxyproto.c): the input begins with it (or with garbage), except on a
 * TLS connection with the in-process client, where a fixed v1 header goes
 * first, in clear, before the handshake. The Unix peer is trusted in every
 * mode, so X-Forwarded-* and Forwarded fields (forwarded.c) always apply. */
#define _GNU_SOURCE
#include "http1.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static piston_server *srv;
static piston_loop *loop;
static SSL_CTX *client_ctx;

/* A throwaway P-256 certificate for the server, in files (the engine's TLS
 * configuration reads files). */
static void make_cert(void) {
  EVP_PKEY *pk = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  if (!pk || !x)
    abort();
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, pk);
  X509_NAME *n = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
                             (const unsigned char *)"fuzz", -1, -1, 0);
  X509_set_issuer_name(x, n);
  if (!X509_sign(x, pk, EVP_sha256()))
    abort();
  char dir[] = "/tmp/piston-fuzz-XXXXXX";
  if (!mkdtemp(dir))
    abort();
  char cert[64], key[64];
  snprintf(cert, sizeof cert, "%s/cert.pem", dir);
  snprintf(key, sizeof key, "%s/key.pem", dir);
  FILE *f = fopen(cert, "w"), *g = fopen(key, "w");
  if (!f || !g || !PEM_write_X509(f, x) ||
      !PEM_write_PrivateKey(g, pk, NULL, NULL, 0, NULL, NULL))
    abort();
  fclose(f);
  fclose(g);
  if (piston_server_tls_cert(srv, cert, key, NULL) ||
      piston_server_tls_reload(srv))
    abort();
  unlink(cert);
  unlink(key);
  rmdir(dir);
  X509_free(x);
  EVP_PKEY_free(pk);
  if (!(client_ctx = SSL_CTX_new(TLS_client_method())))
    abort();
  signal(SIGPIPE, SIG_IGN); /* the client's SSL_write to a closed server */
}

static const piston_header text[] = {
    {{"Content-Type", 12}, {"text/plain", 10}}};

static void on_event(piston_req *req, int events, void *ud) {
  (void)ud;
  if (events & PISTON_EV_CLOSED) {
    piston_req_release(req);
    return;
  }
  if (!(events & PISTON_EV_BODY) || piston_resp_started(req))
    return;
  char buf[4096];
  int64_t n;
  while ((n = piston_req_body_read(req, buf, sizeof buf)) > 0) {
  }
  if (n == 0 || n == PISTON_ETOOBIG) {
    if (n == 0)
      (void)!piston_resp_send(req, 200, text, 1, "read", 4);
    piston_req_release(req);
  }
}

static void on_ws_event(piston_req *req, int events, void *ud) {
  (void)ud;
  int op;
  const void *data;
  size_t len;
  while ((events & PISTON_EV_MESSAGE) &&
         piston_ws_recv(req, &op, &data, &len) == 1) {
    if (len == 1)
      (void)!piston_ws_close(req, 1000, "x", 1);
    else
      (void)!piston_ws_send(req, op, data, len);
  }
  if (events & PISTON_EV_CLOSED)
    piston_req_release(req);
}

static void on_request(piston_req *req, void *ud) {
  (void)ud;
  piston_str p = piston_req_path(req);
  char first = p.len > 1 ? p.ptr[1] : '/';
  switch (first) {
  case 'b': /* read the whole body, then answer */
    piston_req_on_event(req, on_event, NULL);
    on_event(req, PISTON_EV_BODY, NULL);
    return;
  case 'c': /* chunked, with trailers */
    if (piston_resp_start(req, 200, text, 1) == 0) {
      (void)!piston_resp_write(req, "abc", 3);
      (void)!piston_resp_write(req, "", 0);
      piston_header t = {{"X-T", 3}, {"1", 1}};
      (void)!piston_resp_end(req, &t, 1);
    }
    break;
  case 'a': /* abort after starting */
    if (piston_resp_start(req, 200, text, 1) == 0)
      (void)!piston_resp_write(req, "x", 1);
    piston_resp_abort(req);
    break;
  case 'k': { /* marked for the response cache (on, with a small budget) */
    piston_header kh[] = {{{"Content-Type", 12}, {"text/plain", 10}},
                          {{"Piston-Cache", 12}, {"ttl=60, swr=5", 13}},
                          {{"Vary", 4}, {"Accept", 6}},
                          {{"ETag", 4}, {"\"k1\"", 4}}};
    piston_str q = piston_req_query(req);
    size_t n = q.len > 64 ? 64 : q.len;
    if (p.len > 2 && p.ptr[2] == 'c') { /* chunked, stored with a length */
      if (piston_resp_start(req, 200, kh, 4) == 0) {
        (void)!piston_resp_write(req, "kk", 2);
        (void)!piston_resp_write(req, q.ptr ? q.ptr : "", n);
        (void)!piston_resp_end(req, NULL, 0);
      }
    } else {
      (void)!piston_resp_send(req, p.len > 2 && p.ptr[2] == 'e' ? 500 : 200, kh,
                              4, q.ptr ? q.ptr : "k", q.ptr ? n : 1);
    }
    break;
  }
  case 'x':
    /* abort before starting: a 500 */
    piston_resp_abort(req);
    break;
  case 'w': /* WebSocket echo; a 1-byte message closes */
    if (piston_ws_handshake(req) != 101) {
      (void)!piston_ws_refuse(req);
      break;
    }
    piston_req_on_event(req, on_ws_event, NULL);
    if (piston_ws_accept(req, NULL, 0) != 0)
      break;
    return;  /* released on PISTON_EV_CLOSED */
  default: { /* echo a few views */
    char out[256];
    piston_str m = piston_req_method(req), q = piston_req_query(req);
    int port;
    const char *addr = piston_req_remote_addr(req, &port);
    int fport;
    piston_str fh = piston_req_forwarded_host(req, &fport);
    int n = snprintf(
        out, sizeof out, "%.*s|%.*s|%zu|%s:%d|%d|%.*s:%d", (int)m.len, m.ptr,
        (int)(q.len > 64 ? 64 : q.len), q.ptr ? q.ptr : "",
        piston_req_header_count(req), addr, port, piston_req_secure(req),
        (int)(fh.len > 64 ? 64 : fh.len), fh.ptr ? fh.ptr : "", fport);
    (void)!piston_resp_send(req, 200, text, 1, out, (size_t)n);
  }
  }
  piston_req_release(req);
}

static void setup(void) {
  srv = piston_server_new();
  if (!srv)
    abort();
  /* small limits reach the 413/414/431 paths with small inputs */
  if (piston_server_set(srv, PISTON_OPT_MAX_HEAD_SIZE, 2048) ||
      piston_server_set(srv, PISTON_OPT_MAX_URL_SIZE, 512) ||
      piston_server_set(srv, PISTON_OPT_MAX_HEADERS, 16) ||
      piston_server_set(srv, PISTON_OPT_MAX_BODY_SIZE, 4096) ||
      piston_server_set(srv, PISTON_OPT_BODY_HIGH_WATER, 1024) ||
      piston_server_set(srv, PISTON_OPT_WS_DEFLATE, 1) ||
      piston_server_set(srv, PISTON_OPT_WS_MAX_MESSAGE, 65536) ||
      piston_server_set(srv, PISTON_OPT_HTTP2, 2) ||
      piston_server_set(srv, PISTON_OPT_CACHE_SIZE, 64 * 1024) ||
      piston_server_set(srv, PISTON_OPT_CACHE_MAX_ENTRY, 8 * 1024) ||
      piston_server_set(srv, PISTON_OPT_CACHE_S_MAXAGE, 1) ||
      piston_server_set(srv, PISTON_OPT_CACHE_PURGE, 1))
    abort();
  static const piston_header h[] = {{{"Content-Type", 12}, {"text/plain", 10}}};
  if (piston_server_route_fixed(srv, NULL, "/fixed", 200, h, 1, "fixed", 5))
    abort();
  /* the socketpair's peer is a trusted proxy */
  if (piston_server_trust_proxies(srv, "unix:"))
    abort();
  piston_server_on_request(srv, on_request, NULL);
  make_cert();
  int err;
  loop = piston_loop_new(srv, &err);
  if (!loop)
    abort();
}

static SSL *client; /* the TLS client of the current input, or NULL */

static void drain(int fd) {
  char buf[65536];
  if (client) {
    while (SSL_read(client, buf, sizeof buf) > 0) {
    }
    ERR_clear_error();
    return;
  }
  while (read(fd, buf, sizeof buf) > 0) {
  }
}

/* What the client sends: through its TLS session if it has one. */
static ssize_t client_send(int fd, const void *p, size_t n) {
  if (!client)
    return send(fd, p, n, MSG_NOSIGNAL);
  int w = SSL_write(client, p, (int)n);
  ERR_clear_error();
  return w > 0 ? w : -1;
}

/* The in-process client's handshake, the server's loop run in between. */
static bool client_handshake(int fd) {
  client = SSL_new(client_ctx);
  if (!client || SSL_set_fd(client, fd) != 1)
    abort();
  SSL_set_connect_state(client);
  for (int i = 0; i < 64; i++) {
    if (SSL_do_handshake(client) == 1)
      return true;
    piston_loop_poll(loop);
  }
  return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!loop)
    setup();
  if (size < 1)
    return 0;
  unsigned seed = data[0];
  data++;
  size--;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
    abort();
  struct sockaddr_storage peer = {.ss_family = AF_UNIX};
  bool tls = seed & 0x20;
  bool proxy = (seed & 0xc0) == 0x40;
  /* the option is read at accept; the fuzzer alone touches the server */
  srv->opt[PISTON_OPT_PROXY_PROTOCOL] = proxy;
  piston__h1_accept(loop, sv[0], &peer, sizeof(sa_family_t), tls);
  srv->opt[PISTON_OPT_PROXY_PROTOCOL] = 0;
  if (proxy && tls && !(seed & 0x10)) {
    static const char v1[] = "PROXY TCP4 192.0.2.1 192.0.2.2 5555 443\r\n";
    if (send(sv[1], v1, sizeof v1 - 1, MSG_NOSIGNAL) < 0)
      abort();
  }
  if (tls && !(seed & 0x10) && !client_handshake(sv[1]))
    abort(); /* the engine's side of a valid handshake must complete */
  if (seed & 0x08) {
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    if (client_send(sv[1], preface, sizeof preface - 1) < 0)
      abort();
  }
  if (seed & 0x80) {
    /* with 0x40 too, permessage-deflate is offered: RSV1 frames then reach
     * the inflater */
    static const char hs[] =
        "GET /w HTTP/1.1\r\nHost: f\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    static const char pmd[] = "Sec-WebSocket-Extensions: permessage-deflate; "
                              "client_max_window_bits\r\n";
    if (client_send(sv[1], hs, sizeof hs - 1) < 0 ||
        ((seed & 0x40) && client_send(sv[1], pmd, sizeof pmd - 1) < 0) ||
        client_send(sv[1], "\r\n", 2) < 0)
      abort();
    piston_loop_poll(loop);
    drain(sv[1]);
  }
  size_t off = 0;
  while (off < size) {
    /* split points from a tiny LCG: runs of 1..64 bytes */
    seed = seed * 1103515245u + 12345u;
    size_t n = 1 + (seed >> 16) % 64;
    if (n > size - off)
      n = size - off;
    ssize_t w = client_send(sv[1], data + off, n);
    if (w <= 0)
      break; /* the server closed, or our buffer is full of unread data */
    off += (size_t)w;
    piston_loop_poll(loop);
    drain(sv[1]);
  }
  shutdown(sv[1], SHUT_WR);
  for (int i = 0; i < 64 && piston_loop_connections(loop) > 0; i++) {
    piston_loop_poll(loop);
    drain(sv[1]);
  }
  if (client) {
    SSL_free(client);
    client = NULL;
  }
  close(sv[1]); /* a connection still open sees the peer gone */
  for (int i = 0; i < 16 && piston_loop_connections(loop) > 0; i++)
    piston_loop_poll(loop);
  if (piston_loop_connections(loop) != 0)
    abort(); /* a connection that outlives its client is a leak */
  return 0;
}
