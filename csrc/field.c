/* Field syntax (RFC 9110 5.1, 5.5): what the engine accepts from hosts as
 * header names, values and methods. */
#include "util.h"

#include <string.h>

bool piston__valid_token(const char *p, size_t n) {
  static const char tchar[] = "!#$%&'*+-.^_`|~";
  if (n == 0)
    return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)p[i];
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
          (ch >= 'A' && ch <= 'Z') || (ch && strchr(tchar, ch))))
      return false;
  }
  return true;
}

bool piston__valid_header(const piston_header *h) {
  if (!piston__valid_token(h->name.ptr, h->name.len))
    return false;
  for (size_t i = 0; i < h->value.len; i++) {
    unsigned char ch = (unsigned char)h->value.ptr[i];
    if (ch == '\r' || ch == '\n' || ch == 0)
      return false;
  }
  return true;
}
