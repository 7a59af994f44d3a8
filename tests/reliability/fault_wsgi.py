"""The WSGI apps of tests/reliability/test_handler_faults.py: a plain WSGI
callable (`plain`) and a Flask app (`flask_app`) with the same faulty
routes, served by `.venv/bin/piston fault_wsgi:plain` (or :flask_app).

  GET  /ok          200 "ok"
  GET  /raise       raises before responding (RuntimeError handler-fault-a)
  GET  /raise-mid   starts a streamed response, then raises (handler-fault-b)
  GET  /hang        never starts its response: waits until GET /release (at
                    most 30 s), then tries to answer, too late
  GET  /release     lets every held /hang return
  GET  /hang-done   how many /hang calls have returned (their answer, too
                    late, is written just after)
  POST /upload      reads the whole request body; what it saw is kept
  GET  /last-upload what the last /upload saw: "ok <n>" or the qualified
                    name of the exception its read raised ("" if none yet)
"""
import threading
import time

RELEASE = threading.Event()
HANG_DONE = [0]
LAST_UPLOAD = [""]
HANG_MAX_S = 30


def _qualname(e):
    t = type(e)
    return "%s.%s" % (t.__module__, t.__qualname__)


def _text(start_response, body, status="200 OK"):
    start_response(status, [("Content-Type", "text/plain"),
                            ("Content-Length", str(len(body)))])
    return [body]


def _streamed():
    yield b"part-1\n"
    time.sleep(0.1)  # the first chunk is on the wire before the fault
    raise RuntimeError("handler-fault-b")


def plain(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/ok":
        return _text(start_response, b"ok")
    if path == "/raise":
        raise RuntimeError("handler-fault-a")
    if path == "/raise-mid":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _streamed()
    if path == "/hang":
        RELEASE.wait(HANG_MAX_S)
        HANG_DONE[0] += 1
        return _text(start_response, b"too late")
    if path == "/hang-done":
        return _text(start_response, str(HANG_DONE[0]).encode())
    if path == "/release":
        RELEASE.set()
        return _text(start_response, b"released")
    if path == "/upload":
        try:
            data = environ["wsgi.input"].read()
        except Exception as e:
            LAST_UPLOAD[0] = _qualname(e)
            raise
        LAST_UPLOAD[0] = "ok %d" % len(data)
        return _text(start_response, b"got it")
    if path == "/last-upload":
        return _text(start_response, LAST_UPLOAD[0].encode())
    return _text(start_response, b"not found", "404 Not Found")


def _make_flask():
    from flask import Flask, Response, request

    app = Flask("fault_wsgi")

    @app.route("/ok")
    def ok():
        return "ok"

    @app.route("/raise")
    def raise_():
        raise RuntimeError("handler-fault-a")

    @app.route("/raise-mid")
    def raise_mid():
        return Response(_streamed(), mimetype="text/plain")

    @app.route("/hang")
    def hang():
        RELEASE.wait(HANG_MAX_S)
        HANG_DONE[0] += 1
        return "too late"

    @app.route("/hang-done")
    def hang_done():
        return str(HANG_DONE[0])

    @app.route("/release")
    def release():
        RELEASE.set()
        return "released"

    @app.route("/upload", methods=["POST"])
    def upload():
        try:
            data = request.get_data()
        except Exception as e:
            LAST_UPLOAD[0] = _qualname(e)
            raise
        LAST_UPLOAD[0] = "ok %d" % len(data)
        return "got it"

    @app.route("/last-upload")
    def last_upload():
        return LAST_UPLOAD[0]

    return app


flask_app = _make_flask()
