/* wsload.c: WebSocket echo load generator for the benchmarks.
 *
 *   wsload -p PORT [-u PATH] [-c CONNS] [-d SECONDS] [-w WARMUP] [-s SIZE]
 *          [-k DEPTH]
 *
 * Opens CONNS WebSockets to 127.0.0.1:PORT (the opening handshake checked:
 * a 101), then keeps DEPTH masked text messages of SIZE bytes in flight on
 * each (closed loop: a message goes out when an echo comes back) and counts
 * the echoes that arrive inside the measured window, after WARMUP seconds.
 * Every echo is checked to be a whole unfragmented text frame of SIZE bytes.
 * Prints one line:
 *
 *   WSLOAD_RESULT conns=.. size=.. depth=.. messages=.. seconds=.. rate=..
 *                 p50_us=.. p99_us=.. errors=..
 *
 * (latency from a message's send to its echo). Exit status is non-zero if
 * a connection fails or an echo is wrong. Linux only (epoll). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RBUF (1 << 20)
#define MAX_SAMPLES (1 << 22)

struct conn {
  int fd;
  int inflight;
  uint64_t sent_ns[64]; /* a ring of the in-flight messages' send times */
  unsigned head, tail;
  size_t rlen;
  unsigned char *rbuf;
};

static size_t g_size = 16;
static int g_depth = 1;
static unsigned char *g_frame;
static size_t g_frame_len;
static uint64_t *g_lat;
static size_t g_nlat;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "wsload: %s: %s\n", what, strerror(errno));
  exit(1);
}

/* One masked text frame of g_size bytes, built once: every message is the
 * same, which costs the server the same work as varied bytes would. */
static void build_frame(void) {
  g_frame = malloc(g_size + 14);
  if (!g_frame)
    die("malloc");
  size_t h = 0;
  g_frame[h++] = 0x81;
  if (g_size < 126) {
    g_frame[h++] = (unsigned char)(0x80 | g_size);
  } else if (g_size < 65536) {
    g_frame[h++] = 0x80 | 126;
    g_frame[h++] = (unsigned char)(g_size >> 8);
    g_frame[h++] = (unsigned char)g_size;
  } else {
    g_frame[h++] = 0x80 | 127;
    for (int i = 7; i >= 0; i--)
      g_frame[h++] = (unsigned char)((uint64_t)g_size >> (8 * i));
  }
  static const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
  memcpy(g_frame + h, key, 4);
  h += 4;
  for (size_t i = 0; i < g_size; i++)
    g_frame[h + i] = (unsigned char)('a' + i % 26) ^ key[i % 4];
  g_frame_len = h + g_size;
}

static int connect_ws(uint16_t port, const char *path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    die("socket");
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
    die("connect");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  char req[512];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n",
                   path, port);
  if (write(fd, req, (size_t)n) != n)
    die("write");
  char buf[2048];
  size_t got = 0;
  while (got < sizeof buf - 1) { /* read the head byte by byte: no frame is
                                    due before our first message */
    ssize_t r = read(fd, buf + got, 1);
    if (r <= 0)
      die("handshake");
    got++;
    if (got >= 4 && memcmp(buf + got - 4, "\r\n\r\n", 4) == 0)
      break;
  }
  buf[got] = 0;
  if (strncmp(buf, "HTTP/1.1 101", 12) != 0) {
    fprintf(stderr, "wsload: handshake refused: %.80s\n", buf);
    exit(1);
  }
  return fd;
}

static void send_one(struct conn *c) {
  size_t off = 0;
  while (off < g_frame_len) {
    ssize_t n = write(c->fd, g_frame + off, g_frame_len - off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      die("send");
    off += (size_t)n;
  }
  c->sent_ns[c->head++ % 64] = now_ns();
  c->inflight++;
}

/* Parses the echoes in c->rbuf; returns how many completed, -1 on a bad
 * frame. */
static int take_echoes(struct conn *c, uint64_t t, int record) {
  int done = 0;
  size_t pos = 0;
  for (;;) {
    if (c->rlen - pos < 2)
      break;
    unsigned char *p = c->rbuf + pos;
    size_t len = p[1] & 0x7f, h = 2;
    if (p[0] != 0x81 || (p[1] & 0x80))
      return -1;
    if (len == 126) {
      if (c->rlen - pos < 4)
        break;
      len = (size_t)p[2] << 8 | p[3];
      h = 4;
    } else if (len == 127) {
      if (c->rlen - pos < 10)
        break;
      len = 0;
      for (int i = 0; i < 8; i++)
        len = len << 8 | p[2 + i];
      h = 10;
    }
    if (c->rlen - pos < h + len)
      break;
    if (len != g_size)
      return -1;
    pos += h + len;
    c->inflight--;
    uint64_t sent = c->sent_ns[c->tail++ % 64];
    if (record && g_nlat < MAX_SAMPLES)
      g_lat[g_nlat++] = t - sent;
    done++;
  }
  memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
  c->rlen -= pos;
  return done;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  uint16_t port = 0;
  const char *path = "/ws";
  int conns = 64;
  double secs = 5, warm = 1;
  int opt;
  while ((opt = getopt(argc, argv, "p:u:c:d:w:s:k:")) != -1) {
    switch (opt) {
    case 'p': port = (uint16_t)atoi(optarg); break;
    case 'u': path = optarg; break;
    case 'c': conns = atoi(optarg); break;
    case 'd': secs = atof(optarg); break;
    case 'w': warm = atof(optarg); break;
    case 's': g_size = (size_t)atol(optarg); break;
    case 'k': g_depth = atoi(optarg); break;
    default:
      fprintf(stderr, "usage: wsload -p PORT [-u PATH] [-c CONNS] [-d SECS] "
                      "[-w WARMUP] [-s SIZE] [-k DEPTH]\n");
      return 2;
    }
  }
  if (!port || conns < 1 || g_depth < 1 || g_depth > 64 || g_size > RBUF / 2)
    return fprintf(stderr, "wsload: bad arguments\n"), 2;
  build_frame();
  g_lat = malloc(sizeof *g_lat * MAX_SAMPLES);
  struct conn *cs = calloc((size_t)conns, sizeof *cs);
  int ep = epoll_create1(0);
  if (!g_lat || !cs || ep < 0)
    die("setup");
  for (int i = 0; i < conns; i++) {
    cs[i].fd = connect_ws(port, path);
    cs[i].rbuf = malloc(RBUF);
    if (!cs[i].rbuf)
      die("malloc");
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev) != 0)
      die("epoll_ctl");
  }
  for (int i = 0; i < conns; i++)
    for (int k = 0; k < g_depth; k++)
      send_one(&cs[i]);
  uint64_t t0 = now_ns(), start = t0 + (uint64_t)(warm * 1e9),
           end = start + (uint64_t)(secs * 1e9);
  uint64_t measured = 0;
  long errors = 0;
  struct epoll_event evs[256];
  for (;;) {
    uint64_t t = now_ns();
    if (t >= end)
      break;
    int n = epoll_wait(ep, evs, 256, 100);
    if (n < 0 && errno != EINTR)
      die("epoll_wait");
    t = now_ns();
    for (int i = 0; i < n; i++) {
      struct conn *c = evs[i].data.ptr;
      ssize_t r = read(c->fd, c->rbuf + c->rlen, RBUF - c->rlen);
      if (r <= 0) {
        fprintf(stderr, "wsload: the server closed a connection\n");
        return 1;
      }
      c->rlen += (size_t)r;
      int in_window = t >= start && t < end;
      int done = take_echoes(c, t, in_window);
      if (done < 0) {
        fprintf(stderr, "wsload: a bad echo frame\n");
        errors++;
        return 1;
      }
      if (in_window)
        measured += (uint64_t)done;
      for (int k = 0; k < done; k++)
        send_one(c);
    }
  }
  qsort(g_lat, g_nlat, sizeof *g_lat, cmp_u64);
  uint64_t p50 = g_nlat ? g_lat[g_nlat / 2] : 0;
  uint64_t p99 = g_nlat ? g_lat[(size_t)((double)g_nlat * 0.99)] : 0;
  printf("WSLOAD_RESULT conns=%d size=%zu depth=%d messages=%llu seconds=%.3f "
         "rate=%.0f p50_us=%.1f p99_us=%.1f errors=%ld\n",
         conns, g_size, g_depth, (unsigned long long)measured, secs,
         (double)measured / secs, (double)p50 / 1e3, (double)p99 / 1e3,
         errors);
  return 0;
}
