/* A metrics region shared through a file (piston_metrics_open): processes
 * that did not fork from one another count into one region and any of
 * them renders the sum; a file of another layout, of another user's or
 * that others may write is refused. */
#define _GNU_SOURCE
#include "check.h"
#include "metrics.h"
#include "piston.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* GET 2xx responses summed in m's text */
static long get2xx(const piston_metrics *m) {
  char *text = NULL;
  long n = piston__metrics_render(m, NULL, &text);
  const char *key = "piston_requests_total{method=\"GET\",status=\"2xx\"} ";
  const char *at = n > 0 ? strstr(text, key) : NULL;
  long v = at ? strtol(at + strlen(key), NULL, 10) : -1;
  free(text);
  return v;
}

static void count(piston_metrics *m, int n) {
  piston__mslot *s = piston__metrics_slot(m);
  for (int i = 0; s && i < n; i++)
    piston__metrics_request(s, "GET", 3, 200, 100);
}

int main(void) {
  char dir[] = "/tmp/piston-metrics-test-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char path[128];
  snprintf(path, sizeof path, "%s/region", dir);

  piston_metrics *a = piston_metrics_open(path, 4);
  CHECK(a != NULL);
  /* another process, started on its own (an exec'd child is the same to
   * the region as a forked one: it opens the file by name) */
  pid_t child = fork();
  if (child == 0) {
    piston_metrics *c = piston_metrics_open(path, 4);
    count(c, 3);
    _exit(c ? 0 : 1);
  }
  int status = 0;
  CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) &&
        WEXITSTATUS(status) == 0);
  count(a, 2);
  CHECK_EQ_INT(get2xx(a), 5);
  /* a second mapping in this process sees the same counters */
  piston_metrics *b = piston_metrics_open(path, 4);
  CHECK(b != NULL && get2xx(b) == 5);
  piston_metrics_free(b);

  /* another layout */
  errno = 0;
  CHECK(piston_metrics_open(path, 8) == NULL && errno == EINVAL);
  /* a file others may write */
  CHECK(chmod(path, 0644) == 0);
  errno = 0;
  CHECK(piston_metrics_open(path, 4) == NULL && errno == EPERM);
  /* not a path */
  errno = 0;
  CHECK(piston_metrics_open(NULL, 4) == NULL && errno == EINVAL);

  piston_metrics_free(a);
  unlink(path);
  rmdir(dir);
  return CHECK_DONE();
}
