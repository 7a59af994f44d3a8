/* The plain transport: the socket itself. TLS (tls.c) is a second table
 * of the same operations. */
#define _GNU_SOURCE
#include "conn.h"

#include <unistd.h>

static ssize_t plain_read(piston__conn *c, void *buf, size_t len) {
  return read(c->fd, buf, len);
}

static int plain_flush(piston__conn *c, piston__outq *q) {
  return piston__outq_flush(q, c->fd);
}

static void plain_shutdown_write(piston__conn *c) {
  shutdown(c->fd, SHUT_WR);
}

const piston__transport piston__transport_plain = {
    .read = plain_read,
    .flush = plain_flush,
    .shutdown_write = plain_shutdown_write,
};
