"""A small plain-WSGI app for Piston: a dynamic page, a JSON route, a form
POST, and static files served by the engine itself (never entering Python).

    piston examples.wsgi_app:app --bind 127.0.0.1:8000 \
        --static /static=examples/static --route /health=OK

then open http://127.0.0.1:8000/ . Or: python examples/wsgi_app.py
"""
import datetime
import html
import json
import os
import threading
from urllib.parse import parse_qs

_lock = threading.Lock()
_visits = 0
_messages = []

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Piston example</title>
<link rel="stylesheet" href="/static/style.css"></head>
<body>
<h1>Hello from Piston</h1>
<p>Visit number {visits}, served at {now} by process {pid}.</p>
<p><a href="/api/status">/api/status</a> (JSON) &middot;
   <a href="/static/index.html">/static/index.html</a> (a file, served in C) &middot;
   <a href="/health">/health</a> (a fixed response, served in C)</p>
<form method="post" action="/messages">
  <input name="text" placeholder="Say something" maxlength="200">
  <button>Post</button>
</form>
<ul>{messages}</ul>
</body></html>
"""


def _send(start_response, status, body, ctype):
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def index(environ, start_response):
    global _visits
    with _lock:
        _visits += 1
        visits = _visits
        messages = list(_messages)
    items = "".join("<li>%s</li>" % html.escape(m) for m in reversed(messages))
    body = PAGE.format(visits=visits, now=datetime.datetime.now().isoformat(timespec="seconds"),
                       pid=os.getpid(), messages=items).encode("utf-8")
    return _send(start_response, "200 OK", body, "text/html; charset=utf-8")


def status(environ, start_response):
    with _lock:
        data = {"visits": _visits, "messages": len(_messages), "pid": os.getpid(),
                "server": environ.get("SERVER_SOFTWARE"),
                "multithread": environ["wsgi.multithread"]}
    return _send(start_response, "200 OK", json.dumps(data).encode(), "application/json")


def post_message(environ, start_response):
    try:
        size = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        size = 0
    form = parse_qs(environ["wsgi.input"].read(min(size, 64 * 1024)).decode("utf-8", "replace"))
    text = (form.get("text") or [""])[0].strip()[:200]
    if text:
        with _lock:
            _messages.append(text)
            del _messages[:-20]
    # Post/Redirect/Get
    start_response("303 See Other", [("Location", "/"), ("Content-Length", "0")])
    return [b""]


ROUTES = {
    ("GET", "/"): index,
    ("HEAD", "/"): index,
    ("GET", "/api/status"): status,
    ("POST", "/messages"): post_message,
}


def app(environ, start_response):
    handler = ROUTES.get((environ["REQUEST_METHOD"], environ["PATH_INFO"]))
    if handler is None:
        return _send(start_response, "404 Not Found", b"not found\n", "text/plain")
    return handler(environ, start_response)


if __name__ == "__main__":
    import piston

    here = os.path.dirname(os.path.abspath(__file__))
    piston.run(app, bind="127.0.0.1:8000", static=[("/static", os.path.join(here, "static"))],
               routes=[("/health", "OK")])
