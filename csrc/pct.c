/* Percent-decoding (RFC 3986 2.1): one decoder for file mounts and the
 * hosts' decoded paths (WSGI PATH_INFO, the ASGI path, Node's helpers). */
#include "piston.h"

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  c = (char)(c | 0x20);
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

ptrdiff_t piston_percent_decode(const char *in, size_t len, char *out,
                                int flags) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    int hi, lo;
    if (in[i] == '%' && i + 2 < len && (hi = hexval(in[i + 1])) >= 0 &&
        (lo = hexval(in[i + 2])) >= 0) {
      out[n++] = (char)(hi << 4 | lo);
      i += 2;
    } else if (in[i] == '%' && (flags & PISTON_PCT_STRICT)) {
      return -1;
    } else {
      out[n++] = in[i];
    }
  }
  return (ptrdiff_t)n;
}
