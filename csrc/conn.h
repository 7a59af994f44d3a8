/* The connection layer: a socket on a loop with its transport, its read
 * buffer and its output queue, run by one protocol handler at a time
 * (HTTP/1.1 today). It owns the socket's life (read, flush, the lingering
 * close) and hands everything about the bytes' meaning to the handler
 * through piston__proto, so it calls no layer above it. Owned by conn.c;
 * the transport (how bytes cross the socket) by transport.c. */
#ifndef PISTON_CONN_H
#define PISTON_CONN_H

#include "loop.h"
#include "outq.h"

#include <netinet/in.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/types.h>

typedef struct piston__conn piston__conn;

/* What a TLS connection negotiated, for the hosts (piston_req_tls): made
 * once when its handshake completes, shared by its requests (a reference
 * each), so that it outlives the connection as the peer's address does. */
typedef struct piston__tlsinfo {
  atomic_int refs;
  uint32_t off[PISTON_TLSI__COUNT], len[PISTON_TLSI__COUNT]; /* into data */
  char data[];
} piston__tlsinfo;

void piston__tlsinfo_unref(piston__tlsinfo *ti);

/* How bytes cross the socket: plain (TCP or a Unix socket) or TLS. */
typedef struct {
  /* >0 bytes read, 0 at EOF, -1 with errno set */
  ssize_t (*read)(piston__conn *c, void *buf, size_t len);
  /* writes what the socket takes: 0 when q is empty, 1 when the socket is
   * full (wait for EPOLLOUT), or -errno */
  int (*flush)(piston__conn *c, piston__outq *q);
  void (*shutdown_write)(piston__conn *c);
  void (*close)(piston__conn *c); /* before the socket closes; may be NULL */
} piston__transport;

extern const piston__transport piston__transport_plain;
extern const piston__transport piston__transport_tls;

struct piston__tlsconf;
/* Makes c a TLS server connection on conf's current certificates (tls.c);
 * PISTON_ENOMEM or PISTON_EAGAIN (too many handshakes: c must close). */
int piston__tls_attach(piston__conn *c, struct piston__tlsconf *conf);

/* What a protocol handler does with its connection. */
typedef struct {
  void (*run)(piston__conn *c); /* input or work to do */
  /* before each flush, output the handler makes (may be NULL) */
  void (*prepare)(piston__conn *c);
  void (*flushed)(piston__conn *c, bool sent); /* sent: the queue drained */
  void (*timeout)(piston__conn *c, int kind);
  void (*stop)(piston__conn *c);       /* graceful stop begins */
  bool (*idle)(const piston__conn *c); /* nothing in flight or arriving */
  void (*closing)(piston__conn *c);    /* the socket is gone: let go */
  void (*destroy)(piston__conn *c);    /* free the handler's memory */
} piston__proto;

/* OPEN: the handler runs it. CLOSING: the last output is flushed, then
 * LINGER: our side is shut and input is drained briefly, so that the
 * kernel does not reset the connection under the response. CLOSED: gone
 * from the loop, freed at the end of the pass. */
typedef enum {
  CONN_OPEN,
  CONN_CLOSING,
  CONN_LINGER,
  CONN_CLOSED
} piston__conn_state;

struct piston__conn {
  piston__io io; /* first: the loop sees the connection as this */
  uint8_t state;
  bool readable, writable; /* what epoll last said (edge-triggered) */
  bool peer_eof;           /* read returned 0 */
  bool rdhup; /* epoll saw the peer's FIN: read to EOF, no shortcuts */
  /* the transport's read waits for the socket to be writable (a TLS
   * handshake message), or its flush for input (never with
   * renegotiation off, but a full socket of ours is possible) */
  bool read_wants_write, flush_wants_read;
  bool tls_handshaking; /* counted in the loop's tls_handshakes */
  bool tls_checked;     /* its first byte was looked at (tls.c) */
  /* the transport met a fatal error (a reset) behind bytes it returned:
   * the socket no longer reports it, so the connection closes at its next
   * run, once those bytes were handled */
  bool read_failed;
  /* our FIN was sent (piston__conn_shut_write): from then on the socket's
   * EPOLLHUP can mean the client's FIN, not only its reset */
  bool wr_shut;
  /* from a trusted proxy with PISTON_OPT_PROXY_PROTOCOL: a PROXY header
   * comes first (proxyproto.c), before any byte the transport reads */
  bool proxy_wait;
  int fd;
  atomic_int local_port; /* learnt on the first ask; 0: not yet, -1: none */
  const piston__transport *tp;
  const piston__proto *proto;
  char *rbuf;          /* from the loop's pool while bytes are in it */
  uint32_t rlen, rpos; /* bytes in rbuf; bytes the handler has consumed */
  uint64_t bytes_read; /* from the transport (after TLS), since accept */
  piston__outq out;
  void *tls;                /* SSL, for the TLS transport */
  piston__tlsinfo *tlsinfo; /* once its handshake completed */
  uint64_t id;              /* unique in the process */
  struct sockaddr_storage peer;
  socklen_t peer_len;
};

/* Sets c up on loop with proto as its handler and starts watching fd; on
 * failure closes fd and returns a PISTON_E* code (c is the caller's). */
int piston__conn_init(piston__conn *c, piston_loop *loop, int fd,
                      const struct sockaddr_storage *peer, socklen_t len,
                      const piston__proto *proto);
/* Reads once into the read buffer (taken from the pool if c has none).
 * >0: bytes added; 0: the peer's EOF (peer_eof set); -1: nothing now
 * (readable cleared); -2: c was closed (an error, or no memory). */
int piston__conn_read(piston__conn *c);
uint32_t piston__conn_rbuf_size(const piston__conn *c);
/* Gives c a read buffer if it has none; false: c was closed (no memory). */
bool piston__conn_rbuf_take(piston__conn *c);
/* After a read of c's socket failed (errno): 0 to retry (EINTR), -1
 * nothing now (readable cleared), -2 c was closed. */
int piston__conn_read_failed(piston__conn *c);
/* Gives the read buffer back when nothing is left in it. */
void piston__conn_rbuf_release(piston__conn *c);
/* Flush what is queued, then close (lingering): no more input is read. */
void piston__conn_finish(piston__conn *c);
void piston__conn_close(piston__conn *c);
void piston__conn_mark_pending(piston__conn *c);
/* Sends our FIN (the transport's close_notify first): a half-close. */
void piston__conn_shut_write(piston__conn *c);
void piston__conn_mark_dirty(piston__conn *c);
/* The peer's address as text and port ("" and 0 for a Unix socket). */
void piston__conn_peer_text(const piston__conn *c, char *buf, size_t cap,
                            int *port);

static inline void piston__conn_timer(piston__conn *c, int kind) {
  piston__timer_set(&c->io, kind);
}

#endif
