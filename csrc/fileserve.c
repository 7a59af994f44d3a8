#define _GNU_SOURCE
#include "fileserve.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "httpdate.h"
#include "piston.h"

/* Written only while configuring (mount open) and by tests. */
int piston__fileserve_no_openat2;

/* O_NONBLOCK: a FIFO or device left in the tree must not block the loop in
 * open(); on the regular files we keep it changes nothing. */
#define FILE_FLAGS (O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)

#ifdef SYS_openat2
static long openat2_beneath(int dirfd, const char *rel, int flags) {
  struct open_how how = {.flags = (uint64_t)flags,
                         .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
  return syscall(SYS_openat2, dirfd, rel, &how, sizeof how);
}
#else
static long openat2_beneath(int dirfd, const char *rel, int flags) {
  (void)dirfd, (void)rel, (void)flags;
  errno = ENOSYS;
  return -1;
}
#endif

int piston__mount_open(piston__mount *m, const char *dir) {
  m->dirfd = -1;
  if (!dir || !*dir)
    return PISTON_EINVAL;
  int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    switch (errno) {
    case ENOENT:
    case ENOTDIR:
    case ELOOP:
    case ENAMETOOLONG: return PISTON_EINVAL;
    case EACCES:
    case EPERM: return PISTON_EACCES;
    default: return PISTON_ESYS;
    }
  }
  /* Probe once: old kernels say ENOSYS, some seccomp profiles EPERM. Either
   * way per-request lookups then take the no-symlink path. */
  long probe = openat2_beneath(fd, ".", O_PATH | O_CLOEXEC);
  if (probe >= 0)
    close((int)probe);
  else if (errno == ENOSYS || errno == EPERM)
    piston__fileserve_no_openat2 = 1;
  m->dirfd = fd;
  return 0;
}

void piston__mount_close(piston__mount *m) {
  if (m->dirfd >= 0)
    close(m->dirfd);
  m->dirfd = -1;
}

/* Decodes the URL path into a relative file path ("a/b", "." for the root),
 * NUL-terminated. Returns its length, or -1 for anything that must be a 404.
 * Each raw segment is decoded on its own and checked after decoding, so no
 * encoding can smuggle in a "..", and an encoded '/' is refused rather than
 * allowed to add a level. */
static long decode_path(piston_str p, char *rel, size_t cap, int *trailing) {
  size_t i = 0, n = 0;
  *trailing = 0;
  if (p.len > 0 && p.ptr[0] != '/')
    return -1;
  while (i < p.len) {
    while (i < p.len && p.ptr[i] == '/')
      i++;
    if (i == p.len) {
      *trailing = 1;
      break;
    }
    if (n > 0)
      rel[n++] = '/';
    size_t end = i;
    while (end < p.len && p.ptr[end] != '/')
      end++;
    /* decoding never lengthens: the raw segment bounds the room needed */
    if (n + (end - i) + 2 > cap)
      return -1;
    ptrdiff_t len =
        piston_percent_decode(p.ptr + i, end - i, rel + n, PISTON_PCT_STRICT);
    if (len < 0 || memchr(rel + n, '/', (size_t)len) ||
        memchr(rel + n, '\\', (size_t)len) ||
        memchr(rel + n, '\0', (size_t)len))
      return -1;
    if (rel[n] == '.' && (len == 1 || (len == 2 && rel[n + 1] == '.')))
      return -1;
    n += (size_t)len;
    i = end;
  }
  if (n == 0)
    rel[n++] = '.';
  rel[n] = '\0';
  return (long)n;
}

/* Without openat2: refuse every symlink, one component at a time. Segments
 * are already free of "." and "..", so nothing else can climb out. */
static int open_nofollow(int dirfd, char *rel) {
  int fd = dirfd;
  char *seg = rel;
  for (;;) {
    char *slash = strchr(seg, '/');
    if (slash)
      *slash = '\0';
    int next = openat(fd, seg,
                      slash ? O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
                            : FILE_FLAGS | O_NOFOLLOW);
    int err = errno;
    if (slash)
      *slash = '/';
    if (fd != dirfd)
      close(fd);
    if (next < 0)
      return -err;
    if (!slash)
      return next;
    fd = next;
    seg = slash + 1;
  }
}

/* Returns an fd or -errno. */
static int open_beneath(int dirfd, char *rel) {
  if (!piston__fileserve_no_openat2) {
    int err = 0;
    /* EAGAIN: a rename raced a ".." inside a symlink; worth a retry. */
    for (int tries = 0; tries < 4; tries++) {
      long fd = openat2_beneath(dirfd, rel, FILE_FLAGS);
      if (fd >= 0)
        return (int)fd;
      err = errno;
      if (err != EAGAIN && err != EINTR)
        break;
    }
    if (err != ENOSYS)
      return -err;
  }
  return open_nofollow(dirfd, rel);
}

/* Not found, no permission, escaping, too long: all a plain 404. Only a
 * shortage of resources is the server's fault. */
static int open_error(int err) {
  if (err == EMFILE || err == ENFILE)
    return PISTON_ESYS;
  if (err == ENOMEM)
    return PISTON_ENOMEM;
  return 0;
}

static int is_ows(char c) {
  return c == ' ' || c == '\t';
}

static piston_str trim(piston_str s) {
  while (s.len > 0 && is_ows(s.ptr[0]))
    s.ptr++, s.len--;
  while (s.len > 0 && is_ows(s.ptr[s.len - 1]))
    s.len--;
  return s;
}

/* If-None-Match uses the weak comparison: W/ prefixes are ignored. A
 * malformed list matches nothing, so the client gets the full response. */
static int etag_listed(piston_str v, const char *etag, size_t n) {
  const char *p = v.ptr, *end = v.ptr + v.len;
  for (;;) {
    while (p < end && (is_ows(*p) || *p == ','))
      p++;
    if (p == end)
      return 0;
    if (*p == '*')
      return 1;
    if (end - p >= 2 && p[0] == 'W' && p[1] == '/')
      p += 2;
    if (p == end || *p != '"')
      return 0;
    const char *q = memchr(p + 1, '"', (size_t)(end - p - 1));
    if (!q)
      return 0;
    if ((size_t)(q + 1 - p) == n && memcmp(p, etag, n) == 0)
      return 1;
    p = q + 1;
  }
}

int piston__cond_not_modified(const piston__file_cond *c, const char *etag,
                              size_t etag_len, time_t mtime) {
  if (c->if_none_match.ptr)
    return etag_listed(trim(c->if_none_match), etag, etag_len);
  if (c->if_modified_since.ptr) {
    piston_str v = trim(c->if_modified_since);
    time_t t;
    if (piston__http_date_parse(v.ptr, v.len, &t) == 0)
      return mtime <= t;
  }
  return 0;
}

/* If-Range needs a strong match: a weak tag never equals ours. */
int piston__cond_if_range(piston_str v, const char *etag, size_t etag_len,
                          time_t mtime) {
  v = trim(v);
  if ((v.len > 0 && v.ptr[0] == '"') ||
      (v.len > 1 && v.ptr[0] == 'W' && v.ptr[1] == '/'))
    return v.len == etag_len && memcmp(v.ptr, etag, etag_len) == 0;
  time_t t;
  return piston__http_date_parse(v.ptr, v.len, &t) == 0 && t == mtime;
}

/* Digits only; saturates, so a huge first-pos is unsatisfiable and a huge
 * last-pos is clamped, as RFC 9110 asks, instead of wrapping. */
static size_t parse_u64(const char **pp, const char *end, uint64_t *v) {
  const char *p = *pp;
  uint64_t x = 0;
  while (p < end && *p >= '0' && *p <= '9') {
    unsigned d = (unsigned)(*p - '0');
    x = x > (UINT64_MAX - d) / 10 ? UINT64_MAX : x * 10 + d;
    p++;
  }
  size_t n = (size_t)(p - *pp);
  *pp = p;
  *v = x;
  return n;
}

/* 0: send the whole file; 1: send *first..*last; -1: unsatisfiable (416).
 * Several ranges, other units and bad syntax are ignored (RFC 9110 14.2). */
int piston__range_pick(piston_str range, uint64_t size, uint64_t *first,
                       uint64_t *last) {
  range = trim(range);
  const char *p = range.ptr, *end = p + range.len;
  if (range.len < 6 || strncasecmp(p, "bytes=", 6) != 0)
    return 0;
  p += 6;
  while (p < end && (is_ows(*p) || *p == ','))
    p++;
  uint64_t a, b;
  size_t na = parse_u64(&p, end, &a);
  if (p == end || *p != '-')
    return 0;
  p++;
  size_t nb = parse_u64(&p, end, &b);
  while (p < end && (is_ows(*p) || *p == ','))
    p++;
  if (p != end || (na == 0 && nb == 0) || (na && nb && b < a))
    return 0;
  if (na == 0) {
    if (b == 0 || size == 0)
      return -1;
    *first = b >= size ? 0 : size - b;
    *last = size - 1;
    return 1;
  }
  if (a >= size)
    return -1;
  *first = a;
  *last = nb == 0 || b >= size ? size - 1 : b;
  return 1;
}

/* The longest reply uses about 250 of the 512 bytes; the clamp is only a
 * guard. */
static void put(piston__file_reply *o, const char *s, size_t n) {
  size_t room = sizeof o->headers - o->headers_len;
  if (n > room)
    n = room;
  memcpy(o->headers + o->headers_len, s, n);
  o->headers_len += n;
}

static void put_str(piston__file_reply *o, const char *s) {
  put(o, s, strlen(s));
}

static size_t fmt_u64(char *buf, uint64_t v, unsigned base) {
  char tmp[20];
  size_t n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v % base];
    v /= base;
  } while (v);
  for (size_t i = 0; i < n; i++)
    buf[i] = tmp[n - 1 - i];
  return n;
}

static void put_u64(piston__file_reply *o, uint64_t v) {
  char buf[20];
  put(o, buf, fmt_u64(buf, v, 10));
}

static void respond(int fd, const struct stat *st, const char *name,
                    size_t name_len, const piston__file_cond *c,
                    piston__file_reply *out) {
  uint64_t size = (uint64_t)st->st_size;
  time_t mtime = st->st_mtim.tv_sec;
  char etag[40], lm[30];
  size_t etag_len = 0;
  etag[etag_len++] = '"';
  etag_len += fmt_u64(etag + etag_len, (uint64_t)mtime, 16);
  etag[etag_len++] = '-';
  etag_len += fmt_u64(etag + etag_len, size, 16);
  etag[etag_len++] = '"';
  piston__http_date_format(mtime, lm);
  out->size = size;

  if (c && piston__cond_not_modified(c, etag, etag_len, mtime)) {
    close(fd);
    out->status = 304;
    put_str(out, "Last-Modified: ");
    put(out, lm, 29);
    put_str(out, "\r\nETag: ");
    put(out, etag, etag_len);
    put_str(out, "\r\n");
    return;
  }
  uint64_t first = 0, last = 0;
  int r = 0;
  if (c && c->range.ptr &&
      (!c->if_range.ptr ||
       piston__cond_if_range(c->if_range, etag, etag_len, mtime)))
    r = piston__range_pick(c->range, size, &first, &last);
  if (r < 0) {
    close(fd);
    out->status = 416;
    put_str(out, "Content-Range: bytes */");
    put_u64(out, size);
    put_str(out, "\r\n");
    return;
  }
  out->status = r ? 206 : 200;
  out->fd = fd;
  out->offset = r ? first : 0;
  out->length = r ? last - first + 1 : size;
  put_str(out, "Content-Type: ");
  put_str(out, piston_mime_type(name, name_len));
  put_str(out, "\r\nLast-Modified: ");
  put(out, lm, 29);
  put_str(out, "\r\nETag: ");
  put(out, etag, etag_len);
  put_str(out, "\r\nAccept-Ranges: bytes\r\n");
  if (r) {
    put_str(out, "Content-Range: bytes ");
    put_u64(out, first);
    put(out, "-", 1);
    put_u64(out, last);
    put(out, "/", 1);
    put_u64(out, size);
    put_str(out, "\r\n");
  }
}

int piston__file_serve(const piston__mount *m, piston_str subpath,
                       const piston__file_cond *cond, piston__file_reply *out) {
  static const char index_html[] = "index.html";
  char rel[PATH_MAX];
  int trailing;
  out->status = 404;
  out->fd = -1;
  out->offset = out->length = out->size = 0;
  out->headers_len = 0;

  long n = decode_path(subpath, rel, sizeof rel, &trailing);
  if (n < 0)
    return 0;
  struct stat st;
  int fd = open_beneath(m->dirfd, rel);
  if (fd < 0)
    return open_error(-fd);
  if (fstat(fd, &st) < 0)
    goto fail;
  if (S_ISDIR(st.st_mode)) {
    close(fd);
    size_t at = (n == 1 && rel[0] == '.') ? 0 : (size_t)n + 1;
    if (at + sizeof index_html > sizeof rel)
      return 0;
    if (at > 0)
      rel[n] = '/';
    memcpy(rel + at, index_html, sizeof index_html);
    n = (long)(at + sizeof index_html - 1);
    fd = open_beneath(m->dirfd, rel);
    if (fd < 0)
      return open_error(-fd);
    if (fstat(fd, &st) < 0)
      goto fail;
  } else if (trailing) {
    /* "/file.txt/" names a directory that is not there. */
    close(fd);
    return 0;
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return 0;
  }
  respond(fd, &st, rel, (size_t)n, cond, out);
  return 0;
fail:
  close(fd);
  return PISTON_ESYS;
}
