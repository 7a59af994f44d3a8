/* Incremental UTF-8 validation (RFC 3629), for WebSocket text: it fails on
 * the first byte that no valid continuation could follow (RFC 6455 8.1
 * wants a text message failed as soon as it cannot be valid), and carries
 * its state across frames and reads. */
#include "utf8.h"

#include <string.h>

bool piston__utf8_feed(piston__utf8 *u, const uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    if (u->need == 0) {
      /* ASCII runs eight bytes at a time */
      while (i + 8 <= n) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w & 0x8080808080808080ull)
          break;
        i += 8;
      }
      if (i == n)
        break;
      uint8_t b = p[i++];
      if (b < 0x80)
        continue;
      u->lo = 0x80;
      u->hi = 0xBF;
      if (b >= 0xC2 && b <= 0xDF) {
        u->need = 1;
      } else if (b >= 0xE0 && b <= 0xEF) {
        u->need = 2;
        if (b == 0xE0)
          u->lo = 0xA0; /* no overlong forms */
        else if (b == 0xED)
          u->hi = 0x9F; /* no surrogates */
      } else if (b >= 0xF0 && b <= 0xF4) {
        u->need = 3;
        if (b == 0xF0)
          u->lo = 0x90;
        else if (b == 0xF4)
          u->hi = 0x8F; /* nothing past U+10FFFF */
      } else {
        return false;
      }
      continue;
    }
    uint8_t b = p[i++];
    if (b < u->lo || b > u->hi)
      return false;
    u->need--;
    u->lo = 0x80;
    u->hi = 0xBF;
  }
  return true;
}
