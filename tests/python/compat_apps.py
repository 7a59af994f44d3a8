"""The apps of tests/python/test_compat_engine.py (issue #14's engine bugs),
one WSGI and one ASGI with the same routes and the same bytes:

  POST /echo?sleep=S   the body back, answered S seconds after it arrived
  GET  /slow           "slow", after 10 ms
  GET  /hello          "Hello, World!"
  GET  /host           "host=" and the Host value the app was given
  GET  /overflow       Content-Length: 8 announced, 20 bytes given (in two
                       parts; ?one=1: in one)
  GET  /wait           (ASGI) answers nothing until http.disconnect
  GET  /events         (ASGI) what /wait saw, as text
"""
import asyncio
import time

EVENTS = []


def _query(qs):
    return dict(p.split("=", 1) for p in qs.split("&") if "=" in p)


def _head(body, length=None):
    n = len(body) if length is None else length
    return [("Content-Type", "text/plain"), ("Content-Length", str(n))]


def wsgi(environ, start_response):
    path, q = environ["PATH_INFO"], _query(environ["QUERY_STRING"])
    if path == "/echo":
        body = environ["wsgi.input"].read()
        time.sleep(float(q.get("sleep", "0")))
    elif path == "/slow":
        time.sleep(0.01)
        body = b"slow"
    elif path == "/hello":
        body = b"Hello, World!"
    elif path == "/host":
        body = b"host=" + environ.get("HTTP_HOST", "").encode("latin-1")
    elif path == "/overflow":
        start_response("200 OK", _head(b"", 8))
        if q.get("one"):
            return [b"0123456789abcdefghij"]
        return [b"012345", b"6789abcdefghij"]
    else:
        start_response("404 Not Found", _head(b"no"))
        return [b"no"]
    start_response("200 OK", _head(body))
    return [body]


async def _start(send, body, length=None):
    await send({"type": "http.response.start", "status": 200,
                "headers": [(k.encode(), v.encode()) for k, v in _head(body, length)]})


async def _read_body(receive):
    chunks = []
    while True:
        m = await receive()
        chunks.append(m.get("body", b""))
        if not m.get("more_body"):
            return b"".join(chunks)


async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    path, q = scope["path"], _query(scope["query_string"].decode())
    if path == "/echo":
        body = await _read_body(receive)
        await asyncio.sleep(float(q.get("sleep", "0")))
    elif path == "/slow":
        await asyncio.sleep(0.01)
        body = b"slow"
    elif path == "/hello":
        body = b"Hello, World!"
    elif path == "/host":
        body = b"host=" + dict(scope["headers"]).get(b"host", b"")
    elif path == "/overflow":
        await _start(send, b"", 8)
        if q.get("one"):
            await send({"type": "http.response.body", "body": b"0123456789abcdefghij"})
            return
        await send({"type": "http.response.body", "body": b"012345", "more_body": True})
        await send({"type": "http.response.body", "body": b"6789abcdefghij"})
        return
    elif path == "/wait":
        await _read_body(receive)
        EVENTS.append("wait:" + (await receive())["type"])
        return
    elif path == "/events":
        body = " ".join(EVENTS).encode()
    else:
        body = b"no"
    await _start(send, body)
    await send({"type": "http.response.body", "body": body})
