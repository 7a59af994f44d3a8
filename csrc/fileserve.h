/* fileserve.h: the response to a request under a file mount (a URL prefix
 * mapped to a directory). Runs on the I/O thread: no allocation, and nothing
 * blocks beyond the file-system calls themselves. */
#ifndef PISTON_FILESERVE_H
#define PISTON_FILESERVE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "piston.h"

typedef struct {
  int dirfd; /* O_PATH|O_DIRECTORY fd of the mounted directory */
} piston__mount;

/* Opens dir; returns 0 or PISTON_EINVAL (missing or not a directory),
 * PISTON_EACCES, PISTON_ESYS. */
PISTON_MUST_CHECK int piston__mount_open(piston__mount *m, const char *dir);
void piston__mount_close(piston__mount *m);

typedef struct {
  /* Request header values; ptr NULL when absent. */
  piston_str if_none_match, if_modified_since, range, if_range;
} piston__file_cond;

typedef struct {
  int status; /* 200, 206, 304, 404, 416 */
  int fd;     /* regular file for 200/206 (caller closes), else -1 */
  uint64_t offset, length; /* body bytes to send for 200/206 */
  uint64_t size;           /* whole file size (0 for 404) */
  /* "Name: value\r\n" lines: Content-Type, Last-Modified, ETag,
   * Accept-Ranges and, for 206, Content-Range. 304 has Last-Modified and
   * ETag only; 416 only Content-Range, whose range is "*"; 404 nothing. The
   * engine adds Date, Content-Length and Connection. */
  char headers[512];
  size_t headers_len;
} piston__file_reply;

/* cond may be NULL (no conditional headers).
 * subpath: the still percent-encoded request path after the mount prefix,
 * starting with '/' (empty means "/"), without the query. Fills *out and
 * returns 0; a negative PISTON_E* only for internal failures (out of fds or
 * memory), never for a bad or missing path. */
PISTON_MUST_CHECK int piston__file_serve(const piston__mount *m,
                                         piston_str subpath,
                                         const piston__file_cond *cond,
                                         piston__file_reply *out);

/* The conditional and range rules, shared with the response cache (which
 * answers from a stored body as this does from a file). */
/* Should the request get a 304 for a representation with this ETag (a
 * quoted tag, n bytes; n 0: none) and modification time? */
int piston__cond_not_modified(const piston__file_cond *c, const char *etag,
                              size_t etag_len, time_t mtime);
/* Does If-Range (value v) still hold for this representation? */
int piston__cond_if_range(piston_str v, const char *etag, size_t etag_len,
                          time_t mtime);
/* A Range value against a body of size bytes: 0: send it whole; 1: send
 * *first..*last; -1: unsatisfiable (416). */
int piston__range_pick(piston_str range, uint64_t size, uint64_t *first,
                       uint64_t *last);

/* Nonzero: resolve without openat2 (set when the kernel lacks it; tests set
 * it to exercise the fallback). */
extern int piston__fileserve_no_openat2;

#endif
