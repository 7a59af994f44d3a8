"""Response heads as node:http writes them (--head-style 1: Connection:
keep-alive, Keep-Alive: timeout=N and a one-second grace past N), a host's
empty Date, a response reset without a status, pipelined requests answered
through a graceful stop, Expect handed to the host, and '::' with IPv4
mapped. The default (gunicorn's layout) is checked beside each."""

import re
import signal
import socket
import subprocess
import threading
import time

import pytest

import util
from util import Conn, request

IDLE = ["--idle-timeout", "1"]


def hello(head):
    return head + b"Content-Length: 13\r\n\r\nHello, World!"


def test_default_style_keeps_gunicorns_layout(server):
    s = server(util.TESTSERVER, IDLE)
    with Conn(s.addr) as c:
        c.send(request("GET", "/hello"))
        assert c.read_response().masked() == (
            b"HTTP/1.1 200 OK\r\nDate: DATE\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 13\r\n\r\nHello, World!")


def test_node_style_announces_keep_alive(server):
    s = server(util.TESTSERVER, IDLE + ["--head-style", "1"])
    with Conn(s.addr) as c:
        c.send(request("GET", "/hello"))
        assert c.read_response().masked() == hello(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: DATE\r\n"
            b"Connection: keep-alive\r\nKeep-Alive: timeout=1\r\n")
        c.send(request("GET", "/chunked?n=1&size=3"))
        assert c.read_response().masked() == (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: DATE\r\n"
            b"Connection: keep-alive\r\nKeep-Alive: timeout=1\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n3\r\naaa\r\n0\r\n\r\n")
        c.send(request("GET", "/hello", [("Connection", "close")]))
        assert c.read_response().masked() == hello(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: DATE\r\n"
            b"Connection: close\r\n")
        c.expect_eof()
    with Conn(s.addr) as c:  # HTTP/1.0 keep-alive is announced the same way
        c.send(request("GET", "/hello", [("Connection", "keep-alive")],
                       version="HTTP/1.0"))
        assert c.read_response().masked() == hello(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: DATE\r\n"
            b"Connection: keep-alive\r\nKeep-Alive: timeout=1\r\n")


def test_node_style_without_keep_alive_field(server):
    s = server(util.TESTSERVER, IDLE + ["--head-style", "2"])
    with Conn(s.addr) as c:
        c.send(request("GET", "/hello"))
        assert c.read_response().masked() == hello(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: DATE\r\n"
            b"Connection: keep-alive\r\n")


def test_node_style_passes_the_hosts_keep_alive(server):
    """The host's own Keep-Alive is sent instead of the engine's (the
    default style drops it, with the other hop-by-hop fields)."""
    s = server(util.TESTSERVER, IDLE + ["--head-style", "1"])
    with Conn(s.addr) as c:
        c.send(request("GET", "/hop-headers"))
        r = c.read_response()
        assert r.header_all("keep-alive") == ["timeout=5"]
        assert r.header_all("connection") == ["keep-alive"]
        # the host's Connection says what the engine does: sent in its place
        names = [n.lower() for n, _ in r.headers]
        assert names.index(b"connection") < names.index(b"x-kept") < names.index(b"date")
        c.send(request("GET", "/hop-headers", [("Connection", "close")]))
        r = c.read_response()  # it does not: the engine's close instead
        assert r.header_all("connection") == ["close"]
        names = [n.lower() for n, _ in r.headers]
        assert names.index(b"x-kept") < names.index(b"date") < names.index(b"connection")


@pytest.mark.parametrize("style,open_at", [("0", False), ("1", True)])
def test_keep_alive_grace(server, style, open_at):
    """A client told timeout=1 that reuses the connection 1.3 s later gets
    its answer (node's race-condition test); without the announcement the
    connection is gone by then."""
    s = server(util.TESTSERVER, IDLE + ["--head-style", style])
    with Conn(s.addr) as c:
        c.send(request("GET", "/hello"))
        assert c.read_response().status == 200
        time.sleep(1.3)
        if open_at:
            c.send(request("GET", "/hello"))
            assert c.read_response().status == 200
            t0 = time.monotonic()
            c.expect_eof(timeout=5)  # 1 s + 1 s of grace after that answer
            assert 1.5 < time.monotonic() - t0 < 4
        else:
            c.expect_eof(timeout=1)


def test_empty_host_date_means_no_date(ts):
    with Conn(ts.addr) as c:
        c.send(request("GET", "/no-date"))
        assert c.read_response().raw == (
            b"HTTP/1.1 200 OK\r\nX-App: 1\r\nContent-Length: 8\r\n\r\nno date\n")


def test_reset_sends_nothing_and_closes(ts):
    with Conn(ts.addr) as c:
        c.send(request("GET", "/reset") + request("GET", "/hello"))
        assert c.read_to_eof() == b""
    util.assert_serving(ts.addr)


def test_graceful_stop_answers_pipelined_requests(server):
    """Requests already read when the stop begins are answered; the last
    one says close (before, the engine closed after the one in flight)."""
    s = server(util.TESTSERVER, ["--shutdown-timeout", "5"])
    with Conn(s.addr) as c:
        c.send(request("GET", "/slow?ms=400") + request("GET", "/hello")
               + request("GET", "/hello"))
        time.sleep(0.15)
        s.proc.send_signal(signal.SIGTERM)
        first = c.read_response(timeout=3)
        assert first.status == 200 and first.header("connection") is None
        second = c.read_response(timeout=3)
        assert second.status == 200 and second.header("connection") is None
        last = c.read_response(timeout=3)
        assert last.body == b"Hello, World!"
        assert last.header("connection") == "close"
        c.expect_eof(timeout=2)
    assert s.proc.wait(5) == 0


def test_expect_goes_to_the_host_when_asked(server):
    meow = request("GET", "/hello", [("Expect", "meow")])
    s = server(util.TESTSERVER, [])
    with Conn(s.addr) as c:
        c.send(meow)
        assert c.read_response().status == 417
    s = server(util.TESTSERVER, ["--expect-to-host", "1"])
    with Conn(s.addr) as c:
        c.send(meow)
        assert c.read_response().body == b"Hello, World!"


def _start_on(host, extra):
    p = subprocess.Popen(
        [util.TESTSERVER, "--bind", "%s:0" % host] + extra,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    line = p.stderr.readline().decode()
    m = re.search(r"listening on http://.*:(\d+)$", line.strip())
    assert m, line
    threading.Thread(target=p.stderr.read, daemon=True).start()
    return p, int(m.group(1))


def _has_ipv6():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 on this machine")
@pytest.mark.parametrize("v6only", ["0", "1"])
def test_ipv6_any_with_ipv4_mapped(v6only):
    p, port = _start_on("::", ["--ipv6-only", v6only])
    try:
        s6 = socket.create_connection(("::1", port), timeout=3)
        s6.sendall(request("GET", "/info"))
        assert b"remote=::1:" in s6.recv(4096)
        s6.close()
        if v6only == "1":
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=3)
        else:
            # a plain socket, as for ::1 above: _start_on's server is plain
            # HTTP in the suite's TLS run too
            s4 = socket.create_connection(("127.0.0.1", port), timeout=3)
            s4.sendall(request("GET", "/info"))
            assert b"remote=::ffff:127.0.0.1:" in s4.recv(4096)
            s4.close()
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(5) == 0


def test_node_style_rejections_are_bare(server):
    """node:http's own 400: a status line and Connection: close (its
    phrase for 413); the default style keeps the engine's text body."""
    dup = b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
    for style, want in (
        ("1", b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"),
        ("0", b"HTTP/1.1 400 Bad Request\r\nDate: DATE\r\n"
              b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 12\r\n"
              b"Connection: close\r\n\r\nBad Request\n"),
    ):
        s = server(util.TESTSERVER, ["--head-style", style, "--max-body-size", "10"])
        with Conn(s.addr) as c:
            c.send(dup)
            got = c.read_to_eof()
            assert (util.mask_date(got) if style == "0" else got) == want
        if style == "1":
            with Conn(s.addr) as c:
                c.send(request("POST", "/echo", [("Content-Length", "11")]))
                assert c.read_to_eof() == (
                    b"HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\n\r\n")
