#define _GNU_SOURCE /* timegm */
#include "httpdate.h"

#include <string.h>

static const char wkday[7][4] = {"Sun", "Mon", "Tue", "Wed",
                                 "Thu", "Fri", "Sat"};
static const char *const weekday_long[7] = {"Sunday",    "Monday",   "Tuesday",
                                            "Wednesday", "Thursday", "Friday",
                                            "Saturday"};
static const char month[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static char *put2(char *p, int v) {
  p[0] = (char)('0' + v / 10);
  p[1] = (char)('0' + v % 10);
  return p + 2;
}

void piston__http_date_format(time_t t, char out[30]) {
  /* 9999-12-31T23:59:59Z; beyond it the year would need a fifth digit. */
  const time_t max = (time_t)253402300799LL;
  struct tm tm;
  if (t < 0)
    t = 0;
  if (t > max)
    t = max;
  gmtime_r(&t, &tm);
  char *p = out;
  memcpy(p, wkday[tm.tm_wday], 3);
  p += 3;
  *p++ = ',';
  *p++ = ' ';
  p = put2(p, tm.tm_mday);
  *p++ = ' ';
  memcpy(p, month[tm.tm_mon], 3);
  p += 3;
  *p++ = ' ';
  int year = tm.tm_year + 1900;
  p = put2(p, year / 100);
  p = put2(p, year % 100);
  *p++ = ' ';
  p = put2(p, tm.tm_hour);
  *p++ = ':';
  p = put2(p, tm.tm_min);
  *p++ = ':';
  p = put2(p, tm.tm_sec);
  memcpy(p, " GMT", 5); /* with the NUL */
}

/* n decimal digits, nothing else; -1 otherwise. */
static int digits(const char *s, int n) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

static int find_month(const char *s) {
  for (int i = 0; i < 12; i++)
    if (memcmp(s, month[i], 3) == 0)
      return i;
  return -1;
}

static int is_wkday(const char *s) {
  for (int i = 0; i < 7; i++)
    if (memcmp(s, wkday[i], 3) == 0)
      return 1;
  return 0;
}

/* "HH:MM:SS" */
static int parse_time(const char *s, struct tm *tm) {
  if (s[2] != ':' || s[5] != ':')
    return -1;
  tm->tm_hour = digits(s, 2);
  tm->tm_min = digits(s + 3, 2);
  tm->tm_sec = digits(s + 6, 2);
  /* 60 is a leap second, which RFC 9110 keeps in the grammar. */
  if (tm->tm_hour < 0 || tm->tm_hour > 23 || tm->tm_min < 0 ||
      tm->tm_min > 59 || tm->tm_sec < 0 || tm->tm_sec > 60)
    return -1;
  return 0;
}

static int leap(int y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* tm has mday, mon, year (full) and time set; checks and converts. */
static int finish(struct tm *tm, int year, time_t *t) {
  static const unsigned char mdays[12] = {31, 29, 31, 30, 31, 30,
                                          31, 31, 30, 31, 30, 31};
  if (year < 0 || tm->tm_mon < 0 || tm->tm_mday < 1 ||
      tm->tm_mday > mdays[tm->tm_mon] ||
      (tm->tm_mon == 1 && tm->tm_mday == 29 && !leap(year)))
    return -1;
  tm->tm_year = year - 1900;
  tm->tm_isdst = 0;
  *t = timegm(tm);
  return 0;
}

/* RFC 9110: a two-digit year more than 50 years in the future means the most
 * recent past year with those digits. */
static int expand_year(int yy) {
  time_t now = time(NULL);
  struct tm tm;
  int cur = gmtime_r(&now, &tm) ? tm.tm_year + 1900 : 2000;
  int y = cur - cur % 100 + yy;
  if (y > cur + 50)
    y -= 100;
  return y;
}

int piston__http_date_parse(const char *s, size_t len, time_t *t) {
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  if (len == 29 && s[3] == ',') { /* Sun, 06 Nov 1994 08:49:37 GMT */
    if (!is_wkday(s) || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' ||
        s[16] != ' ' || memcmp(s + 25, " GMT", 4) != 0)
      return -1;
    tm.tm_mday = digits(s + 5, 2);
    tm.tm_mon = find_month(s + 8);
    if (parse_time(s + 17, &tm) < 0)
      return -1;
    return finish(&tm, digits(s + 12, 4), t);
  }
  if (len == 24 && s[3] == ' ') { /* Sun Nov  6 08:49:37 1994 */
    if (!is_wkday(s) || s[7] != ' ' || s[10] != ' ' || s[19] != ' ')
      return -1;
    tm.tm_mon = find_month(s + 4);
    tm.tm_mday = s[8] == ' ' ? digits(s + 9, 1) : digits(s + 8, 2);
    if (parse_time(s + 11, &tm) < 0)
      return -1;
    return finish(&tm, digits(s + 20, 4), t);
  }
  for (int i = 0; i < 7; i++) { /* Sunday, 06-Nov-94 08:49:37 GMT */
    size_t n = strlen(weekday_long[i]);
    if (len != n + 24 || memcmp(s, weekday_long[i], n) != 0)
      continue;
    const char *p = s + n;
    if (p[0] != ',' || p[1] != ' ' || p[4] != '-' || p[8] != '-' ||
        p[11] != ' ' || memcmp(p + 20, " GMT", 4) != 0)
      return -1;
    tm.tm_mday = digits(p + 2, 2);
    tm.tm_mon = find_month(p + 5);
    int yy = digits(p + 9, 2);
    if (yy < 0 || parse_time(p + 12, &tm) < 0)
      return -1;
    return finish(&tm, expand_year(yy), t);
  }
  return -1;
}
