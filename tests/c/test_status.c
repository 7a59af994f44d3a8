/* Status lines and the per-thread Date line. */
#define _GNU_SOURCE
#include "check.h"
#include "util.h"

#include <regex.h>

int main(void) {
  static const struct {
    int status;
    const char *line;
  } cases[] = {
      {200, "HTTP/1.1 200 OK\r\n"},
      {204, "HTTP/1.1 204 No Content\r\n"},
      {404, "HTTP/1.1 404 Not Found\r\n"},
      {413, "HTTP/1.1 413 Content Too Large\r\n"},
      {431, "HTTP/1.1 431 Request Header Fields Too Large\r\n"},
      {505, "HTTP/1.1 505 HTTP Version Not Supported\r\n"},
      {599, "HTTP/1.1 599 Unknown\r\n"},
      {42, "HTTP/1.1 500 Internal Server Error\r\n"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t len;
    const char *s = piston__status_line(cases[i].status, &len);
    CHECK_EQ_MEM(s, len, cases[i].line);
    /* built once: the same pointer next time */
    size_t len2;
    CHECK(piston__status_line(cases[i].status, &len2) == s);
  }

  const char *d = piston__date_line();
  CHECK_EQ_INT(strlen(d), PISTON_DATE_LINE_LEN);
  regex_t re;
  CHECK(regcomp(&re,
                "^Date: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} "
                "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                "[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT\r\n$",
                REG_EXTENDED) == 0);
  CHECK(regexec(&re, d, 0, NULL, 0) == 0);
  regfree(&re);
  /* cached: the same buffer within the second */
  CHECK(piston__date_line() == d);

  CHECK_EQ_MEM(piston_strerror(PISTON_ECLOSED),
               strlen(piston_strerror(PISTON_ECLOSED)),
               "connection closed by the client");
  CHECK_EQ_MEM(piston_err_name(PISTON_EAGAIN),
               strlen(piston_err_name(PISTON_EAGAIN)), "PISTON_EAGAIN");
  return CHECK_DONE();
}
