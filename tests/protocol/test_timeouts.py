"""Timeouts (the shared servers run with head/body/idle 1 s, write 2 s):
slowloris, partial heads and bodies, idle keep-alive, stalled readers."""

import socket
import threading
import time

import pytest

from util import Conn, assert_error, get, request, stats, wait_stats


def nodelay(c):
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def test_partial_head_408(ts, static):
    for srv in (ts, static):
        with Conn(srv.addr) as c:
            t0 = time.monotonic()
            c.send(b"GET /hello HTTP/1.1\r\nHo")
            assert_error(c, 408)
            took = time.monotonic() - t0
            assert 0.8 < took < 2.5, took


@pytest.mark.parametrize("which", ["ts", "static"])
def test_slowloris_cut_while_others_are_served(request, which):
    srv = request.getfixturevalue(which)
    # the head timeout runs from accept: each connection's is due between
    # 1 s after t_first (before the first was made) and 1 s after t0 (once
    # all are), however long their TLS handshakes took
    t_first = time.monotonic()
    slow = [Conn(srv.addr) for _ in range(20)]
    stop = threading.Event()
    for c in slow:
        nodelay(c)
        c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n")
    t0 = time.monotonic()

    def trickle():
        while not stop.is_set():
            for c in slow:
                try:
                    c.sock.send(b"X")
                except OSError:
                    pass
            time.sleep(0.1)

    th = threading.Thread(target=trickle, daemon=True)
    th.start()
    try:
        # Meanwhile a normal client gets fast answers, over and over.
        while time.monotonic() - t0 < 0.7:
            t = time.monotonic()
            r = get(srv.addr, "/hello")
            assert r.status == 200 and r.body == b"Hello, World!"
            assert time.monotonic() - t < 0.3
            time.sleep(0.05)
        for c in slow:
            # The trickled bytes make one header line that never ends, so the
            # head never completes: each is cut at ~1 s after its first byte.
            r = c.read_response(timeout=3)
            now = time.monotonic()
            assert r.status == 408, r
            assert now - t_first > 0.8 and now - t0 < 2.5, (now - t_first, now - t0)
    finally:
        stop.set()
        th.join()
        for c in slow:
            c.close()
    assert get(srv.addr, "/hello").status == 200


def test_slowloris_exact_response_and_close(ts):
    with Conn(ts.addr) as c:
        nodelay(c)
        c.send(b"GET /hello HTTP/1.1\r\n")
        t0 = time.monotonic()
        stop = threading.Event()

        def trickle():
            # Complete header lines, one every 100 ms: the head grows but
            # never ends.
            i = 0
            while not stop.is_set():
                try:
                    c.sock.send(b"X-%d: v\r\n" % i)
                except OSError:
                    return
                i += 1
                time.sleep(0.1)

        th = threading.Thread(target=trickle, daemon=True)
        th.start()
        try:
            assert_error(c, 408)
            took = time.monotonic() - t0
            assert 0.8 < took < 2.5, took
        finally:
            stop.set()
            th.join()


def test_idle_keep_alive_closed_silently(ts, static):
    for srv in (ts, static):
        with Conn(srv.addr) as c:
            c.send(request("GET", "/hello"))
            assert c.read_response().status == 200
            t0 = time.monotonic()
            c.expect_open(0.6)
            c.expect_eof(timeout=2.5)
            took = time.monotonic() - t0
            assert 0.8 < took < 2.5, took


def test_fresh_connection_without_bytes_closed_silently(ts):
    with Conn(ts.addr) as c:
        t0 = time.monotonic()
        c.expect_open(0.6)
        c.expect_eof(timeout=3)
        assert time.monotonic() - t0 < 3


def test_activity_keeps_connection_alive(ts):
    with Conn(ts.addr) as c:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.5:
            c.send(request("GET", "/hello"))
            assert c.read_response().status == 200
            time.sleep(0.5)


def test_idle_timer_not_running_while_handler_works(ts):
    """A handler taking longer than the idle timeout is not cut."""
    with Conn(ts.addr) as c:
        c.send(request("GET", "/slow?ms=1500"))
        r = c.read_response(timeout=4)
        assert (r.status, r.body) == (200, b"slow")


@pytest.mark.parametrize("path", ["/echo", "/echo-thread"])
def test_body_timeout_408(ts, path):
    before = stats(ts.addr)
    with Conn(ts.addr) as c:
        c.send(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"
               % path.encode())
        t0 = time.monotonic()
        assert_error(c, 408)
        took = time.monotonic() - t0
        assert 0.8 < took < 2.5, took
    wait_stats(ts.addr, lambda s: s["live"] == 0 and s["requests"] > before["requests"])


def test_body_timeout_chunked_408(ts):
    with Conn(ts.addr) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhel")
        assert_error(c, 408)
    wait_stats(ts.addr, lambda s: s["live"] == 0)


def test_body_timeout_is_per_wait_not_total(ts):
    """Each piece comes within the body timeout: the whole upload may take
    longer than the timeout."""
    with Conn(ts.addr) as c:
        nodelay(c)
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
        for ch in b"hello":
            time.sleep(0.4)
            c.send(bytes([ch]))
        r = c.read_response()
        assert (r.status, r.body) == (200, b"hello")


def test_write_timeout_releases_stalled_reader(ts):
    before = stats(ts.addr)
    c = Conn(ts.addr, rcvbuf=8192)
    try:
        c.send(request("GET", "/big?bytes=100000000"))
        # Never read. The write timeout (2 s) must end the exchange and the
        # handler gets PISTON_EV_CLOSED.
        s = wait_stats(
            ts.addr,
            lambda s: s["live"] == 0 and s["closed_events"] > before["closed_events"],
            timeout=8,
        )
        assert s["requests"] >= before["requests"] + 2
        # The client sees the connection end after what was buffered.
        got = c.read_to_eof(timeout=5)
        assert c.eof
        assert len(got) < 100000000
    finally:
        c.close()
