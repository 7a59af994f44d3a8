"""examples/wsgi_app.py through the CLI, and the piston.run() Python API."""
import os
import sys
import textwrap

from conftest import ROOT, Server, free_port, piston_cmd, request


def test_example_app():
    port = free_port()
    s = Server(piston_cmd() + ["examples.wsgi_app:app", "--bind", "127.0.0.1:%d" % port,
                               "--static", "/static=examples/static", "--route", "/health=OK"],
               port, cwd=ROOT)
    try:
        r = request(port, path="/")
        assert r.status == 200 and b"Hello from Piston" in r.body
        assert r.header("Content-Type") == "text/html; charset=utf-8"
        r = request(port, path="/api/status")
        assert r.status == 200 and b'"visits": 1' in r.body
        r = request(port, "POST", "/messages", headers=[("Content-Type",
                    "application/x-www-form-urlencoded")], body=b"text=hello+there")
        assert r.status == 303 and r.header("Location") == "/"
        assert b"<li>hello there</li>" in request(port, path="/").body
        r = request(port, path="/static/style.css")
        assert r.status == 200 and r.header("Content-Type").startswith("text/css")
        assert r.body == open(os.path.join(ROOT, "examples/static/style.css"), "rb").read()
        assert request(port, path="/health").body == b"OK"
        assert request(port, path="/nope").status == 404
    finally:
        assert s.stop() == 0


def test_python_api_run(tmp_path):
    port = free_port()
    script = tmp_path / "serve.py"
    script.write_text(textwrap.dedent("""
        import piston

        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"run() works"]

        raise SystemExit(piston.run(app, bind="127.0.0.1:%d", threads=2))
    """ % port))
    s = Server([sys.executable, str(script)], port, env={"PYTHONPATH": os.path.join(ROOT, "python")})
    try:
        assert request(port, path="/").body == b"run() works"
    finally:
        assert s.stop() == 0
