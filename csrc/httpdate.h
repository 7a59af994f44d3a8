/* httpdate.h: HTTP-date (RFC 9110 section 5.6.7) formatting and parsing.
 * Neither function allocates or depends on the locale. */
#ifndef PISTON_HTTPDATE_H
#define PISTON_HTTPDATE_H

#include <stddef.h>
#include <time.h>

/* Formats t as IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT": exactly 29
 * chars plus NUL. t is clamped to years 1970..9999 so the width is fixed. */
void piston__http_date_format(time_t t, char out[30]);

/* Parses IMF-fixdate, RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime
 * ("Sun Nov  6 08:49:37 1994"), exactly, without surrounding whitespace.
 * Returns 0 and sets *t, or -1 if malformed. */
int piston__http_date_parse(const char *s, size_t len, time_t *t);

#endif
