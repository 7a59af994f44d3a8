"""HTTP/2 through the engine's servers: h2c with prior knowledge and h2 by
ALPN over TLS, with real clients (curl, nghttp, h2load) and raw frames
(Debian's python3-h2 builds and reads them, so every byte that crosses the
socket is checked): native routes and the host's handler, bodies both ways,
trailers, flow control following what the host reads, forbidden response
fields dropped, limits, and the attacks RFC 9113 servers must survive
(rapid reset, CONTINUATION and empty-frame floods, PING floods, malformed
frames), graceful stop and idle timeout."""

import os
import signal
import socket
import ssl
import subprocess
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import pytest

import util
from conftest import LIMITS


@pytest.fixture(scope="module")
def ts():
    s = util.Server(util.TESTSERVER, ["--max-body-size", "2000000", "--write-timeout", "2",
                                      "--http2", "2"])
    yield s
    s.stop_ok()


@pytest.fixture(scope="module")
def static(tmp_path_factory):
    d = tmp_path_factory.mktemp("h2static")
    (d / "f.bin").write_bytes(os.urandom(300000))
    s = util.Server(util.STATIC, ["--text", "/hello=Hello, World!", "--dir", str(d), "--h2c"])
    s.dir = str(d)
    yield s
    s.stop_ok()


class H2:
    """A raw HTTP/2 client connection: python3-h2 makes and reads the frames;
    the socket (TLS in the TLS run) is ours."""

    def __init__(self, addr, settings=None, window=None):
        self.sock = util.client_socket(addr, timeout=5)
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.c = h2.connection.H2Connection(config=cfg)
        self.c.initiate_connection()
        if settings:
            self.c.update_settings(settings)
        self.flush()
        self.events = []
        # the server's SETTINGS (its windows and limits) before any request
        self.pump(lambda ev: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in ev))

    def flush(self):
        data = self.c.data_to_send()
        if data:
            self.sock.sendall(data)

    def pump(self, until, timeout=5):
        """Reads frames until until(events) is true; returns the events."""
        deadline = time.monotonic() + timeout
        while not until(self.events):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out; events %r" % self.events[-10:])
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            except (ConnectionResetError, ssl.SSLError, OSError):
                data = b""
            if not data:
                self.events.append("EOF")
                break
            for e in self.c.receive_data(data):
                self.events.append(e)
                if isinstance(e, h2.events.DataReceived) and e.flow_controlled_length:
                    # a client that reads at once: the window goes back
                    try:
                        self.c.acknowledge_received_data(e.flow_controlled_length,
                                                         e.stream_id)
                    except h2.exceptions.StreamClosedError:
                        pass
            self.flush()
        return self.events

    def request(self, path, method="GET", headers=(), body=None, end=True):
        sid = self.c.get_next_available_stream_id()
        hs = [(":method", method), (":path", path), (":scheme", "http"),
              (":authority", "localhost")] + list(headers)
        self.c.send_headers(sid, hs, end_stream=not body and end)
        for i in range(0, len(body or b""), 16384):
            chunk = body[i:i + 16384]
            self.c.send_data(sid, chunk, end_stream=end and i + 16384 >= len(body))
        self.flush()
        return sid

    def response(self, sid, timeout=5):
        """(status, headers dict, body, trailers) of stream sid."""
        self.pump(lambda ev: any(isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset))
                                 and e.stream_id == sid for e in ev) or "EOF" in ev, timeout)
        head, body, trailers = None, b"", None
        for e in self.events:
            if getattr(e, "stream_id", None) != sid:
                continue
            if isinstance(e, h2.events.ResponseReceived):
                head = dict(e.headers)
            elif isinstance(e, h2.events.DataReceived):
                body += e.data
            elif isinstance(e, h2.events.TrailersReceived):
                trailers = dict(e.headers)
            elif isinstance(e, h2.events.StreamReset):
                return ("reset", e.error_code, body, None)
        self.flush()
        return (int(head[":status"]), head, body, trailers)

    def goaway(self):
        return [e for e in self.events if isinstance(e, h2.events.ConnectionTerminated)]

    def close(self):
        self.sock.close()


def curl(*args):
    scheme = "https" if util.TLS else "http"
    flags = ["--http2"] if util.TLS else ["--http2-prior-knowledge"]
    args = [a.replace("SCHEME", scheme) for a in args]
    return subprocess.run(["curl", "-sS", "-k", *flags, *args], capture_output=True,
                          timeout=30)


# ---- real clients -------------------------------------------------------------


def test_curl_native_routes(static):
    p = curl("-w", "\n%{http_version} %{http_code}", "SCHEME://127.0.0.1:%d/hello" % static.port)
    assert p.stdout == b"Hello, World!\n2 200"
    p = curl("SCHEME://127.0.0.1:%d/f.bin" % static.port)
    assert p.stdout == open(os.path.join(static.dir, "f.bin"), "rb").read()
    p = curl("-I", "SCHEME://127.0.0.1:%d/f.bin" % static.port)
    assert p.stdout.startswith(b"HTTP/2 200") and b"content-length: 300000" in p.stdout
    p = curl("-o", "/dev/null", "-w", "%{http_code}", "SCHEME://127.0.0.1:%d/nope" % static.port)
    assert p.stdout == b"404"


def test_nghttp_and_h2load(static, ts):
    scheme = "https" if util.TLS else "http"
    out = subprocess.run(["nghttp", "-ns", "%s://127.0.0.1:%d/hello" % (scheme, static.port),
                          "%s://127.0.0.1:%d/f.bin" % (scheme, static.port)],
                         capture_output=True, text=True, timeout=30).stdout
    assert "/hello" in out and "/f.bin" in out
    for s, path in ((static, "/hello"), (ts, "/info"), (ts, "/big-thread")):
        out = subprocess.run(["h2load", "-n", "3000", "-c", "4", "-m", "16",
                              "%s://127.0.0.1:%d%s" % (scheme, s.port, path)],
                             capture_output=True, text=True, timeout=60).stdout
        assert "3000 succeeded, 0 failed, 0 errored, 0 timeout" in out, out


# ---- exchanges through the host ------------------------------------------------------


@pytest.mark.parametrize("path", ["/echo", "/echo-thread"])
def test_request_body_echoed(ts, path):
    body = os.urandom(1500000)
    c = H2(ts.addr)
    sid = c.request(path, "POST", [("content-length", str(len(body)))], end=False)
    # send the body as the window allows
    sent = 0
    while sent < len(body):
        room = min(c.c.local_flow_control_window(sid), c.c.max_outbound_frame_size)
        if room == 0:
            c.pump(lambda ev: c.c.local_flow_control_window(sid) > 0)
            continue
        chunk = body[sent:sent + room]
        sent += len(chunk)
        c.c.send_data(sid, chunk, end_stream=sent == len(body))
        c.flush()
    st, head, got, _ = c.response(sid, timeout=20)
    assert st == 200 and got == body
    c.close()


def test_many_streams_at_once(ts):
    c = H2(ts.addr)
    sids = [c.request("/slow" if i % 2 else "/info?i=%d" % i) for i in range(60)]
    for i, sid in enumerate(sids):
        st, _, body, _ = c.response(sid, timeout=20)
        assert st == 200, (i, st)
        if i % 2 == 0:
            assert b"target=/info?i=%d " % i in body and b"version=20" in body
    c.close()


def test_trailers_500_and_reset(ts):
    c = H2(ts.addr)
    st, head, body, trailers = c.response(c.request("/trailers"))
    assert st == 200 and trailers == {"x-checksum": "abc"}
    st, head, body, _ = c.response(c.request("/throw"))
    assert st == 500 and body == b"Internal Server Error\n"
    r = c.response(c.request("/abort-mid"))
    assert r[0] == "reset"  # mid-body: the stream, not the connection
    st, _, _, _ = c.response(c.request("/hello"))
    assert st == 200  # the connection goes on
    c.close()


def test_forbidden_response_fields_dropped(ts):
    c = H2(ts.addr)
    st, head, body, _ = c.response(c.request("/hop-headers"))
    assert st == 200 and head["x-kept"] == "yes" and body == b"hop\n"
    for name in ("connection", "keep-alive", "upgrade", "proxy-connection",
                 "transfer-encoding"):
        assert name not in head
    c.close()


def test_window_follows_what_the_host_reads(ts):
    """/never holds the request without reading its body: the client can
    send one window (the body high-water mark) and no WINDOW_UPDATE comes;
    /echo reads, and the window is given back."""
    c = H2(ts.addr)
    sid = c.request("/never", "POST", [("content-length", "2000000")], b"", end=False)
    sent = 0
    while c.c.local_flow_control_window(sid) > 0:
        n = min(c.c.local_flow_control_window(sid), 16384)
        c.c.send_data(sid, b"x" * n)
        sent += n
    c.flush()
    with pytest.raises(AssertionError):
        c.pump(lambda ev: c.c.local_flow_control_window(sid) > 0, timeout=1)
    assert sent == 256 * 1024  # the default BODY_HIGH_WATER
    sid2 = c.request("/echo", "POST", body=b"y" * 100000)
    st, _, got, _ = c.response(sid2)
    assert st == 200 and got == b"y" * 100000
    c.close()


def test_zero_window_held_times_out(ts):
    """A client that never opens its window for a response it asked for is
    cut after the write timeout (2 s here), as a client that does not read
    is on HTTP/1.1; the server goes on serving."""
    c = H2(ts.addr, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    c.request("/sendfile")
    t0 = time.monotonic()
    c.pump(lambda ev: "EOF" in ev, timeout=8)
    assert 1.5 < time.monotonic() - t0 < 6
    d = H2(ts.addr)
    assert d.response(d.request("/hello"))[0] == 200
    d.close()


# ---- limits ---------------------------------------------------------------------------


def test_limits_answered_per_stream(server):
    s = server(util.TESTSERVER, ["--max-url-size", "100", "--max-head-size", "2000",
                                 "--max-body-size", "1000", "--max-headers", "10",
                                 "--http2", "2"])
    c = H2(s.addr)
    assert c.response(c.request("/info?" + "a" * 200))[0] == 414
    assert c.response(c.request("/info", headers=[("x-big", "v" * 3000)]))[0] in (431, "reset")
    assert c.response(c.request("/info", headers=[("x-%d" % i, "v") for i in range(12)]))[0] == 431
    assert c.response(c.request("/echo", "POST", [("content-length", "5000")], b"z" * 5000))[0] == 413
    assert c.response(c.request("/hello"))[0] == 200
    c.close()


def test_max_concurrent_streams(ts):
    c = H2(ts.addr)
    assert c.c.remote_settings.max_concurrent_streams == 100
    c.close()


# ---- attacks ----------------------------------------------------------------------------


def raw_frame(ftype, flags, sid, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + payload


def test_rapid_reset_gets_goaway(ts):
    c = H2(ts.addr)
    for _ in range(400):
        sid = c.request("/slow")
        c.c.reset_stream(sid)
    c.flush()
    c.pump(lambda ev: c.goaway() or "EOF" in ev, timeout=10)
    gone = c.goaway()
    assert gone and gone[0].error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    c.close()
    d = H2(ts.addr)
    assert d.response(d.request("/hello"))[0] == 200
    d.close()


def test_continuation_flood_is_cut(ts):
    c = H2(ts.addr)
    enc = c.c.encoder.encode([(":method", "GET"), (":path", "/hello"), (":scheme", "http"),
                              (":authority", "x")])
    data = raw_frame(0x1, 0x0, 1, enc)  # HEADERS without END_HEADERS
    data += raw_frame(0x9, 0x0, 1, b"") * 2000  # empty CONTINUATIONs
    try:
        c.sock.sendall(data)
    except OSError:
        pass
    c.pump(lambda ev: c.goaway() or "EOF" in ev, timeout=10)
    c.close()
    d = H2(ts.addr)
    assert d.response(d.request("/hello"))[0] == 200
    d.close()


def test_empty_data_flood_gets_goaway(ts):
    c = H2(ts.addr)
    sid = c.request("/never", "POST", body=b"", end=False)
    data = raw_frame(0x0, 0x0, sid, b"") * 1000
    c.sock.sendall(data)
    c.pump(lambda ev: c.goaway() or "EOF" in ev, timeout=10)
    gone = c.goaway()
    assert gone and gone[0].error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    c.close()


def test_ping_flood_without_reading(ts):
    """PINGs whose acknowledgements are never read: nghttp2 stops at its
    bound of queued acknowledgements and the connection ends; the server
    does not buffer without limit."""
    before = ts.rss_kb()
    sock = util.client_socket(ts.addr, timeout=5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + raw_frame(0x4, 0, 0)
    sock.sendall(preface)
    ping = raw_frame(0x6, 0, 0, b"12345678")
    sent = 0
    try:
        sock.settimeout(2)
        for _ in range(200):
            sock.sendall(ping * 100)
            sent += 100
    except OSError:
        pass  # the server closed, or stopped reading: both are bounded
    assert ts.rss_kb() - before < 32 * 1024  # 20,000 PINGs cost no more
    sock.close()
    d = H2(ts.addr)
    assert d.response(d.request("/hello"))[0] == 200
    d.close()


@pytest.mark.parametrize("bad", [
    raw_frame(0x4, 0, 1, b""),              # SETTINGS on a stream
    raw_frame(0x0, 0, 0, b"x"),             # DATA on stream 0
    raw_frame(0x1, 0x4, 2, b"\x82"),        # HEADERS on an even stream id
    b"\x00\x40\x01" + bytes([0, 0]) + (1).to_bytes(4, "big") + b"x" * 16385,  # too large
    raw_frame(0x8, 0, 0, b"\x00\x00\x00\x00"),  # WINDOW_UPDATE of 0 on the connection
])
def test_malformed_frames_get_goaway(ts, bad):
    c = H2(ts.addr)
    try:
        c.sock.sendall(bad)
    except OSError:
        pass
    # python3-h2 itself may refuse to parse what follows; the server's
    # answer is a GOAWAY (then the close), read off the socket
    raw = b""
    c.sock.settimeout(5)
    try:
        while True:
            chunk = c.sock.recv(65536)
            if not chunk:
                break
            raw += chunk
    except (socket.timeout, OSError):
        pass
    assert b"\x07\x00\x00\x00\x00\x00" in raw  # a GOAWAY frame header (type 7, stream 0)
    c.close()


def test_bad_preface_closes(ts):
    sock = util.client_socket(ts.addr, timeout=5)
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
    data = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    assert b"HTTP/1.1 200" not in data
    sock.close()


# ---- the connection's life ------------------------------------------------------------


def test_idle_timeout_goaway(server):
    s = server(util.TESTSERVER, ["--idle-timeout", "0.5", "--http2", "2"])
    c = H2(s.addr)
    assert c.response(c.request("/hello"))[0] == 200
    t0 = time.monotonic()
    c.pump(lambda ev: "EOF" in ev, timeout=5)
    assert c.goaway() and 0.3 < time.monotonic() - t0 < 3


def test_graceful_stop_finishes_streams(server):
    """SIGTERM with a stream in flight: GOAWAY, the stream still answered
    (curl: python3-h2 drops streams after any GOAWAY), then exit 0."""
    s = server(util.TESTSERVER, ["--http2", "2"])
    scheme = "https" if util.TLS else "http"
    p = subprocess.Popen(["curl", "-sS", "-k", "--http2" if util.TLS else "--http2-prior-knowledge",
                          "-w", "\n%{http_code}", "%s://127.0.0.1:%d/slow" % (scheme, s.port)],
                         stdout=subprocess.PIPE)
    time.sleep(0.3)
    s.proc.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=15)
    assert out.endswith(b"\n200") and len(out) > 4
    assert s.proc.wait(10) == 0


def test_http1_still_served_beside(ts):
    r = util.get(ts.addr, "/hello")
    assert r.status == 200


def test_h2c_only_when_asked_for(server):
    """Without --h2c (PISTON_OPT_HTTP2 2) the preface is an HTTP/1.1
    request like any other, answered 505 and closed; HTTP/2 over
    TLS (ALPN) stays on by default."""
    s = server(util.TESTSERVER, [])
    with util.Conn(s.addr) as c:
        c.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        data = c.read_to_eof()
    assert data.startswith(b"HTTP/1.1 505 HTTP Version Not Supported\r\n"), data[:80]


# ---- 1xx on streams --------------------------------------------------------------


def interim(c, sid):
    """The informational heads stream sid got, in order."""
    return [dict(e.headers) for e in c.events
            if isinstance(e, h2.events.InformationalResponseReceived) and e.stream_id == sid]


def send_last(c, sid, data):
    """Ends stream sid's body with data; its status and response body."""
    c.c.send_data(sid, data, end_stream=True)
    c.flush()
    st, _, body, _ = c.response(sid)
    return st, body


def test_early_hints_on_a_stream(ts):
    """piston_resp_inform on a stream: a HEADERS frame with :status 103 and
    its Link, without END_STREAM, before the final response."""
    c = H2(ts.addr)
    sid = c.request("/early-hints")
    st, head, body, _ = c.response(sid)
    assert (st, body) == (200, b"after the hints")
    assert interim(c, sid) == [{":status": "103", "link": "</style.css>; rel=preload; as=style"}]
    kinds = [type(e).__name__ for e in c.events if getattr(e, "stream_id", None) == sid]
    assert kinds.index("InformationalResponseReceived") < kinds.index("ResponseReceived")
    c.close()
    p = curl("-v", "SCHEME://127.0.0.1:%d/early-hints" % ts.port)
    assert p.stdout == b"after the hints"
    err = p.stderr.decode()
    assert "< HTTP/2 103" in err and "< link: </style.css>; rel=preload; as=style" in err
    assert err.index("< HTTP/2 103") < err.index("< HTTP/2 200")


@pytest.mark.parametrize("path", ["/echo", "/echo-thread"])
def test_expect_100_continue_on_a_stream(ts, path):
    """Expect: 100-continue as on HTTP/1.1: the host's first read of the
    body sends the 100 (a HEADERS frame), and only then does the client send
    the body; the loop's and another thread's reads alike."""
    c = H2(ts.addr)
    sid = c.request(path, "POST", [("content-length", "5"), ("expect", "100-continue")],
                    body=None, end=False)
    c.pump(lambda ev: interim(c, sid))
    assert interim(c, sid) == [{":status": "100"}]
    assert not any(isinstance(e, h2.events.ResponseReceived) for e in c.events)
    assert send_last(c, sid, b"hello") == (200, b"hello")
    c.close()


def test_expectation_other_than_100_continue_is_417(ts):
    c = H2(ts.addr)
    sid = c.request("/echo", "POST", [("content-length", "5"), ("expect", "fly")], b"hello")
    assert c.response(sid)[0] == 417
    assert c.response(c.request("/hello"))[0] == 200
    c.close()


def test_no_100_when_the_host_answers_without_reading(ts):
    c = H2(ts.addr)
    sid = c.request("/hello", headers=[("content-length", "5"), ("expect", "100-continue")],
                    end=False)
    st, _, body, _ = c.response(sid)
    assert (st, body) == (200, b"Hello, World!") and interim(c, sid) == []
    c.close()


# ---- HTTP/1.1's Upgrade: h2c -------------------------------------------------------------


def upgrade_request(path="/info", method="GET", extra=b"", settings=None):
    cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    c = h2.connection.H2Connection(config=cfg)
    value = settings if settings is not None else c.initiate_upgrade_connection()
    raw = (b"%s %s HTTP/1.1\r\nHost: upgrade.test\r\nConnection: Upgrade, HTTP2-Settings\r\n"
           b"Upgrade: h2c\r\nHTTP2-Settings: %s\r\n%s\r\n"
           % (method.encode(), path.encode(), value if isinstance(value, bytes)
              else value.encode(), extra))
    return c, raw


SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"


def test_upgrade_h2c_answers_on_stream_1(ts):
    """RFC 7540 3.2, raw bytes: the exact 101, then the server's SETTINGS;
    the request that asked is stream 1, answered there after the client's
    preface; more streams follow on the same connection. Over TLS an
    Upgrade: h2c is ignored (h2 is ALPN's there): an HTTP/1.1 answer."""
    c, raw = upgrade_request("/info?u=1")
    with util.Conn(ts.addr) as conn:
        conn.send(raw)
        if util.TLS:
            r = conn.read_response()
            assert r.status == 200 and b"version=11" in r.body
            return
        got = conn.read_until(b"\r\n\r\n")
        assert got == SWITCHING
        conn.send(c.data_to_send())  # the preface, sent once the 101 came
        events, body, headers = [], b"", None
        deadline = time.monotonic() + 5
        data, conn.buf = conn.buf, b""  # what came behind the 101
        while not any(isinstance(e, h2.events.StreamEnded) and e.stream_id == 1 for e in events):
            assert time.monotonic() < deadline, events
            data = data or conn.sock.recv(65536)
            assert data, events
            for e in c.receive_data(data):
                events.append(e)
                if isinstance(e, h2.events.ResponseReceived):
                    headers = dict(e.headers)
                elif isinstance(e, h2.events.DataReceived):
                    body += e.data
            data = b""
            conn.send(c.data_to_send())
        assert isinstance(events[0], h2.events.RemoteSettingsChanged)
        assert headers[":status"] == "200"
        assert b"target=/info?u=1 " in body and b"version=20" in body and b"cl=0" in body
        # the connection is HTTP/2's from now on
        sid = c.get_next_available_stream_id()
        assert sid == 3
        c.send_headers(sid, [(":method", "GET"), (":path", "/hello"), (":scheme", "http"),
                             (":authority", "x")], end_stream=True)
        conn.send(c.data_to_send())
        body = b""
        while True:
            data = conn.sock.recv(65536)
            assert data
            evs = c.receive_data(data)
            body += b"".join(e.data for e in evs if isinstance(e, h2.events.DataReceived))
            if any(isinstance(e, h2.events.StreamEnded) for e in evs):
                break
        assert body == b"Hello, World!"


def test_upgrade_h2c_with_curl(ts):
    """curl --http2 on an http:// URL asks for the upgrade; a HEAD is
    upgraded too (no body on stream 1). Over TLS the same fields in an
    HTTP/1.1 request change nothing."""
    if util.TLS:
        p = subprocess.run(["curl", "-sS", "-k", "--http1.1", "-w", "\n%{http_version}",
                            "-H", "Connection: Upgrade, HTTP2-Settings", "-H", "Upgrade: h2c",
                            "-H", "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA",
                            "https://127.0.0.1:%d/info" % ts.port], capture_output=True, timeout=30)
        body, _, version = p.stdout.rpartition(b"\n")
        assert version == b"1.1" and b"version=11" in body
        return
    p = subprocess.run(["curl", "-sS", "--http2", "-w", "\n%{http_version}",
                        "http://127.0.0.1:%d/info" % ts.port], capture_output=True, timeout=30)
    body, _, version = p.stdout.rpartition(b"\n")
    assert version == b"2" and b"version=20" in body and b"target=/info " in body
    p = subprocess.run(["curl", "-sS", "--http2", "-I", "http://127.0.0.1:%d/f" % ts.port],
                       capture_output=True, timeout=30)
    assert p.stdout.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"\r\n\r\nHTTP/2 " in p.stdout


def test_upgrade_h2c_with_a_body_stays_http1(ts):
    """A request with a body is answered on HTTP/1.1 (the upgrade ignored),
    and the connection goes on as HTTP/1.1."""
    c, raw = upgrade_request("/echo", "POST", b"Content-Length: 5\r\n")
    with util.Conn(ts.addr) as conn:
        conn.send(raw + b"hello")
        r = conn.read_response()
        assert (r.status, r.body) == (200, b"hello") and r.raw.startswith(b"HTTP/1.1 200")
        conn.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        r = conn.read_response()
        assert (r.status, r.body) == (200, b"Hello, World!")


@pytest.mark.parametrize("settings", [b"!!!!", b"AAM"])  # not base64url; not 6-byte entries
def test_upgrade_h2c_bad_settings_stays_http1(ts, settings):
    c, raw = upgrade_request("/hello", settings=settings)
    with util.Conn(ts.addr) as conn:
        conn.send(raw)
        r = conn.read_response()
        assert (r.status, r.body) == (200, b"Hello, World!") and r.raw.startswith(b"HTTP/1.1")


def test_upgrade_h2c_when_h2c_is_off(server):
    """Without h2c an Upgrade: h2c request is an ordinary HTTP/1.1 one, and
    the connection serves the next request as usual."""
    s = server(util.TESTSERVER, [])
    c, raw = upgrade_request("/info")
    with util.Conn(s.addr) as conn:
        conn.send(raw)
        r = conn.read_response()
        assert r.status == 200 and b"version=11" in r.body
        assert r.raw.startswith(b"HTTP/1.1 200")
        conn.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        r = conn.read_response()
        assert (r.status, r.body) == (200, b"Hello, World!")


# ---- per-stream timeouts -----------------------------------------------------------------


@pytest.fixture(scope="module")
def tts():
    s = util.Server(util.TESTSERVER, ["--http2", "2", "--body-timeout", "1",
                                      "--handler-timeout", "1", "--idle-timeout", "10",
                                      "--write-timeout", "5"])
    yield s
    s.stop_ok()


def stream_events(c, sid):
    return [e for e in c.events if getattr(e, "stream_id", None) == sid]


def test_stalled_body_gets_408_then_reset(tts):
    """A stream whose body stops coming: after the body timeout the engine
    answers 408 (no response had started), then resets the stream with
    NO_ERROR (it waits for the rest no longer: the slot is free), while the
    connection and its other streams go on."""
    c = H2(tts.addr)
    sid = c.request("/echo", "POST", [("content-length", "100")], b"x" * 10, end=False)
    t0 = time.monotonic()
    c.pump(lambda ev: any(isinstance(e, h2.events.StreamReset) and e.stream_id == sid
                          for e in ev), timeout=8)
    took = time.monotonic() - t0
    assert 0.8 < took < 5, took
    evs = stream_events(c, sid)
    head = [dict(e.headers) for e in evs if isinstance(e, h2.events.ResponseReceived)]
    assert head and head[0][":status"] == "408"
    body = b"".join(e.data for e in evs if isinstance(e, h2.events.DataReceived))
    assert body == b"Request Timeout\n"
    reset = [e for e in evs if isinstance(e, h2.events.StreamReset)]
    assert reset[0].error_code == h2.errors.ErrorCodes.NO_ERROR
    assert c.response(c.request("/hello"))[0] == 200
    assert not c.goaway()
    c.close()


def test_body_arriving_slowly_is_not_cut(tts):
    """The body timeout bounds a stretch without progress, not the upload."""
    c = H2(tts.addr)
    sid = c.request("/echo", "POST", [("content-length", "6")], b"a", end=False)
    for ch in b"bcde":
        time.sleep(0.5)
        c.c.send_data(sid, bytes([ch]))
        c.flush()
    time.sleep(0.5)
    assert send_last(c, sid, b"f") == (200, b"abcdef")
    c.close()


def test_handler_that_never_answers_gets_503(tts):
    """The handler timeout per stream: the 503 HTTP/1.1 gets, on the stream;
    the connection goes on, and a stream answered in time is not touched."""
    c = H2(tts.addr)
    t0 = time.monotonic()
    slow = c.request("/slow")  # answered after 200 ms
    sid = c.request("/never")
    st, head, body, _ = c.response(sid, timeout=8)
    assert 0.8 < time.monotonic() - t0 < 5
    assert (st, body) == (503, b"Service Unavailable\n")
    assert c.response(slow)[0] == 200
    assert c.response(c.request("/hello"))[0] == 200
    c.close()


def test_handler_timeout_while_client_waits_for_100(tts):
    """A client that waits for 100 Continue while the host never reads:
    the wait is on the host, so the handler timeout answers, not the body
    timeout."""
    c = H2(tts.addr)
    sid = c.request("/never", "POST", [("content-length", "5"), ("expect", "100-continue")],
                    end=False)
    c.pump(lambda ev: any(isinstance(e, h2.events.StreamReset) for e in ev), timeout=8)
    evs = stream_events(c, sid)
    head = [dict(e.headers) for e in evs if isinstance(e, h2.events.ResponseReceived)]
    assert head[0][":status"] == "503" and interim(c, sid) == []
    body = b"".join(e.data for e in evs if isinstance(e, h2.events.DataReceived))
    assert body == b"Service Unavailable\n"
    # the body will not be read: the stream ends, without error
    assert [e.error_code for e in evs if isinstance(e, h2.events.StreamReset)] == [0]
    c.close()


def test_upgrade_h2c_stream_1_ends_and_frees_its_slot(ts):
    """Stream 1 of an upgrade ends like any stream once answered: with the
    client's FIN after its answer the connection closes at once (it held
    the stream, and waited for the idle timeout, when stream 1 kept no
    handle)."""
    if util.TLS:
        return  # over TLS the request stays HTTP/1.1 (test_upgrade_h2c_answers_on_stream_1)
    c, raw = upgrade_request("/hello")
    with util.Conn(ts.addr) as conn:
        conn.send(raw)
        assert conn.read_until(b"\r\n\r\n") == SWITCHING
        conn.send(c.data_to_send())
        time.sleep(0.3)
        conn.sock.shutdown(socket.SHUT_WR)
        t0 = time.monotonic()
        got = conn.read_to_eof()  # (with what came behind the 101)
        assert time.monotonic() - t0 < 2
        events = c.receive_data(got)
        assert [dict(e.headers)[":status"] for e in events
                if isinstance(e, h2.events.ResponseReceived)] == ["200"]
