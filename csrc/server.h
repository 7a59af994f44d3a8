/* The server: configuration, listening addresses, native routes and the
 * host's callbacks. Written before the first loop exists, read-only after
 * (the ports learnt by the first loop excepted, under lock), so every layer
 * may read it. Owned by server.c. */
#ifndef PISTON_SERVER_H
#define PISTON_SERVER_H

#include "fileserve.h"
#include "piston.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>

#define PISTON_MAX_LISTENERS 16

typedef enum { LISTEN_TCP, LISTEN_UNIX, LISTEN_FD } piston__listen_kind;

typedef struct {
  piston__listen_kind kind;
  char *host;    /* TCP */
  int port;      /* TCP: requested, then the one bound */
  char *path;    /* UNIX */
  int shared_fd; /* UNIX and FD: one socket for every loop, else -1 */
  bool bound;    /* TCP: a loop has bound it; later loops join it */
  bool own_fd;   /* close shared_fd with the server */
  bool tls;      /* piston_server_listener_tls */
} piston__listen_spec;

typedef struct {
  char *method; /* NULL: GET and HEAD */
  char *path;
  size_t path_len;
  char *status_line; /* "HTTP/1.1 200 OK\r\n" */
  size_t status_line_len;
  char *fields; /* "Name: v\r\n...Content-Length: n\r\n" */
  size_t fields_len;
  char *body;
  size_t body_len;
  int status;
} piston__fixed_route;

typedef struct {
  char *prefix;
  size_t prefix_len;
  piston__mount mount;
} piston__dir_route;

/* What a loop does with an accepted socket: the first protocol handler's
 * entry (HTTP/1.1). A pointer, so that the loop calls no layer above it. */
typedef void (*piston__accept_fn)(piston_loop *loop, int fd,
                                  const struct sockaddr_storage *peer,
                                  socklen_t len, bool tls);

/* A path prefix whose responses are cacheable without a Piston-Cache field
 * (piston_server_cache_route; read by cachecap.c). */
typedef struct {
  char *prefix;
  size_t prefix_len; /* trailing '/' removed; 0: every path */
  int64_t ttl_ms, swr_ms, sie_ms;
} piston__cache_rule;

struct piston_server {
  int64_t opt[PISTON_OPT__COUNT];
  piston__accept_fn accept;
  piston_request_cb on_request;
  void *on_request_ud;
  piston_batch_cb on_batch;
  void *on_batch_ud;
  piston_client_error_cb on_client_error;
  void *on_client_error_ud;
  piston_conn_closed_cb on_conn_closed;
  void *on_conn_closed_ud;
  piston__listen_spec listen[PISTON_MAX_LISTENERS];
  size_t nlisten;
  piston__fixed_route *fixed;
  size_t nfixed;
  piston__dir_route *dirs;
  size_t ndirs;
  pthread_mutex_t lock;        /* guards the ports learnt by the first loop */
  pthread_mutex_t pubsub_lock; /* guards pubsub and every session's topics */
  struct piston__pubsub
      *pubsub; /* WebSocket topics (pubsub.c); NULL: none yet */
  atomic_int nloops;
  struct piston__tlsconf *tls;    /* tlsctx.c; NULL: no TLS configured */
  struct piston__trust *trust;    /* trusted proxies (trust.h); NULL: none */
  struct piston__alog *alog;      /* access log (accesslog.h); NULL: none yet */
  char alog_error[64];            /* the atom a format was refused for */
  struct piston_metrics *metrics; /* metrics.h; NULL: not counted */
  struct piston__mslot *mslot;    /* this process's slot of it */
  bool metrics_own;               /* made by the server: freed with it */
  char *metrics_path, *health_path;
  size_t metrics_path_len, health_path_len;
  atomic_long inflight;        /* requests with the host (LIMIT_CONCURRENCY) */
  struct piston__cache *cache; /* the response cache (cachestore.h) */
  piston__cache_rule *cache_routes;
  size_t ncache_routes;
};

/* pubsub.c: frees the topics (the server's end; no session is left) */
void piston__pubsub_free(piston_server *srv);

/* listen.c: opens the i-th listening socket for a new loop. A TCP address
 * gets a socket of the loop's own (SO_REUSEPORT); Unix and inherited
 * sockets are one socket shared by every loop (*shared). Returns the fd or
 * a PISTON_E* code. */
int piston__listen_open(piston_server *srv, piston__listen_spec *spec,
                        bool *shared);

#endif
