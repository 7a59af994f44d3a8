#include <string.h>

#include "check.h"
#include "httpdate.h"

static const struct {
  const char *in;
  long long want; /* -1: must be rejected */
} parse_cases[] = {
    {"Sun, 06 Nov 1994 08:49:37 GMT", 784111777},
    {"Sunday, 06-Nov-94 08:49:37 GMT", 784111777},
    {"Sun Nov  6 08:49:37 1994", 784111777},
    {"Sun Nov 06 08:49:37 1994", 784111777},
    {"Thu, 01 Jan 1970 00:00:00 GMT", 0},
    {"Tue, 29 Feb 2000 12:00:00 GMT", 951825600},
    {"Thu, 31 Dec 2099 23:59:59 GMT", 4102444799},
    {"Wed, 31 Dec 2014 23:59:60 GMT", 1420070400}, /* leap second */
    /* Two-digit years: within 50 years ahead means this century. */
    {"Friday, 31-Dec-99 23:59:59 GMT", 946684799},
    {"Saturday, 01-Jan-00 00:00:00 GMT", 946684800},
    /* The weekday is not cross-checked, only its spelling. */
    {"Mon, 06 Nov 1994 08:49:37 GMT", 784111777},
    {"Mon Nov  6 08:49:37 1994", 784111777},
    {"", -1},
    {"garbage", -1},
    {"Sun, 06 Nov 1994 08:49:37 UTC", -1},
    {"Sun, 06 Nov 1994 08:49:37 gmt", -1},
    {"sun, 06 Nov 1994 08:49:37 GMT", -1},
    {"Xyz, 06 Nov 1994 08:49:37 GMT", -1},
    {"Sun, 06 Foo 1994 08:49:37 GMT", -1},
    {"Sun, 06 nov 1994 08:49:37 GMT", -1},
    {"Sun, 00 Nov 1994 08:49:37 GMT", -1},
    {"Sun, 31 Nov 1994 08:49:37 GMT", -1},
    {"Sun, 29 Feb 1900 08:49:37 GMT", -1},
    {"Sun, 06 Nov 1994 24:00:00 GMT", -1},
    {"Sun, 06 Nov 1994 08:60:00 GMT", -1},
    {"Sun, 06 Nov 1994 08:49:61 GMT", -1},
    {"Sun, 06 Nov 1994 08-49-37 GMT", -1},
    {"Sun, 6 Nov 1994 08:49:37 GMT", -1},
    {"Sun, 06 Nov 94 08:49:37 GMT", -1},
    {"Sun, 06 Nov +994 08:49:37 GMT", -1},
    {"Sun, 0x Nov 1994 08:49:37 GMT", -1},
    {"Sun, 06 Nov 1994 08:49:37 GMT ", -1},
    {" Sun, 06 Nov 1994 08:49:37 GMT", -1},
    {"Sun, 06 Nov 1994 08:49:37 GMT; length=12", -1},
    {"Sun, 06-Nov-94 08:49:37 GMT", -1},
    {"Sunday, 06 Nov 1994 08:49:37 GMT", -1},
    {"Sonntag, 06-Nov-94 08:49:37 GMT", -1},
    {"Sunday, 06-Nov-1994 08:49:37 GMT", -1},
    {"Sunday, 32-Nov-94 08:49:37 GMT", -1},
    {"Sun Nov  6 08:49:37 94", -1},
    {"Sun Nov 6  08:49:37 1994", -1},
    {"Sun Nov  6 08:49:37 1994 ", -1},
    {"Sun Nov    08:49:37 1994", -1},
};

int main(void) {
  for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
    const char *in = parse_cases[i].in;
    time_t t = 12345;
    int rc = piston__http_date_parse(in, strlen(in), &t);
    if (parse_cases[i].want < 0) {
      CHECK_EQ_INT(rc, -1);
    } else {
      CHECK_EQ_INT(rc, 0);
      CHECK_EQ_INT(t, parse_cases[i].want);
    }
    if ((rc == 0) != (parse_cases[i].want >= 0))
      fprintf(stderr, "  case: \"%s\"\n", in);
  }

  /* The length bounds the read: a valid date followed by junk in memory. */
  const char *longer = "Sun, 06 Nov 1994 08:49:37 GMTxx";
  time_t t;
  CHECK_EQ_INT(piston__http_date_parse(longer, 29, &t), 0);
  CHECK_EQ_INT(t, 784111777);
  CHECK_EQ_INT(piston__http_date_parse(longer, 28, &t), -1);

  static const struct {
    long long t;
    const char *want;
  } fmt_cases[] = {
      {784111777, "Sun, 06 Nov 1994 08:49:37 GMT"},
      {0, "Thu, 01 Jan 1970 00:00:00 GMT"},
      {951825600, "Tue, 29 Feb 2000 12:00:00 GMT"},
      {1700000000, "Tue, 14 Nov 2023 22:13:20 GMT"},
      {-5, "Thu, 01 Jan 1970 00:00:00 GMT"},             /* clamped */
      {253402300799LL, "Fri, 31 Dec 9999 23:59:59 GMT"}, /* last 4-digit */
      {999999999999LL, "Fri, 31 Dec 9999 23:59:59 GMT"}, /* clamped */
  };
  for (size_t i = 0; i < sizeof fmt_cases / sizeof fmt_cases[0]; i++) {
    char out[30];
    memset(out, 'x', sizeof out);
    piston__http_date_format((time_t)fmt_cases[i].t, out);
    CHECK_EQ_INT(out[29], '\0');
    CHECK_EQ_MEM(out, strlen(out), fmt_cases[i].want);
  }

  /* Round trip over a spread of seconds, leap days and centuries included. */
  int bad = 0;
  for (long long s = 0; s < 253402300799LL; s += 86399LL * 37 + 13) {
    char out[30];
    time_t back;
    piston__http_date_format((time_t)s, out);
    if (piston__http_date_parse(out, 29, &back) != 0 || back != (time_t)s)
      bad++;
  }
  CHECK_EQ_INT(bad, 0);
  return CHECK_DONE();
}
