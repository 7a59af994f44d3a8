/* Field syntax (RFC 9110 5.1, 5.5): what the engine accepts from hosts as
 * header names, values and methods. */
#define _GNU_SOURCE
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

ptrdiff_t piston__fields_size(const piston_header *h, size_t n) {
  size_t need = 0;
  for (size_t i = 0; i < n; i++) {
    if (!piston__valid_header(&h[i]))
      return -1;
    need += h[i].name.len + h[i].value.len + 4;
  }
  return (ptrdiff_t)need;
}

char *piston__field_put(char *p, const piston_header *h) {
  memcpy(p, h->name.ptr, h->name.len);
  p += h->name.len;
  *p++ = ':';
  *p++ = ' ';
  memcpy(p, h->value.ptr, h->value.len);
  p += h->value.len;
  *p++ = '\r';
  *p++ = '\n';
  return p;
}

int piston_list_next(piston_str *rest, piston_str *item) {
  const char *p = rest->ptr, *end = p ? p + rest->len : p;
  while (p < end) {
    const char *s = p;
    while (p < end && *p != ',')
      p++;
    const char *e = p;
    if (p < end)
      p++; /* the comma */
    while (s < e && (*s == ' ' || *s == '\t'))
      s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
      e--;
    if (e > s) {
      *item = (piston_str){s, (size_t)(e - s)};
      rest->ptr = p;
      rest->len = (size_t)(end - p);
      return 1;
    }
  }
  rest->len = 0;
  return 0;
}
