"""WSGI apps the tests serve (imported by `piston apps:NAME` from this
directory). Every app is wrapped in wsgiref.validate.validator unless its
point is to break the rules."""
import faulthandler
import json
import os
import signal
import threading
import time
from wsgiref.validate import validator

# `kill -USR1 <pid>` dumps every thread's stack: for debugging hangs
faulthandler.register(signal.SIGUSR1, all_threads=True)

STATE = {"closed": 0, "aborted_close": 0, "started": 0}
LOCK = threading.Lock()
ENV_KEYS = [
    "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE",
    "CONTENT_LENGTH", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR",
    "REMOTE_PORT", "wsgi.url_scheme", "wsgi.multithread", "wsgi.multiprocess",
    "wsgi.run_once", "wsgi.input_terminated",
]


class Closing:
    """A body iterable that counts close() calls."""

    def __init__(self, chunks, delay=0.0):
        self.chunks = chunks
        self.delay = delay

    def __iter__(self):
        for c in self.chunks:
            if self.delay:
                time.sleep(self.delay)
            yield c

    def close(self):
        with LOCK:
            STATE["closed"] += 1


def _text(start_response, body, status="200 OK", extra=()):
    start_response(status, [("Content-Type", "text/plain"),
                            ("Content-Length", str(len(body)))] + list(extra))
    return [body]


def _raw(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/env" or path.startswith("/env/"):
        env = {k: environ.get(k) for k in ENV_KEYS}
        env["headers"] = {k: v for k, v in environ.items() if k.startswith("HTTP_")}
        return _text(start_response, json.dumps(env).encode())
    if path == "/echo":
        data = environ["wsgi.input"].read()
        return _text(start_response, data)
    if path == "/echo-lines":
        inp = environ["wsgi.input"]
        first = inp.readline()
        limited = inp.readline(3)
        rest = inp.readlines()
        out = json.dumps({"first": first.decode(), "limited": limited.decode(),
                          "rest": [r.decode() for r in rest]}).encode()
        return _text(start_response, out)
    if path == "/echo-iter":
        lines = [line for line in environ["wsgi.input"]]
        return _text(start_response, b"|".join(lines))
    if path == "/echo-chunks":
        inp = environ["wsgi.input"]
        parts = []
        while True:
            c = inp.read(1000)
            if not c:
                break
            parts.append(c)
        return _text(start_response, b"%d:%d" % (len(parts), sum(map(len, parts))))
    if path == "/count-upload":
        inp = environ["wsgi.input"]
        total = 0
        while True:
            c = inp.read(65536)
            if not c:
                break
            total += len(c)
        return _text(start_response, str(total).encode())
    if path == "/big":
        n = int(environ["QUERY_STRING"].partition("=")[2] or 1000)
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(n))])
        chunk = bytes(range(256)) * 256
        def gen():
            sent = 0
            while sent < n:
                c = chunk[: min(len(chunk), n - sent)]
                sent += len(c)
                yield c
        return gen()
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing([b"one\n", b"two\n", b"three\n"])
    if path == "/slow-stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing([b"x" * 65536] * 400, delay=0.005)
    if path == "/late":
        def gen():
            yield b""
            start_response("201 Created", [("Content-Type", "text/plain"),
                                           ("X-Late", "yes")])
            yield b"late"
        return gen()
    if path == "/write":
        w = start_response("200 OK", [("Content-Type", "text/plain")])
        w(b"written ")
        return [b"and returned"]
    if path == "/empty":
        start_response("204 No Content", [])
        return []
    if path == "/file":
        f = open(__file__, "rb")
        start_response("200 OK", [("Content-Type", "text/x-python"),
                                  ("Content-Length", str(os.fstat(f.fileno()).st_size))])
        return environ["wsgi.file_wrapper"](f, 4096)
    if path == "/file-nolen":
        f = open(__file__, "rb")
        f.seek(10)
        start_response("200 OK", [("Content-Type", "text/x-python")])
        return environ["wsgi.file_wrapper"](f, 4096)
    if path == "/sleep":
        time.sleep(float(environ["QUERY_STRING"].partition("=")[2] or 0.5))
        return _text(start_response, b"slept")
    if path == "/stats":
        with LOCK:
            return _text(start_response, json.dumps(STATE).encode())
    if path == "/threads":
        n = sum(1 for t in threading.enumerate() if t.name.startswith("piston-worker"))
        return _text(start_response, str(n).encode())
    if path == "/pid":
        return _text(start_response, str(os.getpid()).encode())
    if path.startswith("/reason/"):
        # the app's own reason phrases (tests/python/test_reason.py)
        what = path[len("/reason/"):]
        if what == "list":  # one body element, no Content-Length
            start_response("200 Fine", [("Content-Type", "text/plain")])
            return [b"fine body"]
        if what == "list-len":  # with the app's Content-Length
            return _text(start_response, b"with length", "200 Fine")
        if what == "stream":
            start_response("201 Made It", [("Content-Type", "text/plain")])
            return Closing([b"a", b"b", b"c"])
        if what == "write":
            w = start_response("202 Taken Up", [("Content-Type", "text/plain")])
            w(b"w")
            return [b"r"]
        if what == "file":
            f = open(__file__, "rb")
            start_response("203 From A File", [("Content-Length", str(os.fstat(f.fileno()).st_size))])
            return environ["wsgi.file_wrapper"](f, 4096)
        if what == "standard":
            return _text(start_response, b"std", "404 Not Found")
        if what == "other-phrase":  # not the engine's phrase for 413
            return _text(start_response, b"big", "413 Request Entity Too Large")
        if what == "unknown-code":
            return _text(start_response, b"odd", "299 Odd But Fine")
        if what == "latin1":
            return _text(start_response, b"cafe", "200 Caf\xe9 Cr\xe8me")
        if what == "empty":
            start_response("204 Nothing Here", [])
            return []
        if what == "empty-list":  # one empty body element
            start_response("204 Nothing Here", [("X-A", "1")])
            return [b""]
        if what == "not-modified":
            start_response("304 Same Old", [("ETag", '"v1"')])
            return [b""]
        if what == "list-len-first":  # the app's Content-Length keeps its place
            start_response("200 Fine", [("Content-Length", "4"), ("X-B", "2")])
            return [b"four"]
    return _text(start_response, b"not found", "404 Not Found")


app = validator(_raw)


def broken(environ, start_response):
    """Breaks the rules on purpose (not validated)."""
    path = environ["PATH_INFO"]
    if path == "/raise":
        raise RuntimeError("boom")
    if path == "/raise-late":
        start_response("200 OK", [("Content-Type", "text/plain")])
        def gen():
            yield b"partial"
            raise RuntimeError("late boom")
        return gen()
    if path == "/raise-before-body":
        start_response("200 OK", [("Content-Type", "text/plain")])
        def gen():
            raise RuntimeError("boom before body")
            yield b""
        return gen()
    if path == "/bad-header":
        start_response("200 OK", [("X-Bad", "a\r\nInjected: yes")])
        return [b"no"]
    if path == "/bad-status":
        start_response("OK", [])
        return [b"no"]
    if path.startswith("/bad-reason/"):
        # statuses PEP 3333 rules out: each is the app's error, a 500
        bad = {
            "trailing-space": "200 OK ",
            "two-spaces": "200  OK",
            "no-reason": "200",
            "empty-reason": "200 ",
            "crlf": "200 OK\r\nX-Injected: yes",
            "control": "200 O\x01K",
            "not-latin1": "200 \u20ac",
            "digits": "2O0 OK",
        }[path[len("/bad-reason/"):]]
        start_response(bad, [("Content-Type", "text/plain")])
        return [b"no"]
    if path == "/no-start":
        return [b"no"]
    if path == "/str-body":
        start_response("200 OK", [])
        return ["text"]
    if path == "/exc-info":
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("oops")
        except ValueError:
            import sys
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")],
                           sys.exc_info())
        return [b"recovered"]
    if path == "/ok":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    return _raw(environ, start_response)


def factory():
    return app


async def asgi_app(scope, receive, send):
    pass


class AsgiClass:
    def __init__(self, scope, receive, send):
        pass


class AsgiInstance:
    async def __call__(self, scope, receive, send):
        pass


asgi_instance = AsgiInstance()
not_callable = 42
