"""What both hosts share to set up a serving process: the configuration,
the --bind addresses, and an engine server made from them.

Its own module so that the WSGI side (server.py) and the ASGI side
(asgi.py) both import it and not each other.
"""
import dataclasses
import os
from typing import List, Optional

from . import _piston
from .cache import register as register_cache


class UsageError(Exception):
    """An error the user can fix: reported as one line, no traceback."""


@dataclasses.dataclass
class Config:
    bind: List[str] = dataclasses.field(default_factory=lambda: ["127.0.0.1:8000"])
    workers: int = 1
    # A pool of 8 threads: handlers that wait on I/O (a database, an
    # upstream) do not hold up other connections, and CPU-bound handlers
    # are serialised by the GIL anyway, so more threads would only add
    # switching. Idle threads cost nothing: they wait on a condvar without
    # the GIL.
    threads: int = 8
    loops: int = 1
    root_path: str = ""
    routes: List[tuple] = dataclasses.field(default_factory=list)   # (path, text)
    static: List[tuple] = dataclasses.field(default_factory=list)   # (prefix, dir)
    cache_routes: List[tuple] = dataclasses.field(default_factory=list)  # (prefix, ttl s)
    options: dict = dataclasses.field(default_factory=dict)         # OPT_* -> int
    access_log: bool = False
    shutdown_timeout: float = 30.0
    max_requests: int = 0
    max_requests_jitter: int = 0
    # one SO_REUSEPORT socket per worker instead of one shared socket
    reuse_port: bool = False
    # the supervisor: import the app once before forking (gunicorn's
    # --preload) instead of in each worker (then SIGHUP runs new code)
    preload: bool = False
    # seconds a request may run before its worker is replaced; 0: never
    timeout: float = 0.0
    reload: bool = False          # restart the workers when a watched file changes
    reload_dirs: List[str] = dataclasses.field(default_factory=list)
    pidfile: str = ""
    uid: Optional[int] = None     # --user / --group: the workers run as them
    gid: Optional[int] = None
    # seconds; 0: no limit. The engine's handler timeout (503); ASGI also
    # cancels the app's task
    handler_timeout: float = 0.0
    # ASGI only
    lifespan: str = "auto"        # auto | on | off
    loop: str = "auto"            # auto (uvloop if installed) | asyncio | uvloop
    ws: str = "auto"              # auto (websocket scopes) | none (plain HTTP)
    # TLS (gunicorn's names): with certfile, every listener speaks HTTPS
    certfile: str = ""
    keyfile: str = ""
    ca_certs: str = ""
    cert_reqs: int = 0            # ssl.CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED
    ciphers: str = ""
    ticket_key_file: str = ""     # session-ticket keys from this file's bytes
    # Made once, in the process that reads the configuration (the
    # supervisor, before it forks): every worker derives the same ticket
    # keys from it, so a client resumes its session on whichever worker
    # accepts its next connection.
    ticket_secret: str = dataclasses.field(default_factory=lambda: os.urandom(32).hex())
    # ---- behind proxies, access log, metrics (the engine's; see ops below)
    ops: "OpsConfig" = dataclasses.field(default_factory=lambda: OpsConfig())


# ---- addresses -------------------------------------------------------------

def parse_bind(b):
    """('tcp', host, port) | ('unix', path) | ('fd', n); UsageError if bad."""
    if b.startswith("unix:"):
        if not b[5:]:
            raise UsageError("bad --bind %r: unix: needs a path" % b)
        return ("unix", b[5:])
    if b.startswith("fd://"):
        if not b[5:].isdigit():
            raise UsageError("bad --bind %r: use fd://N" % b)
        return ("fd", int(b[5:]))
    host, sep, port = b.rpartition(":")
    if not sep:
        host, port = b, "8000"
    if host.startswith("["):
        if not host.endswith("]") or len(host) < 3:
            raise UsageError("bad --bind %r: use [IPV6]:PORT" % b)
        host = host[1:-1]
    if not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(
            "bad --bind %r: use HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N" % b)
    return ("tcp", host, int(port))


def show_bind(spec):
    """A parsed address as the user writes it."""
    if spec[0] == "tcp":
        return "[%s]:%d" % (spec[1], spec[2]) if ":" in spec[1] else "%s:%d" % (spec[1], spec[2])
    if spec[0] == "unix":
        return "unix:" + spec[1]
    return "fd://%d" % spec[1]


# ---- an engine server ------------------------------------------------------

def configure_server(srv, cfg, listen, multiprocess):
    """Options, native routes and listeners of an engine server (WSGI's
    Server or ASGI's AsgiServer); UsageError on a bad one."""
    register_cache(srv)  # piston.purge and cache_stats reach it
    for opt, value in cfg.options.items():
        try:
            srv.set_option(opt, value)
        except _piston.Error:
            # below the engine's minimum (or above its maximum)
            names = [n for n in dir(_piston) if n.startswith("OPT_")
                     and getattr(_piston, n) == opt]
            raise UsageError("%s: %d is out of the engine's range" % (
                names[0] if names else "option %d" % opt, value))
    if cfg.access_log:
        srv.set_option(_piston.OPT_ACCESS_LOG, 1)
    if cfg.handler_timeout > 0:
        # The engine answers the client (503) and tells the host. WSGI: a
        # pool thread running a hung app cannot be stopped; its later writes
        # fail with ClientDisconnected, which handle() logs at debug. ASGI:
        # the app's task is cancelled.
        srv.set_option(_piston.OPT_HANDLER_TIMEOUT_MS,
                       max(1, int(cfg.handler_timeout * 1000 + 0.5)))
    if multiprocess:
        # sibling workers listen on the same SO_REUSEPORT port on purpose;
        # the supervisor already checked that it was free
        srv.set_option(_piston.OPT_SHARE_PORT, 1)
    for prefix, ttl in cfg.cache_routes:
        srv.cache_route(prefix, ttl)
    for path, text in cfg.routes:
        srv.route_fixed(None, path, 200,
                        [("Content-Type", "text/plain; charset=utf-8")],
                        text.encode("utf-8"))
    for prefix, directory in cfg.static:
        try:
            srv.route_dir(prefix, directory)
        except _piston.Error as e:
            raise UsageError("cannot serve --static %s=%s: %s" % (prefix, directory, e.args[1]))
    for spec, fd in listen:
        try:
            if fd is not None:
                srv.listen_fd(fd)
            elif spec[0] == "tcp":
                srv.listen_tcp(spec[1], spec[2])
            elif spec[0] == "unix":
                srv.listen_unix(spec[1])
            else:
                srv.listen_fd(spec[1])
        except _piston.Error as e:
            raise UsageError("cannot use --bind %s: %s" % (show_bind(spec), e.args[1]))
    if cfg.certfile:
        configure_tls(srv, cfg, len(listen))
    configure_ops(srv, cfg.ops)


_CERT_REQS = {0: "none", 1: "optional", 2: "required"}


def configure_tls(srv, cfg, nlisten):
    """Certificates and settings, checked now: a mistake is a UsageError
    that says what to fix (the engine's sentence)."""
    try:
        if not cfg.keyfile:
            raise UsageError("--certfile %s needs its --keyfile" % cfg.certfile)
        srv.tls_cert(cfg.certfile, cfg.keyfile)
        if cfg.ca_certs:
            srv.tls_set(_piston.TLS_CA_FILE, cfg.ca_certs)
        if cfg.cert_reqs not in _CERT_REQS:
            raise UsageError("--cert-reqs %r: say 0 (none), 1 (optional) or 2 (required)"
                             % cfg.cert_reqs)
        srv.tls_set(_piston.TLS_VERIFY_CLIENT, _CERT_REQS[cfg.cert_reqs])
        if cfg.ciphers:
            srv.tls_set(_piston.TLS_CIPHERS, cfg.ciphers)
        if cfg.ticket_key_file:
            srv.tls_set(_piston.TLS_TICKET_KEY_FILE, cfg.ticket_key_file)
        elif cfg.ticket_secret:
            srv.tls_set(_piston.TLS_TICKET_SECRET, cfg.ticket_secret)
        for i in range(nlisten):
            srv.listener_tls(i)
    except _piston.Error as e:
        raise UsageError(e.args[1])


# ---- operations: behind proxies, access log, metrics ------------------------
# What the engine does for a server behind a proxy and for its operators;
# the CLI's flags for it are cli.py's add_ops_arguments.

@dataclasses.dataclass
class OpsConfig:
    # uvicorn's and gunicorn's default: the proxy on this machine
    forwarded_allow_ips: str = "127.0.0.1"
    proxy_headers: bool = True
    proxy_protocol: bool = False
    # gunicorn's names; None: not asked for (--access-log alone: stderr)
    access_logfile: str = None
    access_logformat: str = None
    metrics: str = None           # the path answered with the text format
    health: str = None            # the readiness path (503 while draining)
    limit_concurrency: int = 0
    # made by the supervisor before it forks (prepare_ops_for_workers), so
    # that every worker counts into it and a scrape sums them
    metrics_region: object = None


def configure_ops(srv, ops):
    """The engine's proxy trust and access log; UsageError on a bad one."""
    try:
        srv.trust_proxies(ops.forwarded_allow_ips)
    except _piston.Error:
        raise UsageError(
            "bad --forwarded-allow-ips %r: use IP addresses, CIDR blocks "
            "(10.0.0.0/8), unix: (Unix-socket peers) or *, separated by commas"
            % ops.forwarded_allow_ips)
    srv.set_option(_piston.OPT_PROXY_HEADERS, 1 if ops.proxy_headers else 0)
    srv.set_option(_piston.OPT_PROXY_PROTOCOL, 1 if ops.proxy_protocol else 0)
    for flag, path in (("--metrics", ops.metrics), ("--health", ops.health)):
        if path is not None and not path.startswith("/"):
            raise UsageError("%s wants a path starting with '/', not %r" % (flag, path))
    if ops.metrics:
        srv.metrics(ops.metrics_region, ops.metrics)
    if ops.health:
        srv.health(ops.health)
    if ops.limit_concurrency:
        srv.set_option(_piston.OPT_LIMIT_CONCURRENCY, ops.limit_concurrency)
    if ops.access_logfile is not None or ops.access_logformat is not None:
        try:
            srv.access_log(ops.access_logfile, ops.access_logformat)
        except ValueError as e:
            raise UsageError("--access-logformat %r: %s (gunicorn's atoms, or common, "
                             "combined, json)" % (ops.access_logformat, e))
        except _piston.Error as e:
            raise UsageError("cannot open --access-logfile %s: %s"
                             % (ops.access_logfile, e.args[1]))


def prepare_ops_for_workers(cfg, most_workers):
    """In the supervisor, before the first fork: the shared metrics region
    (a slot per worker alive at once; replacements reuse slots)."""
    if cfg.ops.metrics and cfg.ops.metrics_region is None:
        cfg.ops.metrics_region = _piston.metrics_region(max(1, most_workers) * 2 + 8)


def reopen_logs(worker):
    """SIGUSR1 in a worker: the access log file again (after logrotate)."""
    srv = getattr(worker, "srv", None)
    if srv is not None:
        srv.reopen_logs()

# ---- end of operations -------------------------------------------------------
