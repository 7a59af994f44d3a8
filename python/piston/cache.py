"""The engine's response cache, from Python.

Run with ``--cache-size BYTES`` and mark the responses that may be served to
everyone for a while:

    @piston.cache(ttl=5)                 # a WSGI or ASGI app, a Flask or
    def view(): ...                      # Django view

    headers.append(piston.cache_header(ttl=5, swr=30))   # by hand

The engine consumes the ``Piston-Cache`` field, stores the response and
answers the next requests for the same URL (and the same values of the
request fields the response names in ``Vary``) itself, without calling the
app, until ``ttl`` seconds have passed; ``swr``: then serve it stale for
that long while one request refreshes it; ``sie``: serve it stale for that
long when the refresh fails (5xx). Responses with ``Set-Cookie``,
``Cache-Control: private/no-store/no-cache``, ``Vary: *``/``Cookie`` and
answers to requests with ``Authorization`` are never stored.

``piston.purge(target, prefix=False)`` drops stored responses (of this
process); ``piston.cache_stats()`` returns the counters.
"""
import functools
import inspect

NAME = "Piston-Cache"

# The engine servers of this process (WSGI's Server, ASGI's AsgiServer):
# each keeps its own cache.
_servers = []


def register(srv):
    """Called for each engine server the process makes (config.py)."""
    _servers.append(srv)


def cache_value(ttl, swr=0, sie=0):
    for name, v in (("ttl", ttl), ("swr", swr), ("sie", sie)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ValueError("piston.cache: %s must be a whole number of "
                             "seconds >= 0, not %r" % (name, v))
    if ttl < 1:
        raise ValueError("piston.cache: ttl must be at least 1 second")
    value = "ttl=%d" % ttl
    if swr:
        value += ", swr=%d" % swr
    if sie:
        value += ", sie=%d" % sie
    return value


def cache_header(ttl, swr=0, sie=0):
    """The (name, value) field that marks a response cacheable."""
    return (NAME, cache_value(ttl, swr, sie))


def _mark(response, value):
    """Sets the field on a framework's response object; False if it has no
    place for it."""
    headers = getattr(response, "headers", None)
    if headers is not None and hasattr(headers, "__setitem__"):
        headers[NAME] = value  # Flask/Werkzeug, Starlette, Django >= 3.2
        return True
    if hasattr(response, "__setitem__") and hasattr(response, "has_header"):
        response[NAME] = value  # older Django HttpResponse
        return True
    return False


def cache(ttl, swr=0, sie=0):
    """A decorator: the responses of a WSGI app, an ASGI app, or a view
    (Flask, Django, Starlette...) that returns a response object are marked
    cacheable for ttl seconds."""
    value = cache_value(ttl, swr, sie)
    field = (NAME, value)
    bfield = (NAME.lower().encode(), value.encode())

    def wrap(func):
        if inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
                getattr(func, "__call__", None)):
            @functools.wraps(func)
            async def awrapper(*args, **kw):
                if len(args) == 3 and isinstance(args[0], dict) and "type" in args[0]:
                    scope, receive, send = args

                    async def marked_send(msg):
                        if msg.get("type") == "http.response.start":
                            msg = dict(msg)
                            msg["headers"] = list(msg.get("headers", ())) + [bfield]
                        await send(msg)
                    return await func(scope, receive, marked_send)
                resp = await func(*args, **kw)
                if not _mark(resp, value):
                    raise TypeError("piston.cache: %r returned %r, which has no "
                                    "headers to mark" % (func, type(resp)))
                return resp
            return awrapper

        @functools.wraps(func)
        def wrapper(*args, **kw):
            if len(args) == 2 and isinstance(args[0], dict) and callable(args[1]) \
                    and "REQUEST_METHOD" in args[0]:
                environ, start_response = args

                def marked_start(status, headers, exc_info=None):
                    return start_response(status, list(headers) + [field], exc_info)
                return func(environ, marked_start)
            resp = func(*args, **kw)
            if _mark(resp, value):
                return resp
            try:  # a Flask view that returned a str, dict or tuple
                import flask
                if flask.has_request_context():
                    resp = flask.make_response(resp)
                    _mark(resp, value)
                    return resp
            except ImportError:
                pass
            raise TypeError("piston.cache: %r returned %r, which has no headers "
                            "to mark" % (func, type(resp)))
        return wrapper
    return wrap


def purge(target, prefix=False):
    """Drops the stored responses whose target (path and query, as the
    client sent it: "/products?page=2") is target, or starts with it with
    prefix=True, in every variant and for every Host. Returns how many."""
    if not isinstance(target, str):
        raise TypeError("piston.purge: target must be a str, not %r" % (target,))
    return sum(s.cache_purge(target, bool(prefix)) for s in _servers)


def cache_stats():
    """The counters of this process's response cache (summed over its
    servers): hits, stale_hits, misses, coalesced, stores, uncacheable,
    evictions, purged, bytes, entries."""
    total = {}
    for s in _servers:
        for k, v in s.cache_stats().items():
            total[k] = total.get(k, 0) + v
    return total
