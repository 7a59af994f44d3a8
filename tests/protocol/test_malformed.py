"""Malformed and smuggling-shaped requests, and the size limits: each gets
the engine's exact error response, then the connection closes, the handler
never sees the request, and the server keeps serving."""

import pytest

from util import Conn, assert_error, assert_serving, stats, wait_stats

H = b"Host: x\r\n"

# (id, request bytes, status). Every request is complete, so the server has
# no reason to wait for more bytes.
BAD_HEADS = [
    ("cl_then_te", b"POST /hello HTTP/1.1\r\n" + H +
     b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te_then_cl", b"POST /hello HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
    ("duplicate_cl_same", b"POST /hello HTTP/1.1\r\n" + H +
     b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400),
    ("duplicate_cl_different", b"POST /hello HTTP/1.1\r\n" + H +
     b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
    ("cl_list", b"POST /hello HTTP/1.1\r\n" + H + b"Content-Length: 5, 5\r\n\r\nhello", 400),
    ("cl_plus", b"POST /hello HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello", 400),
    ("cl_minus", b"POST /hello HTTP/1.1\r\n" + H + b"Content-Length: -5\r\n\r\n", 400),
    ("cl_alpha", b"POST /hello HTTP/1.1\r\n" + H + b"Content-Length: abc\r\n\r\n", 400),
    ("cl_hex", b"POST /hello HTTP/1.1\r\n" + H + b"Content-Length: 0x5\r\n\r\nhello", 400),
    ("cl_empty", b"POST /hello HTTP/1.1\r\n" + H + b"Content-Length: \r\n\r\n", 400),
    ("cl_inner_space", b"POST /hello HTTP/1.1\r\n" + H + b"Content-Length: 1 2\r\n\r\n", 400),
    ("te_chunked_identity", b"POST /hello HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400),
    ("te_identity", b"POST /hello HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: identity\r\n\r\n", 400),
    ("te_xchunked", b"POST /hello HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400),
    ("te_in_http10", b"POST /hello HTTP/1.0\r\n" +
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("obs_fold", b"GET /hello HTTP/1.1\r\n" + H + b"X-A: b\r\n c\r\n\r\n", 400),
    ("obs_fold_tab", b"GET /hello HTTP/1.1\r\n" + H + b"X-A: b\r\n\tc\r\n\r\n", 400),
    ("space_before_colon", b"GET /hello HTTP/1.1\r\n" + H + b"X-A : b\r\n\r\n", 400),
    ("space_before_colon_te", b"POST /hello HTTP/1.1\r\n" + H +
     b"Transfer-Encoding : chunked\r\nContent-Length: 0\r\n\r\n", 400),
    ("tab_before_colon", b"GET /hello HTTP/1.1\r\n" + H + b"X-A\t: b\r\n\r\n", 400),
    ("header_starts_with_space", b"GET /hello HTTP/1.1\r\n X-A: b\r\n" + H + b"\r\n", 400),
    ("nul_in_value", b"GET /hello HTTP/1.1\r\n" + H + b"X-A: b\x00c\r\n\r\n", 400),
    ("soh_in_value", b"GET /hello HTTP/1.1\r\n" + H + b"X-A: b\x01c\r\n\r\n", 400),
    ("esc_in_value", b"GET /hello HTTP/1.1\r\n" + H + b"X-A: b\x1bc\r\n\r\n", 400),
    ("del_in_value", b"GET /hello HTTP/1.1\r\n" + H + b"X-A: b\x7fc\r\n\r\n", 400),
    ("cr_in_value", b"GET /hello HTTP/1.1\r\n" + H + b"X-A: b\rc\r\n\r\n", 400),
    ("bad_char_in_name", b"GET /hello HTTP/1.1\r\n" + H + b"X@A: b\r\n\r\n", 400),
    ("empty_name", b"GET /hello HTTP/1.1\r\n" + H + b": b\r\n\r\n", 400),
    ("no_colon", b"GET /hello HTTP/1.1\r\n" + H + b"X-A b\r\n\r\n", 400),
    ("nul_in_target", b"GET /hel\x00lo HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("soh_in_target", b"GET /hel\x01lo HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("space_in_target", b"GET /he llo HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("bad_method", b"G(T /hello HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("bare_lf_everywhere", b"GET /hello HTTP/1.1\nHost: x\n\n", 400),
    ("bare_lf_request_line", b"GET /hello HTTP/1.1\nHost: x\r\n\r\n", 400),
    ("bare_lf_header", b"GET /hello HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n", 400),
    ("bare_lf_end", b"GET /hello HTTP/1.1\r\nHost: x\r\n\n", 400),
    ("bare_cr", b"GET /hello HTTP/1.1\rHost: x\r\n\r\n", 400),
    ("missing_host", b"GET /hello HTTP/1.1\r\n\r\n", 400),
    ("double_host", b"GET /hello HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
    ("double_host_same", b"GET /hello HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n", 400),
    ("http2_request_line", b"GET /hello HTTP/2.0\r\n" + H + b"\r\n", 505),
    ("http3_request_line", b"GET /hello HTTP/3.0\r\n" + H + b"\r\n", 505),
    ("http09_request_line", b"GET /hello HTTP/0.9\r\n" + H + b"\r\n", 505),
    ("rtsp_request_line", b"GET /hello RTSP/1.0\r\n" + H + b"\r\n", 505),
    ("expect_other", b"GET /hello HTTP/1.1\r\n" + H + b"Expect: something\r\n\r\n", 417),
]


@pytest.fixture(params=["static", "ts"])
def srv(request):
    return request.getfixturevalue(request.param)


@pytest.mark.parametrize("raw,status", [b[1:] for b in BAD_HEADS],
                         ids=[b[0] for b in BAD_HEADS])
def test_bad_request(srv, raw, status):
    is_ts = srv.name == "piston-testserver"
    before = stats(srv.addr)["requests"] if is_ts else None
    with Conn(srv.addr) as c:
        c.send(raw)
        assert_error(c, status)
    if is_ts:
        # The handler never saw it: only the two /stats requests counted.
        assert stats(srv.addr)["requests"] == before + 1
    assert_serving(srv.addr)


@pytest.mark.parametrize("raw,status", [b[1:] for b in BAD_HEADS[:12]],
                         ids=[b[0] for b in BAD_HEADS[:12]])
def test_bad_request_after_good_one(srv, raw, status):
    """A bad request pipelined behind a good one: the good one is answered,
    then the error, then the close."""
    with Conn(srv.addr) as c:
        c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n" + raw)
        r = c.read_response()
        assert (r.status, r.body) == (200, b"Hello, World!")
        assert r.header("Connection") is None
        assert_error(c, status)


def test_no_request_after_framing_error(ts):
    """Bytes after a rejected request are never parsed as another request."""
    before = stats(ts.addr)["requests"]
    with Conn(ts.addr) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n"
               b"0\r\n\r\nGET /never HTTP/1.1\r\nHost: x\r\n\r\n")
        assert_error(c, 400)
    assert stats(ts.addr)["requests"] == before + 1


BAD_CHUNKED_BODIES = [
    ("bad_chunk_size", b"zz\r\nhello\r\n0\r\n\r\n"),
    ("negative_chunk_size", b"-5\r\nhello\r\n0\r\n\r\n"),
    ("chunk_data_too_long", b"5\r\nhelloX\r\n0\r\n\r\n"),
    ("chunk_size_bare_lf", b"5\nhello\r\n0\r\n\r\n"),
    ("chunk_data_bare_lf", b"5\r\nhello\n0\r\n\r\n"),
    ("chunk_size_empty", b"\r\nhello\r\n0\r\n\r\n"),
    ("chunk_ext_ctl", b"5;a=\x01\r\nhello\r\n0\r\n\r\n"),
    ("trailer_obs_fold", b"0\r\nX-T: a\r\n b\r\n\r\n"),
]


@pytest.mark.parametrize("path", ["/echo", "/echo-thread"])
@pytest.mark.parametrize("body", [b[1] for b in BAD_CHUNKED_BODIES],
                         ids=[b[0] for b in BAD_CHUNKED_BODIES])
def test_bad_chunked_body(ts, path, body):
    with Conn(ts.addr) as c:
        c.send(b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               % path.encode() + body)
        assert_error(c, 400)
    wait_stats(ts.addr, lambda s: s["live"] == 0)
    assert_serving(ts.addr)


# ---- limits (ts_small: body 1000, head 2048, url 256, 16 headers) ---------


def test_url_at_limit_accepted(ts_small):
    target = b"/info?" + b"a" * (256 - 6)
    assert len(target) == 256
    with Conn(ts_small.addr) as c:
        c.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % target)
        r = c.read_response()
        assert r.status == 200 and b"path=/info " in r.body


def test_url_over_limit_414(ts_small):
    target = b"/info?" + b"a" * (257 - 6)
    with Conn(ts_small.addr) as c:
        c.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % target)
        assert_error(c, 414)
    assert_serving(ts_small.addr)


def test_url_far_over_limit_414(static):
    with Conn(static.addr) as c:
        c.send(b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert_error(c, 414)
    assert_serving(static.addr)


def test_head_over_limit_431(ts_small, static):
    for srv, size in ((ts_small, 3000), (static, 10000)):
        with Conn(srv.addr) as c:
            c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * size + b"\r\n\r\n")
            assert_error(c, 431)
        assert_serving(srv.addr)


def test_head_over_limit_across_many_headers_431(ts_small):
    with Conn(ts_small.addr) as c:
        hdrs = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 200) for i in range(12))
        c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n" + hdrs + b"\r\n")
        assert_error(c, 431)


def test_head_over_limit_without_end_431(ts_small):
    """A head that never ends is cut as soon as it exceeds the limit, not
    when the head timeout fires."""
    with Conn(ts_small.addr) as c:
        c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 4000)
        r = c.read_response(timeout=0.8)
        assert r.status == 431


def test_header_count_at_limit_accepted(ts_small):
    hdrs = b"".join(b"X-H%d: v\r\n" % i for i in range(15))  # + Host = 16
    with Conn(ts_small.addr) as c:
        c.send(b"GET /headers HTTP/1.1\r\nHost: x\r\n" + hdrs + b"\r\n")
        r = c.read_response()
        assert r.status == 200 and r.body.count(b"\n") == 16


def test_header_count_over_limit_431(ts_small, static):
    for srv, n in ((ts_small, 16), (static, 40)):
        hdrs = b"".join(b"X-H%d: v\r\n" % i for i in range(n))
        with Conn(srv.addr) as c:
            c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n" + hdrs + b"\r\n")
            assert_error(c, 431)
        assert_serving(srv.addr)


def test_body_at_limit_accepted(ts_small):
    body = b"x" * 1000
    with Conn(ts_small.addr) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + body)
        r = c.read_response()
        assert (r.status, r.body) == (200, body)
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"1f4\r\n" + body[:500] + b"\r\n1f4\r\n" + body[500:] + b"\r\n0\r\n\r\n")
        r = c.read_response()
        assert (r.status, r.body) == (200, body)


@pytest.mark.parametrize("path", ["/echo", "/echo-thread", "/hello"])
def test_content_length_over_limit_413(ts_small, path):
    """Rejected from the head alone: the body is never sent."""
    with Conn(ts_small.addr) as c:
        c.send(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n"
               % path.encode())
        assert_error(c, 413)
    wait_stats(ts_small.addr, lambda s: s["live"] == 0)
    assert_serving(ts_small.addr)


def test_content_length_over_limit_413_static(static):
    with Conn(static.addr) as c:
        c.send(b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        assert_error(c, 413)


def test_content_length_huge_413(ts_small):
    with Conn(ts_small.addr) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n")
        assert_error(c, 413)


@pytest.mark.parametrize("path", ["/echo", "/echo-thread"])
def test_chunked_body_over_limit_413(ts_small, path):
    with Conn(ts_small.addr) as c:
        c.send(b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               % path.encode() + b"258\r\n" + b"a" * 600 + b"\r\n258\r\n" + b"b" * 600
               + b"\r\n0\r\n\r\n")
        assert_error(c, 413)
    wait_stats(ts_small.addr, lambda s: s["live"] == 0)
    assert_serving(ts_small.addr)


def test_chunked_body_one_huge_chunk_413(ts_small):
    with Conn(ts_small.addr) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"100000\r\n" + b"a" * 1100)
        assert_error(c, 413)
    wait_stats(ts_small.addr, lambda s: s["live"] == 0)
