"""Flask and Django apps: the same requests against gunicorn and against
Piston give the same status, the headers that matter, and the body."""
import http.client
import json
import shutil
import uuid

import pytest

from conftest import HERE, Server, free_port, piston_cmd

GUNICORN = shutil.which("gunicorn") or shutil.which("gunicorn3")


def fetch(port, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def multipart(fields, files):
    boundary = uuid.uuid4().hex
    parts = []
    for k, v in fields.items():
        parts.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n"
                      % (boundary, k, v)).encode())
    for k, (name, data) in files.items():
        parts.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                      "Content-Type: application/octet-stream\r\n\r\n" % (boundary, k, name)).encode()
                     + data + b"\r\n")
    parts.append(("--%s--\r\n" % boundary).encode())
    return b"".join(parts), "multipart/form-data; boundary=" + boundary


UPLOAD = bytes(range(256)) * 400  # 100 KiB
FORM_BODY, FORM_TYPE = multipart({"title": "hello", "n": "42"}, {"upload": ("data.bin", UPLOAD)})

CASES = [
    ("GET", "/", None, {}),
    ("GET", "/?name=piston", None, {}),
    ("HEAD", "/", None, {}),
    ("GET", "/json", None, {}),
    ("POST", "/form", FORM_BODY, {"Content-Type": FORM_TYPE}),
    ("POST", "/form", "a=1&b=two+words", {"Content-Type": "application/x-www-form-urlencoded"}),
    ("GET", "/cookie", None, {}),
    ("GET", "/readcookie", None, {"Cookie": "flavour=chocolate"}),
    ("GET", "/redirect", None, {}),
    ("GET", "/stream", None, {}),
    ("GET", "/file", None, {}),
    ("GET", "/missing", None, {}),
]
FLASK_ONLY = [
    ("POST", "/json", json.dumps({"a": [1, 2]}), {"Content-Type": "application/json"}),
    ("GET", "/headers?q=1", None, {"User-Agent": "test-agent", "X-Test": "yes"}),
]
MATTER = ["content-type", "location", "set-cookie", "content-disposition", "last-modified",
          "cache-control", "x-frame-options"]


@pytest.fixture(scope="module", params=["fw_flask:app", "fw_django:application"])
def servers(request):
    if not GUNICORN:
        pytest.skip("gunicorn is not installed")
    app = request.param
    gport, pport = free_port(), free_port()
    g = Server([GUNICORN, "--bind", "127.0.0.1:%d" % gport, "--workers", "1",
                "--threads", "4", "--chdir", HERE, app], gport)
    p = Server(piston_cmd() + [app, "--bind", "127.0.0.1:%d" % pport, "--threads", "4"], pport)
    yield app, g.port, p.port
    g.stop()
    p.stop()


def normalise(app, path, headers, body):
    h = {k: headers.get(k) for k in MATTER}
    if h["location"]:
        # gunicorn and Piston listen on different ports
        h["location"] = h["location"].split(":", 2)[-1].split("/", 1)[-1]
    if path.startswith("/headers"):
        body = json.loads(body)
    return h, body


def test_same_responses(servers):
    app, gport, pport = servers
    cases = CASES + (FLASK_ONLY if app.startswith("fw_flask") else [])
    for method, path, body, headers in cases:
        gs, gh, gb = fetch(gport, method, path, body, headers)
        ps, ph, pb = fetch(pport, method, path, body, headers)
        where = "%s %s %s" % (app, method, path)
        assert ps == gs, where
        assert normalise(app, path, ph, pb) == normalise(app, path, gh, gb), where
        if gh.get("content-length") is not None:
            assert ph.get("content-length") == gh.get("content-length"), where


def test_upload_result(servers):
    app, gport, pport = servers
    s, _, b = fetch(pport, "POST", "/form", FORM_BODY, {"Content-Type": FORM_TYPE})
    assert s == 200
    d = json.loads(b)
    assert d["fields"] == {"title": "hello", "n": "42"}
    assert d["file"]["size"] == len(UPLOAD)
    import hashlib
    assert d["file"]["md5"] == hashlib.md5(UPLOAD).hexdigest()


def test_streaming_is_chunked(servers):
    app, gport, pport = servers
    s, h, b = fetch(pport, "GET", "/stream")
    assert s == 200 and h.get("transfer-encoding") == "chunked"
    assert b == b"".join(b"line %d\n" % i for i in range(5))
