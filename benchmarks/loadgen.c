/* loadgen.c: fixed-rate (open-loop) HTTP/1.1 load generator for run.sh.
 *
 *   loadgen -p PORT -r RATE [-c CONNS] [-d SECONDS] [-w WARMUP] [-u PATH]
 *
 * Requests are scheduled at fixed intervals (1/RATE) over CONNS keep-alive
 * connections to 127.0.0.1:PORT, one request in flight per connection. When
 * no connection is free at a scheduled time the request waits in a queue.
 * "achieved" counts responses completed inside the measured window.
 * Latency is measured from the *scheduled* send time to the end of the
 * response, so a stalled server is charged for every request it delayed
 * (no coordinated omission). Requests scheduled during the first WARMUP
 * seconds are sent but not recorded. The "wire" figures time the same
 * responses from the actual send instead: what is left once the wait here
 * before sending (this loop busy, or no connection free) is taken out.
 * Prints one line:
 *
 *   LOADGEN_RESULT rate=.. achieved=.. completed=.. errors=.. p50_us=.. p90_us=..
 *                  p99_us=.. p999_us=.. max_us=.. wire_p50_us=.. wire_p99_us=..
 *
 * Exit status is non-zero if connecting fails or any response is not a 200.
 * The loop polls epoll without blocking while sends are due within 200 us,
 * so it keeps one CPU busy: pin it to a CPU of its own.
 * Linux only (epoll; epoll_pwait2 when the kernel has it). */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_epoll_pwait2
#define SYS_epoll_pwait2 441
#endif

#define RBUF 65536

struct conn {
  int fd;
  int busy;
  uint64_t sched_ns; /* scheduled time of the request in flight */
  uint64_t sent_ns;  /* when it was actually sent */
  size_t rlen;
  char rbuf[RBUF];
};

static uint16_t g_port;
static const char *g_path = "/hello";
static char g_req[512];
static size_t g_req_len;
static struct conn *g_conns;
static int g_nconns = 64;
static int *g_idle; /* stack of idle connection indexes */
static int g_nidle;
static uint64_t *g_queue; /* ring of scheduled times waiting for a connection */
static size_t g_qcap, g_qhead, g_qlen;
static uint64_t *g_lat;  /* recorded latencies, ns */
static uint64_t *g_wire; /* the same, from the actual send */
static size_t g_nlat, g_latcap;
static uint64_t g_record_from, g_record_to, g_window_done, g_completed, g_errors, g_status_errors;
static int g_epfd;
static int g_have_pwait2 = 1;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
  perror(what);
  exit(2);
}

static int open_conn(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons(g_port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

static void add_conn(int i) {
  struct conn *c = &g_conns[i];
  c->fd = open_conn();
  c->busy = 0;
  c->rlen = 0;
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
  if (epoll_ctl(g_epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
}

static void reset_conn(int i) {
  close(g_conns[i].fd);
  g_errors++;
  add_conn(i);
  g_idle[g_nidle++] = i;
}

static void record(uint64_t lat, uint64_t wire) {
  if (g_nlat == g_latcap) {
    g_latcap = g_latcap ? g_latcap * 2 : 1 << 20;
    g_lat = realloc(g_lat, g_latcap * sizeof *g_lat);
    g_wire = realloc(g_wire, g_latcap * sizeof *g_wire);
    if (!g_lat || !g_wire) die("realloc");
  }
  g_wire[g_nlat] = wire;
  g_lat[g_nlat++] = lat;
}

static void send_req(int i, uint64_t sched) {
  struct conn *c = &g_conns[i];
  c->busy = 1;
  c->sched_ns = sched;
  c->sent_ns = now_ns();
  size_t off = 0;
  while (off < g_req_len) {
    ssize_t n = send(c->fd, g_req + off, g_req_len - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      reset_conn(i);
      return;
    }
    off += (size_t)n;
  }
}

static void dispatch(uint64_t sched) {
  if (g_nidle > 0) {
    send_req(g_idle[--g_nidle], sched);
    return;
  }
  if (g_qlen == g_qcap) {
    size_t ncap = g_qcap ? g_qcap * 2 : 1 << 16;
    uint64_t *nq = malloc(ncap * sizeof *nq);
    if (!nq) die("malloc");
    for (size_t k = 0; k < g_qlen; k++) nq[k] = g_queue[(g_qhead + k) % g_qcap];
    free(g_queue);
    g_queue = nq;
    g_qcap = ncap;
    g_qhead = 0;
  }
  g_queue[(g_qhead + g_qlen) % g_qcap] = sched;
  g_qlen++;
}

/* Returns the response length if rbuf holds a complete response, 0 if not
 * yet, -1 if it cannot be parsed. Sets *status. */
static long parse_response(struct conn *c, int *status) {
  char *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
  if (!end) return c->rlen == RBUF ? -1 : 0;
  size_t head = (size_t)(end - c->rbuf) + 4;
  if (c->rlen < 12 || memcmp(c->rbuf, "HTTP/1.", 7) != 0) return -1;
  *status = atoi(c->rbuf + 9);
  long clen = -1;
  char *p = c->rbuf;
  while (p < end) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) nl = end;
    if ((size_t)(nl - p) > 15 && strncasecmp(p, "content-length:", 15) == 0)
      clen = strtol(p + 15, NULL, 10);
    p = nl + 1;
  }
  if (clen < 0) return -1;
  if (head + (size_t)clen > RBUF) return -1;
  return c->rlen >= head + (size_t)clen ? (long)(head + (size_t)clen) : 0;
}

static void on_readable(int i, uint64_t *now) {
  struct conn *c = &g_conns[i];
  for (;;) {
    ssize_t n = recv(c->fd, c->rbuf + c->rlen, RBUF - c->rlen, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0 || !c->busy) { /* closed, error, or unsolicited bytes */
      epoll_ctl(g_epfd, EPOLL_CTL_DEL, c->fd, NULL);
      reset_conn(i);
      return;
    }
    c->rlen += (size_t)n;
    int status = 0;
    long len = parse_response(c, &status);
    if (len == 0) continue;
    if (len < 0) {
      epoll_ctl(g_epfd, EPOLL_CTL_DEL, c->fd, NULL);
      reset_conn(i);
      return;
    }
    *now = now_ns();
    if (status != 200) g_status_errors++;
    g_completed++;
    if (*now >= g_record_from && *now < g_record_to) g_window_done++;
    if (c->sched_ns >= g_record_from) record(*now - c->sched_ns, *now - c->sent_ns);
    memmove(c->rbuf, c->rbuf + len, c->rlen - (size_t)len);
    c->rlen -= (size_t)len;
    c->busy = 0;
    if (g_qlen > 0) {
      uint64_t sched = g_queue[g_qhead];
      g_qhead = (g_qhead + 1) % g_qcap;
      g_qlen--;
      send_req(i, sched);
    } else {
      g_idle[g_nidle++] = i;
    }
    return;
  }
}

static int wait_events(struct epoll_event *evs, int max, int64_t timeout_ns) {
  if (timeout_ns < 0) timeout_ns = 0;
  if (g_have_pwait2) {
    struct timespec ts = {.tv_sec = timeout_ns / 1000000000,
                          .tv_nsec = timeout_ns % 1000000000};
    long n = syscall(SYS_epoll_pwait2, g_epfd, evs, max, &ts, NULL, 0);
    if (n >= 0 || errno == EINTR) return n < 0 ? 0 : (int)n;
    if (errno != ENOSYS) die("epoll_pwait2");
    g_have_pwait2 = 0;
  }
  /* Millisecond timeouts only: spin through the last millisecond. */
  int ms = (int)(timeout_ns / 1000000);
  int n = epoll_wait(g_epfd, evs, max, ms);
  return n < 0 ? 0 : n;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static double pct_us(const uint64_t *sorted, double p) {
  if (g_nlat == 0) return 0;
  size_t k = (size_t)(p / 100.0 * (double)(g_nlat - 1) + 0.5);
  return (double)sorted[k] / 1000.0;
}

static void usage(void) {
  fprintf(stderr, "usage: loadgen -p PORT -r RATE [-c CONNS] [-d SECONDS] [-w WARMUP] [-u PATH]\n");
  exit(2);
}

int main(int argc, char **argv) {
  double rate = 0, seconds = 5, warmup = 1;
  int opt;
  while ((opt = getopt(argc, argv, "p:r:c:d:w:u:")) != -1) {
    switch (opt) {
    case 'p': g_port = (uint16_t)atoi(optarg); break;
    case 'r': rate = atof(optarg); break;
    case 'c': g_nconns = atoi(optarg); break;
    case 'd': seconds = atof(optarg); break;
    case 'w': warmup = atof(optarg); break;
    case 'u': g_path = optarg; break;
    default: usage();
    }
  }
  if (!g_port || rate <= 0 || g_nconns <= 0 || seconds <= 0 || warmup < 0) usage();
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* precise wake-ups */

  int n = snprintf(g_req, sizeof g_req,
                   "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nUser-Agent: piston-loadgen\r\n\r\n",
                   g_path, (unsigned)g_port);
  if (n <= 0 || (size_t)n >= sizeof g_req) usage();
  g_req_len = (size_t)n;

  g_epfd = epoll_create1(EPOLL_CLOEXEC);
  if (g_epfd < 0) die("epoll_create1");
  g_conns = calloc((size_t)g_nconns, sizeof *g_conns);
  g_idle = calloc((size_t)g_nconns, sizeof *g_idle);
  if (!g_conns || !g_idle) die("calloc");
  for (int i = 0; i < g_nconns; i++) {
    add_conn(i);
    g_idle[g_nidle++] = i;
  }
  g_errors = 0;

  const double interval = 1e9 / rate;
  const uint64_t total = (uint64_t)((warmup + seconds) * rate);
  /* Room for every latency up front, pages touched: a realloc or page
   * faults mid-run would stall the loop and show up as server latency. */
  g_latcap = total + 1024;
  g_lat = malloc(g_latcap * sizeof *g_lat);
  g_wire = malloc(g_latcap * sizeof *g_wire);
  if (!g_lat || !g_wire) die("malloc");
  memset(g_lat, 0, g_latcap * sizeof *g_lat);
  memset(g_wire, 0, g_latcap * sizeof *g_wire);
  g_qcap = (size_t)total + 1024;
  g_queue = malloc(g_qcap * sizeof *g_queue);
  if (!g_queue) die("malloc");
  memset(g_queue, 0, g_qcap * sizeof *g_queue);

  const uint64_t start = now_ns() + 1000000; /* 1 ms to settle */
  g_record_from = start + (uint64_t)(warmup * 1e9);
  const uint64_t end_sched = start + (uint64_t)((warmup + seconds) * 1e9);
  g_record_to = end_sched;
  uint64_t k = 0; /* next request to schedule */
  struct epoll_event evs[256];
  uint64_t now = now_ns();

  for (;;) {
    while (k < total) {
      uint64_t due = start + (uint64_t)((double)k * interval);
      if (due > now) break;
      dispatch(due);
      k++;
    }
    int outstanding = g_nconns - g_nidle;
    if (k >= total && outstanding == 0 && g_qlen == 0) break;
    if (now > end_sched + 5000000000ull) break; /* 5 s drain limit */
    int64_t timeout = 100000000; /* 100 ms */
    if (k < total) {
      uint64_t due = start + (uint64_t)((double)k * interval);
      /* Sleep only when the next send is far off; otherwise poll without
       * blocking, so sends leave on time (a timer wake-up every few
       * microseconds would cost more than the requests themselves). */
      timeout = due > now + 200000 ? (int64_t)(due - now - 100000) : 0;
    }
    int ne = wait_events(evs, 256, timeout);
    now = now_ns();
    for (int e = 0; e < ne; e++) on_readable((int)evs[e].data.u32, &now);
    now = now_ns();
  }

  uint64_t unfinished = (uint64_t)(g_nconns - g_nidle) + g_qlen;
  double measured_s = seconds;
  qsort(g_lat, g_nlat, sizeof *g_lat, cmp_u64);
  qsort(g_wire, g_nlat, sizeof *g_wire, cmp_u64);
  printf("LOADGEN_RESULT rate=%.0f achieved=%.0f completed=%llu recorded=%zu errors=%llu "
         "status_errors=%llu unfinished=%llu p50_us=%.1f p90_us=%.1f p99_us=%.1f "
         "p999_us=%.1f max_us=%.1f wire_p50_us=%.1f wire_p99_us=%.1f\n",
         rate, (double)g_window_done / measured_s, (unsigned long long)g_completed, g_nlat,
         (unsigned long long)g_errors, (unsigned long long)g_status_errors,
         (unsigned long long)unfinished, pct_us(g_lat, 50), pct_us(g_lat, 90),
         pct_us(g_lat, 99), pct_us(g_lat, 99.9),
         g_nlat ? (double)g_lat[g_nlat - 1] / 1000.0 : 0.0, pct_us(g_wire, 50),
         pct_us(g_wire, 99));
  fflush(stdout);
  return (g_errors || g_status_errors || unfinished || g_completed == 0) ? 1 : 0;
}
