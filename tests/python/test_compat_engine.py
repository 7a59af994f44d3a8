"""Issue #14's engine bugs through the WSGI and ASGI hosts (the same cases
as tests/protocol/test_compat.py, with tests/python/compat_apps.py), raw
bytes over sockets, exact bytes back with the Date masked:

- a FIN ends only the client's sending direction: requests received are
  answered, then the connection closes; only a reset is a disconnect;
- an invalid Host value is a 400 before the app runs;
- a body longer than the app's Content-Length: the 8 bytes announced, then
  the close, and one log line;
- `Transfer-Encoding: ,chunked` is chunked; `5;a=` is answered at once."""
import re
import socket
import struct
import time

import pytest

from conftest import Server, connect, free_port, piston_cmd

DATE_RE = re.compile(rb"\r\nDate: [^\r]*\r\n")
OVERFLOW_LINE = ("piston: response body longer than its Content-Length: GET "
                 "/overflow: sent the 8 bytes announced, dropped the rest, closing")


def start(kind):
    port = free_port()
    app = "compat_apps:" + kind
    return Server(piston_cmd() + [app, "--bind", "127.0.0.1:%d" % port], port)


@pytest.fixture(scope="module", params=["wsgi", "asgi"])
def host(request):
    s = start(request.param)
    s.kind = request.param
    yield s
    s.stop()


def exchange(port, data, shut=True, timeout=3.0, until=None):
    """Sends data (then a FIN unless shut is false), returns every byte
    until the server closes, or until `until` bytes came (Date masked);
    raises on a timeout: a hang fails. The cases that are not about a FIN
    send none, so that each fails only for its own bug."""
    s = connect(port, timeout=timeout)
    try:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        out = b""
        deadline = time.monotonic() + timeout
        while True:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                d = s.recv(65536)
            except socket.timeout:
                raise AssertionError("no close within %ss; got %r" % (timeout, out))
            if not d:
                return DATE_RE.sub(b"\r\nDate: DATE\r\n", out)
            out += d
            if until is not None and len(out) >= until:
                return DATE_RE.sub(b"\r\nDate: DATE\r\n", out)
    finally:
        s.close()


def get(target, host=b"x"):
    return b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, host)


def text(body):
    return (b"HTTP/1.1 200 OK\r\nDate: DATE\r\nContent-Type: text/plain\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


def error(status, reason):
    body = reason + b"\n"
    return (b"HTTP/1.1 %d %s\r\nDate: DATE\r\nContent-Type: text/plain; charset=utf-8"
            b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (status, reason, len(body), body))


# ---- a FIN after complete requests ---------------------------------------------


def test_fin_after_post_is_answered(host):
    got = exchange(host.port, b"POST /echo?sleep=0.1 HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Length: 5\r\n\r\nhello")
    assert got == text(b"hello")


def test_fin_after_ten_pipelined_gets_answers_all(host):
    assert exchange(host.port, get(b"/slow") * 10) == text(b"slow") * 10


def test_fin_after_pipelined_requests_and_a_partial_head(host):
    t0 = time.monotonic()
    got = exchange(host.port, get(b"/slow") + get(b"/hello") + b"GET /hello HTTP/1.1\r\nHo")
    assert got == text(b"slow") + text(b"Hello, World!")
    assert time.monotonic() - t0 < 1.5


def _events(port):
    return exchange(port, get(b"/events")).rsplit(b"\r\n\r\n", 1)[1].split()


@pytest.fixture(scope="module")
def asgi_host():
    """The ASGI host alone: only an ASGI app can wait for a disconnect."""
    s = start("asgi")
    yield s
    s.stop()


def test_fin_is_not_a_disconnect_but_a_reset_is(asgi_host):
    host = asgi_host
    before = _events(host.port).count(b"wait:http.disconnect")
    s = connect(host.port)
    s.sendall(get(b"/wait"))
    time.sleep(0.1)
    s.shutdown(socket.SHUT_WR)
    time.sleep(0.3)
    assert _events(host.port).count(b"wait:http.disconnect") == before
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    deadline = time.monotonic() + 5
    while (_events(host.port).count(b"wait:http.disconnect") == before
           and time.monotonic() < deadline):
        time.sleep(0.05)
    assert _events(host.port).count(b"wait:http.disconnect") == before + 1


# ---- Host values -------------------------------------------------------------------

BAD_HOSTS = [b"bad host", b"a/b", b"a@b", b"[::1", b"a:b:c", b"a?b", b"a#b",
             b"exa\\mple"]
GOOD_HOSTS = [b"", b"example.com:8080", b"[::1]:80", b"127.0.0.1", b"a%41b"]


@pytest.mark.parametrize("value", BAD_HOSTS, ids=[h.decode() for h in BAD_HOSTS])
def test_invalid_host_is_400(host, value):
    assert exchange(host.port, get(b"/host", value), shut=False) == error(400, b"Bad Request")


@pytest.mark.parametrize("value", GOOD_HOSTS, ids=[h.decode() or "empty" for h in GOOD_HOSTS])
def test_valid_host_reaches_the_app(host, value):
    want = text(b"host=" + value)
    assert exchange(host.port, get(b"/host", value), shut=False, until=len(want)) == want


# ---- a body longer than the app's Content-Length -----------------------------------


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
@pytest.mark.parametrize("query", [b"", b"?one=1"], ids=["parts", "one"])
def test_body_longer_than_content_length(kind, query):
    s = start(kind)
    try:
        got = exchange(s.port, get(b"/overflow" + query) + get(b"/hello"), shut=False)
        assert got == (b"HTTP/1.1 200 OK\r\nDate: DATE\r\nContent-Type: text/plain\r\n"
                       b"Content-Length: 8\r\n\r\n01234567")
        want = text(b"Hello, World!")
        assert exchange(s.port, get(b"/hello"), shut=False, until=len(want)) == want
    finally:
        log = s.log()
    assert log.count("Content-Length") == 1, log
    assert OVERFLOW_LINE in log.splitlines(), log


# ---- Transfer-Encoding list and chunk extensions -------------------------------------

CHUNKED = [
    ("te_leading_comma", b"Transfer-Encoding: ,chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    ("ext_empty_value", b"Transfer-Encoding: chunked\r\n", b"5;a=\r\nhello\r\n0\r\n\r\n"),
]


@pytest.mark.parametrize("fields,body", [c[1:] for c in CHUNKED], ids=[c[0] for c in CHUNKED])
def test_chunked_forms_answered_at_once(host, fields, body):
    want = text(b"hello") + text(b"Hello, World!")
    got = exchange(host.port, b"POST /echo HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n"
                   + body + get(b"/hello"), shut=False, until=len(want))
    assert got == want
