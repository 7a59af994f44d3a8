"""7. Differential check of request framing against nginx 1.22 (Debian's
nginx-light): for each valid or malformed request, piston's decision
(accept with this body / reject / wait) and where it thinks the request
ends (is the pipelined follow-up answered?) are compared with nginx's.
Each disagreement is listed in DOCUMENTED with the reason piston's answer
is right; an undocumented disagreement, or a documented one that no longer
occurs, fails the test.

In the TLS run both nginx and piston get the run's certificate
(differential.py): the framing decisions are the HTTP parsers', the same
through TLS, so the same DOCUMENTED list must hold."""

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

import differential as d
import util
from rel import figure

H = b"Host: test\r\n"


def post(headers, body, target=b"/echo", version=b"HTTP/1.1"):
    return b"POST " + target + b" " + version + b"\r\n" + H + headers + b"\r\n" + body


CHUNKED = b"Transfer-Encoding: chunked\r\n"

CASES = {
    # ---- valid
    "cl-body": post(b"Content-Length: 5\r\n", b"hello"),
    "cl-zero": post(b"Content-Length: 0\r\n", b""),
    "cl-leading-zeros": post(b"Content-Length: 005\r\n", b"hello"),
    "cl-ows": post(b"Content-Length:   5  \r\n", b"hello"),
    "chunked": post(CHUNKED, b"5\r\nhello\r\n0\r\n\r\n"),
    "chunked-two-chunks": post(CHUNKED, b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n"),
    "chunked-ext": post(CHUNKED, b"5;name=value\r\nhello\r\n0\r\n\r\n"),
    "chunked-ext-quoted": post(CHUNKED, b"5;n=\"v;x\"\r\nhello\r\n0\r\n\r\n"),
    "chunked-trailer": post(CHUNKED, b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"),
    "chunked-upper-hex": post(CHUNKED, b"A\r\n0123456789\r\n0\r\n\r\n"),
    "chunked-size-leading-zeros": post(CHUNKED, b"0005\r\nhello\r\n0\r\n\r\n"),
    "te-case": post(b"Transfer-Encoding: Chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    "http10-cl": post(b"Content-Length: 5\r\n", b"hello", version=b"HTTP/1.0"),
    "get": b"GET /hello HTTP/1.1\r\n" + H + b"\r\n",
    "get-tab-ows": b"GET /hello HTTP/1.1\r\nHost:\ttest\t\r\n\r\n",
    "absolute-form": b"POST http://test/echo HTTP/1.1\r\n" + H + b"Content-Length: 2\r\n\r\nhi",
    "expect-100": post(b"Content-Length: 5\r\nExpect: 100-continue\r\n", b"hello"),
    "cl-short-then-pipelined": post(b"Content-Length: 3\r\n", b"abc"),
    # ---- smuggling-shaped and malformed framing
    "cl-and-te": post(b"Content-Length: 5\r\n" + CHUNKED, b"5\r\nhello\r\n0\r\n\r\n"),
    "te-and-cl": post(CHUNKED + b"Content-Length: 30\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    "cl-twice-same": post(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"),
    "cl-twice-diff": post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"),
    "cl-list": post(b"Content-Length: 5, 5\r\n", b"hello"),
    "cl-plus": post(b"Content-Length: +5\r\n", b"hello"),
    "cl-negative": post(b"Content-Length: -1\r\n", b"hello"),
    "cl-hex": post(b"Content-Length: 0x5\r\n", b"hello"),
    "cl-huge": post(b"Content-Length: 99999999999999999999999\r\n", b"hello"),
    "cl-space-inside": post(b"Content-Length: 1 0\r\n", b"0123456789"),
    "te-identity": post(b"Transfer-Encoding: identity\r\nContent-Length: 5\r\n", b"hello"),
    "te-gzip-chunked": post(b"Transfer-Encoding: gzip, chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    "te-chunked-gzip": post(b"Transfer-Encoding: chunked, gzip\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    "te-chunked-twice": post(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    "te-xchunked": post(b"Transfer-Encoding: xchunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    "te-space-before-colon": post(b"Transfer-Encoding : chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    "te-http10": post(CHUNKED, b"5\r\nhello\r\n0\r\n\r\n", version=b"HTTP/1.0"),
    "te-obs-fold": post(b"Transfer-Encoding:\r\n chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    "chunk-size-overflow": post(CHUNKED, b"fffffffffffffffff1\r\nhello\r\n0\r\n\r\n"),
    "chunk-size-space": post(CHUNKED, b"5 \r\nhello\r\n0\r\n\r\n"),
    "chunk-size-negative": post(CHUNKED, b"-5\r\nhello\r\n0\r\n\r\n"),
    "chunk-size-0x": post(CHUNKED, b"0x5\r\nhello\r\n0\r\n\r\n"),
    "chunk-missing-crlf": post(CHUNKED, b"5\r\nhelloXX0\r\n\r\n"),
    "chunk-bare-lf": post(CHUNKED, b"5\nhello\n0\n\n"),
    "chunk-ext-bare-lf": post(CHUNKED, b"5;a\nb\r\nhello\r\n0\r\n\r\n"),
    # ---- head syntax
    "bare-lf-head": b"GET /hello HTTP/1.1\n" + b"Host: test\n\n",
    "bare-cr-in-header": b"GET /hello HTTP/1.1\r\nHost: test\r\nX: a\rb\r\n\r\n",
    "obs-fold": b"GET /hello HTTP/1.1\r\n" + H + b"X: a\r\n b\r\n\r\n",
    "no-host": b"GET /hello HTTP/1.1\r\n\r\n",
    "two-hosts": b"GET /hello HTTP/1.1\r\n" + H + H + b"\r\n",
    "http10-no-host": b"GET /hello HTTP/1.0\r\n\r\n",
    "version-2": b"GET /hello HTTP/2.0\r\n" + H + b"\r\n",
    "version-1.2": b"GET /hello HTTP/1.2\r\n" + H + b"\r\n",
    "version-lowercase": b"GET /hello http/1.1\r\n" + H + b"\r\n",
    "version-missing": b"GET /hello\r\n" + H + b"\r\n",
    "double-space": b"GET  /hello HTTP/1.1\r\n" + H + b"\r\n",
    "nul-in-value": b"GET /hello HTTP/1.1\r\n" + H + b"X: a\x00b\r\n\r\n",
    "ctl-in-name": b"GET /hello HTTP/1.1\r\n" + H + b"X\x01Y: a\r\n\r\n",
    "space-in-name": b"GET /hello HTTP/1.1\r\n" + H + b"Foo Bar: a\r\n\r\n",
    "empty-name": b"GET /hello HTTP/1.1\r\n" + H + b": a\r\n\r\n",
    "no-colon": b"GET /hello HTTP/1.1\r\n" + H + b"NoColon\r\n\r\n",
    "lowercase-method": b"get /hello HTTP/1.1\r\n" + H + b"\r\n",
    "unknown-method": b"FOO /hello HTTP/1.1\r\n" + H + b"\r\n",
    "target-no-slash": b"GET hello HTTP/1.1\r\n" + H + b"\r\n",
    "space-in-target": b"GET /hel lo HTTP/1.1\r\n" + H + b"\r\n",
    "expect-unknown": post(b"Content-Length: 5\r\nExpect: something\r\n", b"hello"),
    "header-10k": b"GET /hello HTTP/1.1\r\n" + H + b"X: " + b"a" * 10000 + b"\r\n\r\n",
    "leading-crlf": b"\r\nGET /hello HTTP/1.1\r\n" + H + b"\r\n",
}

# Where piston and nginx differ, and why piston's answer is the right one.
DOCUMENTED = {
    # piston stricter than nginx, by design (llhttp strict, no lenient flag)
    "bare-lf-head": "RFC 9112 2.2 lets a recipient accept a bare LF as a line "
        "terminator (MAY); piston rejects it (400): a parser that accepts LF "
        "where a peer in front does not is a request-smuggling vector.",
    "chunk-bare-lf": "the same for chunk lines: the chunked grammar (RFC 9112 "
        "7.1) ends each line with CRLF; nginx accepts LF alone, piston 400.",
    "chunk-size-space": "chunk-size = 1*HEXDIG with no whitespace before the "
        "CRLF (RFC 9112 7.1); nginx tolerates '5 ', piston rejects (400). "
        "Tolerated whitespace in chunk sizes is a known smuggling vector.",
    "no-colon": "a field line without ':' is not a field-line (RFC 9112 5); "
        "nginx drops it (ignore_invalid_headers), piston rejects the request.",
    "expect-unknown": "RFC 9110 10.1.1: a server MAY answer 417 to an Expect "
        "other than 100-continue; piston does, nginx ignores the field.",
    "unknown-method": "llhttp (strict) knows a fixed table of methods; an "
        "extension method like FOO is a 400 in piston, passed on by nginx. "
        "A rejection either way for the framing; RFC 9110 9.1 would prefer "
        "501 for an unrecognised method (a limitation, not a framing risk).",
    "version-1.2": "llhttp accepts only HTTP/1.0 and 1.1 for major 1; piston "
        "answers 505 to HTTP/1.2 where nginx treats it as 1.1 (RFC 9110 2.5 "
        "would have it treated as 1.1). No client sends 1.2; rejecting an "
        "unknown minor is conservative.",
    # nginx stricter than piston
    "get-tab-ows": "Host: <TAB>test<TAB>: HTAB is optional whitespace around "
        "a field value (RFC 9110 5.6.3) and is stripped; piston accepts, "
        "nginx's own Host validation rejects the tab.",
    "header-10k": "a 10 KB field is under piston's 16 KiB default head limit "
        "and over nginx's default 8 KiB large_client_header_buffers: a "
        "configuration difference (piston answers 431 past --max-head-size).",
    "version-missing": "'GET /hello' with no HTTP-version (an HTTP/0.9 "
        "request line) followed by header lines: piston answers 400 (there is "
        "no HTTP/0.9 here); nginx answers HTTP/0.9-style and closes.",
}


@pytest.fixture(scope="module")
def servers():
    # A missing reference is an error, not a skip.
    assert os.access(d.NGINX, os.X_OK), (
        "nginx is missing: apt-get install nginx-light (see docs/reliability.md)")
    ts = util.Server(util.TESTSERVER, ["--head-timeout", "2", "--body-timeout", "2",
                                       "--idle-timeout", "5"])
    ng = d.Nginx(ts.port)
    yield ts, ng
    ng.stop()
    ts.stop_ok()


def test_framing_agrees_with_nginx_or_is_documented(servers):
    ts, ng = servers
    names = sorted(CASES)

    def both(name):
        return name, d.outcome(ts.addr, CASES[name]), d.outcome(ng.addr, CASES[name])

    with ThreadPoolExecutor(16) as ex:
        results = list(ex.map(both, names))
    diffs = {}
    table = []
    for name, (pf, pfol, prs), (nf, nfol, nrs) in results:
        p = (pf, pfol)
        n = (nf, nfol)
        table.append((name, p, n, [s for s, _ in prs], [s for s, _ in nrs]))
        if p != n:
            diffs[name] = (p, n, [s for s, _ in prs], [s for s, _ in nrs])
    py_agree = 0
    for row in table:
        py = d.python_head_verdict(CASES[row[0]])
        p_ok = "ok" if row[1][0][0] == "ok" else "reject"
        py_agree += py == p_ok
        print("%-28s piston=%-40r nginx=%-40r %r %r python-head=%s" % (row + (py,)))
    figure("differential.python_head_parser_agree", "%d/%d" % (py_agree, len(table)))
    figure("differential.cases", len(CASES))
    figure("differential.agree", len(CASES) - len(diffs))
    figure("differential.documented_disagreements", len(diffs))
    undocumented = {k: v for k, v in diffs.items() if k not in DOCUMENTED}
    stale = sorted(k for k in DOCUMENTED if k not in diffs)
    assert not undocumented, "\n".join("%s: piston %r nginx %r" % (k, v[0], v[1]) for k, v in undocumented.items())
    assert not stale, "documented disagreements that no longer occur: %r" % stale
    util.assert_serving(ts.addr)


def test_request_line_without_version_is_rejected(servers):
    ts, _ = servers
    with util.Conn(ts.addr) as c:
        c.send(b"GET /info\r\nHost: test\r\n\r\n")
        r = c.read_response()
        assert r.status in (400, 505), (r.status, r.body)
