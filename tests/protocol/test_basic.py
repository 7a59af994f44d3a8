"""Framing and connection management, exact bytes: keep-alive, HTTP/1.0,
Connection: close, HEAD, pipelining, absolute-form targets."""

import ssl
import time

from util import Conn, assert_serving, request

STATIC_HELLO_HEAD = (
    b"HTTP/1.1 200 OK\r\nDate: DATE\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 13\r\n"
)
STATIC_HELLO = STATIC_HELLO_HEAD + b"\r\nHello, World!"
HOST_HELLO_HEAD = (
    b"HTTP/1.1 200 OK\r\nDate: DATE\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 13\r\n"
)
HOST_HELLO = HOST_HELLO_HEAD + b"\r\nHello, World!"


def test_fixed_route_exact_bytes(static):
    with Conn(static.addr) as c:
        c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().masked() == STATIC_HELLO
        c.expect_open(0.2)


def test_host_hello_exact_bytes(ts):
    with Conn(ts.addr) as c:
        c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().masked() == HOST_HELLO
        c.expect_open(0.2)


def test_keep_alive_many_requests(static, ts):
    for srv, expected in ((static, STATIC_HELLO), (ts, HOST_HELLO)):
        with Conn(srv.addr) as c:
            port = c.sock.getsockname()[1]
            for _ in range(200):
                c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
                assert c.read_response().masked() == expected
            # Same connection throughout.
            assert c.sock.getsockname()[1] == port
            c.expect_open(0.1)


def test_http10_closes_by_default(static, ts):
    for srv, head in ((static, STATIC_HELLO_HEAD), (ts, HOST_HELLO_HEAD)):
        with Conn(srv.addr) as c:
            c.send(b"GET /hello HTTP/1.0\r\n\r\n")
            r = c.read_response()
            assert r.masked() == head + b"Connection: close\r\n\r\nHello, World!"
            c.expect_eof()


def test_http10_keep_alive(static, ts):
    for srv, head in ((static, STATIC_HELLO_HEAD), (ts, HOST_HELLO_HEAD)):
        with Conn(srv.addr) as c:
            for _ in range(3):
                c.send(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                r = c.read_response()
                assert r.masked() == head + b"Connection: keep-alive\r\n\r\nHello, World!"
            c.expect_open(0.1)
            # A 1.0 request without keep-alive on the same connection ends it.
            c.send(b"GET /hello HTTP/1.0\r\n\r\n")
            r = c.read_response()
            assert r.masked() == head + b"Connection: close\r\n\r\nHello, World!"
            c.expect_eof()


def test_connection_close_request(static, ts):
    for srv, head in ((static, STATIC_HELLO_HEAD), (ts, HOST_HELLO_HEAD)):
        with Conn(srv.addr) as c:
            c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            r = c.read_response()
            assert r.masked() == head + b"Connection: close\r\n\r\nHello, World!"
            c.expect_eof()


def test_connection_close_token_list(static):
    with Conn(static.addr) as c:
        c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: foo, Close\r\n\r\n")
        r = c.read_response()
        assert r.masked() == STATIC_HELLO_HEAD + b"Connection: close\r\n\r\nHello, World!"
        c.expect_eof()


def test_head_fixed_route(static):
    with Conn(static.addr) as c:
        c.send(b"HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response(head_request=True)
        assert r.masked() == STATIC_HELLO_HEAD + b"\r\n"
        # No body followed: the next response starts right away.
        c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().masked() == STATIC_HELLO


def test_head_host_route_drops_body(ts):
    with Conn(ts.addr) as c:
        c.send(b"HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response(head_request=True)
        assert r.masked() == HOST_HELLO_HEAD + b"\r\n"
        c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().masked() == HOST_HELLO


def test_fixed_route_other_method_405(static):
    with Conn(static.addr) as c:
        c.send(b"DELETE /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert r.status == 405 and r.reason == "Method Not Allowed"
        assert r.header("Allow") == "GET, HEAD"
        r.masked()  # one well-formed Date


def test_fixed_route_post_with_body_405(static):
    with Conn(static.addr) as c:
        c.send(b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        r = c.read_response()
        assert r.status == 405 and r.header("Allow") == "GET, HEAD"
        # The body was not taken for the next request: either the connection
        # ends, or the next request is answered normally.
        if r.header("Connection") == "close":
            c.expect_eof()
        else:
            c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            assert c.read_response().masked() == STATIC_HELLO


def test_unknown_path_404(static):
    with Conn(static.addr) as c:
        c.send(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert r.status == 404 and r.reason == "Not Found"
        r.masked()
        c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().masked() == STATIC_HELLO


def test_pipelining_fixed_routes(static):
    n = 50
    with Conn(static.addr) as c:
        batch = b"".join(
            b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n" if i % 5 else
            b"GET /missing%d HTTP/1.1\r\nHost: x\r\n\r\n" % i
            for i in range(n)
        )
        c.send(batch)
        for i in range(n):
            r = c.read_response()
            if i % 5:
                assert r.masked() == STATIC_HELLO, i
            else:
                assert r.status == 404, i
        c.expect_open(0.1)


def test_pipelined_fixed_responses_arrive_together(static):
    """All responses that were ready together are on the socket together:
    after the first byte arrives, the rest is there without another wait."""
    n = 20
    with Conn(static.addr) as c:
        c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n" * n)
        c.read_until(b"HTTP/1.1")
        time.sleep(0.05)
        c.sock.setblocking(False)
        try:
            while True:
                data = c.sock.recv(65536)
                if not data:
                    break
                c.buf += data
        except (BlockingIOError, ssl.SSLWantReadError):
            pass
        c.sock.setblocking(True)
        c.buf = b"HTTP/1.1" + c.buf
        for _ in range(n):
            assert c.read_response(timeout=0.01).masked() == STATIC_HELLO


def test_pipelining_head_and_get_mixed(static):
    with Conn(static.addr) as c:
        c.send(
            b"HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
            b"HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"  # after close: not answered
        )
        assert c.read_response(head_request=True).masked() == STATIC_HELLO_HEAD + b"\r\n"
        assert c.read_response().masked() == STATIC_HELLO
        assert c.read_response(head_request=True).masked() == STATIC_HELLO_HEAD + b"\r\n"
        assert (
            c.read_response().masked()
            == STATIC_HELLO_HEAD + b"Connection: close\r\n\r\nHello, World!"
        )
        c.expect_eof()


def test_absolute_form_target_static(static):
    with Conn(static.addr) as c:
        c.send(b"GET http://example.com/hello?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n")
        assert c.read_response().masked() == STATIC_HELLO


def test_absolute_form_target_host(ts):
    with Conn(ts.addr) as c:
        c.send(
            b"GET http://example.com/info?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n"
        )
        r = c.read_response()
        assert r.status == 200
        fields = dict(kv.split("=", 1) for kv in r.body.decode().split(" "))
        assert fields["target"] == "http://example.com/info?x=1"
        assert fields["path"] == "/info"
        assert fields["query"] == "x=1"


def test_request_split_in_single_bytes(static):
    """A head arriving one byte at a time is parsed like a whole one."""
    with Conn(static.addr) as c:
        c.sock.setsockopt(6, 1, 1)  # TCP_NODELAY
        for b in b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n":
            c.send(bytes([b]))
            time.sleep(0.001)
        assert c.read_response().masked() == STATIC_HELLO


def test_many_connections_sequential(static):
    for _ in range(100):
        assert_serving(static.addr)


def test_request_helper_shape():
    # The helper used throughout builds the bytes it claims to.
    assert request("GET", "/x") == b"GET /x HTTP/1.1\r\nHost: test\r\n\r\n"
    assert request("POST", "/e", body=b"ab") == (
        b"POST /e HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\nab"
    )
