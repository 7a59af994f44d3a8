"""WebSocket through the C test server: the conformance cases of wsconf.py
against /ws-echo, the limit, a real client (Python's websockets), graceful
stop, and that every handle is released."""

import time

import pytest

import util
import wsconf
from conftest import LIMITS, _running, finish, start


@pytest.mark.parametrize("path", ["/ws-echo", "/ws-thread"])
@pytest.mark.parametrize("case", wsconf.CASES, ids=lambda c: c.__name__)
def test_conformance(ts, case, path):
    """/ws-echo answers on the loop thread, /ws-thread from a thread of its
    own (every call posted to the loop)."""
    case(ts.addr, path)
    # every session's handle goes back once its connection is gone
    util.wait_stats(ts.addr, lambda s: s["live"] == 0)


def test_message_limit():
    s = start(util.TESTSERVER, ["--ws-max-message", "1000"] + LIMITS)
    try:
        wsconf.f9_too_big(s.addr, "/ws-echo", 1000)
    finally:
        finish(s)


def test_plain_request_to_ws_route(ts):
    """Without an upgrade the route answers as HTTP (the host refuses it)."""
    with util.Conn(ts.addr) as c:
        c.send(b"GET /ws-echo HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert r.status == 400


def test_upgrade_not_taken_keeps_connection(ts):
    """A request asking for an upgrade the host answers as plain HTTP leaves
    the connection usable (as behind nginx's WebSocket proxy settings)."""
    with util.Conn(ts.addr) as c:
        c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n"
               b"Upgrade: h2c\r\n\r\n"
               b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
               b"Upgrade: websocket\r\n\r\n"
               b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        for _ in range(4):
            r = c.read_response()
            assert (r.status, r.body) == (200, b"Hello, World!")
        c.expect_open(0.2)


def test_real_client(ts):
    wsconf.real_client(ts.addr, "/ws-echo")


def test_graceful_stop_sends_1001():
    s = start(util.TESTSERVER, LIMITS)
    _running.remove(s)  # it is meant to exit here
    ws = wsconf.open_ws(s.addr, "/ws-echo")
    wsconf.echo(ws, wsconf.TEXT, b"hi")
    s.proc.send_signal(util.signal.SIGTERM)
    ws.expect_close(1001)
    ws.close()
    assert s.proc.wait(10) == 0


def test_keepalive_ping():
    """--ws-ping: a silent client gets a ping; one that answers stays, one
    that stays silent through another period gets 1011."""
    s = start(util.TESTSERVER, ["--ws-ping", "0.2"] + LIMITS)
    try:
        answering = wsconf.open_ws(s.addr, "/ws-echo")
        silent = wsconf.open_ws(s.addr, "/ws-echo")
        deadline = time.monotonic() + 1.2
        pings = 0
        answering.sock.settimeout(0.5)
        while time.monotonic() < deadline:
            fin, rsv, op, data = answering.read_frame()
            assert (fin, rsv, op, data) == (True, 0, wsconf.PING, b"")
            pings += 1
            answering.send(wsconf.frame(wsconf.PONG, data))
        assert pings >= 3
        wsconf.echo(answering, wsconf.TEXT, b"still open")
        fin, rsv, op, data = silent.read_frame()
        assert op == wsconf.PING
        silent.expect_close(1011)
        answering.close()
        silent.close()
    finally:
        finish(s)


def test_close_code_and_reason_reach_the_host(ts):
    for payload, want in ((wsconf.close_payload(4001, b"going now"), b"4001 going now"),
                          (b"", b"1005 "),
                          (wsconf.close_payload(1000), b"1000 ")):
        with wsconf.open_ws(ts.addr, "/ws-echo") as ws:
            ws.send(wsconf.frame(wsconf.CLOSE, payload))
            ws.read_frame()
            ws.expect_eof()
        util.wait_stats(ts.addr, lambda s: s["live"] == 0)
        assert util.get(ts.addr, "/ws-last").body == want
    # gone without a close frame
    ws = wsconf.open_ws(ts.addr, "/ws-echo")
    ws.close()
    util.wait_stats(ts.addr, lambda s: s["live"] == 0)
    assert util.get(ts.addr, "/ws-last").body == b"1006 "
