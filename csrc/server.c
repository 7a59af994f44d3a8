/* Server: configuration, listening addresses and native routes. All of it
 * is set before the first loop is created and read-only afterwards. The
 * top of the engine: it wires the protocol handler that loops hand their
 * accepted sockets to. */
#define _GNU_SOURCE
#include "cachestore.h"
#include "http1.h"
#include "server.h"
#include "accesslog.h"
#include "metrics.h"
#include "tlsctx.h"
#include "trust.h"
#include "util.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const int64_t defaults[PISTON_OPT__COUNT] = {
    [PISTON_OPT_MAX_HEAD_SIZE] = 16 * 1024,
    [PISTON_OPT_MAX_URL_SIZE] = 8 * 1024,
    [PISTON_OPT_MAX_HEADERS] = 100,
    [PISTON_OPT_MAX_BODY_SIZE] = 1024 * 1024 * 1024,
    [PISTON_OPT_HEAD_TIMEOUT_MS] = 10000,
    [PISTON_OPT_BODY_TIMEOUT_MS] = 30000,
    [PISTON_OPT_IDLE_TIMEOUT_MS] = 5000,
    [PISTON_OPT_WRITE_TIMEOUT_MS] = 30000,
    [PISTON_OPT_BODY_HIGH_WATER] = 256 * 1024,
    [PISTON_OPT_WRITE_HIGH_WATER] = 256 * 1024,
    [PISTON_OPT_BACKLOG] = 4096,
    [PISTON_OPT_MAX_CONNECTIONS] = 100000,
    [PISTON_OPT_ACCESS_LOG] = 0,
    [PISTON_OPT_SHARE_PORT] = 0,
    [PISTON_OPT_HANDLER_TIMEOUT_MS] = 0, /* off: node:http has none either */
    [PISTON_OPT_WS_MAX_MESSAGE] =
        16 * 1024 * 1024, /* as uvicorn's ws-max-size */
    [PISTON_OPT_TLS_MAX_HANDSHAKES] = 1024,
    [PISTON_OPT_DEBUG_LOG] = 0,
    [PISTON_OPT_HTTP2] = 1, /* h2 by ALPN; h2c only when asked for */
    [PISTON_OPT_HEAD_STYLE] = 0,
    [PISTON_OPT_IPV6_ONLY] = 1,     /* '::' is IPv6's; IPv4 has 0.0.0.0 */
    [PISTON_OPT_PROXY_HEADERS] = 1, /* inert until proxies are trusted */
    [PISTON_OPT_CACHE_MAX_ENTRY] = 1024 * 1024,
    [PISTON_OPT_CACHE_WAIT_MS] = 5000,
    [PISTON_OPT_CACHE_MAX_WAITERS] = 1024,
};

/* Smallest sane values: a head must hold a request line and a Host. */
static const int64_t minimums[PISTON_OPT__COUNT] = {
    [PISTON_OPT_MAX_HEAD_SIZE] = 256,
    [PISTON_OPT_MAX_URL_SIZE] = 16,
    [PISTON_OPT_TLS_MAX_HANDSHAKES] = 1,
    [PISTON_OPT_MAX_HEADERS] = 1,
    [PISTON_OPT_HEAD_TIMEOUT_MS] = 1,
    [PISTON_OPT_BODY_TIMEOUT_MS] = 1,
    [PISTON_OPT_IDLE_TIMEOUT_MS] = 1,
    [PISTON_OPT_WRITE_TIMEOUT_MS] = 1,
    [PISTON_OPT_BODY_HIGH_WATER] = 1024,
    [PISTON_OPT_WRITE_HIGH_WATER] = 1024,
    [PISTON_OPT_BACKLOG] = 1,
    [PISTON_OPT_MAX_CONNECTIONS] = 1,
    [PISTON_OPT_WS_MAX_MESSAGE] = 125,
};

piston_server *piston_server_new(void) {
  piston_server *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  memcpy(s->opt, defaults, sizeof defaults);
  s->accept = piston__h1_accept; /* every connection starts as HTTP/1.1 */
  pthread_mutex_init(&s->lock, NULL);
  pthread_mutex_init(&s->pubsub_lock, NULL);
  s->cache = piston__cache_new();
  if (!s->cache) {
    pthread_mutex_destroy(&s->pubsub_lock);
    pthread_mutex_destroy(&s->lock);
    free(s);
    return NULL;
  }
  return s;
}

void piston_server_free(piston_server *s) {
  if (!s)
    return;
  for (size_t i = 0; i < s->nlisten; i++) {
    piston__listen_spec *l = &s->listen[i];
    if (l->kind == LISTEN_UNIX && l->shared_fd >= 0)
      unlink(l->path);
    if (l->own_fd && l->shared_fd >= 0)
      close(l->shared_fd);
    free(l->host);
    free(l->path);
  }
  for (size_t i = 0; i < s->nfixed; i++) {
    piston__fixed_route *r = &s->fixed[i];
    free(r->method);
    free(r->path);
    free(r->fields);
    free(r->body);
  }
  free(s->fixed);
  for (size_t i = 0; i < s->ndirs; i++) {
    free(s->dirs[i].prefix);
    piston__mount_close(&s->dirs[i].mount);
  }
  free(s->dirs);
  piston__pubsub_free(s);
  piston__cache_free(s->cache);
  for (size_t i = 0; i < s->ncache_routes; i++)
    free(s->cache_routes[i].prefix);
  free(s->cache_routes);
  piston__tlsconf_free(s->tls);
  free(s->trust);
  piston__alog_free(s->alog);
  if (s->metrics_own)
    piston_metrics_free(s->metrics);
  free(s->metrics_path);
  free(s->health_path);
  pthread_mutex_destroy(&s->pubsub_lock);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

int piston_server_set(piston_server *s, piston_option opt, int64_t value) {
  if ((unsigned)opt >= PISTON_OPT__COUNT || value < minimums[opt] ||
      (opt == PISTON_OPT_HTTP2 && value > 2) ||
      (opt == PISTON_OPT_HEAD_STYLE && value > 2) ||
      (opt == PISTON_OPT_IPV6_ONLY && value > 1) ||
      (opt == PISTON_OPT_EXPECT_TO_HOST && value > 1))
    return PISTON_EINVAL;
  if (atomic_load(&s->nloops) > 0)
    return PISTON_ESTATE;
  if (opt == PISTON_OPT_ACCESS_LOG && value && !s->alog) {
    char err[64];
    int rc = piston__alog_new(NULL, NULL, &s->alog, err, sizeof err);
    if (rc < 0)
      return rc;
  }
  s->opt[opt] = value;
  if (opt == PISTON_OPT_DEBUG_LOG) /* the log is the process's */
    atomic_store(&piston__debug_on, value != 0);
  return 0;
}

int piston_server_trust_proxies(piston_server *s, const char *list) {
  if (atomic_load(&s->nloops) > 0)
    return PISTON_ESTATE;
  piston__trust *t;
  char bad[64];
  int rc = piston__trust_parse(list, &t, bad, sizeof bad);
  if (rc < 0)
    return rc;
  free(s->trust);
  s->trust = t;
  return 0;
}

int piston_server_access_log(piston_server *s, const char *path,
                             const char *format) {
  if (atomic_load(&s->nloops) > 0)
    return PISTON_ESTATE;
  piston__alog *a;
  int rc =
      piston__alog_new(path, format, &a, s->alog_error, sizeof s->alog_error);
  if (rc < 0)
    return rc;
  piston__alog_free(s->alog);
  s->alog = a;
  s->opt[PISTON_OPT_ACCESS_LOG] = 1;
  return 0;
}

const char *piston_server_access_log_error(const piston_server *s) {
  return s->alog_error;
}

static int set_path(char **dst, size_t *len, const char *path) {
  char *p = NULL;
  if (path && (path[0] != '/' || !(p = strdup(path))))
    return path[0] != '/' ? PISTON_EINVAL : PISTON_ENOMEM;
  free(*dst);
  *dst = p;
  *len = p ? strlen(p) : 0;
  return 0;
}

int piston_server_metrics(piston_server *s, piston_metrics *m,
                          const char *path) {
  if (atomic_load(&s->nloops) > 0)
    return PISTON_ESTATE;
  bool own = !m;
  if (own && !(m = piston_metrics_new(1)))
    return PISTON_ENOMEM;
  piston__mslot *slot = piston__metrics_slot(m);
  int rc = slot ? set_path(&s->metrics_path, &s->metrics_path_len, path)
                : PISTON_EINVAL;
  if (rc < 0) {
    if (own)
      piston_metrics_free(m);
    return rc;
  }
  if (s->metrics_own)
    piston_metrics_free(s->metrics);
  s->metrics = m;
  s->metrics_own = own;
  s->mslot = slot;
  return 0;
}

int piston_server_health(piston_server *s, const char *path) {
  if (atomic_load(&s->nloops) > 0)
    return PISTON_ESTATE;
  return set_path(&s->health_path, &s->health_path_len, path);
}

int piston_server_reopen_logs(piston_server *s) {
  return s->alog ? piston__alog_reopen(s->alog) : 0;
}

int64_t piston_server_get(const piston_server *s, piston_option opt) {
  return (unsigned)opt < PISTON_OPT__COUNT ? s->opt[opt] : PISTON_EINVAL;
}

void piston_server_on_request(piston_server *s, piston_request_cb cb,
                              void *ud) {
  s->on_request = cb;
  s->on_request_ud = ud;
}

void piston_server_on_batch_end(piston_server *s, piston_batch_cb cb,
                                void *ud) {
  s->on_batch = cb;
  s->on_batch_ud = ud;
}

void piston_server_on_client_error(piston_server *s, piston_client_error_cb cb,
                                   void *ud) {
  s->on_client_error = cb;
  s->on_client_error_ud = ud;
}

void piston_server_on_connection_closed(piston_server *s,
                                        piston_conn_closed_cb cb, void *ud) {
  s->on_conn_closed = cb;
  s->on_conn_closed_ud = ud;
}

static piston__listen_spec *add_listen(piston_server *s) {
  if (s->nlisten == PISTON_MAX_LISTENERS || atomic_load(&s->nloops) > 0)
    return NULL;
  piston__listen_spec *l = &s->listen[s->nlisten];
  memset(l, 0, sizeof *l);
  l->shared_fd = -1;
  return l;
}

int piston_server_listen_tcp(piston_server *s, const char *host, int port) {
  if (!host || port < 0 || port > 65535)
    return PISTON_EINVAL;
  piston__listen_spec *l = add_listen(s);
  if (!l)
    return PISTON_ESTATE;
  l->kind = LISTEN_TCP;
  l->port = port;
  if (!(l->host = strdup(host)))
    return PISTON_ENOMEM;
  s->nlisten++;
  return 0;
}

int piston_server_listen_unix(piston_server *s, const char *path) {
  if (!path || !*path)
    return PISTON_EINVAL;
  piston__listen_spec *l = add_listen(s);
  if (!l)
    return PISTON_ESTATE;
  l->kind = LISTEN_UNIX;
  if (!(l->path = strdup(path)))
    return PISTON_ENOMEM;
  s->nlisten++;
  return 0;
}

int piston_server_listen_fd(piston_server *s, int fd) {
  if (fd < 0)
    return PISTON_EINVAL;
  piston__listen_spec *l = add_listen(s);
  if (!l)
    return PISTON_ESTATE;
  l->kind = LISTEN_FD;
  l->shared_fd = fd;
  s->nlisten++;
  return 0;
}

/* ---- TLS: the configuration is tlsctx.c's ---- */

static piston__tlsconf *tls_conf(piston_server *s) {
  if (!s->tls)
    s->tls = piston__tlsconf_new();
  return s->tls;
}

int piston_server_tls_cert(piston_server *s, const char *cert, const char *key,
                           const char *ocsp) {
  if (atomic_load(&s->nloops) > 0)
    return PISTON_ESTATE;
  piston__tlsconf *t = tls_conf(s);
  return t ? piston__tlsconf_add_cert(t, cert, key, ocsp) : PISTON_ENOMEM;
}

int piston_server_tls_cert_pem(piston_server *s, const char *cert, size_t clen,
                               const char *key, size_t klen) {
  if (atomic_load(&s->nloops) > 0)
    return PISTON_ESTATE;
  piston__tlsconf *t = tls_conf(s);
  return t ? piston__tlsconf_add_pem(t, piston__tlsconf_count(t), cert, clen,
                                     key, klen)
           : PISTON_ENOMEM;
}

int piston_server_tls_replace_pem(piston_server *s, size_t i, const char *cert,
                                  size_t clen, const char *key, size_t klen) {
  if (!s->tls || i >= piston__tlsconf_count(s->tls))
    return PISTON_ESTATE;
  int rc = piston__tlsconf_add_pem(s->tls, i, cert, clen, key, klen);
  return rc < 0 ? rc : piston__tlsconf_build(s->tls);
}

int piston_server_tls_set(piston_server *s, piston_tls_option opt,
                          const char *value) {
  if (atomic_load(&s->nloops) > 0)
    return PISTON_ESTATE;
  piston__tlsconf *t = tls_conf(s);
  return t ? piston__tlsconf_set(t, (int)opt, value) : PISTON_ENOMEM;
}

int piston_server_listener_tls(piston_server *s, size_t i) {
  if (i >= s->nlisten)
    return PISTON_EINVAL;
  if (atomic_load(&s->nloops) > 0)
    return PISTON_ESTATE;
  s->listen[i].tls = true;
  return 0;
}

int piston_server_tls_reload(piston_server *s) {
  if (!s->tls)
    return PISTON_ESTATE;
  return piston__tlsconf_build(s->tls);
}

const char *piston_server_tls_error(const piston_server *s) {
  return piston__tlsconf_error(s->tls);
}

int piston_server_port(const piston_server *s, size_t i) {
  if (i >= s->nlisten)
    return PISTON_EINVAL;
  const piston__listen_spec *l = &s->listen[i];
  if (l->kind == LISTEN_TCP)
    return l->port;
  /* an inherited socket (a supervisor's, systemd's): its own address says */
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (l->kind != LISTEN_FD ||
      getsockname(l->shared_fd, (struct sockaddr *)&ss, &len) != 0)
    return PISTON_EINVAL;
  if (ss.ss_family == AF_INET)
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  if (ss.ss_family == AF_INET6)
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return PISTON_EINVAL;
}

static char *memdup(const void *p, size_t n) {
  char *d = malloc(n ? n : 1);
  if (d && n)
    memcpy(d, p, n);
  return d;
}

int piston_server_route_fixed(piston_server *s, const char *method,
                              const char *path, int status,
                              const piston_header *h, size_t nh,
                              const void *body, size_t body_len) {
  if (!path || path[0] != '/' || status < 200 || status > 999 ||
      (method && !piston__valid_token(method, strlen(method))) ||
      (body_len && !body) || atomic_load(&s->nloops) > 0)
    return PISTON_EINVAL;
  ptrdiff_t fields = piston__fields_size(h, nh);
  if (fields < 0)
    return PISTON_EINVAL;
  size_t flen = (size_t)fields + 64;
  piston__fixed_route *nf = realloc(s->fixed, (s->nfixed + 1) * sizeof *nf);
  if (!nf)
    return PISTON_ENOMEM;
  s->fixed = nf;
  piston__fixed_route *r = &nf[s->nfixed];
  memset(r, 0, sizeof *r);
  r->status = status;
  r->path_len = strlen(path);
  r->path = memdup(path, r->path_len);
  r->method = method ? strdup(method) : NULL;
  r->fields = malloc(flen);
  r->body = memdup(body, body_len);
  r->body_len = body_len;
  if (!r->path || (method && !r->method) || !r->fields || !r->body) {
    free(r->path);
    free(r->method);
    free(r->fields);
    free(r->body);
    return PISTON_ENOMEM;
  }
  char *p = r->fields;
  for (size_t i = 0; i < nh; i++)
    p = piston__field_put(p, &h[i]);
  if (status != 204 && status != 304)
    p += sprintf(p, "Content-Length: %zu\r\n", body_len);
  r->fields_len = (size_t)(p - r->fields);
  r->status_line = (char *)piston__status_line(status, &r->status_line_len);
  s->nfixed++;
  return 0;
}

int piston_server_route_dir(piston_server *s, const char *prefix,
                            const char *dir) {
  if (!prefix || prefix[0] != '/' || !dir || atomic_load(&s->nloops) > 0)
    return PISTON_EINVAL;
  piston__dir_route *nd = realloc(s->dirs, (s->ndirs + 1) * sizeof *nd);
  if (!nd)
    return PISTON_ENOMEM;
  s->dirs = nd;
  piston__dir_route *d = &nd[s->ndirs];
  /* "/static/" and "/static" mount the same place */
  size_t plen = strlen(prefix);
  while (plen > 1 && prefix[plen - 1] == '/')
    plen--;
  if (plen == 1)
    plen = 0; /* "/" matches every path */
  int rc = piston__mount_open(&d->mount, dir);
  if (rc < 0)
    return rc;
  d->prefix = memdup(prefix, plen);
  if (!d->prefix) {
    piston__mount_close(&d->mount);
    return PISTON_ENOMEM;
  }
  d->prefix_len = plen;
  s->ndirs++;
  return 0;
}

int piston_server_cache_route(piston_server *s, const char *prefix, int ttl_s,
                              int swr_s, int sie_s) {
  if (!prefix || prefix[0] != '/' || ttl_s < 1 || swr_s < 0 || sie_s < 0 ||
      atomic_load(&s->nloops) > 0)
    return PISTON_EINVAL;
  piston__cache_rule *n =
      realloc(s->cache_routes, (s->ncache_routes + 1) * sizeof *n);
  if (!n)
    return PISTON_ENOMEM;
  s->cache_routes = n;
  size_t plen = strlen(prefix);
  while (plen > 0 && prefix[plen - 1] == '/')
    plen--; /* "/api/" and "/api" cover the same paths; "/" all */
  char *copy = memdup(prefix, plen);
  if (!copy)
    return PISTON_ENOMEM;
  n[s->ncache_routes++] = (piston__cache_rule){copy, plen, ttl_s * 1000LL,
                                               swr_s * 1000LL, sie_s * 1000LL};
  return 0;
}
