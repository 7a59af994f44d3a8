/* An output queue: bytes and file ranges waiting for a socket, in order.
 * Bytes live in one growable buffer, so that many small responses (a
 * pipelined batch) leave in one writev; file ranges go out with sendfile. */
#ifndef PISTON_OUTQ_H
#define PISTON_OUTQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct {
  int fd;       /* -1: bytes at buf[off, off+len); else an owned file */
  uint64_t off; /* buffer offset, or file offset */
  uint64_t len;
} piston__seg;

typedef struct {
  char *buf;
  size_t len, cap;
  piston__seg *segs;
  size_t first, nsegs, segcap; /* live segments are segs[first, nsegs) */
  uint64_t pending;            /* bytes not yet written, files included */
} piston__outq;

void piston__outq_init(piston__outq *q);
/* Frees the storage and closes queued files. */
void piston__outq_free(piston__outq *q);
/* Returns room for n bytes at the end of the queue (NULL on OOM); the bytes
 * count once piston__outq_commit(q, used) is called, used <= n. */
char *piston__outq_reserve(piston__outq *q, size_t n);
void piston__outq_commit(piston__outq *q, size_t used);
int piston__outq_append(piston__outq *q, const void *data, size_t len);
/* Takes ownership of fd (closed once sent or on free). */
int piston__outq_append_file(piston__outq *q, int fd, uint64_t off,
                             uint64_t len);
/* Moves everything from src to the end of dst; src ends empty. */
int piston__outq_move(piston__outq *dst, piston__outq *src);
/* Writes as much as the socket takes. Returns 0 when empty, 1 when the
 * socket is full (wait for EPOLLOUT), or -errno. */
int piston__outq_flush(piston__outq *q, int sockfd);
/* Drops everything queued (closing files) but keeps small buffers. */
void piston__outq_clear(piston__outq *q);

#endif
