/* The event loop: one epoll set per thread, holding this loop's listening
 * sockets, its connections, an eventfd inbox for posts from other threads and
 * a timerfd. A pass (piston_loop_poll) handles what epoll reports, runs the
 * connections that have work, tells the host the batch ended, and flushes
 * every connection's output once. */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

_Thread_local piston_loop *piston__current_loop;

#define MAX_EVENTS 256
#define ACCEPT_BUDGET 64
#define RBUF_CACHE 64

static int sys_err(int e) {
  switch (e) {
  case EADDRINUSE: return PISTON_EADDRINUSE;
  case EADDRNOTAVAIL: return PISTON_EADDRNOTAVAIL;
  case EACCES:
  case EPERM: return PISTON_EACCES;
  case ENOMEM:
  case ENOBUFS: return PISTON_ENOMEM;
  default: return PISTON_ESYS;
  }
}

/* ---- listening sockets ---- */

/* SO_REUSEPORT lets any process of the same user join a port, so a second
 * server started by mistake would silently share it. Before its first loop
 * binds, a server checks with a plain bind that the port is free. */
static int probe_free(const struct addrinfo *ai) {
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return sys_err(errno);
  int one = 1, rc = 0;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ai->ai_family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0)
    rc = sys_err(errno);
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
  pthread_mutex_unlock(&srv->lock);
  struct addrinfo *ai = NULL;
  if (getaddrinfo(spec->host, port, &hints, &ai) != 0 || !ai)
    return PISTON_ERESOLVE;
  if (probe) {
    int rc = probe_free(ai);
    if (rc < 0) {
      freeaddrinfo(ai);
      return rc;
    }
  }
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    freeaddrinfo(ai);
    return sys_err(errno);
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  /* one socket per loop: the kernel spreads connections across loops */
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (ai->ai_family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  int rc = 0;
  if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
      listen(fd, (int)srv->opt[PISTON_OPT_BACKLOG]) != 0)
    rc = sys_err(errno);
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
    return sys_err(errno);
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
    int rc = sys_err(errno);
    close(fd);
    return rc;
  }
  return fd;
}

static int open_listener(piston_server *srv, piston__listen_spec *spec,
                         piston__listener *out) {
  out->tag = TAG_LISTENER;
  out->shared = spec->kind != LISTEN_TCP;
  if (spec->kind == LISTEN_TCP) {
    int fd = bind_tcp(srv, spec);
    if (fd < 0)
      return fd;
    out->fd = fd;
    return 0;
  }
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
  out->fd = spec->shared_fd;
  pthread_mutex_unlock(&srv->lock);
  return rc;
}

static void listeners_watch(piston_loop *l, bool on) {
  for (size_t i = 0; i < l->nlisteners; i++) {
    piston__listener *li = &l->listeners[i];
    if (li->in_epoll == on || li->fd < 0)
      continue;
    if (on) {
      /* EPOLLEXCLUSIVE: a socket shared by loops wakes one of them */
      struct epoll_event ev = {.events =
                                   EPOLLIN | (li->shared ? EPOLLEXCLUSIVE : 0),
                               .data.ptr = li};
      epoll_ctl(l->epfd, EPOLL_CTL_ADD, li->fd, &ev);
    } else {
      epoll_ctl(l->epfd, EPOLL_CTL_DEL, li->fd, NULL);
    }
    li->in_epoll = on;
  }
  l->accepting = on;
}

static void listeners_close(piston_loop *l) {
  listeners_watch(l, false);
  for (size_t i = 0; i < l->nlisteners; i++) {
    if (!l->listeners[i].shared && l->listeners[i].fd >= 0)
      close(l->listeners[i].fd);
    l->listeners[i].fd = -1;
  }
}

/* ---- creation ---- */

piston_loop *piston_loop_new(piston_server *srv, int *err) {
  int e = 0;
  piston_loop *l = calloc(1, sizeof *l);
  if (!l) {
    if (err)
      *err = PISTON_ENOMEM;
    return NULL;
  }
  l->srv = srv;
  l->inbox_tag = TAG_INBOX;
  l->timer_tag = TAG_TIMER;
  l->evfd = l->tfd = -1;
  pthread_mutex_init(&l->inbox_lock, NULL);
  l->epfd = epoll_create1(EPOLL_CLOEXEC);
  l->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  l->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  l->rbuf_free = calloc(RBUF_CACHE, sizeof *l->rbuf_free);
  if (l->epfd < 0 || l->evfd < 0 || l->tfd < 0 || !l->rbuf_free) {
    e = l->rbuf_free ? sys_err(errno) : PISTON_ENOMEM;
    goto fail;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &l->inbox_tag};
  epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->evfd, &ev);
  ev.data.ptr = &l->timer_tag;
  epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->tfd, &ev);
  atomic_fetch_add(&srv->nloops, 1);
  for (size_t i = 0; i < srv->nlisten; i++) {
    l->listeners[i].fd = -1;
    e = open_listener(srv, &srv->listen[i], &l->listeners[i]);
    if (e < 0) {
      l->nlisteners = i;
      listeners_close(l);
      atomic_fetch_sub(&srv->nloops, 1);
      goto fail;
    }
  }
  l->nlisteners = srv->nlisten;
  for (int k = 0; k < TIMER__COUNT; k++)
    l->timers[k].head = l->timers[k].tail = NULL;
  l->now_ms = piston__now_ms();
  listeners_watch(l, true);
  return l;
fail:
  if (l->epfd >= 0)
    close(l->epfd);
  if (l->evfd >= 0)
    close(l->evfd);
  if (l->tfd >= 0)
    close(l->tfd);
  free(l->rbuf_free);
  pthread_mutex_destroy(&l->inbox_lock);
  free(l);
  if (err)
    *err = e;
  return NULL;
}

int piston_loop_fd(const piston_loop *l) {
  return l->epfd;
}

size_t piston_loop_connections(const piston_loop *l) {
  return l->nconns;
}

/* ---- read buffers: kept per loop so that an idle connection holds none ----
 */

uint32_t piston__rbuf_size(const piston_server *srv) {
  /* a whole head must fit, plus room to read body bytes behind it */
  return (uint32_t)srv->opt[PISTON_OPT_MAX_HEAD_SIZE] + 16 * 1024;
}

char *piston__rbuf_get(piston_loop *l) {
  if (l->nrbuf_free > 0)
    return l->rbuf_free[--l->nrbuf_free];
  return malloc(piston__rbuf_size(l->srv));
}

void piston__rbuf_put(piston_loop *l, char *buf) {
  if (l->nrbuf_free < RBUF_CACHE)
    l->rbuf_free[l->nrbuf_free++] = buf;
  else
    free(buf);
}

/* ---- accepting ---- */

void piston__loop_conn_closed(piston_loop *l) {
  l->nconns--;
  if (!l->accepting && !l->stopping && !l->accept_resume_ms &&
      l->nconns < (size_t)l->srv->opt[PISTON_OPT_MAX_CONNECTIONS])
    listeners_watch(l, true);
}

static void accept_some(piston_loop *l, piston__listener *li) {
  for (int i = 0; i < ACCEPT_BUDGET; i++) {
    if (l->nconns >= (size_t)l->srv->opt[PISTON_OPT_MAX_CONNECTIONS]) {
      listeners_watch(l, false);
      return;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = accept4(li->fd, (struct sockaddr *)&ss, &len,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
          errno == ENOMEM) {
        /* Out of descriptors: stop accepting for a moment rather than spin
         * on a listener that stays readable. */
        piston__log("accept: %s; pausing accepts for 100 ms", strerror(errno));
        listeners_watch(l, false);
        l->accept_resume_ms = l->now_ms + 100;
      } else if (errno != EAGAIN) {
        piston__log("accept: %s", strerror(errno));
      }
      return;
    }
    piston__conn_accepted(l, fd, &ss, len);
  }
}

/* ---- posts from other threads ---- */

void piston__loop_wake(piston_loop *l) {
  uint64_t one = 1;
  ssize_t n = write(l->evfd, &one, sizeof one);
  (void)n; /* EAGAIN means the counter is already non-zero: awake anyway */
}

void piston__loop_post(piston_loop *l, piston_req *req) {
  pthread_mutex_lock(&l->inbox_lock);
  bool was_empty = l->inbox == NULL;
  if (!req->in_inbox) {
    req->in_inbox = true;
    atomic_fetch_add(&req->refs, 1); /* the inbox holds the handle */
    req->inbox_next = l->inbox;
    l->inbox = req;
  }
  pthread_mutex_unlock(&l->inbox_lock);
  /* a burst of posts wakes the loop once */
  if (was_empty)
    piston__loop_wake(l);
}

static void drain_inbox(piston_loop *l) {
  uint64_t v;
  ssize_t n = read(l->evfd, &v, sizeof v);
  (void)n;
  pthread_mutex_lock(&l->inbox_lock);
  piston_req *list = l->inbox;
  l->inbox = NULL;
  pthread_mutex_unlock(&l->inbox_lock);
  /* A request stays marked in_inbox until it is taken from this list, so a
   * post that races with us finds it marked and only adds to its post queue
   * (which apply_post below then sees); clearing the mark and reading the
   * link happen together under the lock, so a re-post cannot rewrite a link
   * we have yet to follow. Order across requests does not matter; each
   * request's own data is in order in its post queue. */
  while (list) {
    pthread_mutex_lock(&l->inbox_lock);
    piston_req *r = list;
    list = r->inbox_next;
    r->in_inbox = false;
    pthread_mutex_unlock(&l->inbox_lock);
    piston__req_apply_post(r);
    piston_req_release(r);
  }
}

/* ---- stopping ---- */

void piston_loop_stop(piston_loop *l, int deadline_ms) {
  /* only atomics and write(2): callable from a signal handler */
  atomic_store(&l->stop_deadline_ms, deadline_ms < 0 ? 0 : deadline_ms);
  atomic_store(&l->stop_requested, 1);
  piston__loop_wake(l);
}

void piston_loop_close_idle(piston_loop *l) {
  atomic_store(&l->close_idle_requested, 1);
  piston__loop_wake(l);
}

static void close_idle(piston_loop *l) {
  for (piston__conn *c = l->all, *next; c; c = next) {
    next = c->anext;
    if (piston__conn_is_idle(c))
      piston__conn_close(c);
  }
}

static void begin_stop(piston_loop *l) {
  l->stopping = true;
  l->stop_at_ms = l->now_ms + (uint64_t)atomic_load(&l->stop_deadline_ms);
  l->accept_resume_ms = 0;
  listeners_close(l);
  /* Connections without a request in flight close now; the others finish
   * their current response and close. */
  for (piston__conn *c = l->all, *next; c; c = next) {
    next = c->anext;
    piston__conn_stop(c);
  }
}

/* After the deadline, the survivors are closed. */
static void close_all(piston_loop *l) {
  while (l->all)
    piston__conn_close(l->all);
}

/* ---- the pass ---- */

static void run_pending(piston_loop *l) {
  piston__conn *list = l->pending;
  l->pending = NULL;
  while (list) {
    piston__conn *c = list;
    list = c->pending_next;
    c->in_pending = false;
    if (c->state != CONN_CLOSED)
      piston__conn_run(c);
  }
}

/* A flush can tell a host its queue drained, and the host may write again
 * at once: repeat while that happens, a bounded number of times. */
static void flush_dirty(piston_loop *l) {
  for (int round = 0; l->dirty && round < 8; round++) {
    piston__conn *list = l->dirty;
    l->dirty = NULL;
    while (list) {
      piston__conn *c = list;
      list = c->dirty_next;
      c->in_dirty = false;
      if (c->state != CONN_CLOSED)
        piston__conn_flush(c);
    }
  }
}

static void free_dead(piston_loop *l) {
  /* closed conns may still sit in the pending list (work left for the next
   * pass): unlink them before freeing */
  piston__conn **pp = &l->pending;
  while (*pp) {
    if ((*pp)->state == CONN_CLOSED) {
      (*pp)->in_pending = false;
      *pp = (*pp)->pending_next;
    } else {
      pp = &(*pp)->pending_next;
    }
  }
  pp = &l->dirty;
  while (*pp) {
    if ((*pp)->state == CONN_CLOSED) {
      (*pp)->in_dirty = false;
      *pp = (*pp)->dirty_next;
    } else {
      pp = &(*pp)->dirty_next;
    }
  }
  while (l->dead) {
    piston__conn *c = l->dead;
    l->dead = c->tnext;
    free(c);
  }
}

static int pass(piston_loop *l, int timeout_ms) {
  struct epoll_event evs[MAX_EVENTS];
  int n = epoll_wait(l->epfd, evs, MAX_EVENTS, timeout_ms);
  if (n < 0 && errno != EINTR)
    return sys_err(errno);
  piston__current_loop = l;
  l->now_ms = piston__now_ms();
  for (int i = 0; i < n; i++) {
    uint8_t *tag = evs[i].data.ptr;
    switch (*tag) {
    case TAG_CONN:
      piston__conn_on_io((piston__conn *)(void *)tag, evs[i].events);
      break;
    case TAG_LISTENER: accept_some(l, (piston__listener *)(void *)tag); break;
    case TAG_INBOX: drain_inbox(l); break;
    case TAG_TIMER: {
      uint64_t v;
      ssize_t r = read(l->tfd, &v, sizeof v);
      (void)r;
      l->timer_armed_ms = 0;
      piston__timers_expire(l);
      if (l->accept_resume_ms && l->accept_resume_ms <= l->now_ms) {
        l->accept_resume_ms = 0;
        if (!l->stopping)
          listeners_watch(l, true);
      }
      break;
    }
    }
  }
  if (!l->stopping && atomic_load(&l->stop_requested))
    begin_stop(l);
  if (atomic_exchange(&l->close_idle_requested, 0))
    close_idle(l);
  run_pending(l);
  /* Each round gives the host its batch end, then runs what its responses
   * unblocked (pipelined requests behind them). Bounded so that a host
   * answering instantly cannot keep one pass going forever. */
  for (int round = 0; l->dispatched && round < 8; round++) {
    l->dispatched = false;
    if (l->srv->on_batch)
      l->srv->on_batch(l, l->srv->on_batch_ud);
    run_pending(l);
  }
  flush_dirty(l);
  if (l->stopping && l->nconns > 0 && l->now_ms >= l->stop_at_ms)
    close_all(l);
  free_dead(l);
  if (l->pending || l->dispatched || l->dirty)
    piston__loop_wake(l); /* work left for the next pass */
  if (l->stopping && l->nconns == 0)
    l->stopped = true;
  piston__timers_arm(l);
  piston__current_loop = NULL;
  return 0;
}

int piston_loop_poll(piston_loop *l) {
  if (l->stopped)
    return 0;
  int rc = pass(l, 0);
  if (rc < 0)
    return rc;
  return l->stopped ? 0 : 1;
}

int piston_loop_run(piston_loop *l) {
  while (!l->stopped) {
    int rc = pass(l, -1);
    if (rc < 0)
      return rc;
  }
  return 0;
}

void piston_loop_free(piston_loop *l) {
  if (!l)
    return;
  piston__current_loop = l;
  close_all(l);
  free_dead(l);
  piston__current_loop = NULL;
  drain_inbox(l);
  listeners_close(l);
  close(l->epfd);
  close(l->evfd);
  close(l->tfd);
  for (size_t i = 0; i < l->nrbuf_free; i++)
    free(l->rbuf_free[i]);
  free(l->rbuf_free);
  pthread_mutex_destroy(&l->inbox_lock);
  atomic_fetch_sub(&l->srv->nloops, 1);
  free(l);
}
