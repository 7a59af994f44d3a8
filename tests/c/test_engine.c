/* The parser glue, router and response writer end to end, in process: a
 * loop on a thread, a client socket, a table of request bytes and the exact
 * response bytes (Date masked). Every case also runs with the request
 * delivered one byte per segment, which catches state carried wrongly
 * across reads. */
#define _GNU_SOURCE
#include "check.h"
#include "piston.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static const piston_header text[] = {
    {{"Content-Type", 12}, {"text/plain", 10}}};

/* Host handler: /echo answers with the request body once it is complete;
 * /info describes the request; anything else is a chunked "a" "bc". */
static void on_event(piston_req *req, int events, void *ud) {
  (void)ud;
  size_t *have = piston_req_userdata(req);
  if (events & PISTON_EV_CLOSED) { /* e.g. the engine answered 413 */
    free(have);
    piston_req_release(req);
    return;
  }
  if (!(events & PISTON_EV_BODY) || piston_resp_started(req))
    return;
  char buf[4096];
  int64_t n;
  while ((n = piston_req_body_read(req, buf, sizeof buf)) > 0)
    have[0] += (size_t)n; /* length only: the body is a run of one byte */
  if (n == 0) {
    char out[64];
    int len = snprintf(out, sizeof out, "body=%zu", have[0]);
    (void)!piston_resp_send(req, 200, text, 1, out, (size_t)len);
    free(have);
    piston_req_release(req);
  }
}

static void on_request(piston_req *req, void *ud) {
  (void)ud;
  piston_str path = piston_req_path(req);
  if (path.len == 5 && memcmp(path.ptr, "/echo", 5) == 0) {
    size_t *have = calloc(1, sizeof *have);
    piston_req_set_userdata(req, have);
    piston_req_on_event(req, on_event, NULL);
    on_event(req, PISTON_EV_BODY, NULL);
    return;
  }
  if (path.len == 7 && memcmp(path.ptr, "/reason", 7) == 0) {
    (void)!piston_resp_start_reason(req, 299, "Fine\tthanks", 11, text, 1);
    (void)!piston_resp_end(req, NULL, 0);
    piston_req_release(req);
    return;
  }
  if (path.len == 5 && memcmp(path.ptr, "/conn", 5) == 0) {
    char out[32];
    int len = snprintf(out, sizeof out, "%llu",
                       (unsigned long long)piston_req_connection_id(req));
    (void)!piston_resp_send(req, 200, text, 1, out, (size_t)len);
    piston_req_release(req);
    return;
  }
  if (path.len == 5 && memcmp(path.ptr, "/info", 5) == 0) {
    char out[512];
    piston_str m = piston_req_method(req), q = piston_req_query(req);
    piston_str h = piston_req_header(req, "X-TEST", 6);
    int len =
        snprintf(out, sizeof out, "%.*s %.*s ?%.*s x=%.*s n=%zu", (int)m.len,
                 m.ptr, (int)path.len, path.ptr, (int)q.len, q.ptr, (int)h.len,
                 h.ptr ? h.ptr : "", piston_req_header_count(req));
    (void)!piston_resp_send(req, 200, text, 1, out, (size_t)len);
  } else {
    (void)!piston_resp_start(req, 200, text, 1);
    (void)!piston_resp_write(req, "a", 1);
    (void)!piston_resp_write(req, "bc", 2);
    (void)!piston_resp_end(req, NULL, 0);
  }
  piston_req_release(req);
}

static int port;

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int client(void) {
  return check_client(port, 2);
}

/* Reads until EOF or a 300 ms pause; masks the Date value. */
static size_t exchange(const char *req, size_t len, bool bytewise, char *out,
                       size_t cap) {
  int fd = client();
  if (fd < 0)
    return 0;
  if (bytewise) {
    for (size_t i = 0; i < len; i++) {
      if (write(fd, req + i, 1) != 1)
        break;
      struct timespec ts = {0, 200000};
      nanosleep(&ts, NULL);
    }
  } else if (write(fd, req, len) != (ssize_t)len) {
    close(fd);
    return 0;
  }
  struct timeval tv = {0, 300000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  size_t got = 0;
  ssize_t n;
  while (got < cap - 1 && (n = read(fd, out + got, cap - 1 - got)) > 0)
    got += (size_t)n;
  out[got] = '\0';
  close(fd);
  check_mask_date(out);
  return got;
}

#define ERR(code, reason)                                                      \
  "HTTP/1.1 " code " " reason "\r\n" DATE                                      \
  "Content-Type: text/plain; charset=utf-8\r\nContent-Length: "

static const struct {
  const char *name, *req, *resp;
  int rejected; /* by the engine itself: reported to on_client_error */
} cases[] = {
    {"fixed", "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n",
     "HTTP/1.1 200 OK\r\n" DATE "Content-Type: text/plain\r\n"
     "Content-Length: 5\r\n\r\nhello",
     0},
    {"fixed HEAD", "HEAD /hello HTTP/1.1\r\nHost: a\r\n\r\n",
     "HTTP/1.1 200 OK\r\n" DATE "Content-Type: text/plain\r\n"
     "Content-Length: 5\r\n\r\n",
     0},
    {"host chunked", "GET /x HTTP/1.1\r\nHost: a\r\n\r\n",
     "HTTP/1.1 200 OK\r\n" DATE "Content-Type: text/plain\r\n"
     "Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n2\r\nbc\r\n0\r\n\r\n",
     0},
    {"host HTTP/1.0 close-delimited", "GET /x HTTP/1.0\r\n\r\n",
     "HTTP/1.1 200 OK\r\n" DATE "Content-Type: text/plain\r\n"
     "Connection: close\r\n\r\nabc",
     0},
    {"host HEAD has no body", "HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n",
     "HTTP/1.1 200 OK\r\n" DATE "Content-Type: text/plain\r\n\r\n", 0},
    {"info", "GET /info?q=1&r HTTP/1.1\r\nHost: a\r\nX-Test: v  \r\n\r\n",
     "HTTP/1.1 200 OK\r\n" DATE "Content-Type: text/plain\r\n"
     "Content-Length: 24\r\n\r\nGET /info ?q=1&r x=v n=2",
     0},
    {"absolute form", "GET http://h:80/info?z HTTP/1.1\r\nHost: h\r\n\r\n",
     "HTTP/1.1 200 OK\r\n" DATE "Content-Type: text/plain\r\n"
     "Content-Length: 19\r\n\r\nGET /info ?z x= n=1",
     0},
    {"echo length",
     "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\naaaaa",
     "HTTP/1.1 200 OK\r\n" DATE "Content-Type: text/plain\r\n"
     "Content-Length: 6\r\n\r\nbody=5",
     0},
    {"echo chunked with extension and trailer",
     "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
     "3;ext=1\r\naaa\r\n2\r\naa\r\n0\r\nX-Trailer: t\r\n\r\n",
     "HTTP/1.1 200 OK\r\n" DATE "Content-Type: text/plain\r\n"
     "Content-Length: 6\r\n\r\nbody=5",
     0},
    {"pipelined",
     "GET /hello HTTP/1.1\r\nHost: a\r\n\r\nPOST /echo HTTP/1.1\r\nHost: a\r\n"
     "Content-Length: 2\r\n\r\naaGET /hello HTTP/1.1\r\nHost: a\r\n"
     "Connection: close\r\n\r\n",
     "HTTP/1.1 200 OK\r\n" DATE "Content-Type: text/plain\r\n"
     "Content-Length: 5\r\n\r\nhello"
     "HTTP/1.1 200 OK\r\n" DATE "Content-Type: text/plain\r\n"
     "Content-Length: 6\r\n\r\nbody=2"
     "HTTP/1.1 200 OK\r\n" DATE "Content-Type: text/plain\r\n"
     "Content-Length: 5\r\nConnection: close\r\n\r\nhello",
     0},
    {"no host", "GET /hello HTTP/1.1\r\n\r\n",
     ERR("400", "Bad Request") "12\r\nConnection: close\r\n\r\nBad Request\n",
     1},
    {"CL and TE",
     "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     ERR("400", "Bad Request") "12\r\nConnection: close\r\n\r\nBad Request\n",
     1},
    {"TE then CL",
     "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
     "chunked\r\nContent-Length: 1\r\n\r\n0\r\n\r\n",
     ERR("400", "Bad Request") "12\r\nConnection: close\r\n\r\nBad Request\n",
     1},
    {"HTTP/2.0", "GET /hello HTTP/2.0\r\nHost: a\r\n\r\n",
     ERR("505", "HTTP Version Not Supported") "27\r\nConnection: "
                                              "close\r\n\r\nHTTP Version Not "
                                              "Supported\n",
     1},
    {"bare LF", "GET /hello HTTP/1.1\nHost: a\n\n",
     ERR("400", "Bad Request") "12\r\nConnection: close\r\n\r\nBad Request\n",
     1},
    {"body too big",
     "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 99999\r\n\r\n",
     ERR("413", "Content Too Large") "18\r\nConnection: close\r\n\r\nContent "
                                     "Too Large\n",
     1},
    {"chunked body too big",
     "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
     "2000\r\n",
     NULL /* checked by prefix below: the body arrives after dispatch */, 1},
    {"reason phrase", "GET /reason HTTP/1.1\r\nHost: a\r\n\r\n",
     "HTTP/1.1 299 Fine\tthanks\r\n" DATE "Content-Type: text/plain\r\n"
     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     0},
    {"fixed path, other method",
     "DELETE /hello HTTP/1.1\r\nHost: a\r\n"
     "Connection: close\r\n\r\n",
     "HTTP/1.1 405 Method Not Allowed\r\n" DATE
     "Content-Type: text/plain; charset=utf-8\r\nAllow: GET, HEAD\r\n"
     "Content-Length: 19\r\nConnection: close\r\n\r\nMethod Not Allowed\n",
     0},
};

static atomic_int client_errors;
static _Atomic uint64_t last_closed_id;

static void on_conn_closed(piston_loop *loop, uint64_t id, void *ud) {
  (void)loop;
  (void)ud;
  atomic_store(&last_closed_id, id);
}

/* What the host does with a rejection: nothing (the engine answers), or
 * take the connection and answer it itself (1) or close it (2), as
 * node:http's 'clientError' listeners do; what it was told, for main. */
static atomic_int take_mode;
static char seen_raw[64], seen_code[32];
static size_t seen_parsed;
static atomic_int seen_takes, seen_second_take;
static _Atomic uint64_t seen_conn; /* the last rejection's connection id */

static void on_client_error(piston_loop *loop, int status, const char *addr,
                            int rport, void *ud) {
  (void)ud;
  if (status >= 400 && strcmp(addr, "127.0.0.1") == 0 && rport > 0)
    atomic_fetch_add(&client_errors, 1);
  atomic_store(&seen_conn, piston_loop_client_error_connection_id(loop));
  int mode = atomic_load(&take_mode);
  if (mode == 0)
    return;
  size_t len, parsed;
  const char *data = piston_loop_client_error_data(loop, &len, &parsed);
  const char *code = piston_loop_client_error(loop, NULL);
  snprintf(seen_raw, sizeof seen_raw, "%.*s", data ? (int)len : 0,
           data ? data : "");
  snprintf(seen_code, sizeof seen_code, "%s", code ? code : "");
  seen_parsed = parsed;
  piston_req *r = piston_loop_client_error_take(loop);
  if (!r)
    return;
  atomic_fetch_add(&seen_takes, 1);
  if (piston_loop_client_error_take(loop) != NULL)
    atomic_fetch_add(&seen_second_take, 1);
  static const char mine[] = "HTTP/1.1 400 Bad Request\r\n\r\n";
  if (mode == 1 && piston_raw_write(r, mine, sizeof mine - 1) >= 0)
    (void)!piston_raw_shutdown(r);
  else
    piston_resp_abort(r);
  piston_req_release(r);
}

/* The body of a one-request exchange on fd, or "" */
static void get(int fd, const char *path, char *out, size_t cap) {
  char req[128];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: a\r\n\r\n", path);
  out[0] = '\0';
  if (write(fd, req, (size_t)n) != n)
    return;
  char buf[1024];
  ssize_t got = read(fd, buf, sizeof buf - 1);
  if (got <= 0)
    return;
  buf[got] = '\0';
  char *body = strstr(buf, "\r\n\r\n");
  if (body)
    snprintf(out, cap, "%s", body + 4);
}

int main(void) {
  piston_server *srv = piston_server_new();
  CHECK(piston_server_set(srv, PISTON_OPT_MAX_BODY_SIZE, 4096) == 0);
  CHECK(piston_server_listen_tcp(srv, "127.0.0.1", 0) == 0);
  /* an inherited TCP socket: its port is the one it is bound to; a Unix
   * one has none */
  int tfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in ta = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t tlen = sizeof ta;
  CHECK(bind(tfd, (struct sockaddr *)&ta, sizeof ta) == 0 &&
        listen(tfd, 8) == 0 &&
        getsockname(tfd, (struct sockaddr *)&ta, &tlen) == 0);
  CHECK(piston_server_listen_fd(srv, tfd) == 0);
  CHECK_EQ_INT(piston_server_port(srv, 1), ntohs(ta.sin_port));
  int ufd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un ua = {.sun_family = AF_UNIX}; /* abstract, autobound */
  CHECK(bind(ufd, (struct sockaddr *)&ua, sizeof(sa_family_t)) == 0 &&
        listen(ufd, 8) == 0);
  CHECK(piston_server_listen_fd(srv, ufd) == 0);
  CHECK_EQ_INT(piston_server_port(srv, 2), PISTON_EINVAL);
  CHECK(piston_server_route_fixed(srv, NULL, "/hello", 200, text, 1, "hello",
                                  5) == 0);
  piston_server_on_request(srv, on_request, NULL);
  piston_server_on_client_error(srv, on_client_error, NULL);
  piston_server_on_connection_closed(srv, on_conn_closed, NULL);
  pthread_t th;
  piston_loop *loop = check_start_loop(srv, &th);
  CHECK(loop != NULL);
  if (!loop)
    return CHECK_DONE();
  port = piston_server_port(srv, 0);
  CHECK(port > 0);

  static char out[65536];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    for (int bytewise = 0; bytewise < 2; bytewise++) {
      size_t n = exchange(cases[i].req, strlen(cases[i].req), bytewise, out,
                          sizeof out);
      const char *want = cases[i].resp;
      if (!want) {
        want = ERR("413", "Content Too Large");
        n = strlen(want) <= n ? strlen(want) : n;
      }
      if (n != strlen(want) || memcmp(out, want, n) != 0) {
        fprintf(stderr, "case '%s'%s:\n--- got\n%s\n--- want\n%s\n",
                cases[i].name, bytewise ? " (bytewise)" : "", out, want);
        check_failed_++;
      } else {
        check_passed_++;
      }
    }
  }
  /* every engine rejection in the table was reported, whole and bytewise */
  int rejections = 0;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    rejections += cases[i].rejected ? 2 : 0;
  CHECK_EQ_INT(atomic_load(&client_errors), rejections);

  /* the host answers a rejection itself: exactly its bytes, then a FIN;
   * or a close without a byte; either way at once, not at a timeout */
  static const char oops[] = "Oopsie-doopsie\r\n";
  atomic_store(&take_mode, 1);
  uint64_t t0 = now_ms();
  size_t got = exchange(oops, sizeof oops - 1, false, out, sizeof out);
  CHECK(now_ms() - t0 < 250);
  CHECK_EQ_INT(got, 28);
  CHECK(memcmp(out, "HTTP/1.1 400 Bad Request\r\n\r\n", 28) == 0);
  CHECK(strcmp(seen_raw, oops) == 0); /* node's err.rawPacket */
  CHECK_EQ_INT(seen_parsed, 1);       /* and err.bytesParsed */
  CHECK(strcmp(seen_code, "HPE_INVALID_METHOD") == 0);
  CHECK(atomic_load(&seen_conn) != 0);
  atomic_store(&take_mode, 2);
  t0 = now_ms();
  got = exchange(oops, sizeof oops - 1, false, out, sizeof out);
  CHECK(now_ms() - t0 < 250);
  CHECK_EQ_INT(got, 0);
  CHECK_EQ_INT(atomic_load(&seen_takes), 2);
  CHECK_EQ_INT(atomic_load(&seen_second_take), 0);
  atomic_store(&take_mode, 0);

  /* a rejection names its connection: the id of the requests it carried
   * before (a host's socket for it exists already) */
  char c1[64], rest[512];
  int fc = client();
  get(fc, "/conn", c1, sizeof c1);
  CHECK(write(fc, oops, sizeof oops - 1) == (ssize_t)(sizeof oops - 1));
  while (read(fc, rest, sizeof rest) > 0)
    ;
  CHECK(c1[0] != '\0' && atomic_load(&seen_conn) == strtoull(c1, NULL, 10));
  close(fc);
  /* its close is reported before the checks of close_idle below */
  for (int i = 0;
       i < 200 && atomic_load(&last_closed_id) != strtoull(c1, NULL, 10); i++)
    usleep(10000);
  CHECK(atomic_load(&last_closed_id) == strtoull(c1, NULL, 10));

  /* connection ids: one per connection, stable across keep-alive */
  char a1[64], a2[64], b1[64];
  int fa = client(), fb = client();
  get(fa, "/conn", a1, sizeof a1);
  get(fa, "/conn", a2, sizeof a2);
  get(fb, "/conn", b1, sizeof b1);
  CHECK(a1[0] != '\0' && strcmp(a1, a2) == 0);
  CHECK(b1[0] != '\0' && strcmp(a1, b1) != 0);

  /* close_idle: both keep-alive connections are idle and get closed; one
   * with a request in progress would not be (the graceful stop path) */
  piston_loop_close_idle(loop);
  char buf[16];
  CHECK_EQ_INT(read(fa, buf, sizeof buf), 0);
  CHECK_EQ_INT(read(fb, buf, sizeof buf), 0);
  /* both closes were reported; fb's was the last (closed after fa's) or
   * fa's: either way one of the two ids */
  uint64_t lc = atomic_load(&last_closed_id);
  CHECK(lc == strtoull(a1, NULL, 10) || lc == strtoull(b1, NULL, 10));
  close(fa);
  close(fb);

  piston_loop_stop(loop, 1000);
  pthread_join(th, NULL);
  CHECK_EQ_INT(piston_loop_connections(loop), 0);
  piston_loop_free(loop);
  piston_server_free(srv);
  close(tfd);
  close(ufd);
  return CHECK_DONE();
}
