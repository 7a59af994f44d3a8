"""WebSocket publish/subscribe in the engine, through the C test server's
/ws-pubsub: fan-out to every subscriber but the publisher, across the
loops of a server (--threads 2), unsubscribe, and subscriptions ending with
their sessions (no handle kept)."""

import socket
import time

import pytest

import util
import wsconf
from conftest import LIMITS, finish, start


def cmd(ws, text):
    ws.send(wsconf.frame(wsconf.TEXT, text.encode()))
    op, data = ws.message()
    assert op == wsconf.TEXT
    return data.decode()


@pytest.fixture(scope="module")
def two_loops():
    s = start(util.TESTSERVER, ["--threads", "2"] + LIMITS)
    yield s
    finish(s)


def test_fan_out_across_loops(two_loops):
    addr = two_loops.addr
    subs = [wsconf.open_ws(addr, "/ws-pubsub") for _ in range(40)]
    try:
        for ws in subs:
            assert cmd(ws, "sub news") == "subscribed news"
        assert cmd(subs[0], "count news") == "subscribers 40"
        # the publisher (subscribed too) is skipped, as uWebSockets does
        assert cmd(subs[0], "pub news hello all") == "published 39"
        for ws in subs[1:]:
            assert ws.message() == (wsconf.TEXT, b"hello all")
        # a topic nobody follows
        assert cmd(subs[0], "pub sport goal") == "published 0"
        assert cmd(subs[5], "unsub news") == "unsubscribed news 1"
        assert cmd(subs[5], "unsub news") == "unsubscribed news 0"
        assert cmd(subs[0], "pub news again") == "published 38"
        for i, ws in enumerate(subs[1:], 1):
            if i != 5:
                assert ws.message() == (wsconf.TEXT, b"again")
        # nothing reached the one that left the topic
        assert cmd(subs[5], "count news") == "subscribers 39"
    finally:
        for ws in subs:
            ws.close()
    # the sessions' ends drop their subscriptions and the handles
    util.wait_stats(addr, lambda s: s["live"] == 0)
    with wsconf.open_ws(addr, "/ws-pubsub") as ws:
        assert cmd(ws, "count news") == "subscribers 0"


def test_many_topics_and_large_messages(two_loops):
    addr = two_loops.addr
    a = wsconf.open_ws(addr, "/ws-pubsub")
    b = wsconf.open_ws(addr, "/ws-pubsub")
    try:
        for i in range(300):  # past the table's first size
            assert cmd(b, "sub t%d" % i) == "subscribed t%d" % i
        big = "x" * 200000
        assert cmd(a, "pub t299 " + big) == "published 1"
        assert b.message() == (wsconf.TEXT, big.encode())
        assert cmd(a, "count t150") == "subscribers 1"
    finally:
        a.close()
        b.close()
    util.wait_stats(addr, lambda s: s["live"] == 0)


def test_is_subscribed(two_loops):
    with wsconf.open_ws(two_loops.addr, "/ws-pubsub") as ws:
        assert cmd(ws, "issub a") == "issub a 0"
        cmd(ws, "sub a")
        cmd(ws, "sub b")
        assert cmd(ws, "issub a") == "issub a 1"
        assert cmd(ws, "issub b") == "issub b 1"
        assert cmd(ws, "issub ab") == "issub ab 0"
        cmd(ws, "unsub a")
        assert cmd(ws, "issub a") == "issub a 0"
        assert cmd(ws, "issub b") == "issub b 1"
        # another session's subscription is not this one's
        with wsconf.open_ws(two_loops.addr, "/ws-pubsub") as other:
            assert cmd(other, "issub b") == "issub b 0"


def test_abort_sends_no_close_frame(two_loops):
    addr = two_loops.addr
    ws = wsconf.open_ws(addr, "/ws-pubsub")
    cmd(ws, "sub gone")
    ws.send(wsconf.frame(wsconf.TEXT, b"abort"))
    # the connection ends with no close frame (nor anything else) before
    ws.expect_eof()
    assert ws.buf == b""
    ws.close()
    util.wait_stats(addr, lambda s: s["live"] == 0)
    with wsconf.open_ws(addr, "/ws-pubsub") as other:
        assert cmd(other, "count gone") == "subscribers 0"


def test_abort_during_closing_handshake(two_loops):
    # after the client's close frame was sent but before it was read, the
    # abort still ends the connection; the session ends once
    ws = wsconf.open_ws(two_loops.addr, "/ws-pubsub")
    ws.send(wsconf.frame(wsconf.TEXT, b"abort") +
            wsconf.frame(wsconf.CLOSE, wsconf.close_payload(1000)))
    ws.expect_eof()
    ws.close()
    util.wait_stats(two_loops.addr, lambda s: s["live"] == 0)


def test_control_events_opt_in(two_loops):
    with wsconf.open_ws(two_loops.addr, "/ws-pubsub") as ws:
        # off by default: the engine's pong only
        ws.send(wsconf.frame(wsconf.PING, b"p0"))
        assert ws.read_frame() == (True, 0, wsconf.PONG, b"p0")
        assert cmd(ws, "control") == "control on"
        ws.send(wsconf.frame(wsconf.PING, b"p1"))
        # the engine still answers, and the host hears of it after
        assert ws.read_frame() == (True, 0, wsconf.PONG, b"p1")
        assert ws.read_frame() == (True, 0, wsconf.TEXT, b"got ping p1")
        ws.send(wsconf.frame(wsconf.PONG, b"unasked"))
        assert ws.read_frame() == (True, 0, wsconf.TEXT, b"got pong unasked")
        # in order with the data messages, between fragments too
        ws.send(wsconf.frame(wsconf.TEXT, b"issu", fin=False) +
                wsconf.frame(wsconf.PONG, b"mid") +
                wsconf.frame(wsconf.CONT, b"b x"))
        assert ws.read_frame() == (True, 0, wsconf.TEXT, b"got pong mid")
        assert ws.read_frame() == (True, 0, wsconf.TEXT, b"issub x 0")
        # an empty ping
        ws.send(wsconf.frame(wsconf.PING, b""))
        assert ws.read_frame() == (True, 0, wsconf.PONG, b"")
        assert ws.read_frame() == (True, 0, wsconf.TEXT, b"got ping ")


def test_host_sends_ping(two_loops):
    with wsconf.open_ws(two_loops.addr, "/ws-pubsub") as ws:
        ws.send(wsconf.frame(wsconf.TEXT, b"ping hello"))
        assert ws.read_frame() == (True, 0, wsconf.PING, b"hello")
        # longer than a control frame may be: refused (EINVAL), no frame
        ws.send(wsconf.frame(wsconf.TEXT, b"ping " + b"x" * 126))
        assert cmd(ws, "issub y") == "issub y 0"


def test_buffered_under_a_slow_reader(two_loops):
    with wsconf.open_ws(two_loops.addr, "/ws-pubsub") as ws:
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        assert cmd(ws, "buffered") == "buffered 0"
        # in the call that queued them, every byte of 64 frames of 64 KiB
        # (10 bytes of header each) is still the engine's
        total = 64 * (64 * 1024 + 10)
        ws.send(wsconf.frame(wsconf.TEXT, b"flood 64"))
        # 4 MiB do not fit in the socket buffers of a reader that has not
        # read: after a flush, part of it has gone, most still waits
        time.sleep(0.3)
        ws.send(wsconf.frame(wsconf.TEXT, b"buffered"))
        for _ in range(64):
            op, data = ws.message()
            assert op == wsconf.BINARY and len(data) == 64 * 1024
        assert ws.message() == (wsconf.TEXT, b"buffered %d" % total)
        op, data = ws.message()
        later = int(data.split()[1])
        assert 0 < later < total
        # all read: nothing waits any more
        assert cmd(ws, "buffered") == "buffered 0"
