#define _GNU_SOURCE
#include "cli.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char piston_cli_common_help[] =
    "  --bind ADDR            HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N\n"
    "                         (repeatable; default 127.0.0.1:8080)\n"
    "  --threads N            event loops, one per thread (default 1)\n"
    "  --max-head-size BYTES  request line + headers (default 16384) -> 431\n"
    "  --max-url-size BYTES   request target (default 8192) -> 414\n"
    "  --max-headers N        header fields (default 100) -> 431\n"
    "  --max-body-size BYTES  request body, 0 = no limit (default 1 GiB) -> "
    "413\n"
    "  --head-timeout SECS    to receive a whole head (default 10) -> 408\n"
    "  --body-timeout SECS    between body bytes (default 30) -> 408\n"
    "  --idle-timeout SECS    keep-alive wait for the next request (default "
    "5)\n"
    "  --write-timeout SECS   for the client to read (default 30)\n"
    "  --ws-max-message BYTES one received WebSocket message (default 16 "
    "MiB) -> close 1009\n"
    "  --ws-ping SECS         WebSocket keep-alive ping after SECS of silence, "
    "close 1011 if unanswered (default off)\n"
    "  --ws-deflate 0|1       accept permessage-deflate offers (default 0)\n"
    "  --shutdown-timeout SECS  grace for in-flight requests on SIGTERM "
    "(default 30)\n"
    "  --access-log           one line per response on stderr\n"
    "  --access-logfile PATH  the access log's file ('-': stdout); SIGUSR1 "
    "reopens it\n"
    "  --access-logformat F   common, combined (default), json, or gunicorn's "
    "atoms\n"
    "  --debug-log            a line for each connection dropped for the "
    "client's fault\n"
    "  --cert FILE --key FILE TLS: a PEM certificate chain and its key (repeat "
    "the\n"
    "                         pair for more names, chosen by SNI); every "
    "--bind "
    "is\n"
    "                         then HTTPS. SIGHUP reloads them.\n"
    "  --ocsp FILE            a DER OCSP response stapled for the last --cert\n"
    "  --ca-file FILE         CAs for client certificates\n"
    "  --verify-client MODE   none, optional, optional_no_ca or required\n"
    "  --tls-min-version V    1.2 (default) or 1.3\n"
    "  --tls-max-version V    1.2 or 1.3 (default)\n"
    "  --tls-ticket-key-file FILE  session-ticket keys derived from this "
    "file's\n"
    "                         32 to 128 bytes (openssl rand 80): servers "
    "given\n"
    "                         the same file resume each other's sessions\n"
    "  --ciphers LIST         TLS 1.2 ciphers (OpenSSL syntax)\n"
    "  --h2c                  HTTP/2 in clear text too, for clients that open "
    "with its\n"
    "                         preface (HTTP/2 over TLS is on by ALPN)\n"
    "  --no-http2             HTTP/1.1 only, also over TLS\n"
    "  --forwarded-allow-ips LIST  proxies trusted for X-Forwarded-*, "
    "Forwarded and\n"
    "                         PROXY headers: IPs, CIDRs, unix:, * (default "
    "$FORWARDED_ALLOW_IPS\n"
    "                         or 127.0.0.1)\n"
    "  --no-proxy-headers     ignore X-Forwarded-* and Forwarded (believed "
    "by default\n"
    "                         from trusted proxies; --proxy-headers says so)\n"
    "  --proxy-protocol       trusted proxies' connections open with a PROXY "
    "v1/v2 header\n"
    "  --metrics PATH         Prometheus text format at PATH, answered in C\n"
    "  --health PATH          200 OK at PATH, 503 once draining (readiness)\n"
    "  --limit-concurrency N  requests with the host at once; 503 beyond\n";

/* The TLS options that map one to one on piston_server_tls_set. */
static const struct {
  const char *name;
  piston_tls_option opt;
} tls_opts[] = {
    {"--ca-file", PISTON_TLS_CA_FILE},
    {"--verify-client", PISTON_TLS_VERIFY_CLIENT},
    {"--tls-min-version", PISTON_TLS_MIN_VERSION},
    {"--tls-max-version", PISTON_TLS_MAX_VERSION},
    {"--tls-ticket-key-file", PISTON_TLS_TICKET_KEY_FILE},
    {"--ciphers", PISTON_TLS_CIPHERS},
};

int piston_cli_tls_option(const char *name) {
  for (size_t k = 0; k < sizeof tls_opts / sizeof tls_opts[0]; k++)
    if (strcmp(name, tls_opts[k].name) == 0)
      return (int)tls_opts[k].opt;
  return -1;
}

static const struct {
  const char *name;
  piston_option opt;
  bool seconds;
} numeric[] = {
    {"--max-head-size", PISTON_OPT_MAX_HEAD_SIZE, false},
    {"--max-url-size", PISTON_OPT_MAX_URL_SIZE, false},
    {"--max-headers", PISTON_OPT_MAX_HEADERS, false},
    {"--max-body-size", PISTON_OPT_MAX_BODY_SIZE, false},
    {"--head-timeout", PISTON_OPT_HEAD_TIMEOUT_MS, true},
    {"--body-timeout", PISTON_OPT_BODY_TIMEOUT_MS, true},
    {"--idle-timeout", PISTON_OPT_IDLE_TIMEOUT_MS, true},
    {"--write-timeout", PISTON_OPT_WRITE_TIMEOUT_MS, true},
    {"--ws-max-message", PISTON_OPT_WS_MAX_MESSAGE, false},
    {"--ws-ping", PISTON_OPT_WS_PING_MS, true},
    {"--ws-deflate", PISTON_OPT_WS_DEFLATE, false},
    {"--limit-concurrency", PISTON_OPT_LIMIT_CONCURRENCY, false},
};

static int parse_num(const char *s, bool seconds, int64_t *out) {
  char *end;
  errno = 0;
  if (seconds) {
    double d = strtod(s, &end);
    if (errno || end == s || *end || d < 0.001 || d > 86400 * 365)
      return -1;
    *out = (int64_t)(d * 1000 + 0.5);
  } else {
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < 0)
      return -1;
    *out = v;
  }
  return 0;
}

int piston_cli_common(piston_cli *cli, piston_server *srv, int argc,
                      char **argv, int *i) {
  const char *arg = argv[*i];
  const char *val = NULL;
  size_t nlen = strcspn(arg, "=");
  char name[64];
  if (nlen >= sizeof name)
    return 0;
  memcpy(name, arg, nlen);
  name[nlen] = '\0';
  if (arg[nlen] == '=')
    val = arg + nlen + 1;
#define TAKE_VALUE()                                                           \
  do {                                                                         \
    if (!val) {                                                                \
      if (*i + 1 >= argc) {                                                    \
        fprintf(stderr, "%s: %s needs a value\n", cli->prog, name);            \
        return -1;                                                             \
      }                                                                        \
      val = argv[++*i];                                                        \
    }                                                                          \
  } while (0)
  if (strcmp(name, "--access-log") == 0 && !val) {
    return piston_server_set(srv, PISTON_OPT_ACCESS_LOG, 1) == 0 ? 1 : -1;
  }
  if ((strcmp(name, "--h2c") == 0 || strcmp(name, "--no-http2") == 0) && !val)
    return piston_server_set(srv, PISTON_OPT_HTTP2, name[2] == 'h' ? 2 : 0) == 0
               ? 1
               : -1;
  if ((strcmp(name, "--proxy-headers") == 0 ||
       strcmp(name, "--no-proxy-headers") == 0) &&
      !val)
    return piston_server_set(srv, PISTON_OPT_PROXY_HEADERS, name[2] == 'p') == 0
               ? 1
               : -1;
  if (strcmp(name, "--proxy-protocol") == 0 && !val)
    return piston_server_set(srv, PISTON_OPT_PROXY_PROTOCOL, 1) == 0 ? 1 : -1;
  if (strcmp(name, "--access-logfile") == 0 ||
      strcmp(name, "--access-logformat") == 0) {
    TAKE_VALUE();
    if (strcmp(name, "--access-logfile") == 0)
      cli->access_logfile = val;
    else
      cli->access_logformat = val;
    return 1;
  }
  if (strcmp(name, "--metrics") == 0 || strcmp(name, "--health") == 0) {
    TAKE_VALUE();
    int rc = name[2] == 'm' ? piston_server_metrics(srv, NULL, val)
                            : piston_server_health(srv, val);
    if (rc != 0) {
      fprintf(stderr, "%s: %s wants a path starting with '/', not '%s'\n",
              cli->prog, name, val);
      return -1;
    }
    return 1;
  }
  if (strcmp(name, "--forwarded-allow-ips") == 0) {
    TAKE_VALUE();
    cli->forwarded_allow_ips = val;
    return 1;
  }
  if (strcmp(name, "--debug-log") == 0 && !val) {
    return piston_server_set(srv, PISTON_OPT_DEBUG_LOG, 1) == 0 ? 1 : -1;
  }
  if (strcmp(name, "--cert") == 0 || strcmp(name, "--key") == 0 ||
      strcmp(name, "--ocsp") == 0) {
    TAKE_VALUE();
    bool cert = name[2] == 'c', key = name[2] == 'k';
    if (cert && cli->ncerts == 16) {
      fprintf(stderr, "%s: at most 16 certificates\n", cli->prog);
      return -1;
    }
    if (cert)
      cli->certs[cli->ncerts++].cert = val;
    else if (cli->ncerts == 0 || (key ? cli->certs[cli->ncerts - 1].key
                                      : cli->certs[cli->ncerts - 1].ocsp)) {
      fprintf(stderr, "%s: %s belongs after its --cert\n", cli->prog, name);
      return -1;
    } else if (key) {
      cli->certs[cli->ncerts - 1].key = val;
    } else {
      cli->certs[cli->ncerts - 1].ocsp = val;
    }
    return 1;
  }
  int tls_opt = piston_cli_tls_option(name);
  if (tls_opt >= 0) {
    TAKE_VALUE();
    if (piston_server_tls_set(srv, (piston_tls_option)tls_opt, val) != 0) {
      fprintf(stderr, "%s: %s: %s\n", cli->prog, name,
              piston_server_tls_error(srv));
      return -1;
    }
    return 1;
  }
  if (strcmp(name, "--bind") == 0) {
    TAKE_VALUE();
    if (cli->nbinds == 16) {
      fprintf(stderr, "%s: at most 16 --bind addresses\n", cli->prog);
      return -1;
    }
    cli->binds[cli->nbinds++] = val;
    return 1;
  }
  if (strcmp(name, "--threads") == 0) {
    TAKE_VALUE();
    int64_t n;
    if (parse_num(val, false, &n) || n < 1 || n > 256) {
      fprintf(stderr, "%s: --threads wants a number from 1 to 256, not '%s'\n",
              cli->prog, val);
      return -1;
    }
    cli->threads = (int)n;
    return 1;
  }
  if (strcmp(name, "--shutdown-timeout") == 0) {
    TAKE_VALUE();
    int64_t ms;
    if (parse_num(val, true, &ms)) {
      fprintf(stderr, "%s: --shutdown-timeout wants seconds, not '%s'\n",
              cli->prog, val);
      return -1;
    }
    cli->shutdown_timeout_ms = (int)ms;
    return 1;
  }
  for (size_t k = 0; k < sizeof numeric / sizeof numeric[0]; k++) {
    if (strcmp(name, numeric[k].name) != 0)
      continue;
    TAKE_VALUE();
    int64_t v;
    if (parse_num(val, numeric[k].seconds, &v) ||
        piston_server_set(srv, numeric[k].opt, v) != 0) {
      fprintf(stderr, "%s: bad value '%s' for %s\n", cli->prog, val, name);
      return -1;
    }
    return 1;
  }
#undef TAKE_VALUE
  return 0;
}

static int listen_one(piston_cli *cli, piston_server *srv, const char *b) {
  int rc;
  if (strncmp(b, "unix:", 5) == 0) {
    rc = piston_server_listen_unix(srv, b + 5);
  } else if (strncmp(b, "fd://", 5) == 0) {
    int64_t fd;
    if (parse_num(b + 5, false, &fd) || fd > 1 << 20)
      goto bad;
    rc = piston_server_listen_fd(srv, (int)fd);
  } else {
    char host[256];
    const char *colon = strrchr(b, ':');
    if (!colon || colon == b)
      goto bad;
    size_t hl = (size_t)(colon - b);
    const char *h = b;
    if (b[0] == '[') { /* [::1]:8080 */
      if (hl < 3 || b[hl - 1] != ']')
        goto bad;
      h = b + 1;
      hl -= 2;
    }
    if (hl >= sizeof host)
      goto bad;
    memcpy(host, h, hl);
    host[hl] = '\0';
    int64_t port;
    if (parse_num(colon + 1, false, &port) || port > 65535)
      goto bad;
    rc = piston_server_listen_tcp(srv, host, (int)port);
  }
  if (rc == 0)
    return 0;
  fprintf(stderr, "%s: cannot use --bind %s: %s\n", cli->prog, b,
          piston_strerror(rc));
  return -1;
bad:
  fprintf(stderr,
          "%s: bad --bind '%s': use HOST:PORT, [IPV6]:PORT, unix:PATH or "
          "fd://N\n",
          cli->prog, b);
  return -1;
}

int piston_cli_listen(piston_cli *cli, piston_server *srv) {
  if ((cli->access_logfile || cli->access_logformat) &&
      piston_server_access_log(srv, cli->access_logfile,
                               cli->access_logformat) != 0) {
    if (*piston_server_access_log_error(srv))
      fprintf(stderr,
              "%s: --access-logformat: unknown atom '%s' (see --help)\n",
              cli->prog, piston_server_access_log_error(srv));
    else
      fprintf(stderr, "%s: cannot open --access-logfile %s\n", cli->prog,
              cli->access_logfile);
    return -1;
  }
  /* uvicorn's and gunicorn's default: the proxy on this machine */
  const char *trusted = cli->forwarded_allow_ips;
  if (!trusted)
    trusted = getenv("FORWARDED_ALLOW_IPS");
  if (!trusted)
    trusted = "127.0.0.1";
  if (piston_server_trust_proxies(srv, trusted) != 0) {
    fprintf(stderr,
            "%s: bad --forwarded-allow-ips '%s': use IP addresses, CIDR "
            "blocks (10.0.0.0/8), unix: or *, separated by commas\n",
            cli->prog, trusted);
    return -1;
  }
  if (cli->nbinds == 0)
    cli->binds[cli->nbinds++] = "127.0.0.1:8080";
  for (int i = 0; i < cli->nbinds; i++)
    if (listen_one(cli, srv, cli->binds[i]) != 0)
      return -1;
  for (int i = 0; i < cli->ncerts; i++) {
    if (!cli->certs[i].key) {
      fprintf(stderr, "%s: --cert %s needs its --key\n", cli->prog,
              cli->certs[i].cert);
      return -1;
    }
    if (piston_server_tls_cert(srv, cli->certs[i].cert, cli->certs[i].key,
                               cli->certs[i].ocsp) != 0) {
      fprintf(stderr, "%s: %s\n", cli->prog, piston_server_tls_error(srv));
      return -1;
    }
  }
  for (int i = 0; i < cli->nbinds && cli->ncerts > 0; i++)
    if (piston_server_listener_tls(srv, (size_t)i) != 0)
      return -1;
  return 0;
}

static void *run_loop(void *arg) {
  piston_loop_run(arg);
  return NULL;
}

int piston_cli_serve(piston_cli *cli, piston_server *srv) {
  /* Signals are taken by this thread alone (sigwait); the loops never see
   * them, so no syscall of theirs is interrupted. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

  int n = cli->threads > 0 ? cli->threads : 1;
  piston_loop **loops = calloc((size_t)n, sizeof *loops);
  pthread_t *th = calloc((size_t)n, sizeof *th);
  if (!loops || !th) {
    fprintf(stderr, "%s: out of memory\n", cli->prog);
    return 1;
  }
  for (int i = 0; i < n; i++) {
    int err = 0;
    loops[i] = piston_loop_new(srv, &err);
    if (!loops[i]) {
      if (err == PISTON_ETLS)
        fprintf(stderr, "%s: %s\n", cli->prog, piston_server_tls_error(srv));
      else
        fprintf(stderr, "%s: cannot listen on %s: %s\n", cli->prog,
                cli->binds[0], piston_strerror(err));
      for (int k = 0; k < i; k++)
        piston_loop_free(loops[k]);
      free(loops);
      free(th);
      return 1;
    }
  }
  for (int b = 0; b < cli->nbinds; b++) {
    const char *addr = cli->binds[b];
    int port = piston_server_port(srv, (size_t)b);
    if (port >= 0) {
      const char *colon = strrchr(addr, ':');
      fprintf(stderr, "%s: listening on %s://%.*s:%d\n", cli->prog,
              cli->ncerts ? "https" : "http", (int)(colon - addr), addr, port);
    } else {
      fprintf(stderr, "%s: listening on %s\n", cli->prog, addr);
    }
  }
  fflush(stderr);
  for (int i = 0; i < n; i++)
    pthread_create(&th[i], NULL, run_loop, loops[i]);
  int sig;
  while (sigwait(&set, &sig) == 0 && (sig == SIGHUP || sig == SIGUSR1)) {
    if (sig == SIGUSR1) { /* logrotate moved the file */
      if (piston_server_reopen_logs(srv) != 0)
        fprintf(stderr, "%s: cannot reopen the access log\n", cli->prog);
      continue;
    }
    if (piston_server_tls_reload(srv) == 0)
      fprintf(stderr, "%s: TLS certificates reloaded\n", cli->prog);
    else if (cli->ncerts)
      fprintf(stderr, "%s: TLS reload failed, the old certificates stay: %s\n",
              cli->prog, piston_server_tls_error(srv));
  }
  for (int i = 0; i < n; i++)
    piston_loop_stop(loops[i], cli->shutdown_timeout_ms);
  for (int i = 0; i < n; i++) {
    pthread_join(th[i], NULL);
    piston_loop_free(loops[i]);
  }
  free(loops);
  free(th);
  return 0;
}
