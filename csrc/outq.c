#define _GNU_SOURCE
#include "outq.h"
#include "util.h"

#include "piston.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <time.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* Beyond this an emptied queue gives its buffer back, so a connection that
 * once sent a large body does not keep the memory while idle. */
#define KEEP_CAP (64 * 1024)
#define MAX_IOV 64

void piston__outq_init(piston__outq *q) {
  memset(q, 0, sizeof *q);
}

static void close_files(piston__outq *q) {
  for (size_t i = q->first; i < q->nsegs; i++)
    if (q->segs[i].fd >= 0)
      close(q->segs[i].fd);
}

void piston__outq_free(piston__outq *q) {
  close_files(q);
  free(q->buf);
  free(q->segs);
  piston__outq_init(q);
}

static void reset(piston__outq *q) {
  q->len = 0;
  q->first = q->nsegs = 0;
  q->pending = 0;
  if (q->cap > KEEP_CAP) {
    free(q->buf);
    q->buf = NULL;
    q->cap = 0;
  }
  if (q->segcap > 64) {
    free(q->segs);
    q->segs = NULL;
    q->segcap = 0;
  }
}

void piston__outq_clear(piston__outq *q) {
  close_files(q);
  reset(q);
}

static int push_seg(piston__outq *q, int fd, uint64_t off, uint64_t len) {
  if (q->nsegs == q->segcap) {
    if (q->first > 0) {
      memmove(q->segs, q->segs + q->first,
              (q->nsegs - q->first) * sizeof *q->segs);
      q->nsegs -= q->first;
      q->first = 0;
    } else {
      size_t ncap = q->segcap ? q->segcap * 2 : 8;
      piston__seg *s = realloc(q->segs, ncap * sizeof *s);
      if (!s)
        return PISTON_ENOMEM;
      q->segs = s;
      q->segcap = ncap;
    }
  }
  q->segs[q->nsegs++] = (piston__seg){fd, off, len};
  return 0;
}

/* Bytes before the first live memory segment are dead: slide the live ones
 * down before growing. */
static void compact(piston__outq *q) {
  size_t dead = q->len;
  for (size_t i = q->first; i < q->nsegs; i++)
    if (q->segs[i].fd < 0) {
      dead = (size_t)q->segs[i].off;
      break;
    }
  if (dead == 0)
    return;
  memmove(q->buf, q->buf + dead, q->len - dead);
  q->len -= dead;
  for (size_t i = q->first; i < q->nsegs; i++)
    if (q->segs[i].fd < 0)
      q->segs[i].off -= dead;
}

char *piston__outq_reserve(piston__outq *q, size_t n) {
  if (q->cap - q->len >= n)
    return q->buf + q->len;
  compact(q);
  if (q->cap - q->len >= n)
    return q->buf + q->len;
  size_t ncap = q->cap ? q->cap : 1024;
  while (ncap - q->len < n)
    ncap *= 2;
  char *b = realloc(q->buf, ncap);
  if (!b)
    return NULL;
  q->buf = b;
  q->cap = ncap;
  return b + q->len;
}

void piston__outq_commit(piston__outq *q, size_t used) {
  if (used == 0)
    return;
  piston__seg *last = q->nsegs > q->first ? &q->segs[q->nsegs - 1] : NULL;
  if (last && last->fd < 0 && last->off + last->len == q->len) {
    last->len += used;
  } else if (push_seg(q, -1, q->len, used) != 0) {
    return; /* the reserve succeeded, so only a seg array OOM lands here */
  }
  q->len += used;
  q->pending += used;
  q->added += used;
}

int piston__outq_append(piston__outq *q, const void *data, size_t len) {
  char *p = piston__outq_reserve(q, len);
  if (!p)
    return PISTON_ENOMEM;
  memcpy(p, data, len);
  size_t before = q->pending;
  piston__outq_commit(q, len);
  return q->pending == before + len ? 0 : PISTON_ENOMEM;
}

int piston__outq_append_file(piston__outq *q, int fd, uint64_t off,
                             uint64_t len) {
  if (len == 0) {
    close(fd);
    return 0;
  }
  int rc = push_seg(q, fd, off, len);
  if (rc != 0) {
    close(fd);
    return rc;
  }
  q->pending += len;
  q->added += len;
  return 0;
}

int piston__outq_move(piston__outq *dst, piston__outq *src) {
  int rc = 0;
  for (size_t i = src->first; i < src->nsegs; i++) {
    piston__seg *s = &src->segs[i];
    if (rc == 0) {
      if (s->fd < 0)
        rc = piston__outq_append(dst, src->buf + s->off, (size_t)s->len);
      else
        rc = piston__outq_append_file(dst, s->fd, s->off, s->len);
    } else if (s->fd >= 0) {
      close(s->fd);
    }
    s->fd = -1;
  }
  reset(src);
  return rc;
}

static void consume(piston__outq *q, size_t n) {
  q->pending -= n;
  while (n > 0) {
    piston__seg *s = &q->segs[q->first];
    if (n < s->len) {
      s->off += n;
      s->len -= n;
      return;
    }
    n -= (size_t)s->len;
    q->first++;
  }
}

/* sendfile(2) has no MSG_NOSIGNAL: a client gone mid-file would raise
 * SIGPIPE in a host that has not ignored it (piston__nosigpipe). */
static ssize_t sendfile_nosignal(int sockfd, int fd, off_t *off, size_t n) {
  piston__nosigpipe g;
  piston__nosigpipe_begin(&g);
  ssize_t r = sendfile(sockfd, fd, off, n);
  piston__nosigpipe_end(&g);
  return r;
}

int piston__outq_front(const piston__outq *q, int *fd, uint64_t *off,
                       size_t *len) {
  assert(q->first < q->nsegs);
  const piston__seg *s = &q->segs[q->first];
  *fd = s->fd;
  *off = s->off;
  *len = s->len > SIZE_MAX ? SIZE_MAX : (size_t)s->len;
  return s->fd >= 0;
}

const char *piston__outq_gather(const piston__outq *q, char *stage, size_t cap,
                                size_t *len) {
  assert(q->first < q->nsegs && q->segs[q->first].fd < 0);
  const piston__seg *s = &q->segs[q->first];
  bool alone = q->first + 1 == q->nsegs || q->segs[q->first + 1].fd >= 0;
  if (s->len >= cap || alone) {
    *len = s->len < cap ? (size_t)s->len : cap;
    return q->buf + s->off;
  }
  size_t n = 0;
  for (size_t i = q->first; i < q->nsegs && n < cap; i++) {
    const piston__seg *t = &q->segs[i];
    if (t->fd >= 0)
      break;
    size_t take = t->len < cap - n ? (size_t)t->len : cap - n;
    memcpy(stage + n, q->buf + t->off, take);
    n += take;
  }
  *len = n;
  return stage;
}

void piston__outq_consume(piston__outq *q, size_t n) {
  assert(n <= q->pending);
  while (n > 0) {
    piston__seg *s = &q->segs[q->first];
    size_t take = n < s->len ? n : (size_t)s->len;
    s->off += take;
    s->len -= take;
    q->pending -= take;
    n -= take;
    if (s->len == 0) {
      if (s->fd >= 0)
        close(s->fd);
      s->fd = -1;
      q->first++;
    }
  }
  if (q->first == q->nsegs)
    reset(q);
}

int piston__outq_flush(piston__outq *q, int sockfd) {
  while (q->first < q->nsegs) {
    piston__seg *s = &q->segs[q->first];
    if (s->fd >= 0) {
      off_t off = (off_t)s->off;
      size_t want = s->len > (1u << 30) ? (1u << 30) : (size_t)s->len;
      ssize_t n = sendfile_nosignal(sockfd, s->fd, &off, want);
      if (n < 0) {
        if (errno == EINTR)
          continue;
        return errno == EAGAIN ? 1 : -errno;
      }
      if (n == 0) /* the file shrank under us: the framing is now a lie */
        return -EIO;
      s->off += (uint64_t)n;
      s->len -= (uint64_t)n;
      q->pending -= (uint64_t)n;
      if (s->len == 0) {
        close(s->fd);
        s->fd = -1;
        q->first++;
      }
      continue;
    }
    struct iovec iov[MAX_IOV];
    int cnt = 0;
    size_t total = 0;
    for (size_t i = q->first; i < q->nsegs && cnt < MAX_IOV; i++) {
      if (q->segs[i].fd >= 0)
        break;
      iov[cnt].iov_base = q->buf + q->segs[i].off;
      iov[cnt].iov_len = (size_t)q->segs[i].len;
      total += iov[cnt].iov_len;
      cnt++;
    }
    /* sendmsg rather than writev: MSG_NOSIGNAL spares the host a SIGPIPE
     * when the client has gone. */
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
    ssize_t n = sendmsg(sockfd, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errno == EAGAIN ? 1 : -errno;
    }
    consume(q, (size_t)n);
    if ((size_t)n < total)
      return 1;
  }
  reset(q);
  return 0;
}
