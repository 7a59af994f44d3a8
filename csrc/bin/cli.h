/* Option parsing shared by the engine's programs (piston-static and the
 * test server): limits, timeouts and --bind map onto piston_server_set and
 * piston_server_listen_*. */
#ifndef PISTON_CLI_H
#define PISTON_CLI_H

#include "piston.h"

#include <stdbool.h>

typedef struct {
  const char *prog;
  int threads;
  int shutdown_timeout_ms;
  const char *binds[16];
  int nbinds;
  /* --cert/--key pairs (the first is the default, the others for SNI) and
   * an --ocsp for the pair before it; with any, every --bind is TLS */
  struct {
    const char *cert, *key, *ocsp;
  } certs[16];
  int ncerts;
  /* --forwarded-allow-ips; NULL: $FORWARDED_ALLOW_IPS, else 127.0.0.1 */
  const char *forwarded_allow_ips;
  const char *access_logfile, *access_logformat; /* NULL: not given */
} piston_cli;

/* Tries argv[*i] (and its value) as a common option. Returns 1 if it was
 * one, 0 if not, -1 after printing an error. */
int piston_cli_common(piston_cli *cli, piston_server *srv, int argc,
                      char **argv, int *i);
/* Applies the --bind list (default 127.0.0.1:8080). -1 after an error. */
int piston_cli_listen(piston_cli *cli, piston_server *srv);
/* Runs cli->threads loops until SIGTERM/SIGINT, then stops them gracefully;
 * SIGHUP reloads the TLS certificates.
 * Prints "<prog>: listening on ..." once every loop is ready. */
int piston_cli_serve(piston_cli *cli, piston_server *srv);
extern const char piston_cli_common_help[];
/* The piston_tls_option a TLS flag of the common ones maps onto (as
 * "--ca-file"), or -1. */
int piston_cli_tls_option(const char *name);

#endif
