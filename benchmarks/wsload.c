/* wsload.c: WebSocket load generator for the benchmarks, in three modes.
 *
 *   wsload [-m echo] -p PORT [-u PATH] [-c CONNS] [-d SECONDS] [-w WARMUP]
 *          [-s SIZE] [-k DEPTH]
 *   wsload -m fanout -p PORT [-u PATH] [-c SUBSCRIBERS] [-t TOPIC] [-d ..]
 *          [-w ..] [-s SIZE] [-k DEPTH]
 *   wsload -m idle -p PORT [-u PATH] [-c CONNS] [-P SERVER_PID]
 *
 * echo:
 * Opens CONNS WebSockets to 127.0.0.1:PORT (the opening handshake checked:
 * a 101), then keeps DEPTH masked text messages of SIZE bytes in flight on
 * each (closed loop: a message goes out when an echo comes back) and counts
 * the echoes that arrive inside the measured window, after WARMUP seconds.
 * Every echo is checked to be a whole unfragmented text frame of SIZE bytes.
 * Prints one line:
 *
 *   WSLOAD_RESULT conns=.. size=.. depth=.. messages=.. seconds=.. rate=..
 *                 p50_us=.. p99_us=.. errors=.. server_cpu_ms=..
 *                 client_cpu_ms=..
 *
 * (latency from a message's send to its echo). In echo and fanout mode,
 * -P PID[,PID...] names the server's processes: server_cpu_ms is their
 * user+system time inside the measured window (from /proc/PID/stat, so the
 * connections' set-up and the warm-up are left out), client_cpu_ms this
 * process's own; both -1 without -P.
 *
 * fanout: SUBSCRIBERS WebSockets each send "sub TOPIC" and wait for one
 * answer (any text frame: "subscribed TOPIC" from the C test server); then
 * one more connection, the publisher, keeps DEPTH "pub TOPIC PAYLOAD"
 * commands in flight (the command protocol of the C test server's
 * /ws-pubsub, which the benchmark's Node and Bun apps speak too). PAYLOAD is
 * SIZE bytes (at least 16) starting with its sequence number; a publish
 * counts as done once every subscriber got it, and only then does the next
 * one go out (closed loop). Every delivery is checked: a text frame of SIZE
 * bytes with the next sequence number that subscriber expects (nothing lost,
 * nothing reordered). The publisher's answers are read and not checked.
 * Prints one line:
 *
 *   WSLOAD_FANOUT subs=.. size=.. depth=.. published=.. deliveries=..
 *                 seconds=.. rate=.. p50_us=.. p99_us=..
 *                 server_cpu_ms=.. client_cpu_ms=..
 *
 * (rate: deliveries/s in the measured window; latency from a publish to
 * its delivery to the last subscriber).
 *
 * idle: reads SERVER_PID's VmRSS, opens CONNS WebSockets, sends one SIZE-
 * byte message on each and waits for its echo, waits 0.2 s, reads VmRSS
 * again and keeps every connection open until it has printed:
 *
 *   WSLOAD_IDLE conns=.. ok=.. rss_before_kb=.. rss_after_kb=..
 *
 * Exit status is non-zero if a connection fails or a frame is wrong. Linux
 * only (epoll). */
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
  int role;        /* fanout: 0 subscriber, 1 publisher */
  uint64_t expect; /* fanout: the next sequence number due */
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

#include "loadwindow.h"

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

/* Blocks until one whole frame is in (the handshake's answers: nothing
 * else is due yet); returns its opcode byte, the payload in buf. */
static int read_frame(int fd, unsigned char *buf, size_t cap, size_t *len) {
  size_t got = 0, need = 2, h = 2;
  for (;;) {
    while (got < need) {
      ssize_t r = read(fd, buf + got, need - got);
      if (r <= 0)
        die("read");
      got += (size_t)r;
    }
    size_t l = buf[1] & 0x7f;
    if (l == 126)
      h = 4;
    else if (l == 127)
      return -1; /* no answer here is that long */
    if (got < h) {
      need = h;
      continue;
    }
    if (h == 4)
      l = (size_t)buf[2] << 8 | buf[3];
    if (h + l > cap)
      return -1;
    if (got < h + l) {
      need = h + l;
      continue;
    }
    int op = buf[0];
    memmove(buf, buf + h, l);
    *len = l;
    return op;
  }
}

/* A masked text frame with the given payload, written whole. */
static void send_text(int fd, const char *msg, size_t n) {
  unsigned char f[512];
  static const unsigned char key[4] = {0x12, 0x9c, 0x4e, 0xa7};
  size_t h = 0;
  if (n > sizeof f - 8)
    die("message too long");
  f[h++] = 0x81;
  if (n < 126) {
    f[h++] = (unsigned char)(0x80 | n);
  } else {
    f[h++] = 0x80 | 126;
    f[h++] = (unsigned char)(n >> 8);
    f[h++] = (unsigned char)n;
  }
  memcpy(f + h, key, 4);
  h += 4;
  for (size_t i = 0; i < n; i++)
    f[h + i] = (unsigned char)msg[i] ^ key[i % 4];
  size_t off = 0, len = h + n;
  while (off < len) {
    ssize_t w = write(fd, f + off, len - off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      die("send");
    off += (size_t)w;
  }
}

/* ---- fanout ---- */
static const char *g_topic = "bench";
static uint64_t g_next_seq;   /* the next publish's number */
static uint64_t g_pub_ns[64]; /* send times of the publishes in flight */
static int g_pub_got[64];     /* deliveries of each so far */
static int g_pub_inflight;

static void publish_one(struct conn *pub) {
  char msg[400];
  int h = snprintf(msg, sizeof msg, "pub %s ", g_topic);
  if (h < 0 || (size_t)h + g_size > sizeof msg)
    die("publish command too long");
  /* the payload: its sequence number, then filler up to g_size */
  char num[17];
  snprintf(num, sizeof num, "%016llu", (unsigned long long)g_next_seq);
  memcpy(msg + h, num, 16);
  for (size_t i = 16; i < g_size; i++)
    msg[(size_t)h + i] = (char)('a' + i % 26);
  g_pub_ns[g_next_seq % 64] = now_ns();
  g_pub_got[g_next_seq % 64] = 0;
  g_next_seq++;
  g_pub_inflight++;
  send_text(pub->fd, msg, (size_t)h + g_size);
}

/* Parses the frames in c->rbuf. A subscriber's must be the publishes in
 * order; returns how many deliveries completed a publish (0 or more), -1
 * on a bad frame. *deliv gets the deliveries taken. */
static int take_fanout(struct conn *c, int subs, uint64_t t, int record,
                       uint64_t *deliv) {
  int completed = 0;
  size_t pos = 0;
  *deliv = 0;
  for (;;) {
    if (c->rlen - pos < 2)
      break;
    unsigned char *p = c->rbuf + pos;
    size_t len = p[1] & 0x7f, h = 2;
    if ((p[0] & 0x0f) == 0x8 || (p[1] & 0x80))
      return -1; /* a close, or a masked frame */
    if (len == 126) {
      if (c->rlen - pos < 4)
        break;
      len = (size_t)p[2] << 8 | p[3];
      h = 4;
    } else if (len == 127) {
      return -1;
    }
    if (c->rlen - pos < h + len)
      break;
    if (c->role == 0) {
      char num[17];
      if (p[0] != 0x81 || len != g_size)
        return -1;
      memcpy(num, p + h, 16);
      num[16] = 0;
      uint64_t seq = strtoull(num, NULL, 10);
      if (seq != c->expect || seq >= g_next_seq)
        return -1;
      c->expect++;
      (*deliv)++;
      if (++g_pub_got[seq % 64] == subs) {
        g_pub_inflight--;
        if (record && g_nlat < MAX_SAMPLES)
          g_lat[g_nlat++] = t - g_pub_ns[seq % 64];
        completed++;
      }
    }
    pos += h + len;
  }
  memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
  c->rlen -= pos;
  return completed;
}

static long vm_rss_kb(long pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%ld/status", pid);
  FILE *f = fopen(path, "r");
  long kb = -1;
  if (!f)
    die("open /proc/PID/status");
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0)
      kb = atol(line + 6);
  fclose(f);
  return kb;
}

static int run_idle(uint16_t port, const char *path, int conns, long pid) {
  long before = vm_rss_kb(pid);
  int *fds = malloc(sizeof *fds * (size_t)conns);
  unsigned char buf[4096];
  char msg[256];
  if (!fds || g_size > sizeof msg)
    die("setup");
  memset(msg, 'i', g_size);
  int ok = 0;
  for (int i = 0; i < conns; i++) {
    size_t n;
    fds[i] = connect_ws(port, path);
    send_text(fds[i], msg, g_size);
    if (read_frame(fds[i], buf, sizeof buf, &n) == 0x81 && n == g_size &&
        memcmp(buf, msg, n) == 0)
      ok++;
  }
  struct timespec ts = {0, 200000000};
  nanosleep(&ts, NULL);
  long after = vm_rss_kb(pid);
  printf("WSLOAD_IDLE conns=%d ok=%d rss_before_kb=%ld rss_after_kb=%ld\n",
         conns, ok, before, after);
  fflush(stdout);
  return ok == conns ? 0 : 1;
}

static int run_fanout(uint16_t port, const char *path, int subs, double secs,
                      double warm) {
  struct conn *cs = calloc((size_t)subs + 1, sizeof *cs);
  int ep = epoll_create1(0);
  char cmd[300];
  unsigned char ans[4096];
  size_t n;
  if (!cs || ep < 0 || g_size < 16)
    die("setup (fanout wants -s 16 or more)");
  snprintf(cmd, sizeof cmd, "sub %s", g_topic);
  for (int i = 0; i <= subs; i++) {
    cs[i].fd = connect_ws(port, path);
    cs[i].role = i == subs;
    cs[i].rbuf = malloc(RBUF);
    if (!cs[i].rbuf)
      die("malloc");
    if (i < subs) { /* subscribed once it answered */
      send_text(cs[i].fd, cmd, strlen(cmd));
      if (read_frame(cs[i].fd, ans, sizeof ans, &n) != 0x81) {
        fprintf(stderr, "wsload: no answer to '%s'\n", cmd);
        return 1;
      }
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev) != 0)
      die("epoll_ctl");
  }
  struct conn *pub = &cs[subs];
  for (int k = 0; k < g_depth; k++)
    publish_one(pub);
  struct window w = window_after(warm, secs);
  const uint64_t start = w.start, end = w.end;
  uint64_t deliveries = 0, published = 0;
  struct epoll_event evs[256];
  while (!window_tick(&w)) {
    uint64_t t;
    int ne = epoll_wait(ep, evs, 256, 100);
    if (ne < 0 && errno != EINTR)
      die("epoll_wait");
    t = now_ns();
    int in_window = t >= start && t < end;
    for (int i = 0; i < ne; i++) {
      struct conn *c = evs[i].data.ptr;
      ssize_t r = read(c->fd, c->rbuf + c->rlen, RBUF - c->rlen);
      if (r <= 0) {
        fprintf(stderr, "wsload: the server closed a connection\n");
        return 1;
      }
      c->rlen += (size_t)r;
      uint64_t d;
      int done = take_fanout(c, subs, t, in_window, &d);
      if (done < 0) {
        fprintf(stderr, "wsload: a bad, lost or reordered delivery\n");
        return 1;
      }
      if (in_window) {
        deliveries += d;
        published += (uint64_t)done;
      }
      for (int k = 0; k < done; k++)
        publish_one(pub);
    }
  }
  double p50, p99;
  percentiles(&p50, &p99);
  printf("WSLOAD_FANOUT subs=%d size=%zu depth=%d published=%llu "
         "deliveries=%llu seconds=%.3f rate=%.0f p50_us=%.1f p99_us=%.1f "
         "server_cpu_ms=%.0f client_cpu_ms=%.0f\n",
         subs, g_size, g_depth, (unsigned long long)published,
         (unsigned long long)deliveries, secs, (double)deliveries / secs, p50,
         p99, g_npids ? w.srv1 - w.srv0 : -1, w.cli1 - w.cli0);
  return 0;
}

int main(int argc, char **argv) {
  uint16_t port = 0;
  const char *path = "/ws";
  int conns = 64;
  double secs = 5, warm = 1;
  const char *mode = "echo";
  int opt;
  while ((opt = getopt(argc, argv, "m:p:u:c:d:w:s:k:t:P:")) != -1) {
    switch (opt) {
    case 'm': mode = optarg; break;
    case 't': g_topic = optarg; break;
    case 'P': parse_pids(optarg); break;
    case 'p': port = (uint16_t)atoi(optarg); break;
    case 'u': path = optarg; break;
    case 'c': conns = atoi(optarg); break;
    case 'd': secs = atof(optarg); break;
    case 'w': warm = atof(optarg); break;
    case 's': g_size = (size_t)atol(optarg); break;
    case 'k': g_depth = atoi(optarg); break;
    default:
      fprintf(stderr, "usage: wsload [-m echo|fanout|idle] -p PORT [-u PATH] "
                      "[-c CONNS] [-d SECS] [-w WARMUP] [-s SIZE] [-k DEPTH] "
                      "[-t TOPIC] [-P SERVER_PID]\n");
      return 2;
    }
  }
  if (!port || conns < 1 || g_depth < 1 || g_depth > 64 || g_size > RBUF / 2)
    return fprintf(stderr, "wsload: bad arguments\n"), 2;
  if (strcmp(mode, "idle") == 0) {
    if (!g_npids)
      return fprintf(stderr, "wsload: -m idle wants -P SERVER_PID\n"), 2;
    return run_idle(port, path, conns, g_pids[0]);
  }
  g_lat = malloc(sizeof *g_lat * MAX_SAMPLES);
  if (!g_lat)
    die("malloc");
  if (strcmp(mode, "fanout") == 0)
    return run_fanout(port, path, conns, secs, warm);
  if (strcmp(mode, "echo") != 0)
    return fprintf(stderr, "wsload: unknown mode %s\n", mode), 2;
  build_frame();
  struct conn *cs = calloc((size_t)conns, sizeof *cs);
  int ep = epoll_create1(0);
  if (!cs || ep < 0)
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
  struct window w = window_after(warm, secs);
  const uint64_t start = w.start, end = w.end;
  uint64_t measured = 0;
  long errors = 0;
  struct epoll_event evs[256];
  while (!window_tick(&w)) {
    uint64_t t;
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
  double p50, p99;
  percentiles(&p50, &p99);
  printf("WSLOAD_RESULT conns=%d size=%zu depth=%d messages=%llu seconds=%.3f "
         "rate=%.0f p50_us=%.1f p99_us=%.1f errors=%ld server_cpu_ms=%.0f "
         "client_cpu_ms=%.0f\n",
         conns, g_size, g_depth, (unsigned long long)measured, secs,
         (double)measured / secs, p50, p99, errors,
         g_npids ? w.srv1 - w.srv0 : -1, w.cli1 - w.cli0);
  return 0;
}
