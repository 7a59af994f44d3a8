"""Behind proxies: trusted X-Forwarded-* / Forwarded fields and the PROXY
protocol (v1 and v2), through the C test server, in raw bytes. The
endpoint /client answers what the engine reports: the client's address and
port (piston_req_remote_addr), whether its scheme is https
(piston_req_secure) and the host and port a proxy was asked for
(piston_req_forwarded_host)."""
import socket
import struct
import time

import pytest

import util


def client_line(conn, target="/client", headers=()):
    conn.send(util.request("GET", target, headers))
    r = conn.read_response()
    assert r.status == 200, r
    return r.body.decode()


def ask(addr, headers=(), target="/client"):
    with util.Conn(addr) as c:
        return client_line(c, target, headers)


# ---- trusted forwarding fields ----------------------------------------------

def test_x_forwarded_from_the_default_trusted_proxy(ts):
    # the default list is 127.0.0.1 (uvicorn's and gunicorn's)
    body = ask(ts.addr, [("X-Forwarded-For", "203.0.113.7"),
                         ("X-Forwarded-Proto", "https"),
                         ("X-Forwarded-Host", "example.com"),
                         ("X-Forwarded-Port", "8443")])
    assert body == "remote=203.0.113.7:0 secure=1 host=example.com:8443\n"


def test_without_fields_the_peer_stays(ts):
    body = ask(ts.addr)
    assert body.startswith("remote=127.0.0.1:")
    assert body.endswith(" secure=%d host=:0\n" % (1 if util.TLS else 0))


def test_rightmost_untrusted_hop_is_the_client(server):
    s = server(util.TESTSERVER, ["--forwarded-allow-ips", "127.0.0.1,10.0.0.0/8"])
    xff = [("X-Forwarded-For", "198.51.100.1, 192.0.2.9, 10.1.2.3")]
    assert ask(s.addr, xff).startswith("remote=192.0.2.9:0 ")
    # several fields are one list, in order
    two = [("X-Forwarded-For", "198.51.100.1"), ("X-Forwarded-For", "10.0.0.1, 10.0.0.2")]
    assert ask(s.addr, two).startswith("remote=198.51.100.1:0 ")
    # every hop trusted: the leftmost
    assert ask(s.addr, [("X-Forwarded-For", "10.9.9.9, 10.0.0.2")]).startswith(
        "remote=10.9.9.9:0 ")


def test_only_the_nearest_hop_with_a_narrow_list(ts):
    xff = [("X-Forwarded-For", "198.51.100.1, 192.0.2.9, 10.1.2.3")]
    assert ask(ts.addr, xff).startswith("remote=10.1.2.3:0 ")


def test_star_trusts_everyone_and_takes_the_leftmost(server):
    s = server(util.TESTSERVER, ["--forwarded-allow-ips", "*"])
    xff = [("X-Forwarded-For", "198.51.100.1, 192.0.2.9")]
    assert ask(s.addr, xff).startswith("remote=198.51.100.1:0 ")


def test_environment_variable_gives_the_list(server, monkeypatch):
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.1")
    s = server(util.TESTSERVER)
    body = ask(s.addr, [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https")])
    assert body.startswith("remote=127.0.0.1:")  # 127.0.0.1 is no longer trusted


def test_untrusted_peer_fields_pass_through_unapplied(server):
    s = server(util.TESTSERVER, ["--forwarded-allow-ips", "10.0.0.1, ::1"])
    h = [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https"),
         ("Forwarded", "for=192.0.2.1;proto=https")]
    body = ask(s.addr, h)
    assert body.startswith("remote=127.0.0.1:")
    assert " secure=%d " % (1 if util.TLS else 0) in body
    # the fields reach the app as they came
    assert ask(s.addr, h, "/header?name=X-Forwarded-For") == "203.0.113.7"


def test_no_proxy_headers(server):
    s = server(util.TESTSERVER, ["--no-proxy-headers"])
    body = ask(s.addr, [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https")])
    assert body.startswith("remote=127.0.0.1:")


def test_proto_http_overrides_tls_and_odd_values_are_ignored(ts):
    assert " secure=0 " in ask(ts.addr, [("X-Forwarded-Proto", "http")])
    assert " secure=1 " in ask(ts.addr, [("X-Forwarded-Ssl", "on")])
    assert " secure=1 " in ask(ts.addr, [("X-Forwarded-Protocol", "ssl")])
    assert " secure=%d " % (1 if util.TLS else 0) in ask(
        ts.addr, [("X-Forwarded-Proto", "gopher")])
    # a non-address hop names no client: the peer stays
    assert ask(ts.addr, [("X-Forwarded-For", "unknown")]).startswith("remote=127.0.0.1:")


def test_forwarded_host_with_its_own_port_and_defaults(ts):
    assert ask(ts.addr, [("X-Forwarded-Host", "a.example:81")]).endswith("host=a.example:81\n")
    assert ask(ts.addr, [("X-Forwarded-Host", "a.example"),
                         ("X-Forwarded-Proto", "https")]).endswith("host=a.example:443\n")
    assert ask(ts.addr, [("X-Forwarded-Host", "[2001:db8::1]:82")]).endswith(
        "host=[2001:db8::1]:82\n")


def test_rfc7239_forwarded(ts):
    body = ask(ts.addr, [("Forwarded", "for=192.0.2.60;proto=https;by=203.0.113.43;host=shop.example")])
    assert body == "remote=192.0.2.60:0 secure=1 host=shop.example:443\n"
    body = ask(ts.addr, [("Forwarded", 'For="[2001:db8:cafe::17]:4711"')])
    assert body.startswith("remote=2001:db8:cafe::17:4711 ")
    # a list: the rightmost untrusted element, its proto with it
    body = ask(ts.addr, [("Forwarded", "for=198.51.100.1;proto=http, for=192.0.2.43;proto=https, for=127.0.0.1")])
    assert body.startswith("remote=192.0.2.43:0 secure=1 ")
    # malformed: none of it is believed
    body = ask(ts.addr, [("Forwarded", 'for="192.0.2.1;proto=https')])
    assert body.startswith("remote=127.0.0.1:")


def test_x_forwarded_wins_over_forwarded(ts):
    body = ask(ts.addr, [("Forwarded", "for=192.0.2.1"), ("X-Forwarded-For", "198.51.100.2")])
    assert body.startswith("remote=198.51.100.2:0 ")


def test_each_request_on_a_keep_alive_connection_is_its_own(ts):
    # a proxy's pooled connection carries many clients
    with util.Conn(ts.addr) as c:
        assert client_line(c, headers=[("X-Forwarded-For", "192.0.2.1")]).startswith("remote=192.0.2.1:0 ")
        assert client_line(c).startswith("remote=127.0.0.1:")
        assert client_line(c, headers=[("X-Forwarded-For", "192.0.2.2"),
                                       ("X-Forwarded-Proto", "https")]).startswith("remote=192.0.2.2:0 secure=1")
        assert " secure=%d " % (1 if util.TLS else 0) in client_line(c)


def test_bad_list_is_a_sentence(server):
    import subprocess
    p = subprocess.run([util.TESTSERVER, "--bind", "127.0.0.1:0",
                        "--forwarded-allow-ips", "10.0.0.0/33"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode != 0
    assert "bad --forwarded-allow-ips '10.0.0.0/33'" in p.stderr


# ---- PROXY protocol ---------------------------------------------------------

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(cmd=1, fam=0x11, addrs=None, tlvs=b""):
    if addrs is None:
        if fam == 0x11:
            addrs = socket.inet_aton("192.0.2.1") + socket.inet_aton("192.0.2.2") + struct.pack("!HH", 5555, 80)
        elif fam == 0x21:
            addrs = (socket.inet_pton(socket.AF_INET6, "2001:db8::5") +
                     socket.inet_pton(socket.AF_INET6, "2001:db8::6") + struct.pack("!HH", 6666, 443))
        else:
            addrs = b""
    body = addrs + tlvs
    return V2_SIG + bytes([0x20 | cmd, fam]) + struct.pack("!H", len(body)) + body


class ProxyConn(util.Conn):
    """A connection whose PROXY header goes first, in clear text, then TLS
    in the TLS run (as HAProxy's send-proxy does before its handshake)."""

    def __init__(self, addr, header, split=False):
        self.sock = socket.create_connection(addr, timeout=util.READ_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if split:
            for i in range(len(header)):
                self.sock.sendall(header[i:i + 1])
                time.sleep(0.002)
        else:
            self.sock.sendall(header)
        self.timeout = util.READ_TIMEOUT
        self.buf = b""
        self.eof = False

    def start_tls(self):
        if util.TLS:
            self.sock = util.tls_client_context().wrap_socket(self.sock)
        return self


def via_proxy(addr, header, **kw):
    with ProxyConn(addr, header, **kw).start_tls() as c:
        return client_line(c)


def expect_silent_close(addr, data):
    s = socket.create_connection(addr, timeout=5)
    s.sendall(data)
    got = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    except ConnectionResetError:
        pass
    s.close()
    assert got == b"", got


@pytest.fixture(scope="module")
def pp():
    import conftest
    s = conftest.start(util.TESTSERVER, ["--proxy-protocol"] + conftest.LIMITS)
    yield s
    conftest.finish(s)


def test_v1(pp):
    assert via_proxy(pp.addr, b"PROXY TCP4 192.0.2.1 192.0.2.2 5555 80\r\n").startswith(
        "remote=192.0.2.1:5555 ")
    assert via_proxy(pp.addr, b"PROXY TCP6 2001:db8::5 2001:db8::6 6666 443\r\n").startswith(
        "remote=2001:db8::5:6666 ")
    # UNKNOWN keeps the socket's peer
    assert via_proxy(pp.addr, b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n").startswith("remote=127.0.0.1:")


def test_v1_a_byte_at_a_time(pp):
    assert via_proxy(pp.addr, b"PROXY TCP4 192.0.2.1 192.0.2.2 5555 80\r\n",
                     split=True).startswith("remote=192.0.2.1:5555 ")


def test_v2(pp):
    assert via_proxy(pp.addr, v2()).startswith("remote=192.0.2.1:5555 ")
    assert via_proxy(pp.addr, v2(fam=0x21)).startswith("remote=2001:db8::5:6666 ")
    # TLVs (ALPN, authority, a unique id) are skipped
    tlvs = b"\x01\x00\x02h2" + b"\x02\x00\x09localhost" + b"\x05\x00\x04abcd"
    assert via_proxy(pp.addr, v2(tlvs=tlvs)).startswith("remote=192.0.2.1:5555 ")
    # LOCAL (a proxy's own health check) keeps the peer, whatever follows
    assert via_proxy(pp.addr, v2(cmd=0)).startswith("remote=127.0.0.1:")
    assert via_proxy(pp.addr, v2(cmd=0, fam=0x11)).startswith("remote=127.0.0.1:")
    # UNSPEC and AF_UNIX keep it too
    assert via_proxy(pp.addr, v2(fam=0x00)).startswith("remote=127.0.0.1:")
    assert via_proxy(pp.addr, v2(fam=0x31, addrs=b"\0" * 216)).startswith("remote=127.0.0.1:")


def test_v2_split_and_a_large_tlv(pp):
    big = b"\xee" + struct.pack("!H", 3000) + b"x" * 3000
    assert via_proxy(pp.addr, v2(tlvs=big), split=False).startswith("remote=192.0.2.1:5555 ")
    assert via_proxy(pp.addr, v2(), split=True).startswith("remote=192.0.2.1:5555 ")


def test_header_then_pipelined_requests_in_one_send(pp):
    """The header and the requests after it in one read: the engine reads
    only the header's bytes and leaves the rest to HTTP. In the TLS run the
    header goes first in clear, then both requests in one TLS write."""
    header = b"PROXY TCP4 192.0.2.1 192.0.2.2 5555 80\r\n"
    two = util.request("GET", "/client") * 2
    with (ProxyConn(pp.addr, header).start_tls() if util.TLS
          else ProxyConn(pp.addr, header + two)) as c:
        if util.TLS:
            c.send(two)
        for _ in range(2):
            r = c.read_response()
            assert r.body.decode().startswith("remote=192.0.2.1:5555 ")


def test_forwarding_fields_after_proxy_protocol_follow_the_client(pp):
    # the client the header names is not a trusted proxy: its fields stay
    with ProxyConn(pp.addr, v2()).start_tls() as c:
        body = client_line(c, headers=[("X-Forwarded-For", "6.6.6.6")])
    assert body.startswith("remote=192.0.2.1:5555 ")


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",            # no header at all
    b"PROXY TCP4 192.0.2.1 192.0.2.2 5555\r\n",      # a field missing
    b"PROXY TCP4 192.0.2.1 192.0.2.2 5555 80\n",     # a bare LF
    b"PROXY TCP4 2001:db8::1 192.0.2.2 5555 80\r\n",  # the wrong family
    b"PROXY TCP4 192.0.2.1 192.0.2.2 5555 080\r\n",  # a leading zero
    b"PROXY TCP4 192.0.2.1 192.0.2.2 5555 80 \r\n",  # a trailing space
    b"PROXY TCP5 192.0.2.1 192.0.2.2 5555 80\r\n",
    b"PROXY UNKNOWN " + b"x" * 100 + b"\r\n",         # over 107 bytes
    b"PROXY UNKNOWN " + b"x" * 120,                  # 107 bytes, no CRLF
    b"\r\n\r\n\x00\r\nQUIX\n" + b"\x21\x11\x00\x0c" + b"\0" * 12,  # bad signature
    v2()[:12] + b"\x31\x11" + v2()[14:],             # version 3
    v2()[:12] + b"\x22\x11" + v2()[14:],             # command 2
    v2()[:12] + b"\x21\x12" + v2()[14:],             # UDP
    v2()[:14] + b"\x00\x04" + b"\0" * 4,             # too short for TCP4
    b"\x16\x03\x01\x00\x05hello",                    # TLS without the header
])
def test_garbage_closes_without_an_answer(pp, data):
    expect_silent_close(pp.addr, data)
    assert via_proxy(pp.addr, v2()).startswith("remote=192.0.2.1:5555 ")


def test_header_timeout_closes_silently(pp):
    # the head timeout (1 s here) runs from accept and bounds the header
    s = socket.create_connection(pp.addr, timeout=5)
    s.sendall(b"PROXY TCP4 192.0")
    t0 = time.monotonic()
    try:
        assert s.recv(100) == b""
    except ConnectionResetError:
        pass  # the bytes of the partial header were left unread
    assert 0.5 < time.monotonic() - t0 < 4
    s.close()


def test_untrusted_peers_speak_plain_http(server):
    s = server(util.TESTSERVER, ["--proxy-protocol", "--forwarded-allow-ips", "10.0.0.1"])
    assert ask(s.addr).startswith("remote=127.0.0.1:")


def test_fin_within_the_header_closes_at_once(server):
    # the peek shows the same partial bytes again after the FIN: the
    # engine must not wait for the head timeout (10 s here)
    s = server(util.TESTSERVER, ["--proxy-protocol", "--head-timeout", "10"])
    c = socket.create_connection(s.addr, timeout=5)
    c.sendall(b"PROXY TCP4 192.0.2.1 ")
    time.sleep(0.1)
    c.shutdown(socket.SHUT_WR)
    t0 = time.monotonic()
    try:
        assert c.recv(100) == b""
    except ConnectionResetError:
        pass
    assert time.monotonic() - t0 < 2
    c.close()


def test_http2_streams_each_apply_their_fields(server):
    # h2c with prior knowledge (nghttp), two streams on one connection
    import shutil
    import subprocess
    nghttp = shutil.which("nghttp")
    assert nghttp, "nghttp (nghttp2-client) is missing: run scripts/setup-deps.sh"
    s = server(util.TESTSERVER, ["--http2", "2"])
    if util.TLS:
        url = "https://127.0.0.1:%d/client" % s.port
    else:
        url = "http://127.0.0.1:%d/client" % s.port
    p = subprocess.run([nghttp, "-H", "x-forwarded-for: 203.0.113.9", "-H",
                        "x-forwarded-proto: https", url, url + "?2"],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "remote=203.0.113.9:0 secure=1 host=:0\n" * 2, p.stdout
