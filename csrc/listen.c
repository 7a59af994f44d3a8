/* Listening sockets: binding TCP addresses (one SO_REUSEPORT socket per
 * loop), Unix paths and inherited sockets (one socket for all loops). The
 * loop watches and accepts on what this returns. */
#define _GNU_SOURCE
#include "server.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* SO_REUSEPORT lets any process of the same user join a port, so a second
 * server started by mistake would silently share it. Before its first loop
 * binds, a server checks with a plain bind that the port is free. */
static int probe_free(const struct addrinfo *ai, int v6only) {
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return piston__sys_err(errno);
  int one = 1, rc = 0;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ai->ai_family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
  if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0)
    rc = piston__sys_err(errno);
  close(fd);
  return rc;
}

static int bind_tcp(piston_server *srv, piston__listen_spec *spec) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
  char port[8];
  pthread_mutex_lock(&srv->lock);
  snprintf(port, sizeof port, "%d", spec->port);
  bool probe =
      !spec->bound && spec->port != 0 && !srv->opt[PISTON_OPT_SHARE_PORT];
  int v6only = srv->opt[PISTON_OPT_IPV6_ONLY] != 0;
  pthread_mutex_unlock(&srv->lock);
  struct addrinfo *ai = NULL;
  if (getaddrinfo(spec->host, port, &hints, &ai) != 0 || !ai)
    return PISTON_ERESOLVE;
  if (probe) {
    int rc = probe_free(ai, v6only);
    if (rc < 0) {
      freeaddrinfo(ai);
      return rc;
    }
  }
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    freeaddrinfo(ai);
    return piston__sys_err(errno);
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  /* one socket per loop: the kernel spreads connections across loops */
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  /* set either way: the system's default (bindv6only) must not decide */
  if (ai->ai_family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
  int rc = 0;
  if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
      listen(fd, (int)srv->opt[PISTON_OPT_BACKLOG]) != 0)
    rc = piston__sys_err(errno);
  freeaddrinfo(ai);
  if (rc < 0) {
    close(fd);
    return rc;
  }
  pthread_mutex_lock(&srv->lock);
  spec->bound = true;
  if (spec->port == 0) { /* later loops join the port the kernel picked */
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
      spec->port = ntohs(ss.ss_family == AF_INET6
                             ? ((struct sockaddr_in6 *)&ss)->sin6_port
                             : ((struct sockaddr_in *)&ss)->sin_port);
  }
  pthread_mutex_unlock(&srv->lock);
  return fd;
}

static int bind_unix(piston_server *srv, piston__listen_spec *spec) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(spec->path) >= sizeof sa.sun_path)
    return PISTON_EINVAL;
  strcpy(sa.sun_path, spec->path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return piston__sys_err(errno);
  /* A socket file left by a dead server would make bind fail: replace it,
   * but never a file of another kind. */
  struct stat st;
  if (lstat(spec->path, &st) == 0 && S_ISSOCK(st.st_mode)) {
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool live =
        probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (probe >= 0)
      close(probe);
    if (live) {
      close(fd);
      return PISTON_EADDRINUSE;
    }
    unlink(spec->path);
  }
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      listen(fd, (int)srv->opt[PISTON_OPT_BACKLOG]) != 0) {
    int rc = piston__sys_err(errno);
    close(fd);
    return rc;
  }
  return fd;
}

int piston__listen_open(piston_server *srv, piston__listen_spec *spec,
                        bool *shared) {
  *shared = spec->kind != LISTEN_TCP;
  if (spec->kind == LISTEN_TCP)
    return bind_tcp(srv, spec);
  pthread_mutex_lock(&srv->lock);
  int rc = 0;
  if (spec->shared_fd < 0) {
    rc = bind_unix(srv, spec);
    if (rc >= 0) {
      spec->shared_fd = rc;
      spec->own_fd = true;
      rc = 0;
    }
  } else if (spec->kind == LISTEN_FD) {
    /* an inherited socket may be blocking; accept4 must never block */
    int fl = fcntl(spec->shared_fd, F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK))
      fcntl(spec->shared_fd, F_SETFL, fl | O_NONBLOCK);
  }
  if (rc == 0)
    rc = spec->shared_fd;
  pthread_mutex_unlock(&srv->lock);
  return rc;
}
