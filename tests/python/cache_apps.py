"""Apps for test_cache: the same routes in WSGI and ASGI, plus Flask and
FastAPI views marked with piston.cache. /c/... answers "call K" (K counts the
app's answers) with the fields its query asks for; /purge and /stats reach
piston.purge and piston.cache_stats from inside the app."""
import asyncio
import itertools
import threading
import time
from urllib.parse import parse_qs

import piston

_calls = itertools.count(1)
_lock = threading.Lock()
_n = [0]


def _next():
    with _lock:
        _n[0] += 1
        return _n[0]


def _answer(path, query, req_headers):
    """(status, headers, body) for a path and its parsed query."""
    if path == "/purge":
        n = piston.purge(query["t"][0], prefix="prefix" in query)
        return "200 OK", [("Content-Type", "text/plain")], b"purged=%d" % n
    if path == "/stats":
        st = piston.cache_stats()
        st["calls"] = _n[0]
        body = " ".join("%s=%d" % kv for kv in sorted(st.items())).encode()
        return "200 OK", [("Content-Type", "text/plain")], body
    k = _next()
    headers = [("Content-Type", "text/plain")]
    ttl = int(query.get("ttl", ["5"])[0])
    if ttl:
        headers.append(piston.cache_header(ttl, int(query.get("swr", ["0"])[0])))
    for q, name in (("cc", "Cache-Control"), ("vary", "Vary")):
        if q in query:
            headers.append((name, query[q][0]))
    if "setcookie" in query:
        headers.append(("Set-Cookie", "sid=1"))
    if "etag" in query:
        headers.append(("ETag", '"v1"'))
    body = b"call %d\n" % k
    size = int(query.get("size", ["0"])[0])
    body += b"x" * max(0, size - len(body))
    return "200 OK", headers, body


def wsgi(environ, start_response):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if "ms" in query:
        time.sleep(int(query["ms"][0]) / 1000)
    status, headers, body = _answer(environ["PATH_INFO"], query, environ)
    start_response(status, headers)
    return [body]


async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return  # no lifespan here
    query = parse_qs(scope["query_string"].decode())
    if "ms" in query:
        await asyncio.sleep(int(query["ms"][0]) / 1000)
    status, headers, body = _answer(scope["path"], query, None)
    await send({"type": "http.response.start", "status": int(status[:3]),
                "headers": [(n.lower().encode(), v.encode()) for n, v in headers]})
    await send({"type": "http.response.body", "body": body})


# piston.cache on whole apps: every response marked
@piston.cache(ttl=30)
def wsgi_all(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"call %d\n" % _next()]


@piston.cache(ttl=30)
async def asgi_all(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"call %d\n" % _next()})


def _flask():
    from flask import Flask, jsonify
    app = Flask(__name__)

    @app.route("/product/<int:pid>")
    @piston.cache(ttl=30)
    def product(pid):
        return jsonify(id=pid, call=_next())

    @app.route("/text")
    @piston.cache(ttl=30)
    def text():
        return "call %d\n" % _next()

    @app.route("/user")
    def user():  # not marked: never stored
        return "call %d\n" % _next()

    @app.route("/purge/<int:pid>")
    def purge(pid):
        return "purged=%d" % piston.purge("/product/%d" % pid)
    return app


flask_app = _flask()


def _fastapi():
    from fastapi import FastAPI, Response
    app = FastAPI()

    @app.get("/item/{iid}")
    async def item(iid: int, response: Response):
        name, value = piston.cache_header(30)
        response.headers[name] = value
        return {"id": iid, "call": _next()}
    return app


fastapi_app = _fastapi()
