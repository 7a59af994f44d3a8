/* A cache of equal-sized buffers, so that a connection holds a read buffer
 * only while bytes are in it: idle keep-alive connections hold none, and
 * busy ones do not pay a malloc per request. One per loop; not locked. */
#ifndef PISTON_BUFPOOL_H
#define PISTON_BUFPOOL_H

#include <stddef.h>

typedef struct {
  char **spare;
  size_t nspare, keep; /* at most keep buffers are cached */
  size_t size;         /* bytes per buffer */
} piston__bufpool;

int piston__bufpool_init(piston__bufpool *p, size_t size, size_t keep);
/* NULL when out of memory */
char *piston__bufpool_get(piston__bufpool *p);
void piston__bufpool_put(piston__bufpool *p, char *buf);
/* frees the cached buffers (those handed out are their holders') */
void piston__bufpool_free(piston__bufpool *p);

#endif
