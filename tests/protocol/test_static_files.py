"""piston-static --dir: files with validators, conditional requests,
single ranges, and no escape from the mounted directory."""

import email.utils
import os
import re

import pytest

import util
from conftest import LIMITS, finish, start
from util import Conn, pattern

HELLO = b"hello file\n"
DATA_LEN = 100000
BIG_LEN = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("static")
    pub = root / "public"
    (pub / "sub").mkdir(parents=True)
    (pub / "hello.txt").write_bytes(HELLO)
    (pub / "page.html").write_bytes(b"<h1>hi</h1>\n")
    (pub / "data.bin").write_bytes(pattern(0, DATA_LEN))
    (pub / "big.bin").write_bytes(pattern(3, BIG_LEN))
    (pub / "sub" / "inner.txt").write_bytes(b"inner\n")
    (pub / "empty.txt").write_bytes(b"")
    (root / "secret.txt").write_bytes(b"TOP SECRET\n")
    os.symlink(root / "secret.txt", pub / "escape.txt")
    os.symlink(root, pub / "escape-dir")
    os.utime(pub / "hello.txt", (1_600_000_000, 1_600_000_000))
    return pub


@pytest.fixture(scope="module")
def fs(files):
    s = start(util.STATIC, ["--dir", str(files)] + LIMITS)
    yield s
    finish(s)


def fetch(srv, target, headers=(), method="GET"):
    with Conn(srv.addr) as c:
        c.send(util.request(method, target, headers=headers))
        return c.read_response(head_request=(method == "HEAD"))


def test_file_200(fs):
    r = fetch(fs, "/hello.txt")
    assert r.status == 200 and r.body == HELLO
    r.masked()
    assert r.header("Content-Type").startswith("text/plain")
    assert r.header("Content-Length") == str(len(HELLO))
    assert r.header("Transfer-Encoding") is None
    assert r.header("Last-Modified") == email.utils.formatdate(1_600_000_000, usegmt=True)
    etag = r.header("ETag")
    assert etag and re.fullmatch(r'(W/)?"[^"]+"', etag), etag


def test_file_head(fs):
    r = fetch(fs, "/data.bin", method="HEAD")
    assert r.status == 200 and r.header("Content-Length") == str(DATA_LEN)
    assert r.body == b""


def test_mime_types(fs):
    assert fetch(fs, "/page.html").header("Content-Type").startswith("text/html")


def test_subdir_and_empty_file(fs):
    r = fetch(fs, "/sub/inner.txt")
    assert (r.status, r.body) == (200, b"inner\n")
    r = fetch(fs, "/empty.txt")
    assert (r.status, r.body, r.header("Content-Length")) == (200, b"", "0")


def test_big_file(fs):
    with Conn(fs.addr, timeout=20) as c:
        c.send(util.request("GET", "/big.bin"))
        r = c.read_response()
        assert r.status == 200 and len(r.body) == BIG_LEN
        assert r.body == pattern(3, BIG_LEN)
        # keep-alive after a sendfile body
        c.send(util.request("GET", "/hello.txt"))
        assert c.read_response().body == HELLO


def test_etag_stable_and_304(fs):
    r1 = fetch(fs, "/hello.txt")
    etag = r1.header("ETag")
    assert fetch(fs, "/hello.txt").header("ETag") == etag
    with Conn(fs.addr) as c:
        c.send(util.request("GET", "/hello.txt", headers=[("If-None-Match", etag)]))
        r = c.read_response()
        assert r.status == 304 and r.body == b""
        assert r.header("ETag") == etag
        assert r.header("Transfer-Encoding") is None
        r.masked()
        # No stray body bytes: the connection stays in sync.
        c.send(util.request("GET", "/hello.txt", headers=[("If-None-Match", '"other", ' + etag)]))
        assert c.read_response().status == 304
        c.send(util.request("GET", "/hello.txt", headers=[("If-None-Match", '"nope"')]))
        r = c.read_response()
        assert (r.status, r.body) == (200, HELLO)
        c.send(util.request("GET", "/hello.txt", headers=[("If-None-Match", "*")]))
        assert c.read_response().status == 304


def test_if_modified_since(fs):
    lm = fetch(fs, "/hello.txt").header("Last-Modified")
    assert fetch(fs, "/hello.txt", [("If-Modified-Since", lm)]).status == 304
    later = email.utils.formatdate(1_700_000_000, usegmt=True)
    assert fetch(fs, "/hello.txt", [("If-Modified-Since", later)]).status == 304
    earlier = email.utils.formatdate(1_500_000_000, usegmt=True)
    r = fetch(fs, "/hello.txt", [("If-Modified-Since", earlier)])
    assert (r.status, r.body) == (200, HELLO)


def test_range_206(fs):
    data = pattern(0, DATA_LEN)
    cases = [
        ("bytes=2-5", 2, 5),
        ("bytes=0-0", 0, 0),
        ("bytes=99990-", 99990, DATA_LEN - 1),
        ("bytes=-10", DATA_LEN - 10, DATA_LEN - 1),
        ("bytes=99990-200000", 99990, DATA_LEN - 1),
    ]
    with Conn(fs.addr) as c:
        for rng, first, last in cases:
            c.send(util.request("GET", "/data.bin", headers=[("Range", rng)]))
            r = c.read_response()
            assert r.status == 206 and r.reason == "Partial Content", rng
            assert r.header("Content-Range") == "bytes %d-%d/%d" % (first, last, DATA_LEN)
            assert r.header("Content-Length") == str(last - first + 1)
            assert r.body == data[first:last + 1], rng


def test_range_416(fs):
    for rng in ("bytes=100000-100010", "bytes=200000-"):
        with Conn(fs.addr) as c:
            c.send(util.request("GET", "/data.bin", headers=[("Range", rng)]))
            r = c.read_response()
            assert r.status == 416, rng
            assert r.reason in util.ALT_REASONS[416]
            assert r.header("Content-Range") == "bytes */%d" % DATA_LEN


def test_range_ignored_when_not_bytes(fs):
    r = fetch(fs, "/hello.txt", [("Range", "lines=1-2")])
    assert (r.status, r.body) == (200, HELLO)


ESCAPES = [
    "/../secret.txt",
    "/sub/../../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E/secret.txt",
    "/sub/%2e%2e/%2e%2e/secret.txt",
    "/..%2fsecret.txt",
    "/sub/..%2f..%2fsecret.txt",
    "/escape.txt",
    "/escape-dir/secret.txt",
    "/missing.txt",
]


@pytest.mark.parametrize("target", ESCAPES)
def test_no_escape(fs, target):
    with Conn(fs.addr) as c:
        c.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % target.encode())
        r = c.read_response()
        assert r.status == 404, (target, r.status)
        assert b"SECRET" not in r.body
    util.assert_serving_path(fs.addr, "/hello.txt", HELLO)
