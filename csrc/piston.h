/* piston.h: the one public C API of the Piston HTTP/1.1 engine.
 *
 * Shape: a piston_server holds configuration, native routes and the request
 * handler; one or more piston_loop run it, one per thread, each with its own
 * listening sockets (SO_REUSEPORT). A loop runs on a thread of its own
 * (piston_loop_run) or embedded in a host's event loop: watch piston_loop_fd()
 * for readability and call piston_loop_poll().
 *
 * Threads: configure the server before the first loop is created. Request
 * callbacks run on the loop's thread. piston_req_* and piston_resp_* may be
 * called from any thread; off-loop calls are posted to the loop's inbox.
 *
 * Errors: functions that can fail return a negative PISTON_E* code;
 * piston_strerror() names it. */
#ifndef PISTON_H
#define PISTON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define PISTON_EXPORT __attribute__((visibility("default")))
#define PISTON_MUST_CHECK __attribute__((warn_unused_result))
#else
#define PISTON_EXPORT
#define PISTON_MUST_CHECK
#endif

/* Version: MAJOR is the ABI and the soname (libpiston.so.MAJOR), MINOR adds
 * to the API, PATCH changes nothing in it. setup.py and package.json carry
 * the same string (the ABI test checks it). The macros are the version a
 * program was compiled against; piston_version() is that of the library it
 * runs with, which can differ when it is linked to the shared library. */
#define PISTON_VERSION_MAJOR 0
#define PISTON_VERSION_MINOR 1
#define PISTON_VERSION_PATCH 0
#define PISTON_VERSION_STRING "0.1.0"
PISTON_EXPORT const char *piston_version(void);

/* Error codes: X(name, value, message). Values are negative. */
#define PISTON_ERRNO_MAP(X)                                                    \
  X(NOMEM, -1, "out of memory")                                                \
  X(INVAL, -2, "invalid argument")                                             \
  X(CLOSED, -3, "connection closed by the client")                             \
  X(STATE, -4, "call not allowed in the request's current state")              \
  X(ADDRINUSE, -5, "address already in use")                                   \
  X(ADDRNOTAVAIL, -6, "address not available")                                 \
  X(ACCES, -7, "permission denied")                                            \
  X(AGAIN, -8, "no data available yet")                                        \
  X(SYS, -9, "system call failed")                                             \
  X(RESOLVE, -10, "cannot resolve host name")                                  \
  X(TOOBIG, -11, "request body larger than the configured limit")              \
  X(TLS, -12, "TLS configuration rejected (piston_server_tls_error says why)")

typedef enum {
#define PISTON_ERR_ENUM_(name, value, msg) PISTON_E##name = value,
  PISTON_ERRNO_MAP(PISTON_ERR_ENUM_)
#undef PISTON_ERR_ENUM_
} piston_err;

PISTON_EXPORT const char *piston_strerror(int err);
/* The standard reason phrase of an HTTP status ("Not Found"), or NULL. */
PISTON_EXPORT const char *piston_status_reason(int status);
PISTON_EXPORT const char *piston_err_name(int err);

/* Content-Type for a file name (or path: only the last component counts) by
 * its extension, case-insensitive; text types carry "; charset=utf-8";
 * unknown: "application/octet-stream". A static string. The one table that
 * file mounts and the bindings' file helpers share. */
PISTON_EXPORT const char *piston_mime_type(const char *name, size_t len);
/* Percent-decodes in[0, len) into out (room for len bytes; in == out is
 * allowed). "%XX" with two hex digits becomes that byte; with
 * PISTON_PCT_STRICT a '%' not followed by two hex digits fails the call
 * (-1), otherwise it is copied as it is (as urllib's unquote does). Returns
 * the decoded length. */
#define PISTON_PCT_STRICT 1
PISTON_EXPORT ptrdiff_t piston_percent_decode(const char *in, size_t len,
                                              char *out, int flags);

typedef struct piston_server piston_server;
typedef struct piston_loop piston_loop;
typedef struct piston_req piston_req;

/* A byte slice. Not NUL-terminated. */
typedef struct {
  const char *ptr;
  size_t len;
} piston_str;

typedef struct {
  piston_str name;
  piston_str value;
} piston_header;

/* The next element of a comma-separated field value (RFC 9110 5.6.1):
 * takes it off *rest, without the spaces around it, and returns 1; empty
 * elements are skipped; 0 when none is left. */
PISTON_EXPORT int piston_list_next(piston_str *rest, piston_str *item);

/* ---- server: configuration, routes, handler ------------------------------ */

/* Server options: X(NAME, meaning). The bindings build their option names
 * from this list, so an option added here reaches them without a copy; new
 * options go at the end so that the numbers of the others do not change.
 *
 * HANDLER_TIMEOUT_MS bounds how long the host may hold a request without
 * starting its response (as Go's http.TimeoutHandler does): the engine then
 * answers 503 with Connection: close, the host gets PISTON_EV_CLOSED (with
 * PISTON_EV_TIMEOUT) and its later calls fail with PISTON_ECLOSED, as after
 * a client disconnect. Once the response has started it no longer applies
 * (a long stream is the host's business, a stalled reader the write
 * timeout's). Native routes are never timed. */
#define PISTON_OPTION_MAP(X)                                                   \
  X(MAX_HEAD_SIZE, "bytes of request line + headers (431)")                    \
  X(MAX_URL_SIZE, "bytes of the request target (414)")                         \
  X(MAX_HEADERS, "header fields per request (431)")                            \
  X(MAX_BODY_SIZE, "request body bytes (413); 0 = no limit")                   \
  X(HEAD_TIMEOUT_MS, "first byte to end of head")                              \
  X(BODY_TIMEOUT_MS, "longest wait for more request body")                     \
  X(IDLE_TIMEOUT_MS, "keep-alive wait for the next request")                   \
  X(WRITE_TIMEOUT_MS, "longest wait for the client to read")                   \
  X(BODY_HIGH_WATER, "buffered request body before reads pause")               \
  X(WRITE_HIGH_WATER, "queued response bytes before writers wait")             \
  X(BACKLOG, "listen(2) backlog")                                              \
  X(MAX_CONNECTIONS, "per loop; accept pauses beyond it")                      \
  X(ACCESS_LOG, "1: one line per response (piston_server_access_log: "         \
                "where and how; default: combined format on stderr)")          \
  X(SHARE_PORT, "1: join a TCP port other processes of this user listen on "   \
                "(prefork workers); 0: a port in use is PISTON_EADDRINUSE")    \
  X(HANDLER_TIMEOUT_MS, "for the host to start its response (status and "      \
                        "headers), else the engine answers 503 and closes; "   \
                        "0 = no limit")                                        \
  X(WS_MAX_MESSAGE, "bytes of one received WebSocket message (close 1009)")    \
  X(WS_DEFLATE, "1: accept permessage-deflate offers (RFC 7692); 0 = off")     \
  X(WS_PING_MS, "WebSocket keep-alive: a ping after this long without a "      \
                "frame from the client, close 1011 if it stays silent as "     \
                "long again; 0 = off")                                         \
  X(TLS_MAX_HANDSHAKES, "TLS handshakes in progress per loop; accepting "      \
                        "waits beyond it")                                     \
  X(DEBUG_LOG, "1: a line on stderr for each connection the engine drops "     \
               "for a client's fault (a failed TLS handshake...)")             \
  X(HTTP2, "1: HTTP/2 on TLS by ALPN (h2 offered first; the default); 2: "     \
           "also in clear text for clients that open with its preface "        \
           "(h2c with prior knowledge); 0: HTTP/1.1 only")                     \
  X(HEAD_STYLE, "0: response heads as gunicorn's (Date first; Connection "     \
                "only for close and HTTP/1.0 keep-alive); 1: as node:http's "  \
                "(the host's fields, then Date, Connection, Keep-Alive: "      \
                "timeout=N from the idle timeout, then framing; idle "         \
                "connections wait 1 s past the N announced); 2: as 1 "         \
                "without Keep-Alive")                                          \
  X(IPV6_ONLY, "1: a listener on an IPv6 address takes IPv6 only; 0: IPv4 "    \
               "clients too, as IPv4-mapped addresses (node's default)")       \
  X(EXPECT_TO_HOST, "1: a request whose Expect is not 100-continue goes to "   \
                    "the host, which answers it (node's checkExpectation); "   \
                    "0: the engine answers 417")                               \
  X(PROXY_HEADERS, "1: believe X-Forwarded-For/-Proto/-Host/-Port and "        \
                   "Forwarded from trusted proxies (the default; see "         \
                   "piston_server_trust_proxies, which trusts none until "     \
                   "called); 0: never")                                        \
  X(PROXY_PROTOCOL, "1: connections from trusted proxies open with a PROXY "   \
                    "protocol v1 or v2 header (HAProxy's), which gives the "   \
                    "client's address; others are taken as direct clients")    \
  X(LIMIT_CONCURRENCY,                                                         \
    "requests with the host at once, per process (all "                        \
    "loops); beyond it 503 (uvicorn's --limit-concurrency; "                   \
    "native routes are not counted); 0 = no limit")                            \
  X(CACHE_SIZE, "bytes the response cache may hold (LRU beyond it); 0 = "      \
                "no cache (the default)")                                      \
  X(CACHE_MAX_ENTRY, "bytes of one cached response, head and body; larger "    \
                     "ones are not stored")                                    \
  X(CACHE_S_MAXAGE, "1: Cache-Control s-maxage=N marks a response "            \
                    "cacheable for N s, as Piston-Cache: ttl=N does")          \
  X(CACHE_WAIT_MS, "how long requests for a key whose miss is with the host "  \
                   "wait for its answer before they go to the host too")       \
  X(CACHE_MAX_WAITERS, "requests that may wait on one miss; the rest go to "   \
                       "the host")                                             \
  X(CACHE_PURGE, "1: a PURGE request from a loopback peer drops the cached "   \
                 "responses of its target (a target ending in * drops the "    \
                 "prefix); 0 = off")

typedef enum {
#define PISTON_OPT_ENUM_(name, doc) PISTON_OPT_##name,
  PISTON_OPTION_MAP(PISTON_OPT_ENUM_)
#undef PISTON_OPT_ENUM_
      PISTON_OPT__COUNT
} piston_option;

/* Called on the loop thread when a request's head has been parsed and it is
 * not a native route. The host owns one reference to req and must drop it
 * with piston_req_release() when it no longer needs the handle. */
typedef void (*piston_request_cb)(piston_req *req, void *userdata);
/* Called on the loop thread at the end of a poll pass that dispatched at
 * least one request: the place for once-per-batch work. */
typedef void (*piston_batch_cb)(piston_loop *loop, void *userdata);

PISTON_EXPORT piston_server *piston_server_new(void);
/* Frees the server; every loop made from it must be freed first. */
PISTON_EXPORT void piston_server_free(piston_server *srv);
PISTON_EXPORT PISTON_MUST_CHECK int
piston_server_set(piston_server *srv, piston_option opt, int64_t value);
PISTON_EXPORT int64_t piston_server_get(const piston_server *srv,
                                        piston_option opt);
PISTON_EXPORT void piston_server_on_request(piston_server *srv,
                                            piston_request_cb cb,
                                            void *userdata);
PISTON_EXPORT void piston_server_on_batch_end(piston_server *srv,
                                              piston_batch_cb cb,
                                              void *userdata);
/* Called on the loop thread when the engine itself rejects a request (a
 * malformed or oversized one, a slow head or body): the status it sent and
 * the peer. The request never reached the host. Status 0: the client ended
 * within a head (llhttp's HPE_INVALID_EOF_STATE); nothing is sent, the
 * connection closes unless the host takes it
 * (piston_loop_client_error_take). */
typedef void (*piston_client_error_cb)(piston_loop *loop, int status,
                                       const char *remote_addr, int remote_port,
                                       void *userdata);
PISTON_EXPORT void piston_server_on_client_error(piston_server *srv,
                                                 piston_client_error_cb cb,
                                                 void *userdata);
/* Inside a client-error callback: llhttp's name of the parse error the
 * request was rejected for ("HPE_INVALID_METHOD", the codes node:http
 * gives its errors) and, in *reason if not NULL, its reason ("Invalid
 * method encountered"); static strings. NULL when the rejection was not
 * llhttp's (a limit, a timeout, a bad Host value). */
PISTON_EXPORT const char *piston_loop_client_error(const piston_loop *loop,
                                                   const char **reason);
/* Inside a client-error callback: the bytes of the read llhttp was given
 * when the request failed (node:http's err.rawPacket), *len of them, and in
 * *parsed how many it had taken before the error (err.bytesParsed); valid
 * until the callback returns. NULL (and 0s) when the rejection was not
 * found in the bytes (a timeout). */
PISTON_EXPORT const char *piston_loop_client_error_data(const piston_loop *loop,
                                                        size_t *len,
                                                        size_t *parsed);
/* Inside a client-error callback: the host answers the rejection itself
 * (node:http's 'clientError' listener writes its own bytes, or none). The
 * engine then sends nothing and its connection becomes a raw byte stream,
 * as after piston_raw_takeover, on the returned handle (the host's
 * reference, released with piston_req_release): piston_raw_write,
 * piston_raw_shutdown, piston_resp_abort to close; what the client sends
 * from then on is read with piston_req_body_read. Whatever the host does,
 * the connection closes at the keep-alive timeout (PISTON_OPT_IDLE_TIMEOUT_MS),
 * so a host that does nothing cannot hold it. NULL when the rejection
 * cannot be taken (HTTP/2, a request the host already holds, a timeout:
 * a slowloris flood is answered by the engine at no cost to the host) or
 * was taken already; the engine answers it then. */
PISTON_EXPORT piston_req *piston_loop_client_error_take(piston_loop *loop);
/* Inside a client-error callback: the rejected connection's
 * piston_req_connection_id(), the same for every request it carried, so a
 * host can tell a connection it has seen (a socket object made at its
 * first request) from one whose first request was the rejected one. */
PISTON_EXPORT uint64_t
piston_loop_client_error_connection_id(const piston_loop *loop);
/* Called on the loop thread when a connection that carried at least one
 * request to the host closes, with its piston_req_connection_id(): lets a
 * host keep per-connection state (a socket object) and drop it in time. */
typedef void (*piston_conn_closed_cb)(piston_loop *loop, uint64_t conn_id,
                                      void *userdata);
PISTON_EXPORT void piston_server_on_connection_closed(piston_server *srv,
                                                      piston_conn_closed_cb cb,
                                                      void *userdata);

/* Trusted proxies (uvicorn's and gunicorn's --forwarded-allow-ips): IPv4
 * and IPv6 addresses and CIDR blocks ("10.0.0.0/8"), "unix:" for peers on
 * a Unix socket, "*" for every peer, separated by commas or spaces; NULL
 * or "" trusts none (the default). From a trusted peer the engine believes
 * the forwarding fields (PISTON_OPT_PROXY_HEADERS) and the PROXY protocol
 * header (PISTON_OPT_PROXY_PROTOCOL); a request's fields are never changed
 * or removed, only what the accessors below report. PISTON_EINVAL for an
 * entry that is none of these. Before the first loop. */
PISTON_EXPORT PISTON_MUST_CHECK int
piston_server_trust_proxies(piston_server *srv, const char *list);

/* The access log: one line per response (the engine's own answers
 * included), formatted when it ends and written once per loop pass, so
 * that no request pays a syscall for it. path: NULL or "" stderr, "-"
 * stdout, else a file opened for appending. format: "common", "combined"
 * (NULL), "json" (one object per line: time, remote_addr, remote_port,
 * method, path, query, protocol, scheme, status, bytes, duration_us,
 * host, referer, user_agent), or gunicorn's --access-logformat atoms:
 * %(h)s %(l)s %(u)s %(t)s %(r)s %(m)s %(U)s %(q)s %(H)s %(s)s %(B)s %(b)s
 * %(f)s %(a)s %(T)s %(M)s %(D)s %(L)s %(p)s %({name}i)s %({name}o)s
 * %({name}e)s (always "-"). Turns PISTON_OPT_ACCESS_LOG on. PISTON_EINVAL
 * for an atom it does not know (piston_server_access_log_error names it),
 * or the file's open error. Before the first loop. */
PISTON_EXPORT PISTON_MUST_CHECK int
piston_server_access_log(piston_server *srv, const char *path,
                         const char *format);
PISTON_EXPORT const char *
piston_server_access_log_error(const piston_server *srv);
/* Opens the access log file again (after logrotate moved it: SIGUSR1's
 * job, as with gunicorn and nginx) and writes to the new one from now on;
 * nothing to do for stderr/stdout. Any thread, any time; 0 or the open's
 * PISTON_E* code (the old file stays in use). */
PISTON_EXPORT int piston_server_reopen_logs(piston_server *srv);

/* Metrics for a Prometheus scraper. A piston_metrics is a region of slots,
 * one per process, in shared memory: made before a supervisor forks its
 * workers (piston_metrics_new, nslots at least the workers there may be at
 * once), every worker's counters land in it, and any worker answering a
 * scrape sums them all (a worker claims a slot whose owner is free or has
 * exited; a replacement goes on from the counters of the one it replaced).
 * The counters: responses by method and status class, a latency histogram,
 * engine rejections by status, and, per worker and summed, requests with
 * the app, open connections, bytes in and out. */
typedef struct piston_metrics piston_metrics;
PISTON_EXPORT piston_metrics *piston_metrics_new(size_t nslots);
/* The same region in a file that processes which do not fork from one
 * another open by name (node:cluster's workers, PM2's): created 0600 if
 * absent, refused (NULL, errno EPERM) if another user owns it or others
 * may write it, EINVAL if it was made with another nslots. Unmapped by
 * piston_metrics_free; the file stays for the other processes. */
PISTON_EXPORT piston_metrics *piston_metrics_open(const char *path,
                                                  size_t nslots);
PISTON_EXPORT void piston_metrics_free(piston_metrics *m);
/* Counts into m (NULL: a region of its own with one slot) and answers GET
 * and HEAD of path (NULL: none; the text format 0.0.4) on every listener,
 * in C. PISTON_EINVAL when m is full. Before the first loop; m outlives
 * the server. */
PISTON_EXPORT PISTON_MUST_CHECK int
piston_server_metrics(piston_server *srv, piston_metrics *m, const char *path);
/* A readiness/liveness route answered in C: GET and HEAD of path get 200
 * "OK" while the server serves and 503 "draining" once it is stopping
 * (piston_loop_stop: a load balancer takes it out while requests in flight
 * finish). Before the first loop. */
PISTON_EXPORT PISTON_MUST_CHECK int piston_server_health(piston_server *srv,
                                                         const char *path);

/* Adds a listening address. host may be a name, an IPv4 or an IPv6 literal
 * (without brackets); port 0 picks a free port (then all loops share the
 * port chosen by the first). Each loop binds its own socket with
 * SO_REUSEPORT. */
PISTON_EXPORT PISTON_MUST_CHECK int
piston_server_listen_tcp(piston_server *srv, const char *host, int port);
/* A Unix socket path; one socket shared by every loop. */
PISTON_EXPORT PISTON_MUST_CHECK int
piston_server_listen_unix(piston_server *srv, const char *path);
/* An already listening socket (systemd, a supervisor); shared by every loop.
 * The server does not close it. */
PISTON_EXPORT PISTON_MUST_CHECK int piston_server_listen_fd(piston_server *srv,
                                                            int fd);
/* The port actually bound by the i-th listener, after a loop was created
 * (an inherited TCP socket's at any time); PISTON_EINVAL for a Unix one. */
PISTON_EXPORT int piston_server_port(const piston_server *srv, size_t i);

/* A fixed response: method (NULL = GET and HEAD) and exact path. Headers and
 * body are copied and serialised once; Date and framing are added. */
PISTON_EXPORT PISTON_MUST_CHECK int
piston_server_route_fixed(piston_server *srv, const char *method,
                          const char *path, int status,
                          const piston_header *headers, size_t nheaders,
                          const void *body, size_t body_len);
/* Serves files under dir for request paths starting with prefix ("/static").
 * Paths that resolve outside dir (by "..", encoding or symlinks) are 404. */
PISTON_EXPORT PISTON_MUST_CHECK int piston_server_route_dir(piston_server *srv,
                                                            const char *prefix,
                                                            const char *dir);

/* ---- the response cache ---------------------------------------------------
 * With PISTON_OPT_CACHE_SIZE > 0 the engine keeps the responses a host marks
 * cacheable (docs/architecture.md, "The response cache") and answers GET and
 * HEAD requests from them on the loop thread. A host marks a response with
 * a Piston-Cache field (ttl=N[, swr=N][, sie=N], seconds), which the engine
 * removes, or with Cache-Control: s-maxage=N when PISTON_OPT_CACHE_S_MAXAGE
 * is on. One cache per server, shared by all its loops. */
typedef struct {
  uint64_t hits;        /* answered from a fresh entry */
  uint64_t stale_hits;  /* answered from a stale one (swr, sie) */
  uint64_t misses;      /* went to the host */
  uint64_t coalesced;   /* waited for another request's miss */
  uint64_t stores;      /* responses stored */
  uint64_t uncacheable; /* a miss's response that could not be stored */
  uint64_t evictions;   /* dropped for room (LRU) */
  uint64_t purged;      /* dropped by a purge */
  uint64_t bytes;       /* held now */
  uint64_t entries;     /* held now */
} piston_cache_stats;

/* Before the first loop: responses to GET requests whose path is prefix or
 * under it ("/api" covers "/api" and "/api/..."; "/" every path) are
 * cacheable as if they carried Piston-Cache: ttl=ttl_s, swr=swr_s,
 * sie=sie_s, unless they carry their own. The rules against storing
 * (Set-Cookie, private...) still hold. PISTON_EINVAL for a prefix that
 * does not start with '/' or a ttl_s under 1. */
PISTON_EXPORT PISTON_MUST_CHECK int
piston_server_cache_route(piston_server *srv, const char *prefix, int ttl_s,
                          int swr_s, int sie_s);

/* Any thread. Fields are only ever appended to piston_cache_stats. */
PISTON_EXPORT void piston_server_cache_stats(const piston_server *srv,
                                             piston_cache_stats *out);
/* Any thread: drops the cached responses whose target (path and query) is
 * target, or starts with it when prefix is nonzero, on every host and in
 * every variant. Returns how many were dropped. */
PISTON_EXPORT size_t piston_server_cache_purge(piston_server *srv,
                                               const char *target,
                                               size_t target_len, int prefix);

/* ---- TLS (OpenSSL 3) -------------------------------------------------------
 * A listener marked with piston_server_listener_tls speaks TLS 1.2 and 1.3:
 * the handshake runs on the loop (no thread per handshake), then the
 * connection's protocol is the same as on a plain one. The head timeout
 * runs from accept, so it bounds the handshake and the first head together.
 * Configure before the first loop is created; only piston_server_tls_reload
 * is allowed afterwards (from any thread). Failures return PISTON_ETLS (or
 * PISTON_EINVAL/ENOMEM) and piston_server_tls_error() says what to fix. */

/* Adds a certificate chain (PEM, leaf first) with its private key (PEM,
 * without a passphrase) and, optionally, a DER OCSP response to staple
 * (ocsp_file NULL: none). The first is the default; the others are chosen
 * by the name the client asks for (SNI) against their subject alternative
 * names. The files are read now, and again on each reload. */
PISTON_EXPORT PISTON_MUST_CHECK int
piston_server_tls_cert(piston_server *srv, const char *cert_file,
                       const char *key_file, const char *ocsp_file);
/* The same from PEM text in memory (Node's key and cert options); the
 * text is copied. */
PISTON_EXPORT PISTON_MUST_CHECK int
piston_server_tls_cert_pem(piston_server *srv, const char *cert_pem,
                           size_t cert_len, const char *key_pem,
                           size_t key_len);
/* Replaces the i-th certificate (in the order added) with PEM text and
 * makes the new one serve new connections, as piston_server_tls_reload
 * does (Node's setSecureContext). Any thread, any time after configuration;
 * on failure nothing changes. */
PISTON_EXPORT PISTON_MUST_CHECK int
piston_server_tls_replace_pem(piston_server *srv, size_t i,
                              const char *cert_pem, size_t cert_len,
                              const char *key_pem, size_t key_len);
/* TLS settings: X(NAME, meaning); values are strings. */
#define PISTON_TLS_OPTION_MAP(X)                                               \
  X(CA_FILE, "PEM file of the CAs client certificates must chain to")          \
  X(CA_PEM, "PEM text of such CAs (beside or instead of CA_FILE)")             \
  X(VERIFY_CLIENT, "client certificates: none (default), optional, "           \
                   "optional_no_ca (any certificate, verified or not), "       \
                   "required")                                                 \
  X(MIN_VERSION, "1.2 (default) or 1.3")                                       \
  X(MAX_VERSION, "1.2 or 1.3 (default)")                                       \
  X(CIPHERS, "TLS 1.2 cipher list, OpenSSL's syntax (default: ECDHE with "     \
             "AES-GCM or ChaCha20-Poly1305)")                                  \
  X(CIPHERSUITES, "TLS 1.3 suites, OpenSSL's syntax (default: OpenSSL's)")     \
  X(ALPN, "protocols offered by ALPN, comma-separated (default: h2,http/1.1 "  \
          "with PISTON_OPT_HTTP2, else http/1.1)")                             \
  X(TICKET_ROTATE_S, "seconds a session-ticket key encrypts new tickets; "     \
                     "tickets stay valid one more period; 0: no tickets "      \
                     "(default: 3600)")                                        \
  X(TICKET_SECRET, "ticket keys derived from this secret (64 to 256 hex "      \
                   "digits) and the wall clock instead of random ones: "       \
                   "processes that share it resume each other's sessions")     \
  X(TICKET_KEY_FILE, "the same secret from a file of 32 to 128 bytes "         \
                     "(nginx's ssl_session_ticket_key: openssl rand 80)")

typedef enum {
#define PISTON_TLS_ENUM_(name, doc) PISTON_TLS_##name,
  PISTON_TLS_OPTION_MAP(PISTON_TLS_ENUM_)
#undef PISTON_TLS_ENUM_
      PISTON_TLS__COUNT
} piston_tls_option;

PISTON_EXPORT PISTON_MUST_CHECK int piston_server_tls_set(piston_server *srv,
                                                          piston_tls_option opt,
                                                          const char *value);
/* The i-th listener (in the order they were added) speaks TLS; needs at
 * least one certificate. */
PISTON_EXPORT PISTON_MUST_CHECK int
piston_server_listener_tls(piston_server *srv, size_t i);
/* Reads every certificate, key, OCSP and CA file again and uses them for new
 * connections; open connections keep theirs. On failure the old ones stay
 * in use. Any thread, any time after configuration. */
PISTON_EXPORT PISTON_MUST_CHECK int
piston_server_tls_reload(piston_server *srv);
/* What the last failed TLS call found ("" if none). */
PISTON_EXPORT const char *piston_server_tls_error(const piston_server *srv);

/* What a request's connection negotiated: X(NAME, meaning). Empty slices on
 * a plain connection (VERSION empty means: not TLS). */
#define PISTON_TLS_INFO_MAP(X)                                                 \
  X(VERSION, "TLSv1.2 or TLSv1.3")                                             \
  X(CIPHER, "the cipher suite, OpenSSL's name")                                \
  X(CIPHER_ID, "the suite's IANA number, 4 hex digits (1301)")                 \
  X(ALPN, "the protocol ALPN chose, empty if none")                            \
  X(SNI, "the server name the client asked for, empty if none")                \
  X(VERIFY, "the client certificate: NONE, SUCCESS or FAILED:reason")          \
  X(PEER_SUBJECT, "its subject, RFC 2253")                                     \
  X(PEER_ISSUER, "its issuer, RFC 2253")                                       \
  X(PEER_SERIAL, "its serial number, hex")                                     \
  X(PEER_NOT_BEFORE, "valid from, as \"Jan  2 03:04:05 2026 GMT\"")            \
  X(PEER_NOT_AFTER, "valid until, likewise")                                   \
  X(PEER_CERT, "its DER encoding")                                             \
  X(LOCAL_CERT, "the DER of the server certificate the handshake chose")

typedef enum {
#define PISTON_TLSI_ENUM_(name, doc) PISTON_TLSI_##name,
  PISTON_TLS_INFO_MAP(PISTON_TLSI_ENUM_)
#undef PISTON_TLSI_ENUM_
      PISTON_TLSI__COUNT
} piston_tls_info;

/* Valid as long as the handle. */
PISTON_EXPORT piston_str piston_req_tls(const piston_req *req,
                                        piston_tls_info what);

/* ---- loops ----------------------------------------------------------------
 */

/* Creates a loop and its listening sockets. On failure returns NULL and
 * stores a PISTON_E* code in *err. */
PISTON_EXPORT piston_loop *piston_loop_new(piston_server *srv, int *err);
/* Runs until the loop is stopped (piston_loop_stop) and has drained. */
PISTON_EXPORT int piston_loop_run(piston_loop *loop);
/* For embedding: an fd that becomes readable when piston_loop_poll has work. */
PISTON_EXPORT int piston_loop_fd(const piston_loop *loop);
/* One non-blocking pass: accept, read, dispatch, write, timers. Returns 1
 * while the loop is live, 0 once it has stopped and drained. */
PISTON_EXPORT int piston_loop_poll(piston_loop *loop);
/* Graceful stop, callable from any thread or a signal handler: listeners
 * close, idle connections close, in-flight requests get up to deadline_ms
 * to finish, then everything closes. */
PISTON_EXPORT void piston_loop_stop(piston_loop *loop, int deadline_ms);
/* Closes the keep-alive connections that wait for a request, now or at the
 * loop's next pass (callable from any thread). In-flight requests go on. */
PISTON_EXPORT void piston_loop_close_idle(piston_loop *loop);
/* Must be called on the loop's thread after it stopped (or never ran):
 * closes what is left and frees the loop. */
PISTON_EXPORT void piston_loop_free(piston_loop *loop);
PISTON_EXPORT size_t piston_loop_connections(const piston_loop *loop);

/* ---- requests --------------------------------------------------------------
 * Slices stay valid until the handle is released. */

PISTON_EXPORT void piston_req_retain(piston_req *req);
PISTON_EXPORT void piston_req_release(piston_req *req);
PISTON_EXPORT piston_loop *piston_req_loop(const piston_req *req);
PISTON_EXPORT void piston_req_set_userdata(piston_req *req, void *userdata);
PISTON_EXPORT void *piston_req_userdata(const piston_req *req);

PISTON_EXPORT piston_str piston_req_method(const piston_req *req);
PISTON_EXPORT piston_str piston_req_target(const piston_req *req);
/* Path and query of the target (absolute-form targets included), still
 * percent-encoded; the query excludes the '?'. */
PISTON_EXPORT piston_str piston_req_path(const piston_req *req);
PISTON_EXPORT piston_str piston_req_query(const piston_req *req);
/* 0 for HTTP/1.0, 1 for HTTP/1.1 and HTTP/2 (whose semantics are
 * HTTP/1.1's; piston_req_http_version tells them apart). */
PISTON_EXPORT int piston_req_http_minor(const piston_req *req);
/* 10, 11 or 20 (HTTP/2). */
PISTON_EXPORT int piston_req_http_version(const piston_req *req);
PISTON_EXPORT size_t piston_req_header_count(const piston_req *req);
PISTON_EXPORT piston_header piston_req_header_at(const piston_req *req,
                                                 size_t i);
/* First header with this name (case-insensitive); ptr is NULL if none. */
PISTON_EXPORT piston_str piston_req_header(const piston_req *req,
                                           const char *name, size_t name_len);
/* Textual peer address ("127.0.0.1", "::1", "" for Unix sockets) and port;
 * the string lives as long as the handle. The client a trusted proxy named
 * (X-Forwarded-For, Forwarded for=, a PROXY protocol header) when there is
 * one: its port is 0 unless the proxy gave it. */
PISTON_EXPORT const char *piston_req_remote_addr(const piston_req *req,
                                                 int *port);
PISTON_EXPORT int piston_req_local_port(const piston_req *req);
/* 1 if the client's scheme is https: a trusted proxy said so
 * (X-Forwarded-Proto: https, X-Forwarded-Ssl: on, X-Forwarded-Protocol:
 * ssl, Forwarded proto=https), or, when it said nothing, the connection is
 * TLS; 0 otherwise. */
PISTON_EXPORT int piston_req_secure(const piston_req *req);
/* The host a trusted proxy was asked for (X-Forwarded-Host, Forwarded
 * host=), without its port, and in *port the port (X-Forwarded-Port, else
 * the host's own, else 443 or 80 by piston_req_secure); ptr NULL and 0 if
 * no proxy said. For SERVER_NAME/SERVER_PORT and ASGI's server; the Host
 * field itself is left as it came. */
PISTON_EXPORT piston_str piston_req_forwarded_host(const piston_req *req,
                                                   int *port);
/* -1 when unknown (chunked), else the Content-Length (0 for none). */
PISTON_EXPORT int64_t piston_req_content_length(const piston_req *req);
/* The connection the request came on: unique within the process, the same
 * for every request of one keep-alive connection. */
PISTON_EXPORT uint64_t piston_req_connection_id(const piston_req *req);
/* On the loop's thread: the bytes the request's connection has read since
 * accept, and the bytes queued on it for the client (sent or not yet), as
 * node's socket.bytesRead / bytesWritten count them. PISTON_ECLOSED once
 * the connection is gone. */
PISTON_EXPORT PISTON_MUST_CHECK int
piston_req_connection_bytes(const piston_req *req, uint64_t *read,
                            uint64_t *written);

/* Body: copies up to len buffered bytes. Returns the count, 0 at the end of
 * the body, PISTON_EAGAIN when nothing is buffered yet, PISTON_ECLOSED if the
 * client went away, PISTON_ETOOBIG past the body limit (the engine answers
 * 413 itself unless the response has started). */
PISTON_EXPORT int64_t piston_req_body_read(piston_req *req, void *buf,
                                           size_t len);

/* Request events: X(name, bit, meaning). The bindings build their event
 * names from this list. TIMEOUT comes with CLOSED: it was the engine that
 * answered (503), the host being past PISTON_OPT_HANDLER_TIMEOUT_MS; a host
 * that can stop the handler (cancel a task) does so, as nobody waits for it
 * any more. */
#define PISTON_EVENT_MAP(X)                                                    \
  X(BODY, 1, "more request body is readable, or its end")                      \
  X(DRAIN, 2, "the response queue fell below its low-water mark")              \
  X(CLOSED, 4, "the client went away; the request is dead")                    \
  X(TIMEOUT, 8, "with CLOSED: the engine answered 503 (handler timeout)")      \
  X(MESSAGE, 16, "a WebSocket message is waiting (piston_ws_recv)")

typedef enum {
#define PISTON_EV_ENUM_(name, bit, doc) PISTON_EV_##name = bit,
  PISTON_EVENT_MAP(PISTON_EV_ENUM_)
#undef PISTON_EV_ENUM_
} piston_event;
/* Notifications for one request, delivered on the loop thread. Set before
 * the first read/write that may need them (ideally in the request cb). */
typedef void (*piston_req_event_cb)(piston_req *req, int events,
                                    void *userdata);
PISTON_EXPORT void piston_req_on_event(piston_req *req, piston_req_event_cb cb,
                                       void *userdata);

/* ---- responses -------------------------------------------------------------
 * start, then write/sendfile any number of times, then end. A header named
 * Content-Length fixes the body length; otherwise HTTP/1.1 responses are
 * chunked (HTTP/1.0 ones end with the connection). Date and Connection are
 * added by the engine (where: PISTON_OPT_HEAD_STYLE); a Date of the host's
 * is sent instead, and an empty one means none at all (node's sendDate =
 * false). Writes are always accepted (data is copied); they
 * return 1 when the queue is over its high-water mark (wait for
 * PISTON_EV_DRAIN), 0 otherwise, or a negative error. */
PISTON_EXPORT PISTON_MUST_CHECK int piston_resp_start(piston_req *req,
                                                      int status,
                                                      const piston_header *h,
                                                      size_t nheaders);
PISTON_EXPORT PISTON_MUST_CHECK int
piston_resp_write(piston_req *req, const void *data, size_t len);
/* Sends len bytes of fd from offset. The engine dups fd. */
PISTON_EXPORT PISTON_MUST_CHECK int
piston_resp_sendfile(piston_req *req, int fd, off_t offset, size_t len);
PISTON_EXPORT PISTON_MUST_CHECK int
piston_resp_end(piston_req *req, const piston_header *trailers,
                size_t ntrailers);
/* piston_resp_start with the host's own reason phrase (no CR, LF or NUL;
 * an empty one is allowed). */
PISTON_EXPORT PISTON_MUST_CHECK int
piston_resp_start_reason(piston_req *req, int status, const char *reason,
                         size_t reason_len, const piston_header *h,
                         size_t nheaders);
/* An informational (1xx) response before the final one: 100 Continue, 102
 * Processing, 103 Early Hints (with its Link headers), any 1xx but 101
 * (upgrades have their own calls); on HTTP/2, a HEADERS frame before the
 * final one. Returns 0, also when it is not sent because the client speaks
 * HTTP/1.0 (RFC 9110 15.2 forbids it there);
 * PISTON_ESTATE once the final response has started. A 100 sent so
 * satisfies the client's Expect: 100-continue. */
PISTON_EXPORT PISTON_MUST_CHECK int piston_resp_inform(piston_req *req,
                                                       int status,
                                                       const piston_header *h,
                                                       size_t nheaders);
/* start + write + end with Content-Length, in one call. */
PISTON_EXPORT PISTON_MUST_CHECK int
piston_resp_send(piston_req *req, int status, const piston_header *h,
                 size_t nheaders, const void *body, size_t len);
/* piston_resp_send with the host's own reason phrase (reason NULL: the
 * standard one). */
PISTON_EXPORT PISTON_MUST_CHECK int
piston_resp_send_reason(piston_req *req, int status, const char *reason,
                        size_t reason_len, const piston_header *h,
                        size_t nheaders, const void *body, size_t len);
/* Ends the exchange abnormally: a 500 if nothing was sent yet, otherwise the
 * connection is closed. */
PISTON_EXPORT void piston_resp_abort(piston_req *req);
/* Ends the exchange with no response: what was written goes out, then the
 * connection closes (HTTP/2: the stream is reset), as node:http does on a
 * res.destroy() or socket.destroy() before its response. */
PISTON_EXPORT void piston_resp_reset(piston_req *req);
PISTON_EXPORT int piston_resp_started(const piston_req *req);

/* ---- WebSocket (RFC 6455) --------------------------------------------------
 * A request that opens a WebSocket is an ordinary request until the host
 * accepts it; from then on its connection carries WebSocket messages for
 * the same handle (the host's reference keeps it, as before), until either
 * side closes. The engine does the framing, masking rules, fragmentation,
 * UTF-8 validation of text, pings and the closing handshake. Any thread may
 * call these, as the response calls. */
/* PING and PONG: control frames (at most 125 bytes), which the host sends
 * and, after piston_ws_control_events, receives. */
typedef enum {
  PISTON_WS_TEXT = 1,
  PISTON_WS_BINARY = 2,
  PISTON_WS_PING = 9,
  PISTON_WS_PONG = 10
} piston_ws_opcode;
/* What req asks for: 0 no WebSocket; 101 a valid opening handshake (GET,
 * HTTP/1.1, Upgrade: websocket, Connection: upgrade, a Sec-WebSocket-Key of
 * 16 bytes, Sec-WebSocket-Version: 13); 426 a version other than 13; 400
 * any other flaw of an attempt. */
PISTON_EXPORT int piston_ws_handshake(const piston_req *req);
/* Answers an attempt the host will not take: the status
 * piston_ws_handshake gave (400 for a valid one refused, 426 with
 * Sec-WebSocket-Version: 13). */
PISTON_EXPORT PISTON_MUST_CHECK int piston_ws_refuse(piston_req *req);
/* Accepts a valid handshake: 101 with Sec-WebSocket-Accept, plus the host's
 * headers (Sec-WebSocket-Protocol, cookies...). PISTON_EINVAL if req is no
 * valid handshake. */
PISTON_EXPORT PISTON_MUST_CHECK int
piston_ws_accept(piston_req *req, const piston_header *h, size_t nheaders);
/* Sends one message (PISTON_WS_TEXT must be UTF-8: the caller's promise),
 * or a ping or pong of at most 125 bytes (PISTON_EINVAL beyond; never
 * compressed). Returns as piston_resp_write: 1 over the high-water mark
 * (wait for PISTON_EV_DRAIN), 0, or PISTON_ECLOSED once the session is
 * closing. */
PISTON_EXPORT PISTON_MUST_CHECK int
piston_ws_send(piston_req *req, int opcode, const void *data, size_t len);
/* Starts the closing handshake with code (1000-1003, 1007-1014, 3000-4999;
 * 0 sends none) and a reason (at most 123 bytes of UTF-8). */
PISTON_EXPORT PISTON_MUST_CHECK int
piston_ws_close(piston_req *req, int code, const char *reason, size_t len);
/* Takes the next message received: 1 and *opcode, *data, *len (valid until
 * the next call or the release), 0 if none is waiting (PISTON_EV_MESSAGE
 * tells when one is), PISTON_ECLOSED once the session has ended and every
 * message was taken. */
PISTON_EXPORT int piston_ws_recv(piston_req *req, int *opcode,
                                 const void **data, size_t *len);
/* on != 0: piston_ws_recv also yields the peer's pings (PISTON_WS_PING;
 * the engine still answers each with its pong) and pongs (PISTON_WS_PONG),
 * in order with the messages, as uWebSockets.js's ping/pong handlers need.
 * Off by default: control frames then cost no allocation. May be called
 * before the accept. */
PISTON_EXPORT void piston_ws_control_events(piston_req *req, int on);
/* Ends the session at once, without a close frame (uWebSockets.js's
 * ws.close()): the connection closes, what is still queued is dropped, and
 * the close code is 1006; PISTON_EV_CLOSED follows as for any end. Also
 * during a closing handshake. PISTON_ESTATE if req is no WebSocket
 * session; PISTON_ECLOSED once the connection is gone. */
PISTON_EXPORT int piston_ws_abort(piston_req *req);
/* Bytes queued for the session's connection that the socket has not taken
 * yet (messages, publishes, control frames): exact on the loop's thread;
 * from another thread it counts the connection's queue as of its last
 * flush. 0 once the connection is gone. */
PISTON_EXPORT uint64_t piston_ws_buffered(const piston_req *req);
/* How the session ended: the peer's close code (1005 if its close frame had
 * none), the code the engine failed it with (1002 protocol error, 1007
 * invalid UTF-8, 1009 too big), 1006 if the connection dropped without a
 * close frame; 0 while it is open. */
PISTON_EXPORT int piston_ws_close_code(const piston_req *req);
/* The reason the peer's close frame gave (UTF-8, at most 123 bytes; empty
 * if none, or if the session ended otherwise). Valid for the handle's
 * life. */
PISTON_EXPORT piston_str piston_ws_close_reason(const piston_req *req);

/* Publish/subscribe: a WebSocket session subscribes to topics (any bytes);
 * a publish frames its message once and queues it to every subscriber on
 * every loop of the server, without calling the host per subscriber (the
 * model of uWebSockets and Bun). A subscriber whose queue already holds 16
 * times PISTON_OPT_WRITE_HIGH_WATER is skipped for that message, as
 * uWebSockets drops past its backpressure limit. A session's subscriptions
 * end with it. Any thread may call these. */
PISTON_EXPORT PISTON_MUST_CHECK int
piston_ws_subscribe(piston_req *req, const void *topic, size_t len);
/* 1 if req was subscribed to topic, 0 if not. */
PISTON_EXPORT int piston_ws_unsubscribe(piston_req *req, const void *topic,
                                        size_t len);
/* 1 if req is subscribed to topic now, 0 if not. */
PISTON_EXPORT int piston_ws_is_subscribed(const piston_req *req,
                                          const void *topic, size_t len);
/* Queues one message to topic's subscribers, except (if not NULL) the
 * session except (uWebSockets' ws.publish skips the publisher). Returns
 * the number of sessions it was queued to, or a negative PISTON_E* code. */
PISTON_EXPORT int piston_ws_publish(piston_server *srv, const void *topic,
                                    size_t len, int opcode, const void *data,
                                    size_t dlen, const piston_req *except);
/* How many sessions are subscribed to topic now. */
PISTON_EXPORT size_t piston_ws_subscribers(piston_server *srv,
                                           const void *topic, size_t len);

/* ---- taking the connection over (any other protocol) -----------------------
 * After a request that asks for an upgrade (or a CONNECT), the host may take
 * its connection as a raw byte stream instead of answering in HTTP: it
 * writes the 101 (or 2xx) itself, then whatever its protocol says, as
 * node:http's 'upgrade' and 'connect' events allow. Bytes from the client,
 * those already read behind the request's head first, are read with
 * piston_req_body_read (PISTON_EV_BODY when more arrive; 0 once the client
 * has shut its direction); piston_resp_abort closes the connection. */
PISTON_EXPORT PISTON_MUST_CHECK int piston_raw_takeover(piston_req *req);
/* Queues bytes as they are; pressure as piston_resp_write. */
PISTON_EXPORT PISTON_MUST_CHECK int
piston_raw_write(piston_req *req, const void *data, size_t len);
/* Ends the host's direction: a FIN once what is queued has gone out. The
 * connection closes when both directions have ended. */
PISTON_EXPORT PISTON_MUST_CHECK int piston_raw_shutdown(piston_req *req);

#ifdef __cplusplus
}
#endif
#endif
