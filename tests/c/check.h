/* A minimal table-friendly test harness for the C unit tests. Each test
 * binary prints one line per failure and a closing "N passed, N failed". */
#ifndef PISTON_TEST_CHECK_H
#define PISTON_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_passed_, check_failed_;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (cond) {                                                                \
      check_passed_++;                                                         \
    } else {                                                                   \
      check_failed_++;                                                         \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                          \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                     \
  do {                                                                         \
    long long a_ = (long long)(a), b_ = (long long)(b);                        \
    if (a_ == b_) {                                                            \
      check_passed_++;                                                         \
    } else {                                                                   \
      check_failed_++;                                                         \
      fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__,          \
              __LINE__, #a, a_, b_);                                           \
    }                                                                          \
  } while (0)

#define CHECK_EQ_MEM(p, n, s)                                                  \
  do {                                                                         \
    size_t n_ = (n), sl_ = strlen(s);                                          \
    if (n_ == sl_ && memcmp((p), (s), n_) == 0) {                              \
      check_passed_++;                                                         \
    } else {                                                                   \
      check_failed_++;                                                         \
      fprintf(stderr, "%s:%d: %s is \"%.*s\", expected \"%s\"\n", __FILE__,    \
              __LINE__, #p, (int)n_, (const char *)(p), s);                    \
    }                                                                          \
  } while (0)

#define CHECK_DONE()                                                           \
  (printf("%s: %d passed, %d failed\n", __FILE__, check_passed_,               \
          check_failed_),                                                      \
   check_failed_ ? 1 : 0)

#endif
