"""WebSocket publish/subscribe in the engine, through the C test server's
/ws-pubsub: fan-out to every subscriber but the publisher, across the
loops of a server (--threads 2), unsubscribe, and subscriptions ending with
their sessions (no handle kept)."""

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
