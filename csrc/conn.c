/* A connection's life: accept, read, parse (llhttp), hand requests to the
 * host or a native route, queue responses, flush, keep alive or close.
 *
 * One request at a time: when a message is complete the parser pauses, and
 * the next pipelined request is parsed only once this one's response has
 * ended. Responses that end within one poll pass are flushed together.
 *
 * Sockets are registered once, edge-triggered, for input and output; the
 * readable/writable flags remember what epoll said, so that pausing and
 * resuming costs no epoll_ctl. */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* Reads per connection per pass, so one fast client cannot starve others. */
#define READ_BUDGET 4

void piston__conn_accepted(piston_loop *loop, int fd,
                           const struct sockaddr_storage *peer, socklen_t len) {
  piston__conn *c = calloc(1, sizeof *c);
  if (!c) {
    close(fd);
    return;
  }
  static atomic_uint_fast64_t next_id = 1;
  c->tag = TAG_CONN;
  c->id = atomic_fetch_add(&next_id, 1);
  c->fd = fd;
  c->loop = loop;
  c->state = CONN_IDLE;
  c->timer = TIMER_NONE;
  c->writable = true;
  memcpy(&c->peer, peer, len);
  c->peer_len = len;
  llhttp_init(&c->parser, HTTP_REQUEST, &piston__parser_settings);
  c->parser.data = c;
  piston__outq_init(&c->out);
  if (peer->ss_family == AF_INET || peer->ss_family == AF_INET6) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                           .data.ptr = c};
  if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
    close(fd);
    free(c);
    return;
  }
  c->anext = loop->all;
  if (loop->all)
    loop->all->aprev = c;
  loop->all = c;
  loop->nconns++;
  /* the head timeout runs from accept: a client that connects and says
   * nothing is closed silently when it expires */
  piston__timer_set(c, TIMER_HEAD);
}

void piston__conn_mark_pending(piston__conn *c) {
  if (c->in_pending || c->state == CONN_CLOSED)
    return;
  c->in_pending = true;
  c->pending_next = c->loop->pending;
  c->loop->pending = c;
}

void piston__conn_mark_dirty(piston__conn *c) {
  if (c->in_dirty || c->state == CONN_CLOSED)
    return;
  c->in_dirty = true;
  c->dirty_next = c->loop->dirty;
  c->loop->dirty = c;
}

/* The current request leaves the connection. If the host still holds it,
 * the head slices must stay valid: the request takes the read buffer. */
static void drop_req(piston__conn *c) {
  piston_req *r = c->req;
  c->req = NULL;
  if (!r)
    return;
  if (atomic_load(&r->refs) == 1 && !c->spare) {
    c->spare = r; /* nobody else holds it: reuse for the next request */
    return;
  }
  /* Pipelined bytes behind the head move to a fresh buffer, copied before
   * the request is released: the host may free it (and the buffer) on
   * another thread the moment our reference goes. */
  bool give = c->rbuf && r->base == c->rbuf;
  uint32_t left = c->rlen - c->rpos;
  char *fresh = NULL;
  if (give && left > 0 && c->state != CONN_CLOSED) {
    fresh = piston__rbuf_get(c->loop);
    if (fresh)
      memcpy(fresh, c->rbuf + c->rpos, left);
    else
      c->broken = true;
  }
  pthread_mutex_lock(&r->lock);
  r->conn = NULL;
  if (give)
    r->owned_base = c->rbuf;
  pthread_mutex_unlock(&r->lock);
  piston_req_release(r);
  if (give) {
    c->rbuf = fresh;
    c->rlen = fresh ? left : 0;
    c->rpos = 0;
  }
}

void piston__conn_close(piston__conn *c) {
  if (c->state == CONN_CLOSED)
    return;
  piston_loop *loop = c->loop;
  piston__timer_set(c, TIMER_NONE);
  if (c->aprev)
    c->aprev->anext = c->anext;
  else
    loop->all = c->anext;
  if (c->anext)
    c->anext->aprev = c->aprev;
  c->state = CONN_CLOSED;
  close(c->fd); /* also leaves the epoll set */
  c->fd = -1;
  if (c->req) {
    piston_req *r = c->req;
    if (!r->loop_ended)
      piston__req_detach(r);
    drop_req(c);
  }
  if (c->spare)
    piston__req_free(c->spare);
  c->spare = NULL;
  piston__outq_free(&c->out);
  if (c->rbuf)
    piston__rbuf_put(loop, c->rbuf);
  c->rbuf = NULL;
  c->tnext = loop->dead; /* freed at the end of the pass */
  loop->dead = c;
  piston__loop_conn_closed(loop);
  if (c->hosted && loop->srv->on_conn_closed)
    loop->srv->on_conn_closed(loop, c->id, loop->srv->on_conn_closed_ud);
}

/* With the handler timeout on: whether the host holds r without having
 * started its response, and whether the client waits for the 100 Continue
 * that the host's first body read sends. The host changes both from any
 * thread, hence the lock (taken only when the timeout is on). */
static bool host_owes_response(const piston__conn *c, piston_req *r,
                               bool *owes_continue) {
  *owes_continue = false;
  if (c->loop->srv->opt[PISTON_OPT_HANDLER_TIMEOUT_MS] <= 0 || r->native ||
      r->loop_ended)
    return false;
  pthread_mutex_lock(&r->lock);
  bool owed = r->resp == RESP_NONE;
  *owes_continue = owed && r->expect_continue;
  pthread_mutex_unlock(&r->lock);
  return owed;
}

/* The timer a connection's state calls for.
 *
 * While the host holds a request there is one timer slot for two limits.
 * The body timeout runs while the engine waits on the client for body
 * bytes: a slow upload is the client's fault (408), and the app cannot
 * answer before it has the body it is reading. The handler timeout runs
 * while the wait is on the host: the body is complete, or reading paused
 * because the host has not consumed what is buffered, or the client waits
 * for a 100 Continue that the host's first read would send. Each switch
 * from body to handler starts the handler timeout afresh (a list's entries
 * must share one duration from the moment they are set), so it bounds one
 * uninterrupted stretch in which only the host can make progress. */
static void restore_timer(piston__conn *c) {
  int kind = TIMER_NONE;
  switch (c->state) {
  case CONN_IDLE: kind = TIMER_IDLE; break;
  case CONN_HEAD:
    return; /* runs from the first byte; progress does not extend it */
  case CONN_ACTIVE: {
    piston_req *r = c->req;
    if (!r)
      break;
    bool owes_continue;
    bool owed = host_owes_response(c, r, &owes_continue);
    if (!r->body_done && (!r->reading_paused || r->discard_body) &&
        !owes_continue)
      kind = TIMER_BODY;
    else if (owed)
      kind = TIMER_HANDLER;
    break;
  }
  case CONN_CLOSING: kind = TIMER_WRITE; break;
  case CONN_LINGER: kind = TIMER_LINGER; break;
  }
  if (c->out.pending && !c->writable)
    kind = TIMER_WRITE;
  if (kind != c->timer || kind == TIMER_BODY || kind == TIMER_WRITE)
    piston__timer_set(c, kind);
}

/* Answers with an engine error and closes. */
static void report_client_error(piston__conn *c, int status) {
  const piston_server *srv = c->loop->srv;
  if (!srv->on_client_error)
    return;
  char addr[INET6_ADDRSTRLEN] = "";
  int port = 0;
  if (c->peer.ss_family == AF_INET) {
    const struct sockaddr_in *sa = (const struct sockaddr_in *)&c->peer;
    inet_ntop(AF_INET, &sa->sin_addr, addr, sizeof addr);
    port = ntohs(sa->sin_port);
  } else if (c->peer.ss_family == AF_INET6) {
    const struct sockaddr_in6 *sa = (const struct sockaddr_in6 *)&c->peer;
    inet_ntop(AF_INET6, &sa->sin6_addr, addr, sizeof addr);
    port = ntohs(sa->sin6_port);
  }
  srv->on_client_error(c->loop, status, addr, port, srv->on_client_error_ud);
}

/* The host held r past the handler timeout without starting a response.
 * One line, because the app's own logs cannot tell that the client got an
 * answer from the engine rather than from the app. */
static void log_handler_timeout(const piston__conn *c, const piston_req *r) {
  piston_str m = piston_req_method(r), p = piston_req_path(r);
  piston__log("handler timeout: %.*s %.*s not answered within %lld ms: sent "
              "503",
              (int)m.len, m.ptr, (int)(p.len > 256 ? 256 : p.len), p.ptr,
              (long long)c->loop->srv->opt[PISTON_OPT_HANDLER_TIMEOUT_MS]);
}

/* Answers with an engine error instead of the host, then closes. host_late:
 * the error is the host's fault (a handler timeout), so it is not reported
 * as a client error, and a host that started its response in the meantime
 * (posted from its thread, not applied yet) keeps it. */
static void engine_answer(piston__conn *c, int status, bool host_late) {
  piston_req *r = c->req;
  int resp = RESP_NONE;
  if (r) {
    pthread_mutex_lock(&r->lock);
    resp = r->resp;
    if (resp == RESP_NONE) {
      r->resp = RESP_ENDED; /* the engine answers; host writes now fail */
      r->loop_ended = true;
      if (status == 413)
        r->body_too_big = true;
      r->closed = true;
    }
    pthread_mutex_unlock(&r->lock);
  }
  if (host_late && resp != RESP_NONE) {
    restore_timer(c);
    return;
  }
  c->broken = true;
  if (resp == RESP_STARTED) {
    /* the host already started a response: too late for a status */
    piston__conn_close(c);
    return;
  }
  if (resp == RESP_NONE) {
    if (r && atomic_load(&r->refs) > 1)
      piston__req_notify(r, PISTON_EV_CLOSED |
                                (host_late ? PISTON_EV_TIMEOUT : 0));
    if (host_late)
      log_handler_timeout(c, r);
    else
      report_client_error(c, status);
    if (piston__resp_error(&c->out, status, r && r->is_head) != 0) {
      piston__conn_close(c);
      return;
    }
  }
  /* RESP_ENDED: the host's full answer is queued; just do not go on */
  c->state = CONN_CLOSING;
  piston__timer_set(c, TIMER_WRITE);
  piston__conn_mark_dirty(c);
}

void piston__conn_reject(piston__conn *c, int status) {
  engine_answer(c, status, false);
}

static int parse_error_status(llhttp_t *p, llhttp_errno_t err) {
  /* llhttp reports a bad line ending after the version with the same code
   * as an unsupported version; only the latter is a 505 */
  const char *why = llhttp_get_error_reason(p);
  if (err == HPE_INVALID_VERSION && why &&
      strcmp(why, "Invalid HTTP version") == 0)
    return 505;
  return 400;
}

static void linger_read(piston__conn *c) {
  char buf[4096];
  for (int i = 0; i < 16; i++) {
    ssize_t n = read(c->fd, buf, sizeof buf);
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

/* The response is out of our hands and the request fully read: keep the
 * connection for the next request, or close it. */
static void request_done(piston__conn *c) {
  piston_req *r = c->req;
  bool reuse = r->keepalive && !r->close_after && !c->broken && !c->peer_eof &&
               !c->loop->stopping;
  c->served++;
  drop_req(c);
  if (!reuse) {
    c->state = CONN_CLOSING;
    piston__timer_set(c, TIMER_WRITE);
    piston__conn_mark_dirty(c);
    return;
  }
  llhttp_resume(&c->parser);
  c->parse_paused = false;
  uint32_t left = c->rlen - c->rpos;
  if (left == 0) {
    if (c->rbuf)
      piston__rbuf_put(c->loop, c->rbuf);
    c->rbuf = NULL;
    c->rlen = c->rpos = 0;
    c->state = CONN_IDLE;
  } else {
    memmove(c->rbuf, c->rbuf + c->rpos, left);
    c->rlen = left;
    c->rpos = 0;
    c->state = CONN_HEAD;
  }
  c->keep = 0;
  piston__timer_set(c, c->state == CONN_IDLE ? TIMER_IDLE : TIMER_HEAD);
}

static void parse(piston__conn *c) {
  uint32_t start = c->rpos;
  llhttp_errno_t err =
      llhttp_execute(&c->parser, c->rbuf + start, c->rlen - start);
  if (err == HPE_PAUSED) {
    c->rpos = (uint32_t)(llhttp_get_error_pos(&c->parser) - c->rbuf);
    c->parse_paused = true;
  } else if (err == HPE_OK) {
    c->rpos = c->rlen;
  } else {
    int status = c->reject_status ? c->reject_status
                                  : parse_error_status(&c->parser, err);
    c->reject_status = 0;
    piston__conn_reject(c, status);
    return;
  }
  piston_req *r = c->req;
  if (c->state == CONN_HEAD || (c->state == CONN_IDLE && c->rlen > 0)) {
    /* the head is still incomplete: keep all of it, and hold it to the
     * limits a complete one would have been checked against */
    c->state = CONN_HEAD;
    const piston_server *srv = c->loop->srv;
    bool in_url = r && !r->url_done;
    if (c->rlen > (uint64_t)srv->opt[PISTON_OPT_MAX_HEAD_SIZE] ||
        c->rlen == piston__rbuf_size(srv))
      piston__conn_reject(c, in_url ? 414 : 431);
    return;
  }
  if (!r || c->state != CONN_ACTIVE)
    return;
  if (r->headers_done && c->rpos == c->rlen && !c->parse_paused) {
    /* everything after the head was body, now copied out: reuse the room */
    c->rlen = c->rpos = c->keep;
  }
  if (r->body_len > 0 || r->body_done)
    piston__req_notify(r, PISTON_EV_BODY);
  restore_timer(c);
}

static void on_eof(piston__conn *c) {
  c->peer_eof = true;
  piston_req *r = c->req;
  if (c->state == CONN_ACTIVE && r && r->body_done)
    return; /* a half-close after a full request: still answer it */
  if (c->out.pending && c->state != CONN_ACTIVE) {
    /* responses already made (a pipelined batch) still go out */
    c->state = CONN_CLOSING;
    piston__timer_set(c, TIMER_WRITE);
    return;
  }
  piston__conn_close(c);
}

void piston__conn_on_io(piston__conn *c, uint32_t events) {
  if (c->state == CONN_CLOSED)
    return;
  if (events & (EPOLLERR | EPOLLHUP)) {
    piston__conn_close(c); /* reset, or both directions shut */
    return;
  }
  if (events & (EPOLLIN | EPOLLRDHUP)) {
    c->readable = true;
    if (events & EPOLLRDHUP)
      c->rdhup = true;
    piston__conn_mark_pending(c);
  }
  if (events & EPOLLOUT) {
    c->writable = true;
    if (c->out.pending)
      piston__conn_mark_dirty(c);
  }
}

/* The client sent FIN while its request waits on the host, and nothing
 * else is left to read: it has gone (a closed browser tab, an aborted
 * long poll), so the host should hear of it now rather than at its next
 * write. Unread bytes mean a pipelining client that half-closed after
 * sending everything: it still gets its answers. */
static bool peer_left_waiting(piston__conn *c) {
  piston_req *r = c->req;
  if (c->state != CONN_ACTIVE || !r || r->loop_ended || r->native ||
      !r->body_done || c->rpos < c->rlen)
    return false;
  int unread = 0;
  return ioctl(c->fd, FIONREAD, &unread) == 0 && unread == 0;
}

void piston__conn_run(piston__conn *c) {
  int budget = READ_BUDGET;
  for (;;) {
    if (c->state == CONN_CLOSED)
      return;
    piston_req *r = c->req;
    if (c->abort_requested) { /* the host gave up mid-response */
      piston__conn_close(c);
      return;
    }
    if (c->state == CONN_ACTIVE && r && r->loop_ended) {
      if (r->body_done) {
        request_done(c);
        continue;
      }
      if (!r->discard_body) {
        /* answered before the body was read: read and drop the rest, unless
         * the client still waits for 100-continue (it may never send it) */
        if (r->expect_continue) {
          c->broken = true;
          request_done(c);
          continue;
        }
        pthread_mutex_lock(&r->lock);
        r->discard_body = true;
        r->body_len = r->body_pos = 0;
        bool was_paused = r->reading_paused;
        r->reading_paused = false;
        pthread_mutex_unlock(&r->lock);
        if (was_paused)
          restore_timer(c);
      }
    }
    if (c->state == CONN_CLOSING) {
      piston__conn_mark_dirty(c);
      return;
    }
    if (c->state == CONN_LINGER) {
      if (c->readable)
        linger_read(c);
      return;
    }
    if (!c->parse_paused && c->rpos < c->rlen) {
      parse(c);
      continue;
    }
    if (c->parse_paused || !c->readable)
      break;
    if (r && r->reading_paused)
      break;
    if (budget-- == 0) {
      piston__conn_mark_pending(c); /* more next pass */
      break;
    }
    if (!c->rbuf && !(c->rbuf = piston__rbuf_get(c->loop))) {
      piston__conn_close(c);
      return;
    }
    uint32_t cap = piston__rbuf_size(c->loop->srv);
    ssize_t n = read(c->fd, c->rbuf + c->rlen, cap - c->rlen);
    if (n > 0) {
      /* A short read emptied the socket. Edge-triggered epoll reports the
       * next arrival, so the read that would only say EAGAIN is skipped
       * (one syscall per request). Not after a FIN was seen: then keep
       * reading until the 0 that says so. */
      if ((uint32_t)n < cap - c->rlen && !c->rdhup)
        c->readable = false;
      c->rlen += (uint32_t)n;
      if (c->state == CONN_IDLE) {
        c->state = CONN_HEAD;
        if (c->timer != TIMER_HEAD)
          piston__timer_set(c, TIMER_HEAD);
      }
      continue;
    }
    if (n == 0) {
      c->readable = false;
      on_eof(c);
      if (c->state == CONN_CLOSED)
        return;
      break;
    }
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN) {
      c->readable = false;
      break;
    }
    piston__conn_close(c);
    return;
  }
  if (c->rbuf && c->rlen == 0 && !c->req) {
    piston__rbuf_put(c->loop, c->rbuf); /* idle: give the buffer back */
    c->rbuf = NULL;
  }
  if (c->rdhup && peer_left_waiting(c)) {
    piston__conn_close(c);
    return;
  }
  /* reading may have resumed (the host consumed its buffered body) with no
   * byte arriving yet: the wait is on the client again, the body timeout's */
  if (c->timer == TIMER_HANDLER)
    restore_timer(c);
  if (c->out.pending)
    piston__conn_mark_dirty(c);
}

static void start_linger(piston__conn *c) {
  if (c->peer_eof) {
    piston__conn_close(c);
    return;
  }
  /* Closing with unread input would make the kernel send a reset, which
   * can destroy the response before the client reads it: shut our side,
   * then read and drop what the client still sends, for a short while. */
  shutdown(c->fd, SHUT_WR);
  c->state = CONN_LINGER;
  piston__timer_set(c, TIMER_LINGER);
  if (c->readable)
    linger_read(c);
}

void piston__conn_flush(piston__conn *c) {
  if (c->out.pending && c->writable) {
    int rc = piston__outq_flush(&c->out, c->fd);
    if (rc < 0) {
      piston__conn_close(c); /* the client went away mid-response */
      return;
    }
    if (rc == 1) {
      c->writable = false;
      piston__timer_set(c, TIMER_WRITE); /* progress restarts it */
    } else if (c->timer == TIMER_WRITE && c->state != CONN_CLOSING) {
      restore_timer(c);
    }
  }
  /* A response that starts brings output, so every start passes here: from
   * then on the handler timeout no longer applies. */
  if (c->timer == TIMER_HANDLER)
    restore_timer(c);
  if (c->req)
    piston__req_update_pressure(c->req);
  if (c->state == CONN_CLOSING && c->out.pending == 0)
    start_linger(c);
}

void piston__conn_timeout(piston__conn *c, int kind) {
  switch (c->state) {
  case CONN_HEAD: piston__conn_reject(c, 408); return;
  case CONN_ACTIVE:
    if (kind == TIMER_BODY && c->req) {
      piston__conn_reject(c, 408); /* closes if a response has started */
      return;
    }
    if (kind == TIMER_HANDLER && c->req) {
      engine_answer(c, 503, true); /* as Go's http.TimeoutHandler */
      return;
    }
    break;
  default: break;
  }
  piston__conn_close(c);
}

/* A keep-alive connection waiting for its next request, with nothing
 * buffered or arriving. */
bool piston__conn_is_idle(const piston__conn *c) {
  return c->state == CONN_IDLE && c->served > 0 && !c->readable &&
         c->rlen == 0 && c->out.pending == 0;
}

void piston__conn_stop(piston__conn *c) {
  /* Only a keep-alive connection with nothing to read is idle. A connection
   * accepted but not read yet has a request on its way: it gets its answer
   * (with Connection: close), or the head timeout. */
  if (piston__conn_is_idle(c))
    piston__conn_close(c);
  /* the rest see loop->stopping when their response ends */
}
