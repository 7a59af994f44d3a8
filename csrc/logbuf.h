/* A log file's buffer on one loop: lines appended from any thread (under
 * a lock, a memcpy each), written with one write(2) at the end of the
 * loop's pass, so that logging a response costs no syscall of its own.
 * Owned by logbuf.c. */
#ifndef PISTON_LOGBUF_H
#define PISTON_LOGBUF_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  pthread_mutex_t lock;
  int fd;
  char *buf;
  size_t len, cap;
  uint64_t dropped; /* lines lost to a log that cannot keep up */
} piston__logbuf;

void piston__logbuf_init(piston__logbuf *b, int fd);
/* Writes what is left, then frees the buffer (the fd is not closed). */
void piston__logbuf_free(piston__logbuf *b);
/* Appends one line; returns true if the buffer was empty before (the
 * caller makes sure a flush will come). Past 64 KiB the buffer is written
 * at once, by the caller. */
bool piston__logbuf_append(piston__logbuf *b, const char *line, size_t n);
/* Writes the buffer out (what the fd does not take now stays, up to a
 * bound). */
void piston__logbuf_flush(piston__logbuf *b);

#endif
