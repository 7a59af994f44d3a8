/* A connection's socket life: watched on its loop, read into a pooled
 * buffer, its output queue flushed, closed with a linger. What the bytes
 * mean is its protocol handler's business (http1.c today): the loop's ops
 * land here and are handed on through c->proto.
 *
 * Sockets are registered once, edge-triggered, for input and output; the
 * readable/writable flags remember what epoll said, so that pausing and
 * resuming costs no epoll_ctl. */
#define _GNU_SOURCE
#include "conn.h"
#include "metrics.h"
#include "proxyproto.h"
#include "util.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

static const piston__io_ops conn_io_ops;

static piston__conn *conn_of(piston__io *io) {
  return (piston__conn *)(void *)io;
}

int piston__conn_init(piston__conn *c, piston_loop *loop, int fd,
                      const struct sockaddr_storage *peer, socklen_t len,
                      const piston__proto *proto) {
  static atomic_uint_fast64_t next_id = 1;
  c->id = atomic_fetch_add(&next_id, 1);
  c->fd = fd;
  c->state = CONN_OPEN;
  c->writable = true;
  c->tp = &piston__transport_plain;
  c->proto = proto;
  memcpy(&c->peer, peer, len);
  c->peer_len = len;
  piston__outq_init(&c->out);
  if (peer->ss_family == AF_INET || peer->ss_family == AF_INET6) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  int rc = piston__loop_add(loop, &c->io, fd, &conn_io_ops);
  if (rc < 0)
    close(fd);
  else if (loop->srv->mslot)
    piston__m_gauge(&loop->srv->mslot->connections, 1);
  return rc;
}

void piston__conn_mark_pending(piston__conn *c) {
  piston__io_mark_pending(&c->io);
}

void piston__conn_shut_write(piston__conn *c) {
  c->tp->shutdown_write(c);
  c->wr_shut = true;
}

void piston__conn_mark_dirty(piston__conn *c) {
  piston__io_mark_dirty(&c->io);
}

uint32_t piston__conn_rbuf_size(const piston__conn *c) {
  return (uint32_t)c->io.loop->rbufs.size;
}

bool piston__conn_rbuf_take(piston__conn *c) {
  if (!c->rbuf && !(c->rbuf = piston__bufpool_get(&c->io.loop->rbufs))) {
    piston__conn_close(c);
    return false;
  }
  return true;
}

void piston__conn_rbuf_release(piston__conn *c) {
  if (c->rbuf && c->rlen == 0) {
    piston__bufpool_put(&c->io.loop->rbufs, c->rbuf);
    c->rbuf = NULL;
    c->rpos = 0;
  }
}

int piston__conn_read(piston__conn *c) {
  assert(c->state == CONN_OPEN);
  if (c->proxy_wait) {
    assert(c->rlen == 0);
    int rc = piston__proxy_read(c);
    if (rc < 0)
      return rc;
  }
  if (!piston__conn_rbuf_take(c))
    return -2;
  uint32_t room = piston__conn_rbuf_size(c) - c->rlen;
  assert(room > 0);
  for (;;) {
    ssize_t n = c->tp->read(c, c->rbuf + c->rlen, room);
    if (n > 0) {
      if (c->read_failed)
        piston__conn_mark_pending(c); /* conn_run closes it */
      /* A short read emptied the socket. Edge-triggered epoll reports the
       * next arrival, so the read that would only say EAGAIN is skipped
       * (one syscall per request). Not after a FIN was seen: then keep
       * reading until the 0 that says so. */
      if ((uint32_t)n < room && !c->rdhup)
        c->readable = false;
      c->rlen += (uint32_t)n;
      c->bytes_read += (uint64_t)n;
      if (c->io.loop->srv->mslot)
        piston__m_add(&c->io.loop->srv->mslot->bytes_in, (uint64_t)n);
      return (int)n;
    }
    if (n == 0) {
      c->readable = false;
      c->peer_eof = true;
      return 0;
    }
    int rc = piston__conn_read_failed(c);
    if (rc != 0)
      return rc;
  }
}

int piston__conn_read_failed(piston__conn *c) {
  if (errno == EINTR)
    return 0;
  if (errno == EAGAIN) {
    c->readable = false;
    return -1;
  }
  piston__conn_close(c);
  return -2;
}

void piston__conn_close(piston__conn *c) {
  if (c->state == CONN_CLOSED)
    return;
  c->state = CONN_CLOSED;
  if (c->io.loop->srv->mslot)
    piston__m_gauge(&c->io.loop->srv->mslot->connections, -1);
  if (c->tp->close)
    c->tp->close(c);
  close(c->fd); /* also leaves the epoll set */
  c->fd = -1;
  piston_loop *loop = c->io.loop;
  piston__loop_remove(&c->io);
  c->proto->closing(c);
  piston__outq_free(&c->out);
  if (c->rbuf)
    piston__bufpool_put(&loop->rbufs, c->rbuf);
  c->rbuf = NULL;
}

void piston__conn_peer_text(const piston__conn *c, char *buf, size_t cap,
                            int *port) {
  buf[0] = '\0';
  *port = 0;
  if (c->peer.ss_family == AF_INET) {
    const struct sockaddr_in *sa = (const struct sockaddr_in *)&c->peer;
    inet_ntop(AF_INET, &sa->sin_addr, buf, (socklen_t)cap);
    *port = ntohs(sa->sin_port);
  } else if (c->peer.ss_family == AF_INET6) {
    const struct sockaddr_in6 *sa = (const struct sockaddr_in6 *)&c->peer;
    inet_ntop(AF_INET6, &sa->sin6_addr, buf, (socklen_t)cap);
    *port = ntohs(sa->sin6_port);
  }
}

/* ---- closing with a linger ---- */

static void linger_read(piston__conn *c) {
  char buf[4096];
  for (int i = 0; i < 16; i++) {
    ssize_t n = c->tp->read(c, buf, sizeof buf);
    if (n > 0)
      continue;
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno == EAGAIN) {
      c->readable = false;
      return;
    }
    piston__conn_close(c); /* EOF or error: the client has our response */
    return;
  }
  piston__conn_mark_pending(c);
}

static void start_linger(piston__conn *c) {
  if (c->peer_eof) {
    piston__conn_close(c);
    return;
  }
  /* Closing with unread input would make the kernel send a reset, which
   * can destroy the response before the client reads it: shut our side,
   * then read and drop what the client still sends, for a short while. */
  piston__conn_shut_write(c);
  c->state = CONN_LINGER;
  piston__conn_timer(c, TIMER_LINGER);
  if (c->readable)
    linger_read(c);
}

void piston__conn_finish(piston__conn *c) {
  assert(c->state == CONN_OPEN || c->state == CONN_CLOSING);
  c->state = CONN_CLOSING;
  piston__conn_timer(c, TIMER_WRITE);
  piston__conn_mark_dirty(c);
}

/* ---- the loop's ops ---- */

static void conn_events(piston__io *io, uint32_t events) {
  piston__conn *c = conn_of(io);
  if (events & EPOLLERR) {
    piston__conn_close(c); /* reset */
    return;
  }
  /* EPOLLHUP without EPOLLERR: both directions are shut. Before our FIN
   * that is the client's reset, its error consumed by a read (OpenSSL's,
   * behind a close_notify it returned as an end: nothing tells the loop
   * again), so nothing can be answered: close, as for EPOLLERR. After our
   * FIN (a stream the host half-closed first, its reading paused) it is
   * the client's FIN, and what it sent before may still wait to be read:
   * it is read up to the 0 that ends it. */
  if ((events & EPOLLHUP) && !c->wr_shut) {
    piston__conn_close(c);
    return;
  }
  if (events & EPOLLHUP)
    events |= EPOLLRDHUP;
  if (events & (EPOLLIN | EPOLLRDHUP)) {
    c->readable = true;
    if (events & EPOLLRDHUP)
      c->rdhup = true;
    piston__conn_mark_pending(c);
    if (c->flush_wants_read) {
      c->writable = true; /* what the flush waited for has come */
      piston__conn_mark_dirty(c);
    }
  }
  if (events & EPOLLOUT) {
    c->writable = true;
    if (c->out.pending)
      piston__conn_mark_dirty(c);
    if (c->read_wants_write) {
      c->readable = true;
      piston__conn_mark_pending(c);
    }
  }
}

static void conn_run(piston__io *io) {
  piston__conn *c = conn_of(io);
  if (c->read_failed && c->state != CONN_CLOSED) {
    piston__conn_close(c); /* the client is gone (tls.c) */
    return;
  }
  switch (c->state) {
  case CONN_OPEN: c->proto->run(c); break;
  case CONN_CLOSING: piston__conn_mark_dirty(c); break;
  case CONN_LINGER:
    if (c->readable)
      linger_read(c);
    break;
  default: break;
  }
}

static void conn_flush(piston__io *io) {
  piston__conn *c = conn_of(io);
  bool sent = false;
  if (c->state == CONN_OPEN && c->proto->prepare) {
    c->proto->prepare(c);
    if (c->state == CONN_CLOSED)
      return;
  }
  if (c->out.pending && c->writable) {
    uint64_t before = c->out.pending;
    int rc = c->tp->flush(c, &c->out);
    if (c->io.loop->srv->mslot && rc >= 0)
      piston__m_add(&c->io.loop->srv->mslot->bytes_out,
                    before - c->out.pending);
    if (rc < 0) {
      piston__conn_close(c); /* the client went away mid-response */
      return;
    }
    if (rc == 1) {
      c->writable = false;
      piston__conn_timer(c, TIMER_WRITE); /* progress restarts it */
    } else {
      sent = true;
    }
  }
  if (c->state == CONN_OPEN || c->state == CONN_CLOSING)
    c->proto->flushed(c, sent);
  if (c->state == CONN_CLOSING && c->out.pending == 0)
    start_linger(c);
}

static void conn_timeout(piston__io *io, int kind) {
  piston__conn *c = conn_of(io);
  if (c->state == CONN_OPEN)
    c->proto->timeout(c, kind);
  else
    piston__conn_close(c); /* the client does not read, or lingers */
}

static void conn_stop(piston__io *io) {
  piston__conn *c = conn_of(io);
  if (c->state == CONN_OPEN)
    c->proto->stop(c);
}

static bool conn_idle(const piston__io *io) {
  const piston__conn *c = (const piston__conn *)(const void *)io;
  return c->state == CONN_OPEN && c->proto->idle(c);
}

static void conn_close_op(piston__io *io) {
  piston__conn_close(conn_of(io));
}

static void conn_destroy(piston__io *io) {
  piston__conn *c = conn_of(io);
  assert(c->state == CONN_CLOSED);
  c->proto->destroy(c);
}

static const piston__io_ops conn_io_ops = {
    .events = conn_events,
    .run = conn_run,
    .flush = conn_flush,
    .timeout = conn_timeout,
    .stop = conn_stop,
    .idle = conn_idle,
    .close = conn_close_op,
    .destroy = conn_destroy,
};
