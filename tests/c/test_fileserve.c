#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "fileserve.h"

/* Every file gets this mtime, so ETag and Last-Modified are fixed bytes. */
#define MTIME 784111777 /* 0x2ebc98a1 */
#define LM "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
#define ET(size) "ETag: \"2ebc98a1-" size "\"\r\n"
#define ETAG(size) "\"2ebc98a1-" size "\""
#define AR "Accept-Ranges: bytes\r\n"
#define TXT "Content-Type: text/plain; charset=utf-8\r\n"
#define HTML "Content-Type: text/html; charset=utf-8\r\n"
#define CSS "Content-Type: text/css; charset=utf-8\r\n"
#define HELLO TXT LM ET("c") AR  /* hello.txt: "hello world\n" */
#define INDEX HTML LM ET("a") AR /* sub/index.html: "<p>sub</p>" */
#define NOT_MODIFIED LM ET("c")

typedef struct {
  const char *path, *inm, *ims, *range, *ifr;
  int status;
  int fallback_status; /* without openat2, when it differs: no symlinks */
  unsigned off, len;
  const char *hdr, *body;
} fcase;

static const fcase cases[] = {
    /* plain files and encodings */
    {.path = "/hello.txt",
     .status = 200,
     .len = 12,
     .hdr = HELLO,
     .body = "hello world\n"},
    {.path = "/%68ello%2etxt", .status = 200, .len = 12, .hdr = HELLO},
    {.path = "/a%20b.css",
     .status = 200,
     .len = 6,
     .hdr = CSS LM ET("6") AR,
     .body = "body{}"},
    {.path = "/%C3%BC.txt",
     .status = 200,
     .len = 1,
     .hdr = TXT LM ET("1") AR,
     .body = "u"},
    {.path = "/%c3%bc.txt", .status = 200, .len = 1},
    {.path = "/empty.txt", .status = 200, .len = 0, .hdr = TXT LM ET("0") AR},
    {.path = "/missing", .status = 404},
    {.path = "/sub/missing.html", .status = 404},
    {.path = "hello.txt", .status = 404}, /* no leading slash */
    {.path = "/fifo", .status = 404},     /* and no hang in open() */
    {.path = "/hello.txt/", .status = 404},
    /* bad escapes and forbidden bytes */
    {.path = "/%zz", .status = 404},
    {.path = "/hello.tx%7", .status = 404},
    {.path = "/hello.txt%", .status = 404},
    {.path = "/%g4hello.txt", .status = 404},
    {.path = "/hello.txt%00", .status = 404},
    {.path = "/hello.txt%00.png", .status = 404},
    {.path = "/sub%2findex.html", .status = 404},
    {.path = "/sub%2Findex.html", .status = 404},
    {.path = "/sub\\index.html", .status = 404},
    {.path = "/sub%5cindex.html", .status = 404},
    /* dot segments, plain or encoded */
    {.path = "/../hello.txt", .status = 404},
    {.path = "/..", .status = 404},
    {.path = "/sub/..", .status = 404},
    {.path = "/sub/../hello.txt", .status = 404},
    {.path = "/%2e%2e/hello.txt", .status = 404},
    {.path = "/%2E%2e/hello.txt", .status = 404},
    {.path = "/sub/%2e%2e/hello.txt", .status = 404},
    {.path = "/sub/.%2e/hello.txt", .status = 404},
    {.path = "/./hello.txt", .status = 404},
    {.path = "/%2e/hello.txt", .status = 404},
    {.path = "/%2e%2e%2fhello.txt", .status = 404},
    {.path = "/..%5chello.txt", .status = 404},
    /* repeated slashes collapse */
    {.path = "//sub//index.html", .status = 200, .len = 10, .hdr = INDEX},
    {.path = "///hello.txt", .status = 200, .len = 12, .hdr = HELLO},
    /* symlinks: out never, in only with openat2 */
    {.path = "/link_out.txt", .status = 404},
    {.path = "/abs_out.txt", .status = 404},
    {.path = "/link_up/outside.txt", .status = 404},
    {.path = "/abs_in.txt", .status = 404}, /* absolute: refused even inside */
    {.path = "/link_in.txt",
     .status = 200,
     .fallback_status = 404,
     .len = 12,
     .hdr = HELLO,
     .body = "hello world\n"},
    {.path = "/link_in_dir/index.html",
     .status = 200,
     .fallback_status = 404,
     .len = 10,
     .hdr = INDEX},
    {.path = "/sub/up_link.txt",
     .status = 200,
     .fallback_status = 404,
     .len = 12,
     .hdr = HELLO},
    /* directories */
    {.path = "/sub",
     .status = 200,
     .len = 10,
     .hdr = INDEX,
     .body = "<p>sub</p>"},
    {.path = "/sub/", .status = 200, .len = 10, .hdr = INDEX},
    {.path = "/link_in_dir/",
     .status = 200,
     .fallback_status = 404,
     .len = 10,
     .hdr = INDEX},
    {.path = "/noindex", .status = 404},
    {.path = "/noindex/", .status = 404},
    {.path = "/noindex/x.txt", .status = 200, .len = 1},
    {.path = "/dirindex/", .status = 404}, /* index.html is a directory */
    {.path = "", .status = 404},
    {.path = "/", .status = 404},
    /* conditionals */
    {.path = "/hello.txt",
     .inm = ETAG("c"),
     .status = 304,
     .hdr = NOT_MODIFIED},
    {.path = "/hello.txt",
     .inm = "W/" ETAG("c"),
     .status = 304,
     .hdr = NOT_MODIFIED},
    {.path = "/hello.txt",
     .inm = "\"x\", W/\"y\" ,  " ETAG("c") " ",
     .status = 304,
     .hdr = NOT_MODIFIED},
    {.path = "/hello.txt", .inm = "*", .status = 304, .hdr = NOT_MODIFIED},
    {.path = "/hello.txt",
     .inm = "\"2ebc98a1-d\"",
     .status = 200,
     .len = 12,
     .hdr = HELLO},
    {.path = "/hello.txt", .inm = "2ebc98a1-c", .status = 200, .len = 12},
    {.path = "/hello.txt", .inm = "\"2ebc98a1-c", .status = 200, .len = 12},
    {.path = "/hello.txt",
     .inm = "\"other\"",
     .ims = "Sun, 06 Nov 1994 08:49:37 GMT",
     .status = 200,
     .len = 12},
    {.path = "/hello.txt",
     .ims = "Sun, 06 Nov 1994 08:49:37 GMT",
     .status = 304,
     .hdr = NOT_MODIFIED},
    {.path = "/hello.txt",
     .ims = "Sunday, 06-Nov-94 08:49:37 GMT",
     .status = 304},
    {.path = "/hello.txt",
     .ims = "Mon, 07 Nov 1994 00:00:00 GMT",
     .status = 304},
    {.path = "/hello.txt",
     .ims = "Sun, 06 Nov 1994 08:49:36 GMT",
     .status = 200,
     .len = 12},
    {.path = "/hello.txt", .ims = "yesterday", .status = 200, .len = 12},
    {.path = "/hello.txt",
     .inm = ETAG("c"),
     .range = "bytes=0-1",
     .status = 304},
    /* ranges */
    {.path = "/hello.txt",
     .range = "bytes=0-4",
     .status = 206,
     .len = 5,
     .hdr = HELLO "Content-Range: bytes 0-4/12\r\n",
     .body = "hello"},
    {.path = "/hello.txt",
     .range = "bytes=6-",
     .status = 206,
     .off = 6,
     .len = 6,
     .hdr = HELLO "Content-Range: bytes 6-11/12\r\n",
     .body = "world\n"},
    {.path = "/hello.txt",
     .range = "bytes=-6",
     .status = 206,
     .off = 6,
     .len = 6,
     .hdr = HELLO "Content-Range: bytes 6-11/12\r\n"},
    {.path = "/hello.txt",
     .range = "bytes=-100",
     .status = 206,
     .len = 12,
     .hdr = HELLO "Content-Range: bytes 0-11/12\r\n"},
    {.path = "/hello.txt",
     .range = "bytes=5-100",
     .status = 206,
     .off = 5,
     .len = 7,
     .hdr = HELLO "Content-Range: bytes 5-11/12\r\n"},
    {.path = "/hello.txt",
     .range = "bytes=11-11",
     .status = 206,
     .off = 11,
     .len = 1,
     .body = "\n"},
    {.path = "/hello.txt",
     .range = "bytes=0-0",
     .status = 206,
     .len = 1,
     .body = "h"},
    {.path = "/hello.txt", .range = "BYTES=0-1", .status = 206, .len = 2},
    {.path = "/hello.txt",
     .range = " bytes=1-2 ",
     .status = 206,
     .off = 1,
     .len = 2},
    {.path = "/hello.txt", .range = "bytes=0-1,", .status = 206, .len = 2},
    {.path = "/hello.txt",
     .range = "bytes=0-99999999999999999999999",
     .status = 206,
     .len = 12},
    {.path = "/hello.txt",
     .range = "bytes=-99999999999999999999999",
     .status = 206,
     .len = 12},
    {.path = "/hello.txt",
     .range = "bytes=12-",
     .status = 416,
     .hdr = "Content-Range: bytes */12\r\n"},
    {.path = "/hello.txt",
     .range = "bytes=100-200",
     .status = 416,
     .hdr = "Content-Range: bytes */12\r\n"},
    {.path = "/hello.txt", .range = "bytes=-0", .status = 416},
    {.path = "/hello.txt",
     .range = "bytes=99999999999999999999999-",
     .status = 416},
    {.path = "/empty.txt",
     .range = "bytes=0-",
     .status = 416,
     .hdr = "Content-Range: bytes */0\r\n"},
    {.path = "/empty.txt", .range = "bytes=-1", .status = 416},
    /* ignored Range headers: the whole file */
    {.path = "/hello.txt",
     .range = "bytes=0-1,3-4",
     .status = 200,
     .len = 12,
     .hdr = HELLO},
    {.path = "/hello.txt", .range = "bytes=0-1, -2", .status = 200, .len = 12},
    {.path = "/hello.txt", .range = "items=0-1", .status = 200, .len = 12},
    {.path = "/hello.txt", .range = "bytes 0-1", .status = 200, .len = 12},
    {.path = "/hello.txt", .range = "bytes=5-2", .status = 200, .len = 12},
    {.path = "/hello.txt", .range = "bytes=-", .status = 200, .len = 12},
    {.path = "/hello.txt", .range = "bytes=", .status = 200, .len = 12},
    {.path = "/hello.txt", .range = "bytes=abc", .status = 200, .len = 12},
    {.path = "/hello.txt", .range = "bytes=+1-2", .status = 200, .len = 12},
    {.path = "/hello.txt", .range = "bytes=0x1-2", .status = 200, .len = 12},
    {.path = "/hello.txt", .range = "bytes=1-2x", .status = 200, .len = 12},
    {.path = "/hello.txt", .range = "bytes=1--2", .status = 200, .len = 12},
    /* If-Range */
    {.path = "/hello.txt",
     .range = "bytes=0-4",
     .ifr = ETAG("c"),
     .status = 206,
     .len = 5},
    {.path = "/hello.txt",
     .range = "bytes=0-4",
     .ifr = "Sun, 06 Nov 1994 08:49:37 GMT",
     .status = 206,
     .len = 5},
    {.path = "/hello.txt",
     .range = "bytes=0-4",
     .ifr = "W/" ETAG("c"),
     .status = 200,
     .len = 12},
    {.path = "/hello.txt",
     .range = "bytes=0-4",
     .ifr = "\"other\"",
     .status = 200,
     .len = 12},
    {.path = "/hello.txt",
     .range = "bytes=0-4",
     .ifr = "Mon, 07 Nov 1994 08:49:37 GMT",
     .status = 200,
     .len = 12},
    {.path = "/hello.txt",
     .range = "bytes=0-4",
     .ifr = "junk",
     .status = 200,
     .len = 12},
    {.path = "/hello.txt",
     .range = "bytes=50-",
     .ifr = "\"other\"",
     .status = 200,
     .len = 12},
};

static piston_str S(const char *s) {
  piston_str r = {s, s ? strlen(s) : 0};
  return r;
}

static void run_case(const piston__mount *m, const fcase *c, int fallback) {
  piston__file_cond cond = {S(c->inm), S(c->ims), S(c->range), S(c->ifr)};
  piston__file_reply r;
  memset(&r, 0x5a, sizeof r);
  int want = fallback && c->fallback_status ? c->fallback_status : c->status;
  int failed = check_failed_;
  CHECK_EQ_INT(piston__file_serve(m, S(c->path), &cond, &r), 0);
  CHECK_EQ_INT(r.status, want);
  if (want == 200 || want == 206) {
    CHECK(r.fd >= 0);
    CHECK_EQ_INT(r.offset, c->off);
    CHECK_EQ_INT(r.length, c->len);
  } else {
    CHECK_EQ_INT(r.fd, -1);
  }
  if (want == 404)
    CHECK_EQ_INT(r.headers_len, 0);
  else if (c->hdr)
    CHECK_EQ_MEM(r.headers, r.headers_len, c->hdr);
  if (r.fd >= 0 && c->body) {
    char buf[64] = {0};
    ssize_t n = pread(r.fd, buf, sizeof buf, (off_t)r.offset);
    CHECK(n >= (ssize_t)r.length);
    CHECK_EQ_MEM(buf, r.length, c->body);
  }
  if (r.fd >= 0)
    close(r.fd);
  if (check_failed_ != failed)
    fprintf(stderr, "  in case path=\"%s\" range=\"%s\"%s\n", c->path,
            c->range ? c->range : "", fallback ? " (fallback)" : "");
}

static void put_file(int dirfd, const char *name, const char *body) {
  int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  CHECK(fd >= 0);
  CHECK_EQ_INT(write(fd, body, strlen(body)), strlen(body));
  close(fd);
}

static void touch_all(int dirfd, const char *const *names, size_t n) {
  struct timespec ts[2] = {{MTIME, 0}, {MTIME, 0}};
  for (size_t i = 0; i < n; i++)
    CHECK_EQ_INT(utimensat(dirfd, names[i], ts, AT_SYMLINK_NOFOLLOW), 0);
}

/* Serves a path of n copies of seg: never more than a 404. */
static void long_path(const piston__mount *m, const char *seg, size_t n) {
  size_t sl = strlen(seg);
  char *p = malloc(n * sl + 1);
  for (size_t i = 0; i < n; i++)
    memcpy(p + i * sl, seg, sl);
  piston_str s = {p, n * sl};
  piston__file_reply r;
  CHECK_EQ_INT(piston__file_serve(m, s, NULL, &r), 0);
  CHECK_EQ_INT(r.status, 404);
  CHECK_EQ_INT(r.fd, -1);
  free(p);
}

int main(void) {
  char base[] = "/tmp/piston-fs-XXXXXX", root[64], path[128];
  CHECK(mkdtemp(base) != NULL);
  snprintf(root, sizeof root, "%s/root", base);
  CHECK_EQ_INT(mkdir(root, 0755), 0);
  int bfd = open(base, O_PATH | O_DIRECTORY);
  int rfd = open(root, O_PATH | O_DIRECTORY);
  put_file(bfd, "outside.txt", "secret\n");
  put_file(rfd, "hello.txt", "hello world\n");
  put_file(rfd, "empty.txt", "");
  put_file(rfd, "a b.css", "body{}");
  put_file(rfd, "\xc3\xbc.txt", "u");
  CHECK_EQ_INT(mkfifoat(rfd, "fifo", 0644), 0);
  CHECK_EQ_INT(mkdirat(rfd, "sub", 0755), 0);
  put_file(rfd, "sub/index.html", "<p>sub</p>");
  CHECK_EQ_INT(mkdirat(rfd, "noindex", 0755), 0);
  put_file(rfd, "noindex/x.txt", "x");
  CHECK_EQ_INT(mkdirat(rfd, "dirindex", 0755), 0);
  CHECK_EQ_INT(mkdirat(rfd, "dirindex/index.html", 0755), 0);
  CHECK_EQ_INT(symlinkat("../outside.txt", rfd, "link_out.txt"), 0);
  snprintf(path, sizeof path, "%s/outside.txt", base);
  CHECK_EQ_INT(symlinkat(path, rfd, "abs_out.txt"), 0);
  CHECK_EQ_INT(symlinkat("..", rfd, "link_up"), 0);
  snprintf(path, sizeof path, "%s/hello.txt", root);
  CHECK_EQ_INT(symlinkat(path, rfd, "abs_in.txt"), 0);
  CHECK_EQ_INT(symlinkat("hello.txt", rfd, "link_in.txt"), 0);
  CHECK_EQ_INT(symlinkat("sub", rfd, "link_in_dir"), 0);
  CHECK_EQ_INT(symlinkat("../hello.txt", rfd, "sub/up_link.txt"), 0);
  static const char *const files[] = {
      "hello.txt", "empty.txt",      "a b.css",       "\xc3\xbc.txt",
      "sub",       "sub/index.html", "noindex/x.txt", "link_in.txt"};
  touch_all(rfd, files, sizeof files / sizeof files[0]);

  piston__mount m;
  CHECK_EQ_INT(piston__mount_open(&m, "/nonexistent/dir"), PISTON_EINVAL);
  CHECK_EQ_INT(m.dirfd, -1);
  snprintf(path, sizeof path, "%s/hello.txt", root);
  CHECK_EQ_INT(piston__mount_open(&m, path), PISTON_EINVAL);
  CHECK_EQ_INT(piston__mount_open(&m, ""), PISTON_EINVAL);
  CHECK_EQ_INT(piston__mount_open(&m, root), 0);
  CHECK(m.dirfd >= 0);

  int fd_mark = dup(0); /* the lowest free fd: any leak moves it */
  close(fd_mark);
  int had_openat2 = !piston__fileserve_no_openat2;
  for (int fallback = 0; fallback < 2; fallback++) {
    piston__fileserve_no_openat2 = fallback || !had_openat2;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
      run_case(&m, &cases[i], fallback || !had_openat2);
    long_path(&m, "/a", PATH_MAX);       /* past PATH_MAX once decoded */
    long_path(&m, "/%61", PATH_MAX / 4); /* fits once decoded; missing */
    long_path(&m, "/", 2 * PATH_MAX);    /* collapses to "/": no index */
    char seg[300];
    memset(seg, 'a', sizeof seg - 1);
    seg[0] = '/';
    seg[sizeof seg - 1] = '\0';
    long_path(&m, seg, 1); /* a name past NAME_MAX */
  }
  piston__fileserve_no_openat2 = !had_openat2;
  int fd_after = dup(0);
  close(fd_after);
  CHECK_EQ_INT(fd_after, fd_mark);
  CHECK(had_openat2); /* the kernel here has it; the fallback ran anyway */

  piston__mount_close(&m);
  CHECK_EQ_INT(m.dirfd, -1);
  close(rfd);
  close(bfd);
  snprintf(path, sizeof path, "rm -rf '%s'", base);
  CHECK_EQ_INT(system(path), 0);
  return CHECK_DONE();
}
