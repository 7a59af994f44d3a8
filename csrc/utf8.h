#ifndef PISTON_UTF8_H
#define PISTON_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint8_t need;   /* continuation bytes still due */
  uint8_t lo, hi; /* the range the next continuation byte must be in */
} piston__utf8;

/* false as soon as p[0, n) cannot continue valid UTF-8 */
bool piston__utf8_feed(piston__utf8 *u, const uint8_t *p, size_t n);
/* true if the bytes fed end on a character boundary */
static inline bool piston__utf8_complete(const piston__utf8 *u) {
  return u->need == 0;
}

#endif
