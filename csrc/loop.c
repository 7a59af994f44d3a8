/* The event loop: one epoll set per thread, holding this loop's listening
 * sockets, the objects it watches (connections, through piston__io's ops),
 * an eventfd inbox for posts from other threads and a timerfd. A pass
 * (piston_loop_poll) handles what epoll reports, runs what has work, tells
 * the host the batch ended, and flushes every dirty object's output once. */
#define _GNU_SOURCE
#include "accesslog.h"
#include "loop.h"
#include "tlsctx.h"
#include "util.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

_Thread_local piston_loop *piston__current_loop;

#define MAX_EVENTS 256
#define ACCEPT_BUDGET 64
#define RBUF_CACHE 64

/* ---- listening sockets ---- */

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

static uint64_t timer_duration(const piston_server *s, int kind) {
  switch (kind) {
  case TIMER_HEAD: return (uint64_t)s->opt[PISTON_OPT_HEAD_TIMEOUT_MS];
  case TIMER_BODY: return (uint64_t)s->opt[PISTON_OPT_BODY_TIMEOUT_MS];
  case TIMER_IDLE:
    /* A client told "timeout=N" may send its next request at N: closing
     * later than announced lets that request win the race instead of
     * meeting a reset (node:http waits the same second) */
    return (uint64_t)s->opt[PISTON_OPT_IDLE_TIMEOUT_MS] +
           (s->opt[PISTON_OPT_HEAD_STYLE] == 1 ? 1000 : 0);
  case TIMER_WRITE: return (uint64_t)s->opt[PISTON_OPT_WRITE_TIMEOUT_MS];
  case TIMER_HANDLER: return (uint64_t)s->opt[PISTON_OPT_HANDLER_TIMEOUT_MS];
  case TIMER_WS_PING: return (uint64_t)s->opt[PISTON_OPT_WS_PING_MS];
  default: return 2000; /* TIMER_LINGER */
  }
}

/* Builds the TLS contexts if a listener needs them and they are not yet
 * (the first loop does it); PISTON_ETLS if they cannot be. */
static int tls_ready(piston_server *s) {
  bool any = false;
  for (size_t i = 0; i < s->nlisten; i++)
    any = any || s->listen[i].tls;
  if (!any)
    return 0;
  pthread_mutex_lock(&s->lock);
  int rc = 0;
  if (!s->tls || piston__tlsconf_count(s->tls) == 0) {
    /* a TLS listener without a certificate: build says what is missing */
    if (!s->tls)
      s->tls = piston__tlsconf_new();
    rc = s->tls ? piston__tlsconf_build(s->tls) : PISTON_ENOMEM;
  } else if (!piston__tlsconf_built(s->tls)) {
    if (s->opt[PISTON_OPT_HTTP2])
      piston__tlsconf_default_alpn(s->tls, "h2,http/1.1");
    rc = piston__tlsconf_build(s->tls);
  }
  pthread_mutex_unlock(&s->lock);
  return rc;
}

piston_loop *piston_loop_new(piston_server *srv, int *err) {
  int e = 0;
  piston_loop *l = calloc(1, sizeof *l);
  if (!l) {
    if (err)
      *err = PISTON_ENOMEM;
    return NULL;
  }
  if ((e = tls_ready(srv)) < 0) {
    free(l);
    if (err)
      *err = e;
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
  /* a whole head must fit a read buffer, plus room for body bytes */
  size_t rbuf_size = (size_t)srv->opt[PISTON_OPT_MAX_HEAD_SIZE] + 16 * 1024;
  int pool_rc = piston__bufpool_init(&l->rbufs, rbuf_size, RBUF_CACHE);
  if (l->epfd < 0 || l->evfd < 0 || l->tfd < 0 || pool_rc < 0) {
    e = pool_rc < 0 ? pool_rc : piston__sys_err(errno);
    goto fail;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &l->inbox_tag};
  epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->evfd, &ev);
  ev.data.ptr = &l->timer_tag;
  epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->tfd, &ev);
  atomic_fetch_add(&srv->nloops, 1);
  for (size_t i = 0; i < srv->nlisten; i++) {
    piston__listener *li = &l->listeners[i];
    li->tag = TAG_LISTENER;
    li->fd = -1;
    e = piston__listen_open(srv, &srv->listen[i], &li->shared);
    if (e < 0) {
      l->nlisteners = i;
      listeners_close(l);
      atomic_fetch_sub(&srv->nloops, 1);
      goto fail;
    }
    li->fd = e;
    li->tls = srv->listen[i].tls;
    e = 0;
  }
  l->nlisteners = srv->nlisten;
  for (int k = 0; k < TIMER__COUNT; k++) {
    l->timers[k].head = l->timers[k].tail = NULL;
    l->timer_ms[k] = timer_duration(srv, k);
  }
  l->now_ms = piston__now_ms();
  piston__logbuf_init(&l->alog, srv->alog ? srv->alog->fd : 2);
  listeners_watch(l, true);
  return l;
fail:
  if (l->epfd >= 0)
    close(l->epfd);
  if (l->evfd >= 0)
    close(l->evfd);
  if (l->tfd >= 0)
    close(l->tfd);
  piston__bufpool_free(&l->rbufs);
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

/* ---- what the loop watches ---- */

int piston__loop_add(piston_loop *l, piston__io *io, int fd,
                     const piston__io_ops *ops) {
  io->tag = TAG_IO;
  io->ops = ops;
  io->loop = l;
  io->timer = TIMER_NONE;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                           .data.ptr = io};
  if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
    return piston__sys_err(errno);
  io->anext = l->all;
  io->aprev = NULL;
  if (l->all)
    l->all->aprev = io;
  l->all = io;
  l->nconns++;
  return 0;
}

/* Accepting pauses while the loop is full (MAX_CONNECTIONS) or has as many
 * TLS handshakes in progress as it may (their CPU is the bottleneck: new
 * clients wait in the kernel's queue rather than slow everyone down). */
static bool may_accept(const piston_loop *l) {
  return l->nconns < (size_t)l->srv->opt[PISTON_OPT_MAX_CONNECTIONS] &&
         l->tls_handshakes < (size_t)l->srv->opt[PISTON_OPT_TLS_MAX_HANDSHAKES];
}

static void maybe_resume_accepting(piston_loop *l) {
  if (!l->accepting && !l->stopping && !l->accept_resume_ms && may_accept(l))
    listeners_watch(l, true);
}

void piston__loop_remove(piston__io *io) {
  piston_loop *l = io->loop;
  assert(!io->dead);
  piston__timer_set(io, TIMER_NONE);
  if (io->aprev)
    io->aprev->anext = io->anext;
  else
    l->all = io->anext;
  if (io->anext)
    io->anext->aprev = io->aprev;
  io->dead = true;
  io->tnext = l->dead; /* destroyed at the end of the pass */
  l->dead = io;
  l->nconns--;
  maybe_resume_accepting(l);
}

bool piston__loop_handshake_begin(piston_loop *l) {
  if (l->tls_handshakes >= (size_t)l->srv->opt[PISTON_OPT_TLS_MAX_HANDSHAKES])
    return false; /* accept_some stops first; this is for a full batch */
  l->tls_handshakes++;
  return true;
}

void piston__loop_handshake_done(piston_loop *l) {
  assert(l->tls_handshakes > 0);
  l->tls_handshakes--;
  maybe_resume_accepting(l);
}

void piston__io_mark_pending(piston__io *io) {
  if (io->in_pending || io->dead)
    return;
  io->in_pending = true;
  io->pending_next = io->loop->pending;
  io->loop->pending = io;
}

void piston__io_mark_dirty(piston__io *io) {
  if (io->in_dirty || io->dead)
    return;
  io->in_dirty = true;
  io->dirty_next = io->loop->dirty;
  io->loop->dirty = io;
}

/* ---- accepting ---- */

static void accept_some(piston_loop *l, piston__listener *li) {
  for (int i = 0; i < ACCEPT_BUDGET; i++) {
    if (!may_accept(l)) {
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
    l->srv->accept(l, fd, &ss, len, li->tls);
  }
}

/* ---- posts from other threads ---- */

void piston__loop_wake(piston_loop *l) {
  uint64_t one = 1;
  ssize_t n = write(l->evfd, &one, sizeof one);
  (void)n; /* EAGAIN means the counter is already non-zero: awake anyway */
}

void piston__loop_post(piston_loop *l, piston__post *p,
                       const piston__post_ops *ops) {
  pthread_mutex_lock(&l->inbox_lock);
  bool was_empty = l->inbox == NULL;
  if (!p->queued) {
    p->ops = ops;
    p->queued = true;
    p->ops->hold(p); /* the inbox holds the item */
    p->next = l->inbox;
    l->inbox = p;
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
  piston__post *list = l->inbox;
  l->inbox = NULL;
  pthread_mutex_unlock(&l->inbox_lock);
  /* An item stays marked queued until it is taken from this list, so a
   * post that races with us finds it marked and only adds to what the item
   * carries (which apply below then sees); clearing the mark and reading
   * the link happen together under the lock, so a re-post cannot rewrite a
   * link we have yet to follow. Order across items does not matter; each
   * item keeps its own data in order. */
  while (list) {
    pthread_mutex_lock(&l->inbox_lock);
    piston__post *p = list;
    list = p->next;
    p->queued = false;
    const piston__post_ops *ops = p->ops;
    pthread_mutex_unlock(&l->inbox_lock);
    ops->apply(p);
  }
}

/* ---- stopping ---- */

void piston_loop_stop(piston_loop *l, int deadline_ms) {
  /* only atomics and write(2): callable from a signal handler */
  atomic_store(&l->stop_deadline_ms, deadline_ms < 0 ? 0 : deadline_ms);
  atomic_store(&l->stop_requested, 1);
  piston__loop_wake(l);
}

const char *piston_loop_client_error(const piston_loop *l,
                                     const char **reason) {
  if (reason)
    *reason = l->cerr_reason;
  return l->cerr_name;
}

const char *piston_loop_client_error_data(const piston_loop *l, size_t *len,
                                          size_t *parsed) {
  if (len)
    *len = l->cerr_data ? l->cerr_len : 0;
  if (parsed)
    *parsed = l->cerr_data ? l->cerr_parsed : 0;
  return l->cerr_data;
}

uint64_t piston_loop_client_error_connection_id(const piston_loop *l) {
  return l->cerr_conn;
}

void piston_loop_close_idle(piston_loop *l) {
  atomic_store(&l->close_idle_requested, 1);
  piston__loop_wake(l);
}

static void close_idle(piston_loop *l) {
  for (piston__io *io = l->all, *next; io; io = next) {
    next = io->anext;
    if (io->ops->idle(io))
      io->ops->close(io);
  }
}

static void begin_stop(piston_loop *l) {
  l->stopping = true;
  l->stop_at_ms = l->now_ms + (uint64_t)atomic_load(&l->stop_deadline_ms);
  l->accept_resume_ms = 0;
  listeners_close(l);
  /* Idle connections close now; the others finish their current response
   * and close. */
  for (piston__io *io = l->all, *next; io; io = next) {
    next = io->anext;
    io->ops->stop(io);
  }
}

/* After the deadline, the survivors are closed. */
static void close_all(piston_loop *l) {
  while (l->all)
    l->all->ops->close(l->all);
}

/* ---- the pass ---- */

static void run_pending(piston_loop *l) {
  piston__io *list = l->pending;
  l->pending = NULL;
  while (list) {
    piston__io *io = list;
    list = io->pending_next;
    io->in_pending = false;
    if (!io->dead)
      io->ops->run(io);
  }
}

/* A flush can tell a host its queue drained, and the host may write again
 * at once: repeat while that happens, a bounded number of times. */
static void flush_dirty(piston_loop *l) {
  for (int round = 0; l->dirty && round < 8; round++) {
    piston__io *list = l->dirty;
    l->dirty = NULL;
    while (list) {
      piston__io *io = list;
      list = io->dirty_next;
      io->in_dirty = false;
      if (!io->dead)
        io->ops->flush(io);
    }
  }
}

static void unlink_dead(piston__io **pp, size_t next_off, size_t flag_off) {
  while (*pp) {
    piston__io *io = *pp;
    piston__io **next = (piston__io **)((char *)io + next_off);
    if (io->dead) {
      *((bool *)((char *)io + flag_off)) = false;
      *pp = *next;
    } else {
      pp = next;
    }
  }
}

static void free_dead(piston_loop *l) {
  /* the dead may still sit in the pending or dirty list (work left for the
   * next pass): unlink them before they go */
  unlink_dead(&l->pending, offsetof(piston__io, pending_next),
              offsetof(piston__io, in_pending));
  unlink_dead(&l->dirty, offsetof(piston__io, dirty_next),
              offsetof(piston__io, in_dirty));
  while (l->dead) {
    piston__io *io = l->dead;
    l->dead = io->tnext;
    io->ops->destroy(io);
  }
}

static void on_timerfd(piston_loop *l) {
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
}

static int pass(piston_loop *l, int timeout_ms) {
  struct epoll_event evs[MAX_EVENTS];
  int n = epoll_wait(l->epfd, evs, MAX_EVENTS, timeout_ms);
  if (n < 0 && errno != EINTR)
    return piston__sys_err(errno);
  piston__current_loop = l;
  l->now_ms = piston__now_ms();
  for (int i = 0; i < n; i++) {
    uint8_t *tag = evs[i].data.ptr;
    switch (*tag) {
    case TAG_IO: {
      piston__io *io = (piston__io *)(void *)tag;
      if (!io->dead)
        io->ops->events(io, evs[i].events);
      break;
    }
    case TAG_LISTENER: accept_some(l, (piston__listener *)(void *)tag); break;
    case TAG_INBOX: drain_inbox(l); break;
    case TAG_TIMER: on_timerfd(l); break;
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
  if (l->srv->opt[PISTON_OPT_ACCESS_LOG])
    piston__logbuf_flush(&l->alog); /* the pass's lines, in one write */
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
  piston__bufpool_free(&l->rbufs);
  piston__logbuf_free(&l->alog);
  pthread_mutex_destroy(&l->inbox_lock);
  atomic_fetch_sub(&l->srv->nloops, 1);
  free(l);
}
