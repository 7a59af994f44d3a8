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
  uint64_t added;              /* bytes ever queued (node's bytesWritten) */
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
/* For a transport that writes by other means (TLS): the first segment is a
 * file range (returns 1 with *fd, *off, *len) or bytes (returns 0). */
int piston__outq_front(const piston__outq *q, int *fd, uint64_t *off,
                       size_t *len);
/* The leading bytes, up to cap of them and up to the first file range:
 * in place when the first segment alone fills cap or is all there is,
 * else copied into stage. */
const char *piston__outq_gather(const piston__outq *q, char *stage, size_t cap,
                                size_t *len);
/* n bytes (of bytes or of a file) went out. */
void piston__outq_consume(piston__outq *q, size_t n);
/* Drops everything queued (closing files) but keeps small buffers. */
void piston__outq_clear(piston__outq *q);

#endif
