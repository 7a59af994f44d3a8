/* tlsload.c: new TLS connections per second, for benchmarks/tls_run.sh.
 *
 *   tlsload -p PORT [-u PATH] [-c CONNS] [-d SECONDS] [-w WARMUP]
 *           [-P SERVER_PID[,PID...]] [-n SNI]
 *
 * Keeps CONNS connections to 127.0.0.1:PORT in progress at once, all on one
 * epoll loop (non-blocking). Each one: a TCP connect, a full TLS 1.3
 * handshake (OpenSSL, a fresh SSL object with no session to offer: the
 * client keeps no session cache, so nothing can be resumed; every
 * handshake is checked not to be a resumed one), one
 * "GET PATH HTTP/1.1" with "Connection: close", the whole response read
 * (status 200 and Content-Length checked), then the client waits for the
 * server to close, sends its close_notify, closes, and starts the next
 * connection. A connection counts once its response is complete, if that
 * falls inside the measured window (after WARMUP seconds). The server's
 * certificate is not verified (the benchmark's own self-signed one).
 * Prints one line:
 *
 *   TLSLOAD_RESULT conns=.. handshakes=.. seconds=.. rate=.. resumed=..
 *                  errors=.. p50_us=.. p99_us=.. server_cpu_ms=..
 *                  client_cpu_ms=.. protocol=.. cipher=.. group=..
 *
 * (latency: from connect() to the response's last byte; server_cpu_ms: the
 * user+system time of the -P processes inside the window, -1 without -P;
 * protocol, cipher and group of the last handshake). Exit status is
 * non-zero if a handshake was resumed or a connection failed. Linux only
 * (epoll). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES (1 << 22)
#define RBUF 65536

static uint64_t *g_lat;
static size_t g_nlat;

#include "loadwindow.h"

enum state { CONNECTING, HANDSHAKE, WRITING, READING, DRAINING };

struct conn {
  int fd;
  SSL *ssl;
  enum state st;
  uint64_t t0;
  size_t wlen, rlen;
  long body_left; /* -1 until the head is in */
  char rbuf[RBUF];
};

static SSL_CTX *g_ctx;
static int g_ep;
static uint16_t g_port;
static const char *g_sni = "localhost";
static char g_req[512];
static size_t g_req_len;
static long g_errors, g_resumed;
static const struct window *g_win;
static char g_proto[32] = "?", g_cipher[64] = "?", g_group[64] = "?";

static void die(const char *what) {
  fprintf(stderr, "tlsload: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void watch(struct conn *c, uint32_t events, int op) {
  struct epoll_event ev = {.events = events, .data.ptr = c};
  if (epoll_ctl(g_ep, op, c->fd, &ev) != 0)
    die("epoll_ctl");
}

static void start(struct conn *c) {
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (c->fd < 0)
    die("socket");
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(g_port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  c->t0 = now_ns();
  c->st = CONNECTING;
  c->wlen = c->rlen = 0;
  c->body_left = -1;
  if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0 &&
      errno != EINPROGRESS)
    die("connect");
  /* one SSL object a slot, cleared between connections, with its session
   * dropped (SSL_clear would keep it for a resumption) */
  if (!c->ssl && !(c->ssl = SSL_new(g_ctx)))
    die("SSL_new");
  SSL_set_fd(c->ssl, c->fd);
  SSL_set_tlsext_host_name(c->ssl, g_sni);
  SSL_set_connect_state(c->ssl);
  watch(c, EPOLLOUT, EPOLL_CTL_ADD);
}

static void finish(struct conn *c, int failed) {
  if (failed) {
    g_errors++;
    if (g_errors <= 5) {
      unsigned long e = ERR_get_error();
      fprintf(stderr, "tlsload: a connection failed in state %d: %s\n",
              (int)c->st, e ? ERR_error_string(e, NULL) : strerror(errno));
    }
    ERR_clear_error();
  } else {
    SSL_shutdown(c->ssl); /* our close_notify; the server's is in */
  }
  SSL_set_session(c->ssl, NULL);
  if (!SSL_clear(c->ssl))
    die("SSL_clear");
  close(c->fd);
  start(c);
}

/* Parses the head once it is all in: 200 and a Content-Length. Returns -1
 * on a bad answer, 0 if more is needed, 1 when the head was taken. */
static int take_head(struct conn *c) {
  char *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
  if (!end)
    return c->rlen == sizeof c->rbuf - 1 ? -1 : 0;
  *end = 0;
  if (strncmp(c->rbuf, "HTTP/1.1 200 ", 13) != 0 &&
      strncmp(c->rbuf, "HTTP/1.0 200 ", 13) != 0)
    return -1;
  char *cl = strcasestr(c->rbuf, "\r\ncontent-length:");
  if (!cl)
    return -1;
  long len = strtol(cl + 17, NULL, 10);
  size_t head = (size_t)(end + 4 - c->rbuf);
  c->body_left = len - (long)(c->rlen - head);
  return 1;
}

/* Moves a connection along as far as it goes; returns 1 when its
 * response is complete (the handshake and request counted). */
static int step(struct conn *c) {
  int r = 0, done = 0;
  for (;;) {
    switch (c->st) {
    case CONNECTING: {
      int err = 0;
      socklen_t l = sizeof err;
      getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
      if (err) {
        errno = err;
        finish(c, 1);
        return 0;
      }
      c->st = HANDSHAKE;
      continue;
    }
    case HANDSHAKE:
      r = SSL_do_handshake(c->ssl);
      if (r == 1) {
        if (SSL_session_reused(c->ssl))
          g_resumed++;
        c->st = WRITING;
        continue;
      }
      break;
    case WRITING:
      r = SSL_write(c->ssl, g_req + c->wlen, (int)(g_req_len - c->wlen));
      if (r > 0) {
        c->wlen += (size_t)r;
        if (c->wlen == g_req_len)
          c->st = READING;
        continue;
      }
      break;
    case READING:
    case DRAINING:
      if (c->st == DRAINING) {
        char sink[512];
        r = SSL_read(c->ssl, sink, sizeof sink);
      } else {
        r = SSL_read(c->ssl, c->rbuf + c->rlen,
                     (int)(sizeof c->rbuf - 1 - c->rlen));
      }
      if (r > 0) {
        if (c->st == DRAINING) {
          fprintf(stderr, "tlsload: bytes after the response\n");
          finish(c, 1);
          return done;
        }
        if (c->body_left < 0) {
          c->rlen += (size_t)r;
          int h = take_head(c);
          if (h < 0) {
            fprintf(stderr, "tlsload: not a 200 with a Content-Length: %.80s\n",
                    c->rbuf);
            finish(c, 1);
            return done;
          }
          if (h == 0)
            continue;
        } else {
          c->body_left -= r;
        }
        if (c->body_left == 0) {
          uint64_t t = now_ns();
          if (t >= g_win->start && t < g_win->end && g_nlat < MAX_SAMPLES)
            g_lat[g_nlat++] = t - c->t0;
          done = 1;
          c->st = DRAINING;
        } else if (c->body_left < 0) {
          fprintf(stderr, "tlsload: a longer body than its Content-Length\n");
          finish(c, 1);
          return done;
        }
        c->rlen = 0;
        continue;
      }
      break;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
      watch(c, EPOLLIN, EPOLL_CTL_MOD);
      return done;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
      watch(c, EPOLLOUT, EPOLL_CTL_MOD);
      return done;
    }
    /* the server closed: its close_notify (ZERO_RETURN) or a bare FIN */
    if (c->st == DRAINING &&
        (e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL)) {
      snprintf(g_proto, sizeof g_proto, "%s", SSL_get_version(c->ssl));
      snprintf(g_cipher, sizeof g_cipher, "%s", SSL_get_cipher_name(c->ssl));
      const char *grp =
          SSL_group_to_name(c->ssl, SSL_get_negotiated_group(c->ssl));
      snprintf(g_group, sizeof g_group, "%s", grp ? grp : "?");
      ERR_clear_error();
      finish(c, 0);
      return done;
    }
    finish(c, 1);
    return done;
  }
}

int main(int argc, char **argv) {
  const char *path = "/";
  int conns = 16, opt;
  double secs = 5, warm = 1;
  while ((opt = getopt(argc, argv, "p:u:c:d:w:P:n:")) != -1) {
    switch (opt) {
    case 'p': g_port = (uint16_t)atoi(optarg); break;
    case 'u': path = optarg; break;
    case 'c': conns = atoi(optarg); break;
    case 'd': secs = atof(optarg); break;
    case 'w': warm = atof(optarg); break;
    case 'P': parse_pids(optarg); break;
    case 'n': g_sni = optarg; break;
    default:
      fprintf(stderr, "usage: tlsload -p PORT [-u PATH] [-c CONNS] [-d SECS] "
                      "[-w WARMUP] [-P SERVER_PID,...] [-n SNI]\n");
      return 2;
    }
  }
  if (!g_port || conns < 1 || secs <= 0)
    return fprintf(stderr, "tlsload: bad arguments\n"), 2;
  g_req_len = (size_t)snprintf(
      g_req, sizeof g_req,
      "GET %s HTTP/1.1\r\nHost: %s:%u\r\nConnection: close\r\n\r\n", path,
      g_sni, g_port);
  g_lat = malloc(sizeof *g_lat * MAX_SAMPLES);
  g_ctx = SSL_CTX_new(TLS_client_method());
  if (!g_lat || !g_ctx)
    die("setup");
  SSL_CTX_set_min_proto_version(g_ctx, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(g_ctx, TLS1_3_VERSION);
  SSL_CTX_set_verify(g_ctx, SSL_VERIFY_NONE, NULL);
  /* no client session cache, and no session ever set on an SSL: every
   * handshake is a full one (checked with SSL_session_reused) */
  SSL_CTX_set_session_cache_mode(g_ctx, SSL_SESS_CACHE_OFF);
  g_ep = epoll_create1(0);
  struct conn *cs = calloc((size_t)conns, sizeof *cs);
  if (g_ep < 0 || !cs)
    die("setup");
  struct window w = window_after(warm, secs);
  g_win = &w;
  for (int i = 0; i < conns; i++)
    start(&cs[i]);
  uint64_t measured = 0;
  struct epoll_event evs[256];
  while (!window_tick(&w)) {
    int n = epoll_wait(g_ep, evs, 256, 100);
    if (n < 0 && errno != EINTR)
      die("epoll_wait");
    for (int i = 0; i < n; i++) {
      struct conn *c = evs[i].data.ptr;
      if (step(c)) {
        uint64_t t = now_ns();
        if (t >= w.start && t < w.end)
          measured++;
      }
    }
  }
  double p50, p99;
  percentiles(&p50, &p99);
  printf("TLSLOAD_RESULT conns=%d handshakes=%llu seconds=%.3f rate=%.0f "
         "resumed=%ld "
         "errors=%ld p50_us=%.1f p99_us=%.1f server_cpu_ms=%.0f "
         "client_cpu_ms=%.0f "
         "protocol=%s cipher=%s group=%s\n",
         conns, (unsigned long long)measured, secs, (double)measured / secs,
         g_resumed, g_errors, p50, p99, g_npids ? w.srv1 - w.srv0 : -1,
         w.cli1 - w.cli0, g_proto, g_cipher, g_group);
  return (g_resumed || g_errors) ? 1 : 0;
}
