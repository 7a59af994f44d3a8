"""What both hosts share to set up a serving process: the configuration,
the --bind addresses, and an engine server made from them.

Its own module so that the WSGI side (server.py) and the ASGI side
(asgi.py) both import it and not each other.
"""
import dataclasses
from typing import List, Optional

from . import _piston


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
        for i in range(nlisten):
            srv.listener_tls(i)
    except _piston.Error as e:
        raise UsageError(e.args[1])
