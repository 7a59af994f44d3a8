"""The handler timeout (PISTON_OPT_HANDLER_TIMEOUT_MS, --handler-timeout): a
request whose host has not started its response in time is answered by the
engine with 503 and Connection: close; the host is told the request is
closed. The body timeout, not the handler timeout, runs while the engine
waits on the client for body bytes; a started response is never cut by it."""

import socket
import threading
import time

import pytest

import util
from conftest import finish, start
from util import Conn, error_bytes, request

HANDLER_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def hts():
    """piston-testserver with a 1 s handler timeout; a 2 s body timeout, so
    that a 503 at ~1 s cannot be mistaken for a body-timeout 408."""
    s = start(
        util.TESTSERVER,
        [
            "--handler-timeout", str(HANDLER_TIMEOUT),
            "--head-timeout", "1",
            "--body-timeout", "2",
            "--idle-timeout", "1",
            "--write-timeout", "5",
            "--body-high-water", "1024",
        ],
    )
    yield s
    finish(s)


def read_503(c, t0, head_request=False):
    """The engine's exact 503 bytes, then EOF; returns the seconds taken."""
    r = c.read_response(head_request=head_request, timeout=4)
    took = time.monotonic() - t0
    want = error_bytes(503, "Service Unavailable")
    if head_request:
        want = want[: want.index(b"\r\n\r\n") + 4]
    assert r.masked() == want
    assert r.header("Connection") == "close"
    c.expect_eof(timeout=4)
    return took


def assert_released(srv):
    """Every handle the host took was released: it heard of the close."""
    util.wait_stats(srv.addr, lambda st: st["live"] == 0, timeout=5)


def test_hung_handler_gets_503_while_another_connection_is_served(hts):
    before = util.stats(hts.addr)
    with Conn(hts.addr) as hung:
        t0 = time.monotonic()
        hung.send(request("GET", "/never"))
        # the first connection hangs; a second one is served at once
        with Conn(hts.addr) as other:
            t = time.monotonic()
            other.send(request("GET", "/hello"))
            r = other.read_response()
            assert (r.status, r.body) == (200, b"Hello, World!")
            assert time.monotonic() - t < 0.5
        assert hung.buf == b""  # not answered yet
        took = read_503(hung, t0)
    assert HANDLER_TIMEOUT - 0.05 <= took < HANDLER_TIMEOUT + 1.5, took
    assert_released(hts)
    after = util.stats(hts.addr)
    assert after["closed_events"] > before["closed_events"]
    line = "piston: handler timeout: GET /never not answered within 1000 ms: sent 503"
    deadline = time.monotonic() + 2
    while line not in hts.lines and time.monotonic() < deadline:
        time.sleep(0.05)
    assert line in hts.lines, hts.lines[-5:]


def test_hung_handler_head_request(hts):
    with Conn(hts.addr) as c:
        t0 = time.monotonic()
        c.send(request("HEAD", "/never"))
        took = read_503(c, t0, head_request=True)
    assert took < HANDLER_TIMEOUT + 1.5
    assert_released(hts)


def test_late_worker_thread_writes_fail_quietly(hts):
    """/slow answers from a worker thread after 1.5 s: the client already
    has its 503, and the worker's send fails with PISTON_ECLOSED (which the
    test server does not report as an error)."""
    n_lines = len(hts.lines)
    with Conn(hts.addr) as c:
        t0 = time.monotonic()
        c.send(request("GET", "/slow?ms=1500"))
        read_503(c, t0)
    assert_released(hts)
    errors = [l for l in hts.lines[n_lines:] if l.startswith("piston-testserver:")]
    assert errors == []


def test_started_response_is_not_cut(hts):
    """A response that has started (and then waits on a slow reader for
    longer than the handler timeout) goes on to its end."""
    size = 4 << 20
    with Conn(hts.addr, rcvbuf=4096) as c:
        c.send(request("GET", "/big?bytes=%d" % size))
        time.sleep(HANDLER_TIMEOUT + 0.5)  # reading nothing meanwhile
        r = c.read_response(timeout=10)
        assert r.status == 200
        assert r.body == util.pattern(0, size)
    assert_released(hts)


def test_slow_upload_is_the_body_timeouts_business(hts):
    """A body trickled over 2.5 s (gaps under the 2 s body timeout) is read
    to its end and answered: waiting on the client is not the host's time."""
    with Conn(hts.addr) as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\n")
        for ch in b"abcde":
            time.sleep(0.5)
            c.send(bytes([ch]))
        c.send(b"f")
        r = c.read_response(timeout=4)
        assert (r.status, r.body) == (200, b"abcdef")


def test_complete_body_then_hung_handler(hts):
    with Conn(hts.addr) as c:
        t0 = time.monotonic()
        c.send(request("POST", "/never", body=b"x" * 100))
        took = read_503(c, t0)
    assert HANDLER_TIMEOUT - 0.05 <= took < HANDLER_TIMEOUT + 1.5
    assert_released(hts)


def test_unread_body_paused_then_503(hts):
    """The host never reads a large body: reading pauses at the high-water
    mark, the wait is on the host, and the handler timeout answers."""
    body = b"y" * (256 * 1024)
    with Conn(hts.addr) as c:
        t0 = time.monotonic()
        head = b"POST /never HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body)

        def push():
            try:
                c.sock.sendall(head + body)
            except OSError:
                pass  # the server closed after its 503

        th = threading.Thread(target=push, daemon=True)
        th.start()
        r = c.read_response(timeout=4)
        took = time.monotonic() - t0
        assert r.masked() == error_bytes(503, "Service Unavailable")
        th.join(5)
    # under the 2 s body timeout: the handler timeout answered
    assert HANDLER_TIMEOUT - 0.05 <= took < 1.9, took
    assert_released(hts)


def test_expect_continue_not_read_is_the_handlers_business(hts):
    """The client waits for 100 Continue, which the host's first read would
    send; a host that never reads gets the handler timeout (503 at ~1 s),
    not the body timeout (408 at 2 s)."""
    with Conn(hts.addr) as c:
        t0 = time.monotonic()
        c.send(
            b"POST /never HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        took = read_503(c, t0)
    assert HANDLER_TIMEOUT - 0.05 <= took < 1.9, took
    assert_released(hts)


def test_answers_in_time_unaffected(hts):
    """Keep-alive requests answered in time are unaffected, however long the
    connection lives."""
    with Conn(hts.addr) as c:
        for _ in range(3):
            c.send(request("GET", "/slow?ms=300"))
            r = c.read_response()
            assert (r.status, r.body) == (200, b"slow")
            time.sleep(0.5)  # idle between requests: the idle timeout's


def test_off_by_default(ts):
    """Without --handler-timeout a held request is never answered for the
    host (the test server's module-wide instance sets none)."""
    with Conn(ts.addr) as c:
        c.send(request("GET", "/never"))
        c.expect_open(HANDLER_TIMEOUT + 0.5)
