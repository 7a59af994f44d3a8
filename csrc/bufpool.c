#include "bufpool.h"

#include "piston.h"

#include <stdlib.h>

int piston__bufpool_init(piston__bufpool *p, size_t size, size_t keep) {
  p->spare = calloc(keep, sizeof *p->spare);
  p->nspare = 0;
  p->keep = keep;
  p->size = size;
  return p->spare ? 0 : PISTON_ENOMEM;
}

char *piston__bufpool_get(piston__bufpool *p) {
  if (p->nspare > 0)
    return p->spare[--p->nspare];
  return malloc(p->size);
}

void piston__bufpool_put(piston__bufpool *p, char *buf) {
  if (p->nspare < p->keep)
    p->spare[p->nspare++] = buf;
  else
    free(buf);
}

void piston__bufpool_free(piston__bufpool *p) {
  for (size_t i = 0; i < p->nspare; i++)
    free(p->spare[i]);
  free(p->spare);
  p->spare = NULL;
  p->nspare = 0;
}
