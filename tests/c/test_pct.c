/* piston_percent_decode: the one decoder behind file mounts and the hosts'
 * decoded paths. */
#include <string.h>

#include "check.h"
#include "piston.h"

static const struct {
  const char *in;
  const char *lenient; /* NULL: same as in */
  const char *strict;  /* NULL: the strict call fails */
} cases[] = {
    {"/plain/path", "/plain/path", "/plain/path"},
    {"", "", ""},
    {"%41%42", "AB", "AB"},
    {"%4a%4A", "JJ", "JJ"},
    {"a%20b", "a b", "a b"},
    {"%2F", "/", "/"},
    {"%", "%", NULL},
    {"%4", "%4", NULL},
    {"a%", "a%", NULL},
    {"%zz", "%zz", NULL},
    {"%4g", "%4g", NULL},
    {"100%", "100%", NULL},
    {"%%41", "%A", NULL},
    {"%C3%A9", "\xc3\xa9", "\xc3\xa9"},
    {"%ff", "\xff", "\xff"},
};

int main(void) {
  char out[64];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t n = strlen(cases[i].in);
    ptrdiff_t got = piston_percent_decode(cases[i].in, n, out, 0);
    CHECK(got >= 0);
    if (got >= 0)
      CHECK_EQ_MEM(out, (size_t)got, cases[i].lenient);
    got = piston_percent_decode(cases[i].in, n, out, PISTON_PCT_STRICT);
    if (!cases[i].strict) {
      CHECK_EQ_INT(got, -1);
    } else {
      CHECK(got >= 0);
      if (got >= 0)
        CHECK_EQ_MEM(out, (size_t)got, cases[i].strict);
    }
  }
  /* NUL bytes decode like any other: the caller decides what they mean */
  ptrdiff_t got = piston_percent_decode("a%00b", 5, out, PISTON_PCT_STRICT);
  CHECK_EQ_INT(got, 3);
  CHECK(memcmp(out, "a\0b", 3) == 0);
  /* in place */
  char buf[] = "x%41y";
  got = piston_percent_decode(buf, 5, buf, 0);
  CHECK_EQ_MEM(buf, (size_t)got, "xAy");
  return CHECK_DONE();
}
