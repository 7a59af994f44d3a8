"""piston MODULE:APP [options]: the command line, in gunicorn's shape.

Errors the user can fix (cannot import the app, a missing attribute, a port
in use, a bad option) are one line on stderr and exit code 1 or 2, never a
traceback.
"""
import argparse
import importlib
import inspect
import os
import shlex
import sys

from . import _piston, __version__, settings, systemd
from .config import Config, OpsConfig, UsageError, parse_bind
from .restart import Restart
from .server import AppSource, needs_supervisor, serve_source, setup_logging

PROG = "piston"

# --option -> (engine option, unit): "bytes"/"count" taken as is, "seconds"
# converted to milliseconds.
ENGINE_OPTIONS = [
    ("--max-head-size", _piston.OPT_MAX_HEAD_SIZE, "bytes",
     "request line + headers (default 16384) -> 431"),
    ("--max-url-size", _piston.OPT_MAX_URL_SIZE, "bytes",
     "request target (default 8192) -> 414"),
    ("--max-headers", _piston.OPT_MAX_HEADERS, "count",
     "header fields (default 100) -> 431"),
    ("--max-body-size", _piston.OPT_MAX_BODY_SIZE, "bytes",
     "request body, 0 = no limit (default 1 GiB) -> 413"),
    ("--head-timeout", _piston.OPT_HEAD_TIMEOUT_MS, "seconds",
     "to receive a whole head (default 10) -> 408"),
    ("--body-timeout", _piston.OPT_BODY_TIMEOUT_MS, "seconds",
     "between body bytes (default 30) -> 408"),
    ("--idle-timeout", _piston.OPT_IDLE_TIMEOUT_MS, "seconds",
     "keep-alive wait for the next request (default 5)"),
    ("--write-timeout", _piston.OPT_WRITE_TIMEOUT_MS, "seconds",
     "for the client to read (default 30)"),
    ("--body-high-water", _piston.OPT_BODY_HIGH_WATER, "bytes",
     "buffered request body before reading pauses"),
    ("--write-high-water", _piston.OPT_WRITE_HIGH_WATER, "bytes",
     "queued response bytes before a writer waits"),
    ("--ws-max-size", _piston.OPT_WS_MAX_MESSAGE, "bytes",
     "ASGI: one received WebSocket message (default 16 MiB) -> close 1009"),
    ("--backlog", _piston.OPT_BACKLOG, "count", "listen(2) backlog"),
    ("--max-connections", _piston.OPT_MAX_CONNECTIONS, "count",
     "per event loop; accepting pauses beyond it"),
    ("--cache-size", _piston.OPT_CACHE_SIZE, "bytes",
     "the response cache: bytes it may hold (default 0: no cache); "
     "see piston.cache"),
    ("--cache-max-entry", _piston.OPT_CACHE_MAX_ENTRY, "bytes",
     "the largest response the cache stores (default 1 MiB)"),
]


class _Parser(argparse.ArgumentParser):
    # where the arguments come from, when not the command line
    source = None

    def error(self, message):
        where = "%s: " % self.source if self.source else ""
        sys.stderr.write("%s: %s%s (try --help)\n" % (PROG, where, message))
        sys.exit(2)


def _positive(name, minimum=1):
    def conv(v):
        try:
            n = int(v)
        except ValueError:
            raise argparse.ArgumentTypeError("%s wants a whole number, not %r" % (name, v))
        if n < minimum:
            raise argparse.ArgumentTypeError("%s must be at least %d" % (name, minimum))
        return n
    return conv


def _seconds(name, zero=False):
    def conv(v):
        try:
            s = float(v)
        except ValueError:
            raise argparse.ArgumentTypeError("%s wants seconds, not %r" % (name, v))
        if zero and s == 0:
            return s
        if not 0 < s <= 86400 * 365:
            raise argparse.ArgumentTypeError(
                "%s wants seconds > 0%s, not %r" % (name, " (or 0)" if zero else "", v))
        return s
    return conv


def _bool(name):
    def conv(v):
        b = {"true": True, "1": True, "yes": True, "false": False, "0": False,
             "no": False}.get(v.lower())
        if b is None:
            raise argparse.ArgumentTypeError("%s wants true or false, not %r" % (name, v))
        return b
    return conv


def _pair(name):
    def conv(v):
        k, sep, val = v.partition("=")
        if not sep or not k.startswith("/"):
            raise argparse.ArgumentTypeError("%s wants /PATH=VALUE, not %r" % (name, v))
        return (k, val)
    return conv


# ---- processes, signals and configuration (the supervisor's options) -------

def _umask(v):
    try:
        n = int(v, 0) if v.lower().startswith("0o") or v.startswith("0x") else int(v, 8)
    except ValueError:
        raise argparse.ArgumentTypeError("--umask wants an octal mask such as 022, not %r" % v)
    if not 0 <= n <= 0o777:
        raise argparse.ArgumentTypeError("--umask wants 000 to 777, not %r" % v)
    return n


def _user(v):
    import pwd
    try:
        return pwd.getpwuid(int(v)).pw_uid if v.isdigit() else pwd.getpwnam(v).pw_uid
    except KeyError:
        raise argparse.ArgumentTypeError("--user: no user %r on this system" % v)


def _group(v):
    import grp
    try:
        return grp.getgrgid(int(v)).gr_gid if v.isdigit() else grp.getgrnam(v).gr_gid
    except KeyError:
        raise argparse.ArgumentTypeError("--group: no group %r on this system" % v)


def add_process_options(p):
    g = p.add_argument_group("processes, signals and configuration")
    g.add_argument("-c", "--config", metavar="FILE",
                   help="settings from FILE: Python with gunicorn's names (bind, workers, "
                        "threads, timeout, ...) or .toml; the command line and "
                        "PISTON_CMD_ARGS (options, as on the command line) win over it")
    g.add_argument("--preload", action="store_true",
                   help="import the app once in the supervisor before forking; without "
                        "it each worker imports it, so SIGHUP runs the new code")
    g.add_argument("--check-config", action="store_true",
                   help="read the configuration and import the app, then exit: 0 if "
                        "both are sound (gunicorn's)")
    g.add_argument("--timeout", type=_seconds("--timeout", zero=True), default=0.0,
                   metavar="SECONDS",
                   help="replace a worker whose request has run this long (the client "
                        "gets the engine's 503); 0 = never (default)")
    g.add_argument("--reload", action="store_true",
                   help="development: restart the workers when a .py file under the "
                        "app's directory (or --reload-dir) changes (inotify)")
    g.add_argument("--reload-dir", action="append", default=[], metavar="DIR",
                   help="watch DIR for --reload (repeatable; default: the current "
                        "directory and the app's)")
    g.add_argument("--host", default=None,
                   help="uvicorn's: bind HOST:--port (default 127.0.0.1), beside --bind")
    g.add_argument("--port", type=_positive("--port", 0), default=None,
                   help="uvicorn's: bind --host:PORT (default 8000)")
    g.add_argument("--uds", metavar="PATH", default=None, help="uvicorn's: bind unix:PATH")
    g.add_argument("--fd", type=_positive("--fd", 0), default=None,
                   help="uvicorn's: serve the listening socket fd N (fd://N)")
    g.add_argument("--pid", metavar="FILE", default="",
                   help="write the (supervisor's) pid to FILE; removed at exit")
    g.add_argument("--user", type=_user, default=None,
                   help="workers run as this user (name or uid; the supervisor binds first)")
    g.add_argument("--group", type=_group, default=None,
                   help="workers run as this group (name or gid)")
    g.add_argument("--umask", type=_umask, default=None, help="file mode mask, octal (022)")
    g.add_argument("--env-file", metavar="FILE", default=None,
                   help="KEY=VALUE lines put in the environment before the app loads "
                        "(what is already set wins)")
    g.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE",
                   help="set an environment variable for the app (repeatable)")
    g.add_argument("--error-logfile", "--log-file", default="-", metavar="FILE",
                   help="the error log: a file, reopened on SIGUSR1 ('-': stderr)")
    g.add_argument("--log-config", metavar="FILE", default=None,
                   help="Python logging configuration: .json (dictConfig) or ini "
                        "(fileConfig)")


def _given_only(parser, source=None):
    """The parser again, reporting only the options actually given."""
    for act in parser._actions:
        act.default = argparse.SUPPRESS
    parser.source = source
    return parser


def parse_args(argv=None):
    """The options from the command line over PISTON_CMD_ARGS over the
    config file (-c), each checked with the same messages."""
    argv = sys.argv[1:] if argv is None else list(argv)
    given = vars(_given_only(build_parser()).parse_args(argv))
    layers = []
    env = os.environ.get("PISTON_CMD_ARGS", "").strip()
    if env:
        try:
            tokens = shlex.split(env)
        except ValueError as e:
            raise UsageError("PISTON_CMD_ARGS: %s" % e)
        layers.append(vars(_given_only(build_parser(), "PISTON_CMD_ARGS").parse_args(tokens)))
    path = given.get("config") or (layers[0].get("config") if layers else None)
    if path:
        source = "config file %s" % path
        tokens, app = settings.to_tokens(settings.load_file(path), build_parser(), source)
        from_file = vars(_given_only(build_parser(), source).parse_args(tokens))
        if app is not None:
            from_file.setdefault("app", app)
        layers.insert(0, from_file)
    a = build_parser().parse_args([])
    for layer in layers + [given]:
        for k, v in layer.items():
            setattr(a, k, v)
    if not a.app:
        raise UsageError("no app: name MODULE:APP (or wsgi_app in the config file)")
    return a


def build_parser():
    p = _Parser(prog=PROG, description="Serve a WSGI or ASGI app with the Piston HTTP/1.1 and WebSocket engine.",
                usage="%(prog)s [options] MODULE:APP")
    p.add_argument("app", metavar="MODULE:APP", nargs="?",
                   help="the app: a module and a variable in it (default name: application, "
                        "app); or wsgi_app in the config file")
    p.add_argument("-b", "--bind", action="append", metavar="ADDR",
                   help="HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N (repeatable; "
                        "default 127.0.0.1:8000)")
    p.add_argument("-w", "--workers", type=_positive("--workers"), default=1,
                   help="worker processes (default 1: no supervisor)")
    p.add_argument("--threads", type=_positive("--threads"), default=8,
                   help="Python threads running the app per worker (default 8)")
    p.add_argument("--loops", type=_positive("--loops"), default=1,
                   help="engine event loops (I/O threads) per worker (default 1)")
    p.add_argument("--interface", choices=["auto", "wsgi", "asgi"], default="auto",
                   help="auto: ASGI for coroutine functions and classes with an "
                        "async __call__, else WSGI")
    p.add_argument("--lifespan", choices=["auto", "on", "off"], default="auto",
                   help="ASGI lifespan protocol: auto (used if the app speaks it), "
                        "on (startup must succeed), off")
    p.add_argument("--ws", choices=["auto", "none"], default="auto",
                   help="ASGI WebSocket: auto (websocket scopes, framing in C) or none "
                        "(WebSocket requests reach the app as plain HTTP)")
    p.add_argument("--ws-per-message-deflate", type=_bool("--ws-per-message-deflate"),
                   default=True, metavar="BOOL",
                   help="ASGI WebSocket: accept permessage-deflate offers (default "
                        "true, as uvicorn)")
    p.add_argument("--ws-ping-interval", type=_seconds("--ws-ping-interval", zero=True),
                   default=20.0, metavar="SECONDS",
                   help="ASGI WebSocket: ping a client silent this long, close it "
                        "(1011) if it stays silent as long again; 0 = off "
                        "(default 20, as uvicorn)")
    p.add_argument("--ws-ping-timeout", type=_seconds("--ws-ping-timeout", zero=True),
                   default=None, metavar="SECONDS",
                   help="accepted for uvicorn's command lines: the engine waits one "
                        "--ws-ping-interval for the answer")
    p.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto",
                   help="ASGI event loop: auto is uvloop when installed")
    p.add_argument("--handler-timeout", type=_seconds("--handler-timeout"), default=None,
                   metavar="SECONDS",
                   help="if the app has not started its response (status and "
                        "headers) after this long, the engine answers 503 and "
                        "closes the connection. WSGI: the app's thread runs on (its "
                        "writes then fail quietly); ASGI: the app's task is "
                        "cancelled (default: no limit)")
    p.add_argument("--factory", action="store_true",
                   help="APP is a function returning the app")
    p.add_argument("--root-path", default="",
                   help="the mount point of the app: SCRIPT_NAME, stripped from PATH_INFO")
    p.add_argument("--route", action="append", type=_pair("--route"), default=[],
                   metavar="PATH=TEXT", help="a fixed text/plain response, served in C")
    p.add_argument("--static", action="append", type=_pair("--static"), default=[],
                   metavar="PREFIX=DIR", help="serve files under DIR at PREFIX, in C")
    for name, _, unit, helptext in ENGINE_OPTIONS:
        conv = _seconds(name) if unit == "seconds" else _positive(name, 0)
        p.add_argument(name, type=conv, metavar=unit.upper(), help=helptext)
    p.add_argument("--shutdown-timeout", "--graceful-timeout", type=_seconds("--shutdown-timeout"),
                   default=30.0, metavar="SECONDS",
                   help="grace for requests in flight on SIGTERM, and for a retiring "
                        "worker before it is killed (default 30)")
    p.add_argument("--max-requests", type=_positive("--max-requests", 0), default=0,
                   help="restart a worker after this many requests (0: never)")
    p.add_argument("--max-requests-jitter", type=_positive("--max-requests-jitter", 0),
                   default=0, help="add up to this many to --max-requests, per worker")
    reuse = p.add_mutually_exclusive_group()
    reuse.add_argument("--reuse-port", action="store_true",
                       help="with a supervisor: one SO_REUSEPORT socket per worker instead "
                            "of one socket shared by all (a retiring worker's queued "
                            "connections are then reset by the kernel)")
    reuse.add_argument("--no-reuse-port", action="store_true",
                       help="one socket shared by all workers (the default)")
    add_process_options(p)
    tls = p.add_argument_group("TLS (gunicorn's names; uvicorn's --ssl-* accepted)")
    tls.add_argument("--certfile", "--ssl-certfile", default="", metavar="FILE",
                     help="PEM certificate chain: every --bind serves HTTPS")
    tls.add_argument("--keyfile", "--ssl-keyfile", default="", metavar="FILE",
                     help="PEM private key (without a passphrase)")
    tls.add_argument("--ssl-keyfile-password", default=None, metavar="PASSWORD",
                     help=argparse.SUPPRESS)
    tls.add_argument("--ca-certs", "--ssl-ca-certs", default="", metavar="FILE",
                     help="PEM CAs for client certificates")
    tls.add_argument("--cert-reqs", "--ssl-cert-reqs", type=int, default=0, metavar="N",
                     help="client certificates: 0 none, 1 optional, 2 required")
    tls.add_argument("--ciphers", "--ssl-ciphers", default="", metavar="LIST",
                     help="TLS 1.2 ciphers (OpenSSL syntax)")
    tls.add_argument("--tls-ticket-key-file", default="", metavar="FILE",
                     help="session-ticket keys derived from this file's 32 to 128 "
                          "bytes (openssl rand 80), for servers on several machines "
                          "to resume each other's sessions (the workers of one "
                          "server share theirs without it)")
    h2 = p.add_mutually_exclusive_group()
    h2.add_argument("--h2c", action="store_true",
                    help="HTTP/2 in clear text too, for clients that open with its "
                         "preface (HTTP/2 over TLS is on by ALPN)")
    h2.add_argument("--no-http2", action="store_true",
                    help="HTTP/1.1 only, also over TLS")
    p.add_argument("--cache-honour-s-maxage", action="store_true",
                   help="store responses with Cache-Control: s-maxage=N as "
                        "Piston-Cache: ttl=N marks them")
    p.add_argument("--cache-route", action="append", type=_pair("--cache-route"), default=[],
                   metavar="PREFIX=TTL",
                   help="GET responses under PREFIX are cached for TTL seconds "
                        "without a Piston-Cache field (repeatable)")
    p.add_argument("--cache-purge", action="store_true",
                   help="PURGE requests from loopback drop cached responses "
                        "(a target ending in * drops a prefix)")
    p.add_argument("--access-log", action="store_true",
                   help="one line per response on stderr")
    p.add_argument("--log-level", default="info", type=str.lower,
                   choices=["debug", "info", "warning", "error", "critical"])
    p.add_argument("--chdir", metavar="DIR", help="change to DIR before loading the app")
    p.add_argument("--app-dir", metavar="DIR", default=None,
                   help="look for the app's module in DIR first (uvicorn's)")
    p.add_argument("--version", action="version", version="%(prog)s " + __version__)
    add_ops_arguments(p)
    return p


def load_app(spec, factory=False):
    """Imports MODULE:APP the way gunicorn does; UsageError if it cannot."""
    module_name, sep, attr = spec.partition(":")
    if not module_name:
        raise UsageError("bad app %r: want MODULE:APP" % spec)
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            raise UsageError("cannot import %r: no module named %r" % (module_name, e.name))
        raise UsageError("cannot import %r: %s: %s" % (module_name, type(e).__name__, e))
    except Exception as e:
        raise UsageError("cannot import %r: %s: %s" % (module_name, type(e).__name__, e))
    names = [attr] if sep else ["application", "app"]
    for name in names:
        obj = module
        try:
            for part in name.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        break
    else:
        raise UsageError("module %r has no attribute %r" % (module_name, names[0]))
    if factory:
        if not callable(obj):
            raise UsageError("--factory: %s is not callable" % spec)
        try:
            obj = obj()
        except Exception as e:
            raise UsageError("--factory: %s() failed: %s: %s" % (spec, type(e).__name__, e))
    if not callable(obj):
        raise UsageError("%s is not callable (a %s)" % (spec, type(obj).__name__))
    return obj


def detect_interface(app):
    """'asgi' or 'wsgi': coroutine functions, classes or instances with an
    async __call__, and 3-argument callables are ASGI."""
    if inspect.iscoroutinefunction(app):
        return "asgi"
    call = app if inspect.isfunction(app) or inspect.ismethod(app) else getattr(app, "__call__", None)
    if inspect.isclass(app):
        call = getattr(app, "__call__", None)
        if call is not None and inspect.iscoroutinefunction(call):
            return "asgi"
        try:
            call = app.__init__
            params = [p for p in inspect.signature(call).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            return "asgi" if len(params) - 1 == 3 else "wsgi"
        except (TypeError, ValueError):
            return "wsgi"
    if call is not None and inspect.iscoroutinefunction(call):
        return "asgi"
    try:
        params = [p for p in inspect.signature(app).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return "wsgi"
    return "asgi" if len(params) == 3 else "wsgi"


def config_from_args(a):
    options = {}
    for name, opt, unit, _ in ENGINE_OPTIONS:
        v = getattr(a, name[2:].replace("-", "_"))
        if v is None:
            continue
        options[opt] = int(v * 1000 + 0.5) if unit == "seconds" else v
    options[_piston.OPT_WS_DEFLATE] = 1 if a.ws_per_message_deflate else 0
    options[_piston.OPT_WS_PING_MS] = int(a.ws_ping_interval * 1000 + 0.5)
    options[_piston.OPT_HTTP2] = 2 if a.h2c else 0 if a.no_http2 else 1
    if a.cache_honour_s_maxage:
        options[_piston.OPT_CACHE_S_MAXAGE] = 1
    if a.cache_purge:
        options[_piston.OPT_CACHE_PURGE] = 1
    cache_routes = []
    for prefix, ttl in a.cache_route:
        if not ttl.isdigit() or int(ttl) < 1:
            raise UsageError("--cache-route %s=%s: the TTL is whole seconds, at least 1"
                             % (prefix, ttl))
        cache_routes.append((prefix, int(ttl)))
    binds = list(a.bind or [])
    if a.host is not None or a.port is not None:
        host = a.host or "127.0.0.1"
        binds.append("%s:%d" % ("[%s]" % host if ":" in host else host,
                                8000 if a.port is None else a.port))
    if a.uds:
        binds.append("unix:" + a.uds)
    if a.fd is not None:
        binds.append("fd://%d" % a.fd)
    # systemd's socket activation: its sockets, as fd://N
    binds += ["fd://%d" % fd for fd in systemd.listen_fds()]
    binds = binds or ["127.0.0.1:8000"]
    for b in binds:
        parse_bind(b)  # UsageError early
    for prefix, d in a.static:
        if not os.path.isdir(d):
            raise UsageError("--static %s=%s: not a directory" % (prefix, d))
    root = a.root_path.rstrip("/")
    if root and not root.startswith("/"):
        raise UsageError("--root-path must start with '/', not %r" % a.root_path)
    if a.ssl_keyfile_password is not None:
        raise UsageError("--ssl-keyfile-password: keys with a passphrase are not "
                         "read; decrypt it (openssl pkey -in KEY -out plain.key)")
    if a.keyfile and not a.certfile:
        raise UsageError("--keyfile needs its --certfile")
    if a.reload and a.preload:
        raise UsageError("--reload re-imports the app in new workers: drop --preload")
    reload_dirs = [os.path.abspath(d) for d in a.reload_dir]
    for d in reload_dirs:
        if not os.path.isdir(d):
            raise UsageError("--reload-dir %s: not a directory" % d)
    if a.reload and not reload_dirs:
        reload_dirs = _app_dirs(a.app)
    cfg = Config(certfile=a.certfile, keyfile=a.keyfile, ca_certs=a.ca_certs,
                  cert_reqs=a.cert_reqs, ciphers=a.ciphers,
                  ticket_key_file=a.tls_ticket_key_file, bind=binds, workers=a.workers, threads=a.threads, loops=a.loops,
                  root_path=root, routes=a.route, static=a.static, options=options,
                  cache_routes=cache_routes,
                  access_log=a.access_log, shutdown_timeout=a.shutdown_timeout,
                  max_requests=a.max_requests, max_requests_jitter=a.max_requests_jitter,
                  reuse_port=a.reuse_port, lifespan=a.lifespan, loop=a.loop,
                  ws=a.ws,
                  # --timeout: the engine answers 503 when it passes too
                  handler_timeout=a.handler_timeout or a.timeout or 0.0,
                  preload=a.preload, timeout=a.timeout, reload=a.reload,
                  reload_dirs=reload_dirs, pidfile=a.pid, uid=a.user, gid=a.group)
    cfg.ops = ops_config(a)
    return cfg


# ---- operations: behind proxies, access log, metrics ------------------------
# The flags of config.OpsConfig (gunicorn's and uvicorn's names).

def add_ops_arguments(p):
    g = p.add_argument_group("behind proxies")
    g.add_argument("--forwarded-allow-ips", metavar="LIST",
                   default=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
                   help="proxies whose X-Forwarded-For/-Proto/-Host/-Port, Forwarded "
                        "and PROXY headers are believed: IPs, CIDRs, unix: (Unix-socket "
                        "peers), * (default $FORWARDED_ALLOW_IPS or 127.0.0.1)")
    g.add_argument("--proxy-headers", dest="proxy_headers", action="store_true",
                   default=True, help="believe the forwarding fields of trusted "
                   "proxies (the default)")
    g.add_argument("--no-proxy-headers", dest="proxy_headers", action="store_false",
                   help="never believe them")
    g.add_argument("--proxy-protocol", action="store_true",
                   help="connections from trusted proxies open with a PROXY protocol "
                        "v1/v2 header (HAProxy's send-proxy, send-proxy-v2)")
    g = p.add_argument_group("metrics and health (answered in C)")
    g.add_argument("--metrics", metavar="PATH", default=None,
                   help="Prometheus text format at PATH on every listener, summed over "
                        "the workers (and per worker)")
    g.add_argument("--health", metavar="PATH", default=None,
                   help="200 OK at PATH, 503 once the worker drains (readiness)")
    g.add_argument("--limit-concurrency", type=_positive("--limit-concurrency", 0),
                   default=0, metavar="N",
                   help="requests with the app at once per worker; 503 beyond (uvicorn's)")
    g = p.add_argument_group("access log (written by the engine, off the request path)")
    g.add_argument("--access-logfile", metavar="FILE", default=None,
                   help="the access log's file ('-': stdout); SIGUSR1 reopens it")
    g.add_argument("--access-logformat", metavar="FORMAT", default=None,
                   help="common, combined (default), json, or gunicorn's atoms: "
                        "%%(h)s %%(t)s \"%%(r)s\" %%(s)s %%(b)s %%(D)s %%({header}i)s ...")


def ops_config(a):
    return OpsConfig(forwarded_allow_ips=a.forwarded_allow_ips,
                     proxy_headers=a.proxy_headers, proxy_protocol=a.proxy_protocol,
                     access_logfile=a.access_logfile, access_logformat=a.access_logformat,
                     metrics=a.metrics, health=a.health,
                     limit_concurrency=a.limit_concurrency)

# ---- end of operations -------------------------------------------------------



def _app_dirs(spec):
    """--reload's default: the current directory, and the app's package
    (found without importing it) when it lives elsewhere."""
    import importlib.util
    dirs = [os.getcwd()]
    try:
        found = importlib.util.find_spec(spec.partition(":")[0].split(".")[0])
    except (ImportError, ValueError):
        found = None
    if found is not None and found.origin and found.origin not in ("built-in", "frozen"):
        d = os.path.dirname(os.path.abspath(found.origin))
        if found.submodule_search_locations:
            d = os.path.dirname(d)
        if not (d + os.sep).startswith(os.getcwd() + os.sep) and "-packages" not in d:
            dirs.append(d)
    return dirs


def _environment(a):
    if a.umask is not None:
        os.umask(a.umask)
    if a.env_file:
        settings.read_env_file(a.env_file)
    for kv in a.env:
        k, sep, v = kv.partition("=")
        if not sep or not k:
            raise UsageError("--env wants KEY=VALUE, not %r" % kv)
        os.environ[k] = v
    if a.chdir:
        try:
            os.chdir(a.chdir)
        except OSError as e:
            raise UsageError("--chdir %s: %s" % (a.chdir, e.strerror))
    if a.app_dir:
        if not os.path.isdir(a.app_dir):
            raise UsageError("--app-dir %s: not a directory" % a.app_dir)
        sys.path.insert(0, os.path.abspath(a.app_dir))


def main(argv=None):
    setup_logging("info")
    # as started, for a one-process SIGHUP that starts this command again
    # (before the options change the directory and the environment)
    start = Restart(os.getcwd(), dict(os.environ)) if argv is None else None
    try:
        a = parse_args(argv)
        setup_logging(a.log_level, a.error_logfile, a.log_config)
        _environment(a)
        cfg = config_from_args(a)

        def load():
            app = load_app(a.app, a.factory)
            return app, (detect_interface(app) if a.interface == "auto" else a.interface)
        if a.check_config:
            load()
            sys.stderr.write("%s: the configuration and %s are sound\n" % (PROG, a.app))
            sys.exit(0)
        # without --preload a supervisor's workers import the app themselves
        def reconfigure():
            try:
                return config_from_args(parse_args(argv))
            except SystemExit:  # argparse said what is wrong, on stderr
                raise UsageError("see the line above")
        one = not needs_supervisor(cfg)
        code = serve_source(AppSource(load, preload=a.preload or one, reconfigure=reconfigure,
                                      restart=start if one and not a.preload else None), cfg)
    except UsageError as e:
        sys.stderr.write("%s: %s\n" % (PROG, e))
        sys.exit(1)
    except KeyboardInterrupt:
        code = 0
    sys.exit(code)


if __name__ == "__main__":
    main()
