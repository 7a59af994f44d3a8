"""Issue #14's engine bugs through the C test server (the same behaviours
are checked through WSGI and ASGI in tests/python/test_compat_engine.py and
through Node in tests/node/compat-engine.test.js):

- a FIN ends only the client's sending direction: what it sent before is
  answered, then the connection closes; only a reset is a disconnect;
- an invalid Host value is a 400 (RFC 9112 3.2), an empty one is allowed;
- a body longer than the host's own Content-Length: the announced bytes,
  then the close, and one log line;
- `Transfer-Encoding: ,chunked` is chunked (RFC 9110 5.6.1), and a chunk
  extension with an empty value is answered at once (llhttp accepts it)."""

import socket
import time

import pytest

import util
from util import Conn, assert_error, request, stats, wait_stats

TEXT_HEAD = b"HTTP/1.1 200 OK\r\nDate: DATE\r\nContent-Type: text/plain\r\n"


def text_response(body):
    return TEXT_HEAD + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


# ---- a FIN after complete requests -------------------------------------------


def test_fin_after_post_answered_by_a_late_host(ts):
    """The host answers 100 ms after the body and the FIN arrived: the
    client still gets the answer, then the close."""
    with Conn(ts.addr) as c:
        c.send(request("POST", "/echo-thread?ms=100", body=b"hello"))
        c.sock.shutdown(socket.SHUT_WR)
        r = c.read_response()
        assert r.masked() == text_response(b"hello")
        c.expect_eof()
    wait_stats(ts.addr, lambda s: s["live"] == 0)


def test_fin_after_ten_pipelined_requests_answers_all(ts):
    with Conn(ts.addr) as c:
        c.send(b"".join(request("GET", "/slow?ms=10") for _ in range(10)))
        c.sock.shutdown(socket.SHUT_WR)
        for _ in range(10):
            assert c.read_response().masked() == text_response(b"slow")
        c.expect_eof()


def test_fin_after_pipelined_requests_and_a_partial_head(ts):
    """The complete requests are answered; the partial head behind them can
    never complete, so the connection closes at once (no 408 after the head
    timeout)."""
    with Conn(ts.addr) as c:
        c.send(request("GET", "/slow?ms=10") + request("GET", "/hello")
               + b"GET /hello HTTP/1.1\r\nHo")
        c.sock.shutdown(socket.SHUT_WR)
        t0 = time.monotonic()
        assert c.read_response().masked() == text_response(b"slow")
        assert c.read_response().masked() == text_response(b"Hello, World!")
        c.expect_eof()
        assert time.monotonic() - t0 < 0.8


def test_fin_while_host_holds_request_is_not_a_disconnect(ts):
    """A half-close is not a client that left: the host keeps its request
    (no PISTON_EV_CLOSED), and a reset afterwards is the disconnect."""
    before = stats(ts.addr)
    c = Conn(ts.addr)
    c.send(request("GET", "/never"))
    wait_stats(ts.addr, lambda st: st["live"] == before["live"] + 1)
    c.sock.shutdown(socket.SHUT_WR)
    c.expect_open(0.3)
    held = stats(ts.addr)
    assert (held["live"], held["closed_events"]) == (before["live"] + 1,
                                                     before["closed_events"])
    c.reset()
    after = wait_stats(ts.addr, lambda st: st["live"] == before["live"])
    assert after["closed_events"] == before["closed_events"] + 1


# ---- Host values ---------------------------------------------------------------

BAD_HOSTS = [b"bad host", b"a/b", b"a@b", b"[::1", b"a:b:c", b"a?b", b"a#b",
             b"exa\\mple", b"[::1]x", b"[::g]", b"[]", b"a%4", b"a%zzb", b"a:80x",
             b'a"b', b"a<b", b"[v1]", b"[v.x]"]
GOOD_HOSTS = [b"", b"example.com", b"example.com:8080", b"127.0.0.1",
              b"127.0.0.1:80", b"[::1]", b"[::1]:8080", b"[2001:db8::1]",
              b"[v1.fe80::a+en1]", b"a%41b", b"ex-am_ple.~com", b"a!$&'()*+,;=b",
              b"example.com:"]


@pytest.fixture(params=["static", "ts"])
def srv(request):
    return request.getfixturevalue(request.param)


@pytest.mark.parametrize("host", BAD_HOSTS, ids=[h.decode() for h in BAD_HOSTS])
def test_invalid_host_is_400(srv, host):
    with Conn(srv.addr) as c:
        c.send(b"GET /hello HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
        assert_error(c, 400)


@pytest.mark.parametrize("host", GOOD_HOSTS, ids=[h.decode() or "empty" for h in GOOD_HOSTS])
def test_valid_host_is_served(ts, host):
    with Conn(ts.addr) as c:
        c.send(b"GET /header?name=host HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
        assert c.read_response().masked() == text_response(host)


def test_invalid_host_on_http10_is_400(ts):
    with Conn(ts.addr) as c:
        c.send(b"GET /hello HTTP/1.0\r\nHost: a b\r\n\r\n")
        assert_error(c, 400)


# ---- a body longer than the host's Content-Length ------------------------------

OVERFLOW_LINE = ("piston: response body longer than its Content-Length: GET "
                 "/overflow: sent the 8 bytes announced, dropped the rest, closing")


@pytest.mark.parametrize("query,body", [("", b"01234567"), ("?send=1", b"01234567"),
                                        ("?file=1", util.pattern(0, 8))],
                         ids=["writes", "send", "sendfile"])
def test_body_longer_than_content_length(server, query, body):
    s = server(util.TESTSERVER)
    with Conn(s.addr) as c:
        c.send(request("GET", "/overflow" + query) + request("GET", "/hello"))
        r = c.read_response()
        assert r.masked() == (b"HTTP/1.1 200 OK\r\nDate: DATE\r\nContent-Length: 8"
                              b"\r\n\r\n" + body)
        c.expect_eof()  # the rest is dropped, and so is the pipelined /hello
    util.assert_serving(s.addr)
    s.stop_ok()
    assert s.lines.count(OVERFLOW_LINE) == 1, s.lines


# ---- Transfer-Encoding list and chunk extensions -------------------------------

CHUNKED_CASES = [
    ("te_leading_comma", b"Transfer-Encoding: ,chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    ("te_empty_elements", b"Transfer-Encoding: , ,chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    ("te_split_fields", b"Transfer-Encoding: ,\r\nTransfer-Encoding: chunked\r\n",
     b"5\r\nhello\r\n0\r\n\r\n"),
    ("ext_empty_value", b"Transfer-Encoding: chunked\r\n", b"5;a=\r\nhello\r\n0\r\n\r\n"),
    ("ext_empty_value_last", b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0;a=\r\n\r\n"),
]


@pytest.mark.parametrize("fields,body", [c[1:] for c in CHUNKED_CASES],
                         ids=[c[0] for c in CHUNKED_CASES])
def test_chunked_forms_answered_at_once(ts, fields, body):
    with Conn(ts.addr, timeout=2) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n" + body
               + request("GET", "/hello"))
        assert c.read_response().masked() == text_response(b"hello")
        assert c.read_response().masked() == text_response(b"Hello, World!")


def test_te_only_empty_elements_is_400(ts):
    with Conn(ts.addr) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ,\r\n\r\n")
        assert_error(c, 400)
