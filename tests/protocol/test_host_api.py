"""The host API through piston-testserver: request views, body pulls on the
loop thread and from a worker, chunked and close-delimited responses,
trailers, backpressure, sendfile, aborts, 100-continue, pipelining."""

import time

import util
from util import Conn, pattern, request, stats, wait_stats


def info(r):
    assert r.status == 200, r
    return dict(kv.split("=", 1) for kv in r.body.decode().split(" "))


def test_info_views(ts):
    with Conn(ts.addr) as c:
        c.send(b"GET /info?a=1&b=%20x HTTP/1.1\r\nHost: x\r\n\r\n")
        f = info(c.read_response())
        addr, port = c.sock.getsockname()
        assert f == {
            "method": "GET",
            "target": "/info?a=1&b=%20x",
            "path": "/info",
            "query": "a=1&b=%20x",
            "minor": "1",
            "version": "11",
            "remote": "%s:%d" % (addr, port),
            "local": str(ts.port),
            "cl": "0",
        }
        c.send(b"POST /info HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc")
        f = info(c.read_response())
        assert (f["method"], f["path"], f["query"], f["minor"], f["version"], f["cl"]) == (
            "POST", "/info", "", "0", "10", "3")
        c.expect_eof()


def test_info_chunked_content_length_unknown(ts):
    with Conn(ts.addr) as c:
        c.send(b"POST /info HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3\r\nabc\r\n0\r\n\r\n")
        assert info(c.read_response())["cl"] == "-1"


def test_headers_in_order_with_duplicates(ts):
    with Conn(ts.addr) as c:
        c.send(
            b"GET /headers HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-b:2\r\n"
            b"X-A: 3\r\nX-Spaced: \t v  w \t\r\nX-Empty:\r\n\r\n"
        )
        r = c.read_response()
        assert r.status == 200
        assert r.body == b"Host: x\nX-A: 1\nx-b: 2\nX-A: 3\nX-Spaced: v  w\nX-Empty: \n"


def test_header_lookup_case_insensitive(ts):
    with Conn(ts.addr) as c:
        for name in ("x-token", "X-TOKEN", "X-Token"):
            c.send(b"GET /header?name=%s HTTP/1.1\r\nHost: x\r\nX-Token: one\r\n"
                   b"x-token: two\r\n\r\n" % name.encode())
            r = c.read_response()
            assert (r.status, r.body) == (200, b"one")
        c.send(b"GET /header?name=X-Missing HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().status == 404


def test_header_obs_text_value_passed_through(ts):
    with Conn(ts.addr) as c:
        c.send(b"GET /header?name=X-Latin HTTP/1.1\r\nHost: x\r\nX-Latin: caf\xe9\r\n\r\n")
        r = c.read_response()
        assert (r.status, r.body) == (200, b"caf\xe9")


def test_echo_exact_bytes(ts):
    for path in ("/echo", "/echo-thread"):
        with Conn(ts.addr) as c:
            c.send(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world"
                   % path.encode())
            assert c.read_response().masked() == (
                b"HTTP/1.1 200 OK\r\nDate: DATE\r\nContent-Type: text/plain\r\n"
                b"Content-Length: 11\r\n\r\nhello world"
            )
            c.send(b"PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" % path.encode())
            assert c.read_response().masked() == (
                b"HTTP/1.1 200 OK\r\nDate: DATE\r\nContent-Type: text/plain\r\n"
                b"Content-Length: 0\r\n\r\n"
            )


def test_echo_body_trickled(ts):
    """A body sent in pieces with pauses: the handler is woken by
    PISTON_EV_BODY for each (loop thread and worker thread)."""
    for path in ("/echo", "/echo-thread"):
        with Conn(ts.addr) as c:
            c.sock.setsockopt(6, 1, 1)
            body = b"0123456789" * 10
            c.send(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                   % (path.encode(), len(body)))
            for i in range(0, len(body), 20):
                time.sleep(0.05)
                c.send(body[i:i + 20])
            r = c.read_response()
            assert (r.status, r.body) == (200, body)


def test_echo_large_body(ts):
    """4 MiB: more than any sane body buffer, so reads pause and resume."""
    body = pattern(7, 4 << 20)
    for path in ("/echo", "/echo-thread"):
        with Conn(ts.addr, timeout=20) as c:
            c.send(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                   % (path.encode(), len(body)) + body)
            r = c.read_response()
            assert r.status == 200 and r.header("Content-Length") == str(len(body))
            assert r.body == body


def test_chunked_request_body_with_extensions_and_trailers(ts):
    for path in ("/echo", "/echo-thread"):
        with Conn(ts.addr) as c:
            c.send(
                b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5;ext=1\r\nhello\r\n"
                b"6;a=\"b c\";d\r\n world\r\n"
                b"A\r\n0123456789\r\n"
                b"0;last\r\nX-Trailer: v\r\nX-Other: w\r\n\r\n" % path.encode()
            )
            r = c.read_response()
            assert r.masked() == (
                b"HTTP/1.1 200 OK\r\nDate: DATE\r\nContent-Type: text/plain\r\n"
                b"Content-Length: 21\r\n\r\nhello world0123456789"
            )
            # The connection is still in sync.
            c.send(request("GET", "/hello"))
            assert c.read_response().body == b"Hello, World!"


def test_chunked_request_body_trickled(ts):
    with Conn(ts.addr) as c:
        c.sock.setsockopt(6, 1, 1)
        c.send(b"POST /echo-thread HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for piece in (b"3\r\nab", b"c\r\n", b"4\r", b"\ndefg\r\n0\r\n", b"\r\n"):
            time.sleep(0.05)
            c.send(piece)
        r = c.read_response()
        assert (r.status, r.body) == (200, b"abcdefg")


def test_chunked_response_http11(ts):
    with Conn(ts.addr) as c:
        c.send(b"GET /chunked?n=4&size=5 HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert r.masked().startswith(
            b"HTTP/1.1 200 OK\r\nDate: DATE\r\nContent-Type: text/plain\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        assert r.framing == "chunked"
        assert r.body == b"aaaaabbbbbcccccddddd"
        assert r.raw_body.endswith(b"\r\n0\r\n\r\n")
        assert r.trailers == []
        c.send(request("GET", "/hello"))
        assert c.read_response().body == b"Hello, World!"


def test_chunked_response_many_writes(ts):
    with Conn(ts.addr, timeout=10) as c:
        c.send(b"GET /chunked?n=3000&size=100 HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert r.framing == "chunked"
        expected = b"".join(bytes([97 + i % 26]) * 100 for i in range(3000))
        assert r.body == expected


def test_chunked_response_http10_is_close_delimited(ts):
    with Conn(ts.addr) as c:
        c.send(b"GET /chunked?n=3&size=4 HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert r.masked() == (
            b"HTTP/1.1 200 OK\r\nDate: DATE\r\nContent-Type: text/plain\r\n"
            b"Connection: close\r\n\r\naaaabbbbcccc"
        )
        assert r.framing == "close"


def test_chunked_response_http10_keep_alive_still_closes(ts):
    """No length is known, so keep-alive cannot be honoured."""
    with Conn(ts.addr) as c:
        c.send(b"GET /chunked?n=2&size=3 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        r = c.read_response()
        assert r.masked() == (
            b"HTTP/1.1 200 OK\r\nDate: DATE\r\nContent-Type: text/plain\r\n"
            b"Connection: close\r\n\r\naaabbb"
        )


def test_trailers(ts):
    with Conn(ts.addr) as c:
        c.send(b"GET /trailers HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.framing == "chunked"
        assert r.body == b"hello trailers"
        assert r.raw_body.endswith(b"\r\n0\r\nX-Checksum: abc\r\n\r\n")
        assert r.trailers == [(b"X-Checksum", b"abc")]
        c.send(request("GET", "/hello"))
        assert c.read_response().body == b"Hello, World!"


def test_trailers_dropped_for_http10(ts):
    with Conn(ts.addr) as c:
        c.send(b"GET /trailers HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert r.framing == "close" and r.body == b"hello trailers"


def test_host_content_length_kept_once(ts):
    with Conn(ts.addr) as c:
        c.send(b"GET /own-length HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().masked() == (
            b"HTTP/1.1 200 OK\r\nDate: DATE\r\nContent-Length: 11\r\nX-Custom: yes\r\n"
            b"\r\nhello world"
        )


def test_204_and_304_have_no_body(ts):
    with Conn(ts.addr) as c:
        c.send(b"GET /status?code=204 HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /status?code=304 HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert r.masked() == b"HTTP/1.1 204 No Content\r\nDate: DATE\r\n\r\n"
        r = c.read_response()
        assert r.status == 304 and r.reason == "Not Modified"
        assert r.header("Transfer-Encoding") is None
        r.masked()
        assert c.read_response().body == b"Hello, World!"


def test_other_status_codes(ts):
    with Conn(ts.addr) as c:
        for code, reason in ((201, b"Created"), (404, b"Not Found"),
                             (503, b"Service Unavailable"), (418, None)):
            c.send(b"GET /status?code=%d HTTP/1.1\r\nHost: x\r\n\r\n" % code)
            r = c.read_response()
            assert r.status == code
            if reason:
                assert r.reason.encode() == reason
            assert r.body == b"status %d\n" % code


def test_head_on_host_chunked_route_has_no_body(ts):
    with Conn(ts.addr) as c:
        c.send(b"HEAD /chunked?n=2&size=3 HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response(head_request=True)
        assert r.status == 200
        c.send(request("GET", "/hello"))
        assert c.read_response().masked().startswith(b"HTTP/1.1 200 OK\r\n")


def test_big_response_backpressure(ts):
    n = 5_000_000
    for path in ("/big", "/big-thread"):
        with Conn(ts.addr, timeout=20) as c:
            c.send(b"GET %s?bytes=%d HTTP/1.1\r\nHost: x\r\n\r\n" % (path.encode(), n))
            r = c.read_response()
            assert r.status == 200 and r.header("Content-Length") == str(n)
            assert r.header("Content-Type") == "application/octet-stream"
            assert len(r.body) == n and r.body == pattern(0, n)
            c.send(request("GET", "/hello"))
            assert c.read_response().body == b"Hello, World!"


def test_sendfile(ts):
    with Conn(ts.addr) as c:
        for off, ln in ((0, 100), (12345, 70000), (0, 1 << 20), (1000, 0)):
            c.send(b"GET /sendfile?off=%d&len=%d HTTP/1.1\r\nHost: x\r\n\r\n" % (off, ln))
            r = c.read_response()
            assert r.status == 200 and r.header("Content-Length") == str(ln)
            assert r.body == pattern(off, ln)


def test_throw_gives_500(ts):
    with Conn(ts.addr) as c:
        c.send(b"GET /throw HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert r.status == 500 and r.reason == "Internal Server Error"
        r.masked()
        if r.header("Connection") != "close":
            c.send(request("GET", "/hello"))
            assert c.read_response().body == b"Hello, World!"


def test_abort_after_start_closes_connection(ts):
    with Conn(ts.addr) as c:
        c.send(b"GET /abort-mid HTTP/1.1\r\nHost: x\r\n\r\n")
        got = util.mask_date(c.read_to_eof())
        # What the host wrote before the abort leaves (as node:http sends it
        # before a socket.destroy()), then the close cuts the body short: the
        # client never sees a complete response, nor a late 500.
        assert got == (b"HTTP/1.1 200 OK\r\nDate: DATE\r\nContent-Length: 100\r\n\r\n"
                       b"0123456789")
        assert c.eof


def test_expect_100_continue(ts):
    for path in ("/echo", "/echo-thread"):
        with Conn(ts.addr) as c:
            c.send(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                   b"Expect: 100-continue\r\n\r\n" % path.encode())
            assert c.read_exact(25) == b"HTTP/1.1 100 Continue\r\n\r\n"
            c.send(b"hello")
            r = c.read_response()
            assert (r.status, r.body) == (200, b"hello")
            # Case-insensitive token, chunked body.
            c.send(b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                   b"Expect: 100-Continue\r\n\r\n" % path.encode())
            assert c.read_exact(25) == b"HTTP/1.1 100 Continue\r\n\r\n"
            c.send(b"2\r\nok\r\n0\r\n\r\n")
            r = c.read_response()
            assert (r.status, r.body) == (200, b"ok")


def test_expect_100_continue_not_sent_when_body_not_read(ts):
    with Conn(ts.addr) as c:
        c.send(b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
               b"Expect: 100-continue\r\n\r\n")
        # /hello answers 404 for POST without reading the body: the first
        # bytes are the final response, not an interim one.
        r = c.read_response()
        assert r.status == 404


def test_expect_100_continue_body_already_sent(ts):
    with Conn(ts.addr) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
               b"Expect: 100-continue\r\n\r\nhello")
        r = c.read_response()
        if r.status == 100:
            r = c.read_response()
        assert (r.status, r.body) == (200, b"hello")


def test_unread_body_does_not_desync(ts):
    """A handler that answers without reading the body: the body must never
    be parsed as a request."""
    with Conn(ts.addr) as c:
        smuggled = b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n"
        c.send(b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
               % len(smuggled) + smuggled + b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert r.status == 404
        if r.header("Connection") == "close":
            c.expect_eof()
        else:
            r = c.read_response()
            assert (r.status, r.body) == (200, b"Hello, World!")


def test_pipelining_with_bodies(ts):
    with Conn(ts.addr) as c:
        c.send(
            b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
            b"POST /echo-thread HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            b"GET /slow?ms=100 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nwxyz"
            b"GET /chunked?n=2&size=2 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /info?last HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        bodies = [c.read_response().body for _ in range(7)]
        assert bodies[:6] == [b"Hello, World!", b"abc", b"hello world", b"slow", b"wxyz", b"aabb"]
        assert b"query=last" in bodies[6]
        c.expect_open(0.1)


def test_pipelined_responses_complete_after_close_request(ts):
    with Conn(ts.addr) as c:
        c.send(
            b"GET /slow?ms=50 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        assert c.read_response().body == b"slow"
        r = c.read_response()
        assert r.body == b"Hello, World!" and r.header("Connection") == "close"
        c.expect_eof()


def test_batch_end_called(ts):
    s1 = stats(ts.addr)
    s2 = stats(ts.addr)
    assert s2["batches"] > s1["batches"]
    assert s2["requests"] == s1["requests"] + 1


def test_many_slow_requests_in_parallel(ts):
    conns = [Conn(ts.addr) for _ in range(50)]
    try:
        t0 = time.monotonic()
        for c in conns:
            c.send(b"GET /slow?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n")
        for c in conns:
            assert c.read_response().body == b"slow"
        # Workers run in parallel: nowhere near 50 x 300 ms.
        assert time.monotonic() - t0 < 3
    finally:
        for c in conns:
            c.close()
    wait_stats(ts.addr, lambda s: s["live"] == 0)


def test_head_drops_body_written_by_host(ts):
    """The host writes a body for HEAD (as WSGI apps do); none goes out."""
    with Conn(ts.addr) as c:
        c.send(b"HEAD /big?bytes=100000 HTTP/1.1\r\nHost: x\r\n\r\n"
               b"HEAD /trailers HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response(head_request=True)
        assert r.status == 200 and r.header("Content-Length") == "100000"
        r = c.read_response(head_request=True)
        assert r.status == 200
        r = c.read_response()
        assert (r.status, r.body) == (200, b"Hello, World!")


def test_content_length_leading_zeros_accepted(ts):
    with Conn(ts.addr) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 005\r\n\r\nhello")
        r = c.read_response()
        assert (r.status, r.body) == (200, b"hello")


def test_get_with_body_is_read_and_dropped(ts, static):
    for srv in (ts, static):
        with Conn(srv.addr) as c:
            c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                   b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            for _ in range(2):
                r = c.read_response()
                assert (r.status, r.body) == (200, b"Hello, World!")


def test_expect_100_continue_http10_gets_no_interim(ts):
    with Conn(ts.addr) as c:
        c.send(b"POST /echo HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        c.expect_open(0.3)
        c.send(b"hello")
        r = c.read_response()
        assert (r.status, r.body) == (200, b"hello")


def test_early_hints(ts):
    """piston_resp_inform: a 103 with its Link goes out before the final
    response; an HTTP/1.0 client gets no 1xx."""
    with Conn(ts.addr) as c:
        c.send(b"GET /early-hints HTTP/1.1\r\nHost: x\r\n\r\n")
        head = c.read_until(b"\r\n\r\n")
        assert head == (b"HTTP/1.1 103 Early Hints\r\n"
                        b"Link: </style.css>; rel=preload; as=style\r\n\r\n")
        r = c.read_response()
        assert (r.status, r.body) == (200, b"after the hints")
    with Conn(ts.addr) as c:
        c.send(b"GET /early-hints HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert (r.status, r.body) == (200, b"after the hints")
        assert b" 103 " not in r.raw
