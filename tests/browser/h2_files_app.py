"""The Python apps of tests/browser/test_h2_chromium.py, for the piston CLI:

  asgi_app   serves the files under $PISTON_H2_DIR itself, in 64 KiB
             chunks (more_body), so that the bytes go through the ASGI host
  wsgi_app   the same as a WSGI app (an iterator of 64 KiB chunks)
  not_found  404 for everything: with --static /=DIR, what the browser
             gets must have come from the engine's file routes"""

import mimetypes
import os

CHUNK = 64 * 1024


def lookup(path):
    """(status, content type, the file's path or None) for a request path."""
    root = os.path.realpath(os.environ["PISTON_H2_DIR"])
    f = os.path.realpath(os.path.join(root, path.lstrip("/")))
    if not f.startswith(root + os.sep) or not os.path.isfile(f):
        return 404, "text/plain", None
    return 200, mimetypes.guess_type(f)[0] or "application/octet-stream", f


def chunks(f):
    with open(f, "rb") as fh:
        while True:
            b = fh.read(CHUNK)
            if not b:
                return
            yield b


async def asgi_app(scope, receive, send):
    if scope["type"] != "http":
        return
    status, ctype, f = lookup(scope["path"])
    headers = [(b"content-type", ctype.encode())]
    if f:
        headers.append((b"content-length", str(os.path.getsize(f)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    if not f:
        await send({"type": "http.response.body", "body": b"not found"})
        return
    for b in chunks(f):
        await send({"type": "http.response.body", "body": b, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def wsgi_app(environ, start_response):
    status, ctype, f = lookup(environ["PATH_INFO"])
    if not f:
        start_response("404 Not Found", [("Content-Type", ctype)])
        return [b"not found"]
    start_response("200 OK", [("Content-Type", ctype),
                              ("Content-Length", str(os.path.getsize(f)))])
    return chunks(f)


async def not_found(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 404,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"not found"})
