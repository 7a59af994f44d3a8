"""The native App's WebSocket route (app.ws) against the conformance cases
of tests/protocol/wsconf.py, as tests/protocol/test_websocket.py runs them
against the C test server: the same cases, the same expected bytes. The
app is tests/node/ws_echo_app.js. Run by `make test-node` (after `npm
test`)."""

import os
import shutil
import signal
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "protocol"))

import util  # noqa: E402
import wsconf  # noqa: E402

NODE = shutil.which("node")
APP = os.path.join(HERE, "ws_echo_app.js")
ADDON = os.path.join(util.REPO, "build", "Release", "piston.node")


def start(args=()):
    # A missing node or addon is an error, never a skip.
    assert NODE, "node is not on PATH"
    assert os.path.exists(ADDON), "%s is missing: run `make node` first" % ADDON
    # glibc fills fresh allocations with a non-zero byte: state the addon
    # forgot to initialise shows at once instead of now and then
    old = os.environ.get("MALLOC_PERTURB_")
    os.environ["MALLOC_PERTURB_"] = "165"
    try:
        return util.Server(APP, list(args))
    finally:
        if old is None:
            del os.environ["MALLOC_PERTURB_"]
        else:
            os.environ["MALLOC_PERTURB_"] = old


@pytest.fixture(scope="module")
def app():
    s = start()
    yield s
    s.stop_ok()


@pytest.fixture(autouse=True)
def _alive(request):
    yield
    if "app" in request.fixturenames:
        s = request.getfixturevalue("app")
        assert s.alive(), "the app died; stderr: %r" % s.lines[-20:]


def settled(addr):
    """Every session's close handler ran and its handle went back."""
    return util.wait_stats(addr, lambda s: s["live"] == 0 and s["sessions"] == 0)


@pytest.mark.parametrize("case", wsconf.CASES, ids=lambda c: c.__name__)
def test_conformance(app, case):
    case(app.addr, "/ws-echo")
    settled(app.addr)


def test_message_limit():
    """The route's maxPayloadLength is the engine's limit (1009)."""
    s = start(["--maxPayloadLength", "1000"])
    try:
        wsconf.f9_too_big(s.addr, "/ws-echo", 1000)
        st = settled(s.addr)
        assert st["last_code"] == 1009, st
    finally:
        s.stop_ok()


def test_close_codes_reach_close_handler(app):
    """close(ws, code) gets the peer's code, the engine's failure code, or
    1006 for a connection that vanished."""
    with wsconf.open_ws(app.addr, "/ws-echo") as ws:
        ws.send(wsconf.frame(wsconf.CLOSE, wsconf.close_payload(4321, b"why")))
        ws.read_frame()
        ws.expect_eof()
    assert settled(app.addr)["last_code"] == 4321
    with wsconf.open_ws(app.addr, "/ws-echo") as ws:
        ws.send(wsconf.frame(wsconf.CLOSE))
        ws.read_frame()
        ws.expect_eof()
    assert settled(app.addr)["last_code"] == 1005
    with wsconf.open_ws(app.addr, "/ws-echo") as ws:
        ws.send(wsconf.frame(wsconf.TEXT, b"\xff"))
        ws.expect_close(1007)
    assert settled(app.addr)["last_code"] == 1007
    with wsconf.open_ws(app.addr, "/ws-echo") as ws:
        wsconf.echo(ws, wsconf.TEXT, b"then gone")
    assert settled(app.addr)["last_code"] == 1006


def test_plain_request_to_ws_route(app):
    """Without an upgrade the route answers as HTTP: the engine's 400."""
    with util.Conn(app.addr) as c:
        c.send(b"GET /ws-echo HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert (r.status, r.body) == (400, b"Bad Request\n")
        # the connection goes on as HTTP/1.1
        c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert (r.status, r.body) == (200, b"Hello, World!")
    settled(app.addr)


def test_graceful_stop_sends_1001():
    s = start()
    ws = wsconf.open_ws(s.addr, "/ws-echo")
    wsconf.echo(ws, wsconf.TEXT, b"hi")
    s.proc.send_signal(signal.SIGTERM)
    ws.expect_close(1001)
    ws.close()
    assert s.proc.wait(10) == 0
