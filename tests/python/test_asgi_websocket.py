"""The ASGI websocket scope: the raw-socket conformance suite
(tests/protocol/wsconf.py) through a raw ASGI echo app, the scope and the
message life of the ASGI spec (denial, the websocket.http.response
extension, the app failing at each stage, disconnect codes), Starlette and
FastAPI endpoints compared with Debian's uvicorn, Python's websockets
client, --ws none, --ws-max-size, and WebSocket requests to a WSGI app."""
import asyncio
import importlib.util
import json
import os
import signal
import socket
import struct
import sys
import time

import pytest

from conftest import HERE, ROOT, Reader, Server, connect, free_port, piston_cmd, request

websockets = pytest.importorskip("websockets")

_spec = importlib.util.spec_from_file_location(
    "wsconf", os.path.join(ROOT, "tests", "protocol", "wsconf.py"))
wsconf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(wsconf)

TEXT, BINARY, CLOSE = wsconf.TEXT, wsconf.BINARY, wsconf.CLOSE


def piston(app, *extra):
    port = free_port()
    return Server(piston_cmd() + [app, "--bind", "127.0.0.1:%d" % port] + list(extra), port)


def uvicorn(app):
    pytest.importorskip("uvicorn")
    port = free_port()
    return Server([sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1",
                   "--port", str(port), "--log-level", "warning"], port)


@pytest.fixture(scope="module")
def srv():
    s = piston("asgi_ws_apps:app")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def uv():
    s = uvicorn("asgi_ws_apps:app")
    yield s
    s.stop()


def addr(s):
    return ("127.0.0.1", s.port)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def uri(s, path):
    return "ws://127.0.0.1:%d%s" % (s.port, path)


async def fetch_text(s, path):
    async with websockets.connect(uri(s, path)) as ws:
        return await ws.recv()


# ---- the conformance suite, through the ASGI host ----------------------------------

@pytest.mark.parametrize("case", wsconf.CASES, ids=lambda c: c.__name__)
def test_conformance(srv, case):
    case(addr(srv), "/echo")


def test_max_size():
    s = piston("asgi_ws_apps:app", "--ws-max-size", "1000")
    try:
        wsconf.f9_too_big(addr(s), "/echo", 1000)
        # the limit is per message: the next session still echoes at it
        with wsconf.open_ws(addr(s), "/echo") as ws:
            wsconf.echo(ws, TEXT, b"t" * 1000)
    finally:
        assert s.stop() == 0


# ---- the scope and the handshake ------------------------------------------------

def test_scope(srv):
    ws = wsconf.Ws(addr(srv), "/scope/x%20y?a=1&b=2",
                   extra=["Sec-WebSocket-Protocol: chat, v2", "Sec-WebSocket-Protocol: v3",
                          "X-Custom: yes"])
    with ws:
        assert ws.status == 101
        assert b"\r\nx-extra: yes\r\n" in ws.head.lower()
        # no subprotocol chosen: none in the answer
        assert b"sec-websocket-protocol" not in ws.head.lower()
        op, data = ws.message()
        ws.expect_close(1000)
    assert op == TEXT
    scope = json.loads(data)
    assert scope["type"] == "websocket"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.5"}
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/scope/x y"
    assert scope["raw_path"] == "/scope/x%20y"
    assert scope["query_string"] == "a=1&b=2"
    assert scope["root_path"] == ""
    assert scope["subprotocols"] == ["chat", "v2", "v3"]
    assert scope["server"] == ["127.0.0.1", srv.port]
    assert scope["client"][0] == "127.0.0.1"
    assert scope["extensions"] == {"websocket.http.response": {}, "piston.pubsub": {}}
    assert scope["state"] == {}
    assert "method" not in scope
    assert ["x-custom", "yes"] in scope["headers"]
    assert ["sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="] in scope["headers"]


def test_subprotocol_negotiation(srv):
    async def go():
        async with websockets.connect(uri(srv, "/echo"), subprotocols=["v9", "v8"]) as ws:
            assert ws.subprotocol == "v9"
            await ws.send("x")
            assert await ws.recv() == "x"
    run(go())
    with wsconf.Ws(addr(srv), "/echo", extra=["Sec-WebSocket-Protocol: one, two"]) as ws:
        assert b"\r\nSec-WebSocket-Protocol: one\r\n" in ws.head


def test_plain_request_is_http(srv):
    r = request(srv.port, "GET", "/echo")
    assert (r.status, r.body) == (200, b"http /echo")


def status_of(s, path):
    with wsconf.Ws(addr(s), path) as ws:
        head = ws.head
        try:
            ws.sock.settimeout(2)
            rest = ws.buf + ws.sock.recv(65536)
        except OSError:
            rest = ws.buf
    return ws.status, head, rest


@pytest.mark.parametrize("path,status", [("/deny", 403), ("/return", 500), ("/raise", 500)])
def test_no_accept_as_uvicorn(srv, uv, path, status):
    """Closing before the accept is a 403; returning or raising before it
    a 500: uvicorn's answers."""
    mine = status_of(srv, path)
    theirs = status_of(uv, path)
    assert mine[0] == theirs[0] == status, (mine, theirs)
    # and the server serves on
    with wsconf.open_ws(addr(srv), "/echo") as ws:
        wsconf.echo(ws, TEXT, b"still here")


def test_http_response_extension(srv):
    with wsconf.Ws(addr(srv), "/http") as ws:
        assert ws.status == 401
        lines = ws.head.decode().lower().split("\r\n")
        assert "x-why: token" in lines
        assert "content-type: text/plain" in lines
        assert "sec-websocket-accept" not in ws.head.decode().lower()
        r = Reader(ws.sock)
        r.buf = ws.buf
        # the body follows the head (chunked: it came in two messages)
        hdrs = dict(line.split(": ", 1) for line in ws.head.decode().split("\r\n")[1:] if line)
        if hdrs.get("Transfer-Encoding") == "chunked":
            body = b""
            while True:
                size = int(r._line(), 16)
                if size == 0:
                    r._line()
                    break
                body += r._exact(size)
                r._exact(2)
        else:
            body = r._exact(int(hdrs["Content-Length"]))
        assert body == b"no entry"
        # the connection is HTTP/1.1 still
        ws.sock.sendall(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        resp = r.response()
        assert (resp.status, resp.body) == (200, b"http /after")


# ---- the session ---------------------------------------------------------------

def test_websockets_client(srv):
    wsconf.real_client(addr(srv), "/echo")

    async def go():
        async with websockets.connect(uri(srv, "/echo")) as ws:
            assert ws.subprotocol is None
            await ws.send("close-now")
            with pytest.raises(websockets.ConnectionClosed) as e:
                await ws.recv()
            assert (e.value.rcvd.code, e.value.rcvd.reason) == (4000, "")
    run(go())


def codes_of(s):
    return json.loads(run(fetch_text(s, "/codes")))


def test_disconnect_codes(srv):
    before = len(codes_of(srv))

    async def go():
        async with websockets.connect(uri(srv, "/record")) as ws:
            await ws.close(code=4001, reason="leaving")
        async with websockets.connect(uri(srv, "/record")) as ws:
            await ws.close()
    run(go())
    # a close without a code (1005), and a client vanishing mid-frame (1006)
    with wsconf.open_ws(addr(srv), "/record") as ws:
        ws.send(wsconf.frame(CLOSE, b""))
        assert ws.read_frame()[2] == CLOSE
        ws.expect_eof()
    with wsconf.open_ws(addr(srv), "/record") as ws:
        ws.send(wsconf.frame(BINARY, b"x" * 1000)[:500])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        got = codes_of(srv)[before:]
        if len(got) == 4:
            break
        time.sleep(0.05)
    assert got == [4001, 1000, 1005, 1006]


def test_send_after_close(srv):
    with wsconf.open_ws(addr(srv), "/send-after-close") as ws:
        ws.expect_close(1000)
    results = []
    for _ in range(100):
        results = json.loads(run(fetch_text(srv, "/results")))
        if len(results) >= 2:
            break
        time.sleep(0.05)
    # as uvicorn: a RuntimeError, and receive() then says it is over
    assert results[:2] == ["RuntimeError", {"type": "websocket.disconnect", "code": 1000, "reason": ""}]


def test_raise_after_accept(srv):
    with wsconf.open_ws(addr(srv), "/raise-after") as ws:
        wsconf.echo(ws, TEXT, b"one")
        ws.expect_close(1011)
    with wsconf.open_ws(addr(srv), "/echo") as ws:
        wsconf.echo(ws, TEXT, b"served on")


def test_backpressure_slow_reader(srv):
    """A reader that does not read: the app's sends wait for the drain and
    every byte arrives in order once it reads."""
    n = 32 << 20
    with wsconf.open_ws(addr(srv), "/big?%d" % n) as ws:
        time.sleep(1.0)
        # held by the queue's high-water mark and the socket buffers
        held = json.loads(run(fetch_text(srv, "/progress")))["big"]
        assert 0 < held < 8 << 20, held
        got = 0
        while True:
            op, data = ws.message()
            if op == TEXT:
                assert data == b"done"
                break
            assert op == BINARY and data == b"z" * len(data)
            got += len(data)
        assert got == n
        ws.expect_close(1000)


def test_graceful_stop_sends_1001():
    s = piston("asgi_ws_apps:app")
    ws = wsconf.open_ws(addr(s), "/echo")
    wsconf.echo(ws, TEXT, b"hi")
    s.proc.send_signal(signal.SIGTERM)
    ws.expect_close(1001)
    ws.close()
    assert s.proc.wait(15) == 0


# ---- options: --ws none; WSGI -----------------------------------------------------

HANDSHAKE = wsconf.handshake_request("/echo")


def test_ws_none_is_plain_http():
    s = piston("asgi_ws_apps:app", "--ws", "none")
    try:
        c = connect(s.port)
        c.sendall(HANDSHAKE + b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        r = Reader(c)
        a, b = r.response(), r.response()
        c.close()
        assert (a.status, a.body) == (200, b"http /echo")
        assert (b.status, b.body) == (200, b"http /next")
    finally:
        s.stop()


def test_wsgi_gets_websocket_request_as_http():
    """As under gunicorn: the WSGI app answers the handshake as a plain
    request (it sees the Upgrade header), and the connection stays
    HTTP/1.1."""
    s = piston("apps:app")
    try:
        c = connect(s.port)
        c.sendall(wsconf.handshake_request("/env") + b"GET /env HTTP/1.1\r\nHost: x\r\n\r\n")
        r = Reader(c)
        a, b = r.response(), r.response()
        c.close()
        assert a.status == 200 and b.status == 200
        env = json.loads(a.body)
        assert env["headers"]["HTTP_UPGRADE"] == "websocket"
        assert env["headers"]["HTTP_SEC_WEBSOCKET_VERSION"] == "13"
        assert "HTTP_UPGRADE" not in json.loads(b.body)["headers"]
    finally:
        s.stop()


# ---- Starlette and FastAPI, compared with uvicorn --------------------------------

@pytest.fixture(scope="module", params=["fw_ws:starlette_app", "fw_ws:app"],
                ids=["starlette", "fastapi"])
def fw(request):
    pytest.importorskip("starlette")
    pytest.importorskip("fastapi")
    p, u = piston(request.param), uvicorn(request.param)
    yield p, u
    p.stop()
    u.stop()


async def fw_session(s):
    out = []
    async with websockets.connect(uri(s, "/ws?q=1"), subprotocols=["v1", "chat"]) as ws:
        out.append(ws.subprotocol)
        await ws.send("hello")
        out.append(json.loads(await ws.recv()))
        await ws.send(b"\x01\x02\x03")
        out.append(await ws.recv())
        await ws.send("bye")
        try:
            await ws.recv()
        except websockets.ConnectionClosed as e:
            out.append(e.rcvd.code)
    async with websockets.connect(uri(s, "/ws")) as ws:
        out.append(ws.subprotocol)
        await ws.send("x")
        out.append(json.loads(await ws.recv()))
        await ws.close(code=4001)
    return out


def fw_codes(s):
    r = request(s.port, "GET", "/codes")
    assert r.status == 200
    return json.loads(r.body)


def wait_codes(s, n):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        codes = fw_codes(s)
        if len(codes) >= n:
            return codes
        time.sleep(0.05)
    return fw_codes(s)


def test_framework_session(fw):
    p, u = fw
    mine, theirs = run(fw_session(p)), run(fw_session(u))
    assert mine == theirs == ["chat", {"echo": "hello", "n": 5, "q": "1"}, b"\x03\x02\x01",
                              4003, None, {"echo": "x", "n": 1, "q": None}]
    # the client's close code reaches the endpoint's WebSocketDisconnect
    assert wait_codes(p, 1)[-1:] == wait_codes(u, 1)[-1:] == [4001]


def test_framework_deny(fw):
    p, u = fw
    assert status_of(p, "/deny")[0] == status_of(u, "/deny")[0] == 403


def test_framework_vanishing_client(fw):
    p, u = fw
    for s in (p, u):
        n = len(fw_codes(s))
        with wsconf.open_ws(addr(s), "/ws") as ws:
            ws.send(wsconf.frame(TEXT, b"y" * 1000)[:300])
        assert wait_codes(s, n + 1)[n:] == [1006]
        assert run(fw_session(s))[0] == "chat"


def test_framework_app_error_closes_1011(fw):
    p, _ = fw
    with wsconf.open_ws(addr(p), "/ws") as ws:
        ws.send(wsconf.frame(TEXT, b"raise"))
        ws.expect_close(1011)
    assert run(fw_session(p))[0] == "chat"


def test_fastapi_receive_text():
    pytest.importorskip("fastapi")
    s = piston("fw_ws:app")
    try:
        async def go():
            async with websockets.connect(uri(s, "/text")) as ws:
                for word in ("a", "ü" * 3000):
                    await ws.send(word)
                    assert await ws.recv() == "got " + word
        run(go())
    finally:
        s.stop()


def _extensions(port, offer):
    s = connect(port)
    try:
        s.sendall(wsconf.handshake_request(
            "/echo", extra=["Sec-WebSocket-Extensions: " + offer]))
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
    finally:
        s.close()
    for line in head.decode().split("\r\n"):
        if line.lower().startswith("sec-websocket-extensions:"):
            return line.split(":", 1)[1].strip()
    return None


def test_per_message_deflate_on_by_default_as_uvicorn(srv):
    assert _extensions(srv.port, "permessage-deflate; client_max_window_bits") == (
        "permessage-deflate; server_no_context_takeover; client_max_window_bits=15")
    run(_compressed_echo(uri(srv, "/echo")))


async def _compressed_echo(u):
    async with websockets.connect(u, max_size=None) as ws:
        assert [e.name for e in ws.extensions] == ["permessage-deflate"]
        for n in (5, 500, 50000):
            msg = "κόσμε " * n
            await ws.send(msg)
            assert await ws.recv() == msg


def test_per_message_deflate_off():
    s = piston("asgi_ws_apps:app", "--ws-per-message-deflate", "false")
    try:
        assert _extensions(s.port, "permessage-deflate") is None
    finally:
        s.stop()


def test_ping_interval():
    """--ws-ping-interval: a silent client is pinged, then closed with 1011
    (uvicorn's keep-alive)."""
    s = piston("asgi_ws_apps:app", "--ws-ping-interval", "0.2")
    try:
        ws = wsconf.open_ws(addr(s), "/echo")
        fin, rsv, op, data = ws.read_frame()
        assert op == wsconf.PING
        ws.expect_close(1011)
        ws.close()
    finally:
        s.stop()
