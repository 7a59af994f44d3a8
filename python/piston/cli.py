"""piston MODULE:APP [options]: the command line, in gunicorn's shape.

Errors the user can fix (cannot import the app, a missing attribute, a port
in use, a bad option) are one line on stderr and exit code 1 or 2, never a
traceback.
"""
import argparse
import importlib
import inspect
import os
import sys

from . import _piston, __version__
from .config import Config, OpsConfig, UsageError, parse_bind
from .server import serve, setup_logging

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
    def error(self, message):
        sys.stderr.write("%s: %s (try --help)\n" % (PROG, message))
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


def build_parser():
    p = _Parser(prog=PROG, description="Serve a WSGI or ASGI app with the Piston HTTP/1.1 and WebSocket engine.",
                usage="%(prog)s [options] MODULE:APP")
    p.add_argument("app", metavar="MODULE:APP",
                   help="the app: a module and a variable in it (default name: application, app)")
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
                   help="grace for requests in flight on SIGTERM (default 30)")
    p.add_argument("--max-requests", type=_positive("--max-requests", 0), default=0,
                   help="restart a worker after this many requests (0: never)")
    p.add_argument("--max-requests-jitter", type=_positive("--max-requests-jitter", 0),
                   default=0, help="add up to this many to --max-requests, per worker")
    p.add_argument("--no-reuse-port", action="store_true",
                   help="with --workers: one TCP socket shared by all workers instead of "
                        "one SO_REUSEPORT socket per worker")
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
    p.add_argument("--log-level", default="info",
                   choices=["debug", "info", "warning", "error", "critical"])
    p.add_argument("--chdir", metavar="DIR", help="change to DIR before loading the app")
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
    binds = a.bind or ["127.0.0.1:8000"]
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
    cfg = Config(certfile=a.certfile, keyfile=a.keyfile, ca_certs=a.ca_certs,
                  cert_reqs=a.cert_reqs, ciphers=a.ciphers,
                  ticket_key_file=a.tls_ticket_key_file, bind=binds, workers=a.workers, threads=a.threads, loops=a.loops,
                  root_path=root, routes=a.route, static=a.static, options=options,
                  cache_routes=cache_routes,
                  access_log=a.access_log, shutdown_timeout=a.shutdown_timeout,
                  max_requests=a.max_requests, max_requests_jitter=a.max_requests_jitter,
                  reuse_port=not a.no_reuse_port, lifespan=a.lifespan, loop=a.loop,
                  ws=a.ws, handler_timeout=a.handler_timeout or 0.0)
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


def main(argv=None):
    a = build_parser().parse_args(argv)
    setup_logging(a.log_level)
    try:
        if a.chdir:
            os.chdir(a.chdir)
        cfg = config_from_args(a)
        app = load_app(a.app, a.factory)
        kind = a.interface
        if kind == "auto":
            kind = detect_interface(app)
        code = serve(app, cfg, kind)
    except UsageError as e:
        sys.stderr.write("%s: %s\n" % (PROG, e))
        sys.exit(1)
    except KeyboardInterrupt:
        code = 0
    sys.exit(code)


if __name__ == "__main__":
    main()
