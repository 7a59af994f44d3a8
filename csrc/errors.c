#define _GNU_SOURCE
#include "util.h"

#include <errno.h>

#include <stdarg.h>
#include <time.h>
#include <pthread.h>
#include <signal.h>
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

/* Whether SIGPIPE is ignored is looked up once: hosts set it at start. */
static atomic_int pipe_ignored = -1;

void piston__nosigpipe_begin(piston__nosigpipe *g) {
  int ign = atomic_load_explicit(&pipe_ignored, memory_order_relaxed);
  if (ign < 0) {
    struct sigaction sa;
    ign = sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN;
    atomic_store(&pipe_ignored, ign);
  }
  g->on = !ign;
  if (!g->on)
    return;
  sigset_t pipe, pending;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, &g->old);
  sigpending(&pending);
  g->was_pending = sigismember(&pending, SIGPIPE);
}

void piston__nosigpipe_end(piston__nosigpipe *g) {
  if (!g->on)
    return;
  int saved = errno;
  sigset_t pipe, pending;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  sigpending(&pending);
  if (sigismember(&pending, SIGPIPE) && !g->was_pending) {
    struct timespec zero = {0, 0};
    sigtimedwait(&pipe, NULL, &zero); /* ours: take it */
  }
  pthread_sigmask(SIG_SETMASK, &g->old, NULL);
  errno = saved;
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
