/* floor.c: the benchmarks' reference floor (benchmarks/peers_run.sh).
 *
 * A minimal single-threaded epoll server that does not parse HTTP: every
 * "\r\n\r\n" it reads ends a request, and each request gets one fixed
 * response (written in order, so pipelined requests work). What it costs
 * per request is about what the kernel's TCP path costs plus one read and
 * one write per batch: no HTTP server can do much less, so the other
 * servers' CPU time per request is reported as a ratio to it.
 *
 *   floor PORT HEAD_FILE [BODY_FILE]
 *
 * HEAD_FILE holds the exact response bytes to send (status line, headers
 * and, for the hello case, the body). With BODY_FILE, each response is
 * HEAD_FILE's bytes followed by BODY_FILE's, sent with sendfile(2), as a
 * static file server does. It prints "floor listening on PORT" when ready
 * and runs until killed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* One connection: where it stands in "\r\n\r\n" (0-3 bytes matched), how
 * many responses it is owed, and how far into the first of them it is. */
struct conn {
  int fd;
  unsigned match;
  uint64_t owed;
  size_t pos;
  int want_out;
};

static char *head;
static size_t head_len;
static int body_fd = -1;
static size_t body_len;
static size_t resp_len; /* head_len + body_len */
static int ep;

/* Hello responses are small: up to BATCH of them are copied into one
 * buffer so that a pipelined batch goes out in one write. */
#define BATCH 64
static char *batch;

static void die(const char *what) {
  perror(what);
  exit(1);
}

static void *load(const char *path, size_t *len) {
  int fd = open(path, O_RDONLY);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0)
    die(path);
  char *p = malloc((size_t)st.st_size + 1);
  if (!p || read(fd, p, (size_t)st.st_size) != st.st_size)
    die(path);
  close(fd);
  *len = (size_t)st.st_size;
  return p;
}

static void drop(struct conn *c) {
  close(c->fd); /* also leaves the epoll set */
  free(c);
}

/* Counts the request ends in buf, carrying a partial match over reads. */
static void scan(struct conn *c, const char *buf, size_t n) {
  static const char end[4] = {'\r', '\n', '\r', '\n'};
  unsigned m = c->match;
  for (size_t i = 0; i < n; i++) {
    if (buf[i] == end[m]) {
      if (++m == 4) {
        c->owed++;
        m = 0;
      }
    } else {
      m = buf[i] == '\r';
    }
  }
  c->match = m;
}

/* Writes what is owed until done or the socket is full. Returns -1 if the
 * connection failed. */
static int flush(struct conn *c) {
  while (c->owed > 0) {
    ssize_t w;
    if (body_fd < 0) {
      uint64_t k = c->owed < BATCH ? c->owed : BATCH;
      w = send(c->fd, batch + c->pos, (size_t)k * resp_len - c->pos,
               MSG_NOSIGNAL);
    } else if (c->pos < head_len) {
      w = send(c->fd, head + c->pos, head_len - c->pos,
               MSG_NOSIGNAL | MSG_MORE);
    } else {
      off_t off = (off_t)(c->pos - head_len);
      w = sendfile(c->fd, body_fd, &off, resp_len - c->pos);
    }
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        break;
      if (errno == EINTR)
        continue;
      return -1;
    }
    c->pos += (size_t)w;
    c->owed -= c->pos / resp_len;
    c->pos %= resp_len;
  }
  int want = c->owed > 0;
  if (want != c->want_out) {
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0),
                             .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
      return -1;
    c->want_out = want;
  }
  return 0;
}

static void on_conn(struct conn *c, uint32_t events) {
  static char buf[65536];
  if (events & EPOLLIN) {
    for (;;) {
      ssize_t n = read(c->fd, buf, sizeof buf);
      if (n > 0) {
        scan(c, buf, (size_t)n);
        if ((size_t)n < sizeof buf)
          break;
        continue;
      }
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        break;
      drop(c); /* EOF or error */
      return;
    }
  } else if (events & (EPOLLERR | EPOLLHUP)) {
    drop(c);
    return;
  }
  if (flush(c) != 0)
    drop(c);
}

static void on_accept(int lfd) {
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      return; /* EAGAIN, or out of descriptors: retried at the next event */
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
      close(fd);
      continue;
    }
    c->fd = fd;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
      drop(c);
  }
}

int main(int argc, char **argv) {
  if (argc != 3 && argc != 4) {
    fprintf(stderr, "usage: floor PORT HEAD_FILE [BODY_FILE]\n");
    return 2;
  }
  int port = atoi(argv[1]);
  head = load(argv[2], &head_len);
  if (argc == 4) {
    struct stat st;
    body_fd = open(argv[3], O_RDONLY);
    if (body_fd < 0 || fstat(body_fd, &st) != 0)
      die(argv[3]);
    body_len = (size_t)st.st_size;
  }
  resp_len = head_len + body_len;
  if (resp_len == 0) {
    fprintf(stderr, "floor: the response is empty\n");
    return 2;
  }
  batch = malloc(BATCH * resp_len);
  if (!batch)
    die("malloc");
  for (int i = 0; i < BATCH && body_fd < 0; i++)
    memcpy(batch + (size_t)i * resp_len, head, head_len);
  signal(SIGPIPE, SIG_IGN);

  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      listen(lfd, 4096) != 0)
    die("listen");
  ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) != 0)
    die("epoll");
  printf("floor listening on %d\n", port);
  fflush(stdout);

  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    if (n < 0 && errno != EINTR)
      die("epoll_wait");
    for (int i = 0; i < n; i++) {
      if (evs[i].data.ptr == NULL)
        on_accept(lfd);
      else
        on_conn(evs[i].data.ptr, evs[i].events);
    }
  }
}
