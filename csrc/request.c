/* Request handles: their lifetime (a reference count shared by the
 * protocol handler, the host and the loop's inbox), the views of the head,
 * the request body buffer, events, and the engine's transitions of the
 * exchange's state. The host's calls that write (body reads that owe a 100
 * Continue, responses) are the writer's, in response.c. */
#define _GNU_SOURCE
#include "metrics.h"
#include "req.h"
#include "util.h"

#include <arpa/inet.h>
#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

piston_req *piston__req_new(piston__conn *c) {
  piston_req *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  atomic_init(&r->refs, 1); /* the protocol handler's */
  r->loop = c->io.loop;
  r->conn = c;
  pthread_mutex_init(&r->lock, NULL);
  r->hdrs = r->hdr_inline;
  r->hdrcap = sizeof r->hdr_inline / sizeof r->hdr_inline[0];
  piston__outq_init(&r->postq);
  piston__outq_init(&r->h2_out);
  return r;
}

static void ws_msgs_free(piston_req *r) {
  while (r->ws_head) {
    piston__wsmsg *m = r->ws_head;
    r->ws_head = m->next;
    free(m);
  }
  r->ws_tail = NULL;
  free(r->ws_taken);
  r->ws_taken = NULL;
  r->ws_queued = 0;
}

/* The cache's hold on a request, let go as it ends (cache.c) */
static void cache_leave(piston_req *r) {
  if (r->cache_leave)
    r->cache_leave(r);
}

/* Ready for the next request on the same connection; keeps allocations. */
void piston__req_reset(piston_req *r, piston__conn *c) {
  cache_leave(r);
  /* a spare handle comes back to the connection it served: its peer and
   * the peer's text (formatted on the first ask) are still right */
  if (r->conn_id != c->id || r->fwd_peer) {
    size_t plen = c->peer_len < sizeof r->peer ? c->peer_len : sizeof r->peer;
    memset(&r->peer, 0, sizeof r->peer);
    memcpy(&r->peer, &c->peer, plen);
    r->peer_done = false;
    r->conn_id = c->id;
    r->fwd_peer = false;
  }
  piston__req_inflight_done(r);
  r->alog_out_len = 0;
  if (c->io.loop->srv->opt[PISTON_OPT_ACCESS_LOG] || c->io.loop->srv->mslot)
    r->t_start_ns = piston__mono_ns();
  r->fwd_scheme = 0;
  r->fwd_host_len = 0;
  r->fwd_port = r->fwd_xport = 0;
  /* what the connection's TLS handshake negotiated, kept with the handle
   * as the peer is (its handshake is over: bytes of a request came) */
  if (r->tls != c->tlsinfo) {
    piston__tlsinfo_unref(r->tls);
    r->tls = c->tlsinfo;
    if (r->tls)
      atomic_fetch_add(&r->tls->refs, 1);
  }
  r->conn = c;
  r->base = c->rbuf;
  r->method_off = r->method_len = r->target_off = r->target_len = 0;
  r->path_off = r->path_len = r->query_off = r->query_len = 0;
  r->version_off = r->version_len = 0;
  r->nhdrs = 0;
  r->minor = 1;
  r->nhost = 0;
  r->content_length = 0;
  r->is_head = r->native = r->keepalive = r->has_upgrade = false;
  r->body_len = r->body_pos = 0;
  r->body_total = 0;
  r->body_done = r->body_too_big = r->expect_continue = false;
  r->discard_body = r->headers_done = false;
  r->reading_paused = false;
  atomic_store_explicit(&r->more_buffered, false, memory_order_relaxed);
  r->url_done = r->hdr_open = false;
  r->resp = RESP_NONE;
  r->loop_ended = false;
  r->abort_requested = false;
  r->upgrade = UPGRADE_NONE;
  r->raw_shut = false;
  r->ws_close_sent = false;
  r->ws_code = 0;
  r->ws_pmd.on = false;
  r->ws_topics_closed = false;
  r->ws_reason_len = 0;
  atomic_store(&r->ws_control, false);
  ws_msgs_free(r);
  r->status = 0;
  r->chunked = r->no_body = r->close_after = r->overflowed = false;
  r->resp_left = -1;
  r->resp_bytes = 0;
  r->ev_cb = NULL;
  r->ev_ud = NULL;
  r->userdata = NULL;
  r->closed = r->want_drain = false;
  atomic_store(&r->out_queued, 0);
  r->post_flags = 0;
  r->cache_lead = r->cache_parked = false;
  if (r->body_cap > 64 * 1024) { /* one big upload must not pin memory */
    free(r->body);
    r->body = NULL;
    r->body_cap = 0;
  }
}

void piston__req_inflight_done(piston_req *r) {
  if (!atomic_exchange(&r->inflight, false))
    return;
  piston_server *srv = r->loop->srv;
  atomic_fetch_sub(&srv->inflight, 1);
  if (srv->mslot)
    piston__m_gauge(&srv->mslot->in_flight, -1);
}

void piston__req_free(piston_req *r) {
  piston__req_inflight_done(r);
  cache_leave(r);
  ws_msgs_free(r);
  free(r->ws_topics); /* emptied when its session ended */
  if (r->hdrs != r->hdr_inline)
    free(r->hdrs);
  free(r->body);
  free(r->owned_base);
  free(r->alog_out);
  piston__outq_free(&r->postq);
  piston__outq_free(&r->h2_out);
  free(r->h2_head);
  free(r->h2_trailers);
  free(r->h2_info);
  piston__tlsinfo_unref(r->tls);
  pthread_mutex_destroy(&r->lock);
  free(r);
}

/* Whether some field named name lists tok (comma-separated, any case). */
bool piston__req_lists_token(const piston_req *r, const char *name, size_t nlen,
                             const char *tok) {
  size_t tl = strlen(tok);
  for (size_t i = 0; i < piston_req_header_count(r); i++) {
    piston_header f = piston_req_header_at(r, i);
    if (f.name.len != nlen || strncasecmp(f.name.ptr, name, nlen) != 0)
      continue;
    piston_str rest = f.value, t;
    while (piston_list_next(&rest, &t))
      if (t.len == tl && strncasecmp(t.ptr, tok, tl) == 0)
        return true;
  }
  return false;
}

/* Splits the target into path and query. An absolute-form target
 * (http://host/p?q) keeps only its path and query; authority-form and
 * asterisk-form have neither. */
void piston__req_split_target(piston_req *r) {
  const char *t = r->base + r->target_off;
  uint32_t n = r->target_len, i = 0;
  if (n > 0 && t[0] != '/') {
    const char *scheme_end = memmem(t, n, "://", 3);
    if (scheme_end) {
      i = (uint32_t)(scheme_end - t) + 3;
      while (i < n && t[i] != '/' && t[i] != '?')
        i++;
    } else {
      i = n;
    }
  }
  uint32_t q = i;
  while (q < n && t[q] != '?')
    q++;
  r->path_off = r->target_off + i;
  r->path_len = q - i;
  r->query_off = r->target_off + (q < n ? q + 1 : n);
  r->query_len = q < n ? n - q - 1 : 0;
}

static bool forbidden_in_h2(const char *n, size_t len) {
  static const char *const names[] = {"connection", "keep-alive",
                                      "proxy-connection", "transfer-encoding",
                                      "upgrade"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strlen(names[i]) == len && strncasecmp(names[i], n, len) == 0)
      return true;
  return false;
}

int piston__h2_field_add(char **buf, size_t *len, size_t *cap, const char *name,
                         size_t nlen, const char *value, size_t vlen) {
  if (forbidden_in_h2(name, nlen))
    return 0;
  size_t need = 8 + nlen + vlen;
  if (*cap - *len < need) {
    size_t ncap = *cap ? *cap : 256;
    while (ncap - *len < need)
      ncap *= 2;
    char *grown = realloc(*buf, ncap);
    if (!grown)
      return PISTON_ENOMEM;
    *buf = grown;
    *cap = ncap;
  }
  char *p = *buf + *len;
  uint32_t nl = (uint32_t)nlen, vl = (uint32_t)vlen;
  memcpy(p, &nl, 4);
  memcpy(p + 4, &vl, 4);
  for (size_t i = 0; i < nlen; i++) /* RFC 9113 8.2.1: lower case */
    p[8 + i] =
        (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] | 0x20 : name[i]);
  memcpy(p + 8 + nlen, value, vlen);
  *len += need;
  return 0;
}

piston_str piston_req_tls(const piston_req *r, piston_tls_info what) {
  const piston__tlsinfo *ti = r->tls;
  if (!ti || (unsigned)what >= PISTON_TLSI__COUNT)
    return (piston_str){"", 0};
  return (piston_str){ti->data + ti->off[what], ti->len[what]};
}

void piston_req_retain(piston_req *r) {
  atomic_fetch_add(&r->refs, 1);
}

void piston_req_release(piston_req *r) {
  if (atomic_fetch_sub(&r->refs, 1) == 1)
    piston__req_free(r);
}

piston_loop *piston_req_loop(const piston_req *r) {
  return r->loop;
}

void piston_req_set_userdata(piston_req *r, void *ud) {
  r->userdata = ud;
}

void *piston_req_userdata(const piston_req *r) {
  return r->userdata;
}

/* ---- the head ---- */

piston_str piston_req_method(const piston_req *r) {
  return piston__slice(r->base, r->method_off, r->method_len);
}

piston_str piston_req_target(const piston_req *r) {
  return piston__slice(r->base, r->target_off, r->target_len);
}

piston_str piston_req_path(const piston_req *r) {
  return piston__slice(r->base, r->path_off, r->path_len);
}

piston_str piston_req_query(const piston_req *r) {
  return piston__slice(r->base, r->query_off, r->query_len);
}

int piston_req_http_minor(const piston_req *r) {
  return r->minor;
}
int piston_req_http_version(const piston_req *r) {
  return r->h2 ? 20 : 10 + r->minor;
}

size_t piston_req_header_count(const piston_req *r) {
  return r->nhdrs;
}

piston_header piston_req_header_at(const piston_req *r, size_t i) {
  if (i >= r->nhdrs)
    return (piston_header){{NULL, 0}, {NULL, 0}};
  const piston__hdr *h = &r->hdrs[i];
  return (piston_header){piston__slice(r->base, h->name_off, h->name_len),
                         piston__slice(r->base, h->value_off, h->value_len)};
}

piston_str piston_req_header(const piston_req *r, const char *name,
                             size_t len) {
  for (uint32_t i = 0; i < r->nhdrs; i++) {
    const piston__hdr *h = &r->hdrs[i];
    if (h->name_len == len &&
        strncasecmp(r->base + h->name_off, name, len) == 0)
      return piston__slice(r->base, h->value_off, h->value_len);
  }
  return (piston_str){NULL, 0};
}

uint64_t piston_req_connection_id(const piston_req *r) {
  return r->conn_id;
}

int piston_req_connection_bytes(const piston_req *r, uint64_t *read,
                                uint64_t *written) {
  /* the thread that polls the loop (between polls too): nothing else
   * writes the counters */
  piston_req *m = (piston_req *)r; /* the lock only */
  pthread_mutex_lock(&m->lock);
  const piston__conn *c = r->conn;
  if (c) {
    *read = c->bytes_read;
    *written = c->out.added + r->postq.pending; /* posts not yet moved */
  }
  pthread_mutex_unlock(&m->lock);
  return c ? 0 : PISTON_ECLOSED;
}

int64_t piston_req_content_length(const piston_req *r) {
  return r->content_length;
}

const char *piston_req_remote_addr(const piston_req *cr, int *port) {
  piston_req *r = (piston_req *)cr; /* formatting once is not a change */
  pthread_mutex_lock(&r->lock);
  if (!r->peer_done) {
    r->peer_text[0] = '\0';
    r->peer_port = 0;
    if (r->peer.sa.sa_family == AF_INET) {
      inet_ntop(AF_INET, &r->peer.in4.sin_addr, r->peer_text,
                sizeof r->peer_text);
      r->peer_port = ntohs(r->peer.in4.sin_port);
    } else if (r->peer.sa.sa_family == AF_INET6) {
      inet_ntop(AF_INET6, &r->peer.in6.sin6_addr, r->peer_text,
                sizeof r->peer_text);
      r->peer_port = ntohs(r->peer.in6.sin6_port);
    }
    r->peer_done = true;
  }
  pthread_mutex_unlock(&r->lock);
  if (port)
    *port = r->peer_port;
  return r->peer_text;
}

int piston_req_local_port(const piston_req *r) {
  pthread_mutex_lock((pthread_mutex_t *)&r->lock);
  piston__conn *c = r->conn;
  int port = c ? atomic_load(&c->local_port) : -1;
  if (port == 0) {
    /* asked once per connection: hosts ask on every request (SERVER_PORT) */
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    port = -1;
    if (getsockname(c->fd, (struct sockaddr *)&ss, &len) == 0) {
      if (ss.ss_family == AF_INET)
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
      else if (ss.ss_family == AF_INET6)
        port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    atomic_store(&c->local_port, port);
  }
  pthread_mutex_unlock((pthread_mutex_t *)&r->lock);
  return port < 0 ? 0 : port;
}

/* ---- events ---- */

void piston_req_on_event(piston_req *r, piston_req_event_cb cb, void *ud) {
  r->ev_cb = cb;
  r->ev_ud = ud;
}

void piston__req_notify(piston_req *r, int events) {
  if (r->ev_cb)
    r->ev_cb(r, events, r->ev_ud);
}

/* Loop thread: the client is gone. */
void piston__req_detach(piston_req *r) {
  piston__req_inflight_done(r);
  pthread_mutex_lock(&r->lock);
  bool was_closed = r->closed;
  r->closed = true;
  piston__outq_clear(&r->postq);
  pthread_mutex_unlock(&r->lock);
  if (r->cache_lead)
    cache_leave(r); /* its waiters need not wait for a host that may linger */
  if (!was_closed && atomic_load(&r->refs) > 1)
    piston__req_notify(r, PISTON_EV_CLOSED);
}

/* ---- the body ---- */

/* Loop thread, from the parser. */
int piston__req_body_append(piston_req *r, const char *p, size_t n) {
  pthread_mutex_lock(&r->lock);
  if (r->body_pos > 0 && r->body_pos == r->body_len)
    r->body_pos = r->body_len = 0;
  if (r->body_cap - r->body_len < n) {
    if (r->body_pos > 0) {
      memmove(r->body, r->body + r->body_pos, r->body_len - r->body_pos);
      r->body_len -= r->body_pos;
      r->body_pos = 0;
    }
    size_t ncap = r->body_cap ? r->body_cap : 4096;
    while (ncap - r->body_len < n)
      ncap *= 2;
    char *b = realloc(r->body, ncap);
    if (!b) {
      pthread_mutex_unlock(&r->lock);
      return PISTON_ENOMEM;
    }
    r->body = b;
    r->body_cap = ncap;
  }
  memcpy(r->body + r->body_len, p, n);
  r->body_len += n;
  /* Past the high-water mark the connection stops reading; at most one
   * read buffer more can arrive through the parser. */
  if (r->body_len - r->body_pos >=
      (uint64_t)r->loop->srv->opt[PISTON_OPT_BODY_HIGH_WATER])
    r->reading_paused = true;
  pthread_mutex_unlock(&r->lock);
  return 0;
}

void piston__req_update_pressure(piston_req *r) {
  piston__conn *c = r->conn;
  uint64_t out = c ? piston__req_sink(r)->pending : 0;
  atomic_store(&r->out_queued, out);
  pthread_mutex_lock(&r->lock);
  uint64_t low = (uint64_t)r->loop->srv->opt[PISTON_OPT_WRITE_HIGH_WATER] / 2;
  bool drain = r->want_drain && out + r->postq.pending <= low;
  if (drain)
    r->want_drain = false;
  pthread_mutex_unlock(&r->lock);
  if (drain)
    piston__req_notify(r, PISTON_EV_DRAIN);
}

/* ---- the engine's transitions of the exchange ---- */

void piston__req_native_answered(piston_req *r, int status, bool close) {
  /* before the host ever saw the handle: no lock needed */
  assert(r->resp == RESP_NONE && !r->loop_ended);
  r->status = status;
  piston__req_access_log(r);
  r->native = true;
  r->discard_body = true;
  r->resp = RESP_ENDED;
  r->loop_ended = true;
  if (close)
    r->close_after = true;
}

int piston__req_engine_answers(piston_req *r, int status) {
  pthread_mutex_lock(&r->lock);
  int resp = r->resp;
  if (resp == RESP_NONE) {
    assert(!r->loop_ended);
    r->resp = RESP_ENDED; /* the engine answers; host writes now fail */
    r->loop_ended = true;
    if (status == 413)
      r->body_too_big = true;
    r->status = status;
    r->closed = true;
  }
  pthread_mutex_unlock(&r->lock);
  return resp;
}

void piston__req_loop_end(piston_req *r) {
  /* the loop's view follows the host's: an end is queued only after the
   * host's own end, or the engine's answer in its place */
  assert(r->resp == RESP_ENDED);
  r->loop_ended = true;
}

void piston__req_ws_deliver(piston_req *r, piston__wsmsg *m) {
  m->next = NULL;
  pthread_mutex_lock(&r->lock);
  bool was_empty = r->ws_head == NULL;
  if (r->ws_tail)
    r->ws_tail->next = m;
  else
    r->ws_head = m;
  r->ws_tail = m;
  r->ws_queued += m->len;
  /* as for a body: past the high-water mark the connection stops reading
   * until the host has taken half of it */
  if (r->ws_queued >= (uint64_t)r->loop->srv->opt[PISTON_OPT_BODY_HIGH_WATER])
    r->reading_paused = true;
  pthread_mutex_unlock(&r->lock);
  if (was_empty)
    piston__req_notify(r, PISTON_EV_MESSAGE);
}
