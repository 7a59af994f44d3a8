"""FastAPI and Starlette apps (Debian's packages) on Piston's ASGI host and on
Debian's uvicorn: the same requests get the same answers."""
import hashlib
import json
import os
import sys
import time

import pytest

from conftest import HERE, Reader, Server, connect, free_port, piston_cmd, request

pytest.importorskip("fastapi")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")


def uvicorn_cmd(app, port):
    return [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
            "--lifespan", "on", "--log-level", "warning"]


def _start(app, uvicorn_env=None):
    pp, up = free_port(), free_port()
    p = Server(piston_cmd() + [app, "--bind", "127.0.0.1:%d" % pp], pp)
    u = Server(uvicorn_cmd(app, up), up, env=uvicorn_env)
    return p, u


@pytest.fixture(scope="module")
def fastapi_servers():
    p, u = _start("fw_fastapi:app")
    yield p, u
    p.stop()
    u.stop()


@pytest.fixture(scope="module")
def starlette_servers():
    # Debian's uvicorn (0.17) has no lifespan state: Starlette refuses to
    # start with a lifespan that yields one, so uvicorn runs it without
    p, u = _start("fw_starlette:app", {"FW_NO_LIFESPAN_STATE": "1"})
    yield p, u
    p.stop()
    u.stop()


COMPARED_HEADERS = ("content-type", "content-length", "x-middleware", "x-pure",
                    "cache-control", "etag", "last-modified", "transfer-encoding")


def view(r):
    hs = {k.lower(): v for k, v in r.headers if k.lower() in COMPARED_HEADERS}
    return r.status, hs, r.body


def same(servers, method="GET", path="/", headers=(), body=b""):
    p, u = servers
    a = request(p.port, method, path, headers=headers, body=body)
    b = request(u.port, method, path, headers=headers, body=body)
    va, vb = view(a), view(b)
    assert va == vb, "piston %r\nuvicorn %r" % (va, vb)
    return a


# ---- FastAPI ------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/items/42", "/items/42?q=hello%20there&limit=3", "/items/notanint", "/items/7?limit=x",
    "/sync?x=5", "/error/404", "/error/418", "/no/such/route", "/headers",
])
def test_fastapi_get(fastapi_servers, path):
    r = same(fastapi_servers, path=path, headers=[("User-Agent", "t/1"), ("X-Multi", "a"),
                                                  ("X-Multi", "b")])
    if path == "/headers":
        assert json.loads(r.body)["x"] == ["a", "b"]


@pytest.mark.parametrize("body", [
    {"name": "pen", "price": 1.5},
    {"name": "pen", "price": 1.5, "tags": ["a", "b"], "note": "n\u00e9"},
    {"name": "pen"},
    "not an object",
])
def test_fastapi_json_body(fastapi_servers, body):
    same(fastapi_servers, "POST", "/items", headers=[("Content-Type", "application/json")],
         body=json.dumps(body).encode())


def test_fastapi_invalid_json(fastapi_servers):
    same(fastapi_servers, "POST", "/items", headers=[("Content-Type", "application/json")],
         body=b"{broken")


def test_fastapi_upload(fastapi_servers):
    import fw_fastapi
    if not fw_fastapi.HAVE_MULTIPART:
        pytest.skip("python3-multipart is not installed")
    data = os.urandom(300000)
    boundary = "----pistonboundary"
    body = ("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n" % boundary).encode() + data + \
        ("\r\n--%s--\r\n" % boundary).encode()
    r = same(fastapi_servers, "POST", "/upload",
             headers=[("Content-Type", "multipart/form-data; boundary=%s" % boundary)], body=body)
    got = json.loads(r.body)
    assert got["size"] == len(data) and got["sha256"] == hashlib.sha256(data).hexdigest()


def test_fastapi_streaming(fastapi_servers):
    r = same(fastapi_servers, path="/stream?n=20")
    assert r.body == b"".join(b"chunk %d\n" % i for i in range(20))


def test_fastapi_sse(fastapi_servers):
    r = same(fastapi_servers, path="/sse")
    assert r.body.count(b"event: tick") == 3


def test_fastapi_file(fastapi_servers):
    r = same(fastapi_servers, path="/file")
    with open(os.path.join(HERE, "asgi_apps.py"), "rb") as f:
        assert r.body == f.read()
    same(fastapi_servers, "HEAD", "/file")


def test_fastapi_background_tasks(fastapi_servers):
    for s in fastapi_servers:
        r = request(s.port, "POST", "/bg/w%d" % s.port)
        assert r.status == 200 and r.body == b"queued w%d" % s.port
        end = time.monotonic() + 5
        while time.monotonic() < end:
            log = json.loads(request(s.port, path="/bg-log").body)
            if "w%d" % s.port in log:
                break
            time.sleep(0.05)
        assert "w%d" % s.port in log


def test_fastapi_sse_client_goes_away(fastapi_servers):
    """An endless event stream ends when its client leaves."""
    for s in fastapi_servers:
        sock = connect(s.port)
        sock.sendall(b"GET /sse-forever HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"data: 0" in sock.recv(4096)
        time.sleep(0.1)
        sock.close()
        end = time.monotonic() + 5
        while time.monotonic() < end:
            log = json.loads(request(s.port, path="/bg-log").body)
            if "sse-closed" in log:
                break
            time.sleep(0.05)
        assert "sse-closed" in log, s.args[0]


def test_fastapi_keepalive_and_pipelining(fastapi_servers):
    for s in fastapi_servers:
        sock = connect(s.port)
        try:
            sock.sendall(b"".join(b"GET /items/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i
                                  for i in range(10)))
            rd = Reader(sock)
            for i in range(10):
                assert json.loads(rd.response().body)["item_id"] == i
        finally:
            sock.close()


# ---- Starlette -------------------------------------------------------------------------

def test_starlette_middleware(starlette_servers):
    r = same(starlette_servers, path="/?name=piston")
    assert r.body == b"hello piston"
    assert r.header("x-middleware") == "yes" and r.header("x-pure") == "1"


def test_starlette_stream_chunked(starlette_servers):
    p, u = starlette_servers
    for s in (p, u):
        sock = connect(s.port)
        try:
            sock.sendall(b"POST /consume HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(10):
                sock.sendall(b"1000\r\n" + b"z" * 4096 + b"\r\n")
                time.sleep(0.01)
            sock.sendall(b"0\r\n\r\n")
            r = Reader(sock).response()
            assert json.loads(r.body) == {"length": 40960, "method": "POST"}
        finally:
            sock.close()


def test_starlette_stream_large(starlette_servers):
    same(starlette_servers, "POST", "/consume", body=b"q" * (2 * 1024 * 1024))


def test_starlette_form_and_json(starlette_servers):
    same(starlette_servers, "POST", "/form",
         headers=[("Content-Type", "application/x-www-form-urlencoded")], body=b"a=1&b=two+words")
    same(starlette_servers, "POST", "/json", headers=[("Content-Type", "application/json")],
         body=b'{"k": [1, 2, 3]}')


def test_starlette_lifespan_state(starlette_servers):
    for s in starlette_servers[:1]:  # Piston only (see starlette_servers)
        first = json.loads(request(s.port, path="/state").body)
        second = json.loads(request(s.port, path="/state").body)
        assert first["db"] == "connected"
        # the state is a shallow copy per request: the list is shared
        assert second["hits"] == first["hits"] + 1


def test_starlette_404_405(starlette_servers):
    same(starlette_servers, path="/nope")
    same(starlette_servers, "GET", "/consume")
