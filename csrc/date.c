#define _GNU_SOURCE
#include "httpdate.h"
#include "util.h"

#include <string.h>
#include <time.h>

/* Each thread keeps its own copy of the Date line and rebuilds it when the
 * second changes: no lock and no sharing between loops or host threads.
 * CLOCK_REALTIME_COARSE is a vDSO read, cheaper than time(). */
static _Thread_local char date_line[PISTON_DATE_LINE_LEN + 1];
static _Thread_local time_t date_sec = -1;

const char *piston__date_line(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  if (ts.tv_sec != date_sec) {
    char d[30];
    piston__http_date_format(ts.tv_sec, d);
    memcpy(date_line, "Date: ", 6);
    memcpy(date_line + 6, d, 29);
    memcpy(date_line + 35, "\r\n", 3);
    date_sec = ts.tv_sec;
  }
  return date_line;
}
