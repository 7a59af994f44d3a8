/* Small helpers every layer of the engine may use: logging, slices, status
 * lines, the cached Date line, field syntax. They call nothing above them. */
#ifndef PISTON_UTIL_H
#define PISTON_UTIL_H

#include "piston.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#if defined(__GNUC__)
#define PISTON_UNUSED_RESULT __attribute__((warn_unused_result))
#else
#define PISTON_UNUSED_RESULT
#endif

/* one line on stderr, "piston: ..." */
void piston__log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* piston__log, only with PISTON_OPT_DEBUG_LOG on (for events that are the
 * client's fault and cost it its connection, nothing else). */
extern atomic_bool piston__debug_on;
#define piston__debug(...)                                                     \
  do {                                                                         \
    if (atomic_load_explicit(&piston__debug_on, memory_order_relaxed))         \
      piston__log(__VA_ARGS__);                                                \
  } while (0)

static inline piston_str piston__slice(const char *base, uint32_t off,
                                       uint32_t len) {
  return (piston_str){base ? base + off : NULL, len};
}

/* errors.c: writes that the kernel may answer with SIGPIPE (sendfile,
 * OpenSSL's own writes to a socket, which cannot pass MSG_NOSIGNAL) run
 * between begin and end: in a process that has not ignored SIGPIPE the
 * signal is blocked in this thread around them, and one they raised is
 * taken; where it is ignored (Python, Node, the engine's programs) they
 * cost nothing. errno is kept. */
typedef struct {
  sigset_t old;
  bool on, was_pending;
} piston__nosigpipe;
void piston__nosigpipe_begin(piston__nosigpipe *g);
void piston__nosigpipe_end(piston__nosigpipe *g);

/* monotonic nanoseconds (a vDSO read): request durations */
static inline uint64_t piston__mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* errors.c: an errno as the nearest PISTON_E* code */
int piston__sys_err(int e);

/* status.c */
const char *piston__status_line(int status, size_t *len);
const char *piston__reason(int status);

/* date.c: "Date: <IMF-fixdate>\r\n", 37 bytes, cached per thread */
#define PISTON_DATE_LINE_LEN 37
const char *piston__date_line(void);

/* field.c: RFC 9110 5.1 token; a header whose value has no CR, LF or NUL */
bool piston__valid_token(const char *p, size_t n);
bool piston__valid_header(const piston_header *h);
/* Bytes of h[0, n) as "Name: value\r\n" lines, or -1 if one is invalid. */
ptrdiff_t piston__fields_size(const piston_header *h, size_t n);
/* Writes one "Name: value\r\n" line at p; returns its end. */
char *piston__field_put(char *p, const piston_header *h);

#endif
