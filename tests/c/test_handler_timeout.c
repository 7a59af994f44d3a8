/* PISTON_OPT_HANDLER_TIMEOUT_MS end to end, in process: a loop on a thread,
 * client sockets, exact response bytes (Date masked) and timings. A host that
 * holds a request without starting its response gets a 503 sent for it and
 * PISTON_EV_CLOSED, and its later calls fail with PISTON_ECLOSED; a started
 * response and the time spent waiting on the client for the body do not
 * count; native routes are never timed. */
#define _GNU_SOURCE
#include "check.h"
#include "piston.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_MS 200

static const piston_header text[] = {
    {{"Content-Type", 12}, {"text/plain", 10}}};

static atomic_int closed_events, timeout_events, late_rc, started_rc, held;

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* /hang: the host never answers; on PISTON_EV_CLOSED it tries, too late. */
static void hang_event(piston_req *req, int events, void *ud) {
  (void)ud;
  if (!(events & PISTON_EV_CLOSED))
    return;
  atomic_fetch_add(&closed_events, 1);
  if (events & PISTON_EV_TIMEOUT) /* the engine says why: the timeout */
    atomic_fetch_add(&timeout_events, 1);
  atomic_store(&late_rc, piston_resp_send(req, 200, text, 1, "late", 4));
  atomic_fetch_sub(&held, 1);
  piston_req_release(req);
}

static void count_closed(piston_req *req, int events, void *ud) {
  (void)req;
  (void)ud;
  if (events & PISTON_EV_CLOSED)
    atomic_fetch_add(&closed_events, 1);
}

/* /late: a worker thread answers after 2x the timeout. */
static void *late_worker(void *arg) {
  piston_req *req = arg;
  sleep_ms(2 * TIMEOUT_MS);
  atomic_store(&late_rc, piston_resp_send(req, 200, text, 1, "late", 4));
  atomic_fetch_sub(&held, 1);
  piston_req_release(req);
  return NULL;
}

/* /started: the response starts at once and ends from a thread after 2.5x
 * the timeout. */
static void *started_worker(void *arg) {
  piston_req *req = arg;
  sleep_ms(5 * TIMEOUT_MS / 2);
  int rc = piston_resp_write(req, "bc", 2);
  if (rc >= 0)
    rc = piston_resp_end(req, NULL, 0);
  atomic_store(&started_rc, rc);
  atomic_fetch_sub(&held, 1);
  piston_req_release(req);
  return NULL;
}

static void spawn(void *(*fn)(void *), piston_req *req) {
  pthread_t th;
  if (pthread_create(&th, NULL, fn, req) != 0)
    abort();
  pthread_detach(th);
}

/* /echo: the body's length once it is complete (event-driven). */
static void echo_event(piston_req *req, int events, void *ud) {
  (void)ud;
  size_t *have = piston_req_userdata(req);
  if (events & PISTON_EV_CLOSED) {
    free(have);
    atomic_fetch_sub(&held, 1);
    piston_req_release(req);
    return;
  }
  char buf[4096];
  int64_t n;
  while ((n = piston_req_body_read(req, buf, sizeof buf)) > 0)
    have[0] += (size_t)n;
  if (n == 0) {
    char out[64];
    int len = snprintf(out, sizeof out, "body=%zu", have[0]);
    (void)!piston_resp_send(req, 200, text, 1, out, (size_t)len);
    free(have);
    atomic_fetch_sub(&held, 1);
    piston_req_release(req);
  }
}

static bool path_is(piston_str p, const char *s) {
  return p.len == strlen(s) && memcmp(p.ptr, s, p.len) == 0;
}

static void on_request(piston_req *req, void *ud) {
  (void)ud;
  piston_str path = piston_req_path(req);
  atomic_fetch_add(&held, 1);
  if (path_is(path, "/hang")) {
    piston_req_on_event(req, hang_event, NULL);
  } else if (path_is(path, "/late")) {
    piston_req_on_event(req, count_closed, NULL);
    spawn(late_worker, req);
  } else if (path_is(path, "/started")) {
    (void)!piston_resp_start(req, 200, text, 1);
    (void)!piston_resp_write(req, "a", 1);
    spawn(started_worker, req);
  } else if (path_is(path, "/echo")) {
    piston_req_set_userdata(req, calloc(1, sizeof(size_t)));
    piston_req_on_event(req, echo_event, NULL);
    echo_event(req, PISTON_EV_BODY, NULL);
  } else {
    (void)!piston_resp_send(req, 200, text, 1, "quick", 5);
    atomic_fetch_sub(&held, 1);
    piston_req_release(req);
  }
}

static int port;

static int client(void) {
  return check_client(port, 3); /* every read is bounded */
}

static bool send_all(int fd, const char *s) {
  size_t n = strlen(s);
  return write(fd, s, n) == (ssize_t)n;
}

/* Reads to EOF (or the 3 s read timeout); masks the Date value. Returns the
 * byte count; *eof tells whether the server closed. */
static size_t read_all(int fd, char *out, size_t cap, bool *eof) {
  size_t got = 0;
  ssize_t n = 0;
  while (got < cap - 1 && (n = read(fd, out + got, cap - 1 - got)) > 0)
    got += (size_t)n;
  out[got] = '\0';
  *eof = n == 0;
  check_mask_date(out);
  return got;
}

#define R503_HEAD                                                              \
  "HTTP/1.1 503 Service Unavailable\r\n" DATE                                  \
  "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 20\r\n"          \
  "Connection: close\r\n\r\n"
#define R503 R503_HEAD "Service Unavailable\n"

/* One request on a fresh connection: the whole answer up to EOF, and how
 * long it took. */
static void exchange(const char *req, char *out, size_t cap, uint64_t *ms,
                     bool *eof) {
  int fd = client();
  out[0] = '\0';
  *eof = false;
  *ms = 0;
  if (fd < 0)
    return;
  uint64_t t0 = now_ms();
  if (send_all(fd, req))
    read_all(fd, out, cap, eof);
  *ms = now_ms() - t0;
  close(fd);
}

static void wait_held_zero(void) {
  for (int i = 0; i < 300 && atomic_load(&held) > 0; i++)
    sleep_ms(10);
}

int main(void) {
  /* the option: off by default, never negative */
  piston_server *srv = piston_server_new();
  CHECK_EQ_INT(piston_server_get(srv, PISTON_OPT_HANDLER_TIMEOUT_MS), 0);
  CHECK_EQ_INT(piston_server_set(srv, PISTON_OPT_HANDLER_TIMEOUT_MS, -1),
               PISTON_EINVAL);
  CHECK(piston_server_set(srv, PISTON_OPT_HANDLER_TIMEOUT_MS, TIMEOUT_MS) == 0);
  CHECK_EQ_INT(piston_server_get(srv, PISTON_OPT_HANDLER_TIMEOUT_MS),
               TIMEOUT_MS);
  CHECK(piston_server_set(srv, PISTON_OPT_BODY_TIMEOUT_MS, 1000) == 0);
  CHECK(piston_server_listen_tcp(srv, "127.0.0.1", 0) == 0);
  CHECK(piston_server_route_fixed(srv, NULL, "/hello", 200, text, 1, "hello",
                                  5) == 0);
  piston_server_on_request(srv, on_request, NULL);

  /* the engine's log line goes to stderr: catch it in a file */
  char logpath[] = "/tmp/piston-test-handler-timeout-XXXXXX";
  int logfd = mkstemp(logpath);
  CHECK(logfd >= 0);
  unlink(logpath);
  fflush(stderr);
  int saved_stderr = dup(2);
  dup2(logfd, 2);

  pthread_t th;
  piston_loop *loop = check_start_loop(srv, &th);
  CHECK(loop != NULL);
  if (!loop)
    return CHECK_DONE();
  port = piston_server_port(srv, 0);

  static char out[1 << 16];
  uint64_t ms;
  bool eof;

  /* a hung host: 503 after the timeout, then close; the host heard of it and
   * its late answer failed */
  exchange("GET /hang HTTP/1.1\r\nHost: a\r\n\r\n", out, sizeof out, &ms, &eof);
  CHECK_EQ_MEM(out, strlen(out), R503);
  CHECK(eof);
  CHECK(ms >= TIMEOUT_MS - 20 && ms < TIMEOUT_MS + 500);
  wait_held_zero();
  CHECK_EQ_INT(atomic_load(&closed_events), 1);
  CHECK_EQ_INT(atomic_load(&timeout_events), 1);
  CHECK_EQ_INT(atomic_load(&late_rc), PISTON_ECLOSED);

  /* HEAD: the same status line and fields, no body */
  exchange("HEAD /hang HTTP/1.1\r\nHost: a\r\n\r\n", out, sizeof out, &ms,
           &eof);
  CHECK_EQ_MEM(out, strlen(out), R503_HEAD);
  wait_held_zero();

  /* a worker thread that answers too late: its send fails, quietly */
  atomic_store(&late_rc, 0);
  exchange("GET /late HTTP/1.1\r\nHost: a\r\n\r\n", out, sizeof out, &ms, &eof);
  CHECK_EQ_MEM(out, strlen(out), R503);
  CHECK(ms < 2 * TIMEOUT_MS);
  wait_held_zero();
  CHECK_EQ_INT(atomic_load(&late_rc), PISTON_ECLOSED);

  /* a response started in time runs to its end, however long it takes */
  atomic_store(&started_rc, 1);
  exchange("GET /started HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", out,
           sizeof out, &ms, &eof);
  CHECK_EQ_MEM(out, strlen(out),
               "HTTP/1.1 200 OK\r\n" DATE "Content-Type: text/plain\r\n"
               "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
               "1\r\na\r\n2\r\nbc\r\n0\r\n\r\n");
  CHECK(ms >= 2 * TIMEOUT_MS);
  wait_held_zero();
  CHECK_EQ_INT(atomic_load(&started_rc), 0);

  /* the body arrives in two halves 1.5x the timeout apart: waiting on the
   * client is the body timeout's business, and the host answers */
  int fd = client();
  CHECK(fd >= 0);
  CHECK(send_all(fd, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n"
                     "Connection: close\r\n\r\naaaaa"));
  sleep_ms(3 * TIMEOUT_MS / 2);
  CHECK(send_all(fd, "aaaaa"));
  read_all(fd, out, sizeof out, &eof);
  close(fd);
  CHECK_EQ_MEM(out, strlen(out),
               "HTTP/1.1 200 OK\r\n" DATE "Content-Type: text/plain\r\n"
               "Content-Length: 7\r\nConnection: close\r\n\r\nbody=10");
  wait_held_zero();

  /* keep-alive: requests answered in time, with idle gaps longer than the
   * timeout between them, and a native route, are never cut */
  fd = client();
  CHECK(fd >= 0);
  for (int i = 0; i < 2; i++) {
    CHECK(send_all(fd, "GET /quick HTTP/1.1\r\nHost: a\r\n\r\n"));
    ssize_t n = read(fd, out, sizeof out - 1);
    out[n > 0 ? n : 0] = '\0';
    CHECK(strstr(out, "HTTP/1.1 200 OK\r\n") == out && strstr(out, "quick"));
    CHECK(send_all(fd, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n"));
    n = read(fd, out, sizeof out - 1);
    out[n > 0 ? n : 0] = '\0';
    CHECK(strstr(out, "HTTP/1.1 200 OK\r\n") == out && strstr(out, "hello"));
    sleep_ms(3 * TIMEOUT_MS / 2);
  }
  close(fd);

  piston_loop_stop(loop, 1000);
  pthread_join(th, NULL);
  wait_held_zero();
  CHECK_EQ_INT(atomic_load(&held), 0);
  piston_loop_free(loop);
  piston_server_free(srv);

  /* one log line per timeout (three), naming the method, path and limit */
  fflush(stderr);
  dup2(saved_stderr, 2);
  close(saved_stderr);
  char log[4096];
  ssize_t n = pread(logfd, log, sizeof log - 1, 0);
  log[n > 0 ? n : 0] = '\0';
  close(logfd);
  CHECK(strstr(log, "piston: handler timeout: GET /hang not answered within "
                    "200 ms: sent 503\n") != NULL);
  CHECK(strstr(log, "piston: handler timeout: HEAD /hang not answered within "
                    "200 ms: sent 503\n") != NULL);
  CHECK(strstr(log, "piston: handler timeout: GET /late not answered within "
                    "200 ms: sent 503\n") != NULL);
  int lines = 0;
  for (const char *p = log; (p = strchr(p, '\n')) != NULL; p++)
    lines++;
  CHECK_EQ_INT(lines, 3);
  if (lines != 3)
    fprintf(stderr, "log:\n%s", log);
  return CHECK_DONE();
}
