#define _GNU_SOURCE
#include "util.h"

#include <errno.h>

#include <stdarg.h>
#include <stdio.h>

const char *piston_strerror(int err) {
  switch (err) {
#define PISTON_ERR_MSG_(name, value, msg)                                      \
  case value: return msg;
    PISTON_ERRNO_MAP(PISTON_ERR_MSG_)
#undef PISTON_ERR_MSG_
  }
  return err == 0 ? "success" : "unknown error";
}

const char *piston_err_name(int err) {
  switch (err) {
#define PISTON_ERR_NAME_(name, value, msg)                                     \
  case value: return "PISTON_E" #name;
    PISTON_ERRNO_MAP(PISTON_ERR_NAME_)
#undef PISTON_ERR_NAME_
  }
  return err == 0 ? "OK" : "PISTON_EUNKNOWN";
}

atomic_bool piston__debug_on;

void piston__log(const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  /* one fputs per line so lines from several loops do not interleave */
  fprintf(stderr, "piston: %s\n", line);
}

int piston__sys_err(int e) {
  switch (e) {
  case EADDRINUSE: return PISTON_EADDRINUSE;
  case EADDRNOTAVAIL: return PISTON_EADDRNOTAVAIL;
  case EACCES:
  case EPERM: return PISTON_EACCES;
  case ENOMEM:
  case ENOBUFS: return PISTON_ENOMEM;
  default: return PISTON_ESYS;
  }
}
