"""A connection the host takes over as a raw byte stream after an upgrade
request or a CONNECT (piston_raw_takeover), through the C test server's
/raw-echo and CONNECT handlers: the host's own status line, the bytes that
came behind the head, an echo with backpressure, half-closes both ways,
resets, and the host's own abort."""

import os
import socket

import util
from util import Conn

UP = (b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
      b"Upgrade: echo\r\n\r\n")
UPGRADE_REQ = (b"GET /raw-echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
               b"Upgrade: echo\r\n\r\n")


def test_upgrade_echo_with_early_bytes_and_half_close(ts):
    with Conn(ts.addr) as c:
        c.send(UPGRADE_REQ + b"early|")
        assert c.read_exact(len(UP) + 6) == UP + b"early|"
        c.send(b"second|")
        assert c.read_exact(7) == b"second|"
        c.sock.shutdown(socket.SHUT_WR)  # the host shuts its side in turn
        assert c.read_to_eof() == b""
    util.wait_stats(ts.addr, lambda s: s["live"] == 0)


def test_connect_tunnel(ts):
    with Conn(ts.addr) as c:
        c.send(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
               b"tunnelled")
        c.sock.shutdown(socket.SHUT_WR)
        assert c.read_to_eof() == (b"HTTP/1.1 200 Connection Established\r\n\r\n"
                                   b"tunnelled")
    util.wait_stats(ts.addr, lambda s: s["live"] == 0)


def exchange(c, data, timeout):
    """Sends data (then a FIN) while reading what comes back, in one thread:
    an SSL socket (the TLS run) must not be read and written from two."""
    import select
    import ssl
    import time

    c.sock.setblocking(False)
    sent, got, deadline = 0, [c.buf], time.monotonic() + timeout
    c.buf = b""
    while True:
        assert time.monotonic() < deadline, "timed out after %d bytes" % sum(map(len, got))
        want_w = [c.sock] if sent < len(data) else []
        r, w, _ = select.select([c.sock], want_w, [], 1)
        if w:
            try:
                sent += c.sock.send(data[sent:sent + 65536])
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                pass
            if sent == len(data):
                c.sock.shutdown(socket.SHUT_WR)
        while r or (util.TLS and c.sock.pending()):
            r = None
            try:
                chunk = c.sock.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            if not chunk:
                c.sock.setblocking(True)
                return b"".join(got)
            got.append(chunk)


def test_large_echo_with_backpressure(ts):
    """8 MiB through the echo: the host's writes report pressure and the
    engine pauses reading while the host has not taken what it holds; every
    byte comes back in order."""
    data = os.urandom(8 << 20)
    with Conn(ts.addr) as c:
        c.send(UPGRADE_REQ)
        assert c.read_exact(len(UP)) == UP
        got = exchange(c, data, timeout=30)
        assert got == data
    util.wait_stats(ts.addr, lambda s: s["live"] == 0)


def test_reset_mid_stream(ts):
    c = Conn(ts.addr)
    c.send(UPGRADE_REQ + b"x" * 1000)
    c.read_exact(len(UP))
    c.reset()
    util.wait_stats(ts.addr, lambda s: s["live"] == 0)
    util.assert_serving(ts.addr)


def test_plain_request_to_the_same_connection_first(ts):
    """HTTP requests before the upgrade on one connection are answered,
    then the stream takes over."""
    with Conn(ts.addr) as c:
        c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n" + UPGRADE_REQ + b"after")
        r = c.read_response()
        assert (r.status, r.body) == (200, b"Hello, World!")
        assert c.read_exact(len(UP) + 5) == UP + b"after"


def raw_req(path):
    return UPGRADE_REQ.replace(b"/raw-echo", path.encode())


def test_host_abort_in_the_request_callback(ts):
    """piston_resp_abort on a stream taken over before its raw handler
    started: what the host wrote goes out, the connection closes, and the
    host gets PISTON_EV_CLOSED (its handle comes back)."""
    with Conn(ts.addr) as c:
        c.send(raw_req("/raw-abort"))
        assert c.read_to_eof() == UP + b"bye"
    util.wait_stats(ts.addr, lambda s: s["live"] == 0)


def test_host_abort_mid_stream(ts):
    with Conn(ts.addr) as c:
        c.send(raw_req("/raw-abort?later=1"))
        assert c.read_exact(len(UP)) == UP
        c.send(b"go")
        assert c.read_to_eof() == b"bye"
    util.wait_stats(ts.addr, lambda s: s["live"] == 0)
    util.assert_serving(ts.addr)


def test_host_half_closes_first_then_reads_everything(ts):
    """The host shuts its direction at once and reads nothing for 300 ms:
    the 2 MiB the client sends meanwhile, then its FIN, all reach the host
    although both directions are shut (EPOLLHUP) while most of it waits in
    the kernel, unread (the engine's reading is paused)."""
    before = util.stats(ts.addr)["raw_sunk"]
    data = os.urandom(2 << 20)
    with Conn(ts.addr) as c:
        c.send(raw_req("/raw-shut-first?hold_ms=300"))
        assert c.read_to_eof() == UP
        c.sock.sendall(data)
        c.sock.shutdown(socket.SHUT_WR)
        util.wait_stats(ts.addr, lambda s: s["live"] == 0, timeout=30)
    assert util.stats(ts.addr)["raw_sunk"] - before == len(data)
