/* Buffered log lines (logbuf.h). */
#define _GNU_SOURCE
#include "logbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FLUSH_AT (64 * 1024)
/* a log that takes nothing (a full pipe nobody reads) costs at most this */
#define KEEP_MAX (1024 * 1024)

void piston__logbuf_init(piston__logbuf *b, int fd) {
  memset(b, 0, sizeof *b);
  pthread_mutex_init(&b->lock, NULL);
  b->fd = fd;
}

static void write_locked(piston__logbuf *b) {
  size_t off = 0;
  while (off < b->len) {
    ssize_t w = write(b->fd, b->buf + off, b->len - off);
    if (w > 0) {
      off += (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR)
      continue;
    break; /* EAGAIN (a non-blocking pipe) or an error: keep the rest */
  }
  memmove(b->buf, b->buf + off, b->len - off);
  b->len -= off;
}

bool piston__logbuf_append(piston__logbuf *b, const char *line, size_t n) {
  pthread_mutex_lock(&b->lock);
  bool was_empty = b->len == 0;
  if (b->cap - b->len < n) {
    size_t ncap = b->cap ? b->cap : 16 * 1024;
    while (ncap - b->len < n)
      ncap *= 2;
    char *grown = ncap <= KEEP_MAX + FLUSH_AT ? realloc(b->buf, ncap) : NULL;
    if (!grown) {
      b->dropped++;
      pthread_mutex_unlock(&b->lock);
      return false;
    }
    b->buf = grown;
    b->cap = ncap;
  }
  memcpy(b->buf + b->len, line, n);
  b->len += n;
  if (b->len >= FLUSH_AT)
    write_locked(b);
  pthread_mutex_unlock(&b->lock);
  return was_empty;
}

void piston__logbuf_flush(piston__logbuf *b) {
  pthread_mutex_lock(&b->lock);
  if (b->len)
    write_locked(b);
  pthread_mutex_unlock(&b->lock);
}

void piston__logbuf_free(piston__logbuf *b) {
  piston__logbuf_flush(b);
  free(b->buf);
  pthread_mutex_destroy(&b->lock);
}
