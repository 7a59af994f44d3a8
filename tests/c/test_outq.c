/* The output queue: ordering of bytes and file ranges, merging of adjacent
 * byte runs, partial writes, and moving a post queue onto a connection's. */
#define _GNU_SOURCE
#include "check.h"
#include "outq.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static size_t drain(int fd, char *buf, size_t cap) {
  size_t got = 0;
  ssize_t n;
  while (got < cap && (n = recv(fd, buf + got, cap - got, MSG_DONTWAIT)) > 0)
    got += (size_t)n;
  return got;
}

int main(void) {
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);

  /* adjacent appends merge into one segment */
  piston__outq q;
  piston__outq_init(&q);
  CHECK_EQ_INT(piston__outq_append(&q, "abc", 3), 0);
  CHECK_EQ_INT(piston__outq_append(&q, "def", 3), 0);
  CHECK_EQ_INT(q.nsegs - q.first, 1);
  CHECK_EQ_INT(q.pending, 6);

  /* a file range between byte runs keeps its place */
  char path[] = "/tmp/piston-outq-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  CHECK_EQ_INT(write(fd, "0123456789", 10), 10);
  unlink(path);
  CHECK_EQ_INT(piston__outq_append_file(&q, fd, 2, 5), 0);
  CHECK_EQ_INT(piston__outq_append(&q, "xyz", 3), 0);
  CHECK_EQ_INT(q.nsegs - q.first, 3);
  CHECK_EQ_INT(q.pending, 14);
  CHECK_EQ_INT(piston__outq_flush(&q, sv[0]), 0);
  CHECK_EQ_INT(q.pending, 0);
  char buf[1 << 16];
  size_t n = drain(sv[1], buf, sizeof buf);
  CHECK_EQ_MEM(buf, n, "abcdef23456xyz");

  /* reserve/commit of less than reserved */
  char *p = piston__outq_reserve(&q, 100);
  CHECK(p != NULL);
  memcpy(p, "hello", 5);
  piston__outq_commit(&q, 5);
  CHECK_EQ_INT(q.pending, 5);

  /* move: the post queue empties into the destination, in order */
  piston__outq post;
  piston__outq_init(&post);
  CHECK_EQ_INT(piston__outq_append(&post, " world", 6), 0);
  CHECK_EQ_INT(piston__outq_move(&q, &post), 0);
  CHECK_EQ_INT(post.pending, 0);
  CHECK_EQ_INT(q.pending, 11);
  CHECK_EQ_INT(piston__outq_flush(&q, sv[0]), 0);
  n = drain(sv[1], buf, sizeof buf);
  CHECK_EQ_MEM(buf, n, "hello world");

  /* a full socket: flush reports 1 and keeps the rest, in order */
  int small = 4096;
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  static char big[1 << 20];
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = (char)('a' + i % 26);
  CHECK_EQ_INT(piston__outq_append(&q, big, sizeof big), 0);
  CHECK_EQ_INT(piston__outq_flush(&q, sv[0]), 1);
  CHECK(q.pending > 0 && q.pending < sizeof big);
  static char back[1 << 20];
  size_t got = 0;
  for (int rounds = 0; rounds < 100000 && got < sizeof big; rounds++) {
    got += drain(sv[1], back + got, sizeof back - got);
    int rc = piston__outq_flush(&q, sv[0]);
    CHECK(rc == 0 || rc == 1);
  }
  CHECK_EQ_INT(got, sizeof big);
  CHECK(memcmp(back, big, sizeof big) == 0);
  CHECK_EQ_INT(q.pending, 0);

  /* the peer gone: flush reports an error, not a signal */
  CHECK_EQ_INT(piston__outq_append(&q, "late", 4), 0);
  close(sv[1]);
  int rc = piston__outq_flush(&q, sv[0]);
  CHECK(rc < 0);
  piston__outq_free(&q);
  piston__outq_free(&post);
  close(sv[0]);
  return CHECK_DONE();
}
