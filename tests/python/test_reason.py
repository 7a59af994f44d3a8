"""The app's reason phrase (PEP 3333 status "NNN Reason") on the wire:
"200 Fine" -> "HTTP/1.1 200 Fine", on every response path (one body
element, streamed, write(), file_wrapper); statuses PEP 3333 rules out are
the app's error (500)."""
import re

import pytest

from conftest import Reader, connect, recv_all, request


def raw_head(port, path, method="GET"):
    """The raw response head (bytes up to the blank line) and the Reader's
    parse of the response."""
    s = connect(port)
    try:
        s.sendall(b"%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                  % (method.encode(), path.encode()))
        rd = Reader(s)
        while b"\r\n\r\n" not in rd.buf:
            rd._more()
        head = rd.buf[:rd.buf.index(b"\r\n\r\n") + 2]
        return head, (rd.response(head=method == "HEAD") if b"\xe9" not in head else None)
    finally:
        s.close()


@pytest.mark.parametrize("path,line,body", [
    ("/reason/list", b"HTTP/1.1 200 Fine\r\n", b"fine body"),
    ("/reason/list-len", b"HTTP/1.1 200 Fine\r\n", b"with length"),
    ("/reason/stream", b"HTTP/1.1 201 Made It\r\n", b"abc"),
    ("/reason/write", b"HTTP/1.1 202 Taken Up\r\n", b"wr"),
    ("/reason/standard", b"HTTP/1.1 404 Not Found\r\n", b"std"),
    ("/reason/other-phrase", b"HTTP/1.1 413 Request Entity Too Large\r\n", b"big"),
    ("/reason/unknown-code", b"HTTP/1.1 299 Odd But Fine\r\n", b"odd"),
])
def test_reason_phrase_on_the_wire(piston_app, path, line, body):
    head, r = raw_head(piston_app.port, path)
    assert head.startswith(line), head
    assert r.body == body


def test_one_body_element_gets_content_length(piston_app):
    head, r = raw_head(piston_app.port, "/reason/list")
    assert r.header("Content-Length") == "9"
    assert r.header("Transfer-Encoding") is None
    # the app's own Content-Length is kept, once
    head, r = raw_head(piston_app.port, "/reason/list-len")
    assert head.lower().count(b"content-length") == 1
    assert r.header("Content-Length") == "11"


def exact_response(port, path, method="GET"):
    """The raw bytes of one response on a closing connection, Date masked."""
    s = connect(port)
    try:
        s.sendall(b"%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                  % (method.encode(), path.encode()))
        raw = recv_all(s)
    finally:
        s.close()
    return re.sub(rb"\r\nDate: [^\r\n]*\r\n", b"\r\nDate: DATE\r\n", raw, count=1)


@pytest.mark.parametrize("method,path,raw", [
    ("GET", "/reason/list",
     b"HTTP/1.1 200 Fine\r\nDate: DATE\r\nContent-Type: text/plain\r\n"
     b"Content-Length: 9\r\nConnection: close\r\n\r\nfine body"),
    ("HEAD", "/reason/list",
     b"HTTP/1.1 200 Fine\r\nDate: DATE\r\nContent-Type: text/plain\r\n"
     b"Content-Length: 9\r\nConnection: close\r\n\r\n"),
    ("GET", "/reason/list-len",
     b"HTTP/1.1 200 Fine\r\nDate: DATE\r\nContent-Type: text/plain\r\n"
     b"Content-Length: 11\r\nConnection: close\r\n\r\nwith length"),
    ("GET", "/reason/list-len-first",
     b"HTTP/1.1 200 Fine\r\nDate: DATE\r\nContent-Length: 4\r\nX-B: 2\r\n"
     b"Connection: close\r\n\r\nfour"),
    ("GET", "/reason/empty-list",
     b"HTTP/1.1 204 Nothing Here\r\nDate: DATE\r\nX-A: 1\r\n"
     b"Connection: close\r\n\r\n"),
    ("GET", "/reason/not-modified",
     b"HTTP/1.1 304 Same Old\r\nDate: DATE\r\nETag: \"v1\"\r\n"
     b"Content-Length: 0\r\nConnection: close\r\n\r\n"),
    ("GET", "/ok",
     b"HTTP/1.1 200 OK\r\nDate: DATE\r\nContent-Type: text/plain\r\n"
     b"Content-Length: 2\r\nConnection: close\r\n\r\nok"),
])
def test_one_body_element_exact_bytes(piston_app, method, path, raw):
    """A one-element body goes out in one engine call that adds the
    Content-Length (piston_resp_send_reason): where the app gave one it keeps
    its place, otherwise it follows the app's headers."""
    assert exact_response(piston_app.port, path, method) == raw


def test_streamed_body_is_chunked(piston_app):
    head, r = raw_head(piston_app.port, "/reason/stream")
    assert r.header("Transfer-Encoding") == "chunked"


def test_file_wrapper(piston_app):
    head, r = raw_head(piston_app.port, "/reason/file")
    assert head.startswith(b"HTTP/1.1 203 From A File\r\n")
    assert len(r.body) == int(r.header("Content-Length")) > 0


def test_latin1_reason(piston_app):
    head, _ = raw_head(piston_app.port, "/reason/latin1")
    assert head.startswith(b"HTTP/1.1 200 Caf\xe9 Cr\xe8me\r\n")


def test_head_and_204(piston_app):
    head, r = raw_head(piston_app.port, "/reason/list", "HEAD")
    assert head.startswith(b"HTTP/1.1 200 Fine\r\n")
    assert r.header("Content-Length") == "9"
    head, r = raw_head(piston_app.port, "/reason/empty")
    assert head.startswith(b"HTTP/1.1 204 Nothing Here\r\n")


def test_keep_alive_after_a_custom_reason(piston_app):
    s = connect(piston_app.port)
    try:
        s.sendall(b"GET /reason/list HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /reason/stream HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        rd = Reader(s)
        got = [rd.response() for _ in range(3)]
    finally:
        s.close()
    assert [(r.status, r.reason, r.body) for r in got] == [
        (200, "Fine", b"fine body"), (201, "Made It", b"abc"), (200, "OK", b"ok")]


@pytest.mark.parametrize("what", ["trailing-space", "two-spaces", "no-reason", "empty-reason",
                                  "crlf", "control", "not-latin1", "digits"])
def test_bad_status_is_the_apps_error(piston_app, what):
    head, r = raw_head(piston_app.port, "/bad-reason/" + what)
    assert head.startswith(b"HTTP/1.1 500 "), head
    assert b"Injected" not in head
    assert request(piston_app.port, path="/ok").body == b"ok"


def test_parse_status():
    from piston.wsgi import parse_status
    assert parse_status("200 OK") == (200, None)  # the engine's phrase: one-call send
    assert parse_status("200 Fine") == (200, "Fine")
    assert parse_status("413 Request Entity Too Large") == (413, "Request Entity Too Large")
    assert parse_status("299 X\tY") == (299, "X\tY")
    for bad in ["200", "200 ", "200  OK", "200 OK ", " 200 OK", "2x0 OK", "\u00b200 OK",
                "200 a\r\nb", "200 a\x7fb", "200 \u20ac", "100 Continue", "099 Low"]:
        with pytest.raises(ValueError):
            parse_status(bad)
    with pytest.raises(TypeError):
        parse_status(b"200 OK")
