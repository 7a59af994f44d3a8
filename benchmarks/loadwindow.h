/* loadwindow.h: what the benchmarks' load generators (wsload.c, tlsload.c)
 * share: a monotonic clock, the server's CPU time (-P PID,...) and this
 * process's own, the measured window that takes both as it opens and as it
 * closes, and the latency percentiles. Included once, after the includer
 * has defined g_lat and g_nlat (the latency samples, in ns). */
#ifndef LOADWINDOW_H
#define LOADWINDOW_H

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* ---- CPU time of the server (-P) and of this process ---- */
static long g_pids[64];
static int g_npids;

static void parse_pids(const char *arg) {
  char *end;
  while (*arg && g_npids < 64) {
    g_pids[g_npids++] = strtol(arg, &end, 10);
    arg = *end == ',' ? end + 1 : end;
    if (end == arg && *arg)
      break;
  }
}

/* utime + stime of every -P process, in ms; -1 without -P */
static double server_cpu_ms(void) {
  if (!g_npids)
    return -1;
  double ticks = 0;
  for (int i = 0; i < g_npids; i++) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", g_pids[i]);
    FILE *f = fopen(path, "r");
    if (!f)
      continue; /* gone: the caller notices the server died */
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* the fields after "(comm)", which may hold spaces: state is field 3,
     * utime and stime are 14 and 15 */
    char *p = strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    if (p &&
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
               &ut, &st) == 2)
      ticks += (double)(ut + st);
  }
  return ticks * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

static double client_cpu_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The measured window: [start, end) after the warm-up, the CPU times
 * taken as it opens and as it closes. */
struct window {
  uint64_t start, end;
  double srv0, cli0, srv1, cli1;
  int open;
};

static struct window window_after(double warm, double secs) {
  struct window w = {0};
  w.start = now_ns() + (uint64_t)(warm * 1e9);
  w.end = w.start + (uint64_t)(secs * 1e9);
  return w;
}

/* Called before each wait: returns 1 once the window is over. */
static int window_tick(struct window *w) {
  uint64_t t = now_ns();
  if (!w->open && t >= w->start) {
    w->open = 1;
    w->srv0 = server_cpu_ms();
    w->cli0 = client_cpu_ms();
  }
  if (t < w->end)
    return 0;
  w->srv1 = server_cpu_ms();
  w->cli1 = client_cpu_ms();
  return 1;
}

/* The latency samples' median and 99th percentile, in us. */
static void percentiles(double *p50, double *p99) {
  qsort(g_lat, g_nlat, sizeof *g_lat, cmp_u64);
  *p50 = g_nlat ? (double)g_lat[g_nlat / 2] / 1e3 : 0;
  *p99 = g_nlat ? (double)g_lat[(size_t)((double)g_nlat * 0.99)] / 1e3 : 0;
}

#endif
