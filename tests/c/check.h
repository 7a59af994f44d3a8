/* A minimal table-friendly test harness for the C unit tests. Each test
 * binary prints one line per failure and a closing "N passed, N failed". */
#ifndef PISTON_TEST_CHECK_H
#define PISTON_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_passed_, check_failed_;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (cond) {                                                                \
      check_passed_++;                                                         \
    } else {                                                                   \
      check_failed_++;                                                         \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                          \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                     \
  do {                                                                         \
    long long a_ = (long long)(a), b_ = (long long)(b);                        \
    if (a_ == b_) {                                                            \
      check_passed_++;                                                         \
    } else {                                                                   \
      check_failed_++;                                                         \
      fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__,          \
              __LINE__, #a, a_, b_);                                           \
    }                                                                          \
  } while (0)

#define CHECK_EQ_MEM(p, n, s)                                                  \
  do {                                                                         \
    size_t n_ = (n), sl_ = strlen(s);                                          \
    if (n_ == sl_ && memcmp((p), (s), n_) == 0) {                              \
      check_passed_++;                                                         \
    } else {                                                                   \
      check_failed_++;                                                         \
      fprintf(stderr, "%s:%d: %s is \"%.*s\", expected \"%s\"\n", __FILE__,    \
              __LINE__, #p, (int)n_, (const char *)(p), s);                    \
    }                                                                          \
  } while (0)

#define CHECK_DONE()                                                           \
  (printf("%s: %d passed, %d failed\n", __FILE__, check_passed_,               \
          check_failed_),                                                      \
   check_failed_ ? 1 : 0)

/* For the tests that run a server in process (test_engine.c,
 * test_handler_timeout.c): its loop on a thread, client sockets, and the Date
 * value masked so that responses compare byte for byte. */

#include "piston.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static inline void *check_loop_thread_(void *loop) {
  piston_loop_run(loop);
  return NULL;
}

/* A loop for srv, running on the new thread *th (piston_loop_stop, then
 * pthread_join); NULL if piston_loop_new fails. */
static inline piston_loop *check_start_loop(piston_server *srv, pthread_t *th) {
  int err = 0;
  piston_loop *loop = piston_loop_new(srv, &err);
  if (loop)
    pthread_create(th, NULL, check_loop_thread_, loop);
  return loop;
}

/* A socket connected to 127.0.0.1:port, TCP_NODELAY, each read bounded by
 * rcv_timeout_s seconds; -1 if the connection fails. */
static inline int check_client(int port, int rcv_timeout_s) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct timeval tv = {rcv_timeout_s, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

/* A Date field as check_mask_date() leaves it. */
#define DATE "Date: DATE.........................\r\n"

/* Overwrites the value of every Date field in the NUL-terminated out. */
static inline void check_mask_date(char *out) {
  for (char *d = out; (d = strstr(d, "Date: ")) != NULL; d += 6)
    if (strlen(d) >= 35)
      memcpy(d + 6, "DATE.........................", 29);
}

#endif
