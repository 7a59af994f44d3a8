"""TLS through the engine's servers: real clients (curl, openssl s_client,
Python's ssl and http.client, requests), what the handshake negotiated as
the host sees it (/tls-info), SNI, client certificates, resumption, OCSP
stapling, reloads, configuration mistakes, and bad input: plain HTTP, garbage,
a ClientHello cut at every byte, a stalled handshake, 2,000 handshakes at
once. The rest of tests/protocol runs over TLS too (make test-protocol-tls)."""

import asyncio
import http.client
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

import util
from conftest import LIMITS
from pki import PKI, openssl

# ---- certificates ----------------------------------------------------------


@pytest.fixture(scope="module")
def pki():
    return PKI()


def tls_server(server, pki, *extra, binary=util.TESTSERVER, cert=None):
    cert, key = cert or pki.server
    return server(binary, ["--cert", cert, "--key", key, *LIMITS, *extra])


def client_ctx(pki, cert=None, alpn=None, version=None):
    ctx = ssl.create_default_context(cafile=pki.ca)
    if cert:
        ctx.load_cert_chain(*cert)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if version:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def https_get(addr, ctx, path="/tls-info", host="localhost", session=None):
    """One GET over a fresh connection: (status, body, the ssl socket)."""
    raw = socket.create_connection(addr, timeout=5)
    s = ctx.wrap_socket(raw, server_hostname=host, session=session)
    s.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path.encode(), host.encode()))
    data = read_all(s)
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body, s


def read_all(sock):
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def info(body):
    return dict(line.split("=", 1) for line in body.decode().splitlines())


# ---- real clients -----------------------------------------------------------


def test_curl_and_alpn(server, pki):
    s = tls_server(server, pki)
    for flag, version, alpn in (("--http1.1", "1.1", "http/1.1"), ("--http2", "2", "h2")):
        out = subprocess.run(
            ["curl", "-sS", flag, "--cacert", pki.ca, "-w", "\n%{http_version} %{http_code}",
             "https://localhost:%d/tls-info" % s.port],
            capture_output=True, text=True, check=True).stdout
        body, _, tail = out.rpartition("\n")
        assert tail == version + " 200"
        i = info(body.encode())
        # ALPN: curl offers h2 and http/1.1 (or only http/1.1)
        assert i["VERSION"] == "TLSv1.3" and i["ALPN"] == alpn
        assert i["SNI"] == "localhost" and i["VERIFY"] == "NONE"
        assert int(i["LOCAL_CERT"]) > 100  # the DER of the certificate served


def test_http_client_keep_alive_and_requests(server, pki):
    s = tls_server(server, pki)
    conn = http.client.HTTPSConnection("localhost", s.port, context=client_ctx(pki), timeout=5)
    for _ in range(3):
        conn.request("GET", "/info")
        r = conn.getresponse()
        assert r.status == 200 and b"method=GET" in r.read()
    first = conn.sock
    conn.request("POST", "/echo", body=b"x" * 300000)
    r = conn.getresponse()
    assert r.read() == b"x" * 300000
    assert conn.sock is first  # one connection throughout
    conn.close()
    import requests

    r = requests.get("https://localhost:%d/info" % s.port, verify=pki.ca, timeout=5)
    assert r.status_code == 200 and "method=GET" in r.text


def test_tls12_and_minimum_version(server, pki):
    s = tls_server(server, pki)
    st, body, _ = https_get(s.addr, client_ctx(pki, version=ssl.TLSVersion.TLSv1_2))
    i = info(body)
    assert st == 200 and i["VERSION"] == "TLSv1.2"
    assert i["CIPHER"].startswith("ECDHE-") and "GCM" in i["CIPHER"] or "CHACHA" in i["CIPHER"]
    s13 = tls_server(server, pki, "--tls-min-version", "1.3")
    with pytest.raises(ssl.SSLError):
        https_get(s13.addr, client_ctx(pki, version=ssl.TLSVersion.TLSv1_2))
    assert https_get(s13.addr, client_ctx(pki))[0] == 200


def test_maximum_version(server, pki):
    s = tls_server(server, pki, "--tls-max-version", "1.2")
    st, body, _ = https_get(s.addr, client_ctx(pki))
    assert st == 200 and info(body)["VERSION"] == "TLSv1.2"
    with pytest.raises(ssl.SSLError):
        https_get(s.addr, client_ctx(pki, version=ssl.TLSVersion.TLSv1_3))


def test_alpn_without_a_common_protocol_is_refused(server, pki):
    s = tls_server(server, pki)
    with pytest.raises(ssl.SSLError, match="NO_APPLICATION_PROTOCOL|no application protocol"):
        https_get(s.addr, client_ctx(pki, alpn=["spdy/3"]))
    st, body, sock = https_get(s.addr, client_ctx(pki, alpn=["spdy/3", "http/1.1"]))
    assert sock.selected_alpn_protocol() == "http/1.1" and info(body)["ALPN"] == "http/1.1"


def test_sni_chooses_the_certificate(server, pki):
    other = pki.issue("other.test", san="DNS:other.test,DNS:*.other.test")
    s = server(util.TESTSERVER, ["--cert", pki.server[0], "--key", pki.server[1],
                                 "--cert", other[0], "--key", other[1]])
    for name, cn in (("localhost", "localhost"), ("other.test", "other.test"),
                     ("www.other.test", "other.test"), ("unknown.test", "localhost")):
        out = subprocess.run(
            ["openssl", "s_client", "-connect", "127.0.0.1:%d" % s.port, "-servername", name],
            input=b"", capture_output=True, timeout=10).stdout.decode()
        assert "subject=CN = %s" % cn in out, (name, out[:400])


def test_resumption_with_tickets(server, pki):
    s = tls_server(server, pki)
    ctx = client_ctx(pki)
    for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
        ctx.minimum_version = ctx.maximum_version = version
        _, _, first = https_get(s.addr, ctx)
        assert not first.session_reused and first.session.has_ticket
        _, _, again = https_get(s.addr, ctx, session=first.session)
        assert again.session_reused, version


def test_a_shared_ticket_secret_resumes_across_servers(server, pki):
    """Two servers (two processes, as two workers or two machines) given the
    same ticket secret resume each other's sessions; with their own random
    keys they do not."""
    keyfile = pki.path("ticket.key")
    with open(keyfile, "wb") as f:
        f.write(os.urandom(80))
    secret = os.urandom(48).hex()
    for how in (("--tls-ticket-key-file", keyfile), ("--tls-ticket-secret", secret)):
        a, b = tls_server(server, pki, *how), tls_server(server, pki, *how)
        for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            ctx = client_ctx(pki, version=version)
            _, _, first = https_get(a.addr, ctx)
            assert first.session.has_ticket
            _, _, there = https_get(b.addr, ctx, session=first.session)
            assert there.session_reused, (how[0], version)
            _, _, back = https_get(a.addr, ctx, session=there.session)
            assert back.session_reused, (how[0], version)
    other = tls_server(server, pki, "--tls-ticket-secret", os.urandom(48).hex())
    lone, lone2 = tls_server(server, pki), tls_server(server, pki)
    for x, y in ((a, other), (lone, lone2), (lone, a)):
        ctx = client_ctx(pki)
        _, _, first = https_get(x.addr, ctx)
        _, _, there = https_get(y.addr, ctx, session=first.session)
        assert not there.session_reused


def test_ticket_keys_rotate(server, pki):
    """A ticket outlives its key's period by one more (it still resumes,
    and is renewed), then no longer resumes."""
    s = tls_server(server, pki, "--tls-ticket-rotate", "1")
    ctx = client_ctx(pki)
    _, _, first = https_get(s.addr, ctx)
    time.sleep(1.2)
    _, _, second = https_get(s.addr, ctx, session=first.session)
    assert second.session_reused
    time.sleep(2.2)
    _, _, third = https_get(s.addr, ctx, session=first.session)
    assert not third.session_reused


# ---- client certificates ------------------------------------------------------


def test_client_certificate_required(server, pki):
    s = tls_server(server, pki, "--ca-file", pki.ca, "--verify-client", "required")
    st, body, _ = https_get(s.addr, client_ctx(pki, cert=pki.client))
    i = info(body)
    assert st == 200 and i["VERIFY"] == "SUCCESS"
    assert i["PEER_SUBJECT"] == "CN=client one" and i["PEER_ISSUER"] == "CN=Piston Test CA"
    assert i["PEER_NOT_AFTER"].endswith(" GMT") and int(i["PEER_CERT"]) > 100
    assert len(i["PEER_SERIAL"]) >= 2
    # without a certificate (TLS 1.3 tells the client after the handshake)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        https_get(s.addr, client_ctx(pki))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        https_get(s.addr, client_ctx(pki, cert=pki.stranger))
    assert https_get(s.addr, client_ctx(pki, cert=pki.client))[0] == 200


def test_client_certificate_optional(server, pki):
    s = tls_server(server, pki, "--ca-file", pki.ca, "--verify-client", "optional")
    assert info(https_get(s.addr, client_ctx(pki))[1])["VERIFY"] == "NONE"
    assert info(https_get(s.addr, client_ctx(pki, cert=pki.client))[1])["VERIFY"] == "SUCCESS"
    any_ca = tls_server(server, pki, "--verify-client", "optional_no_ca")
    i = info(https_get(any_ca.addr, client_ctx(pki, cert=pki.stranger))[1])
    assert i["VERIFY"].startswith("FAILED:") and i["PEER_SUBJECT"] == "CN=stranger"


# ---- OCSP stapling --------------------------------------------------------------


def test_ocsp_response_is_stapled(server, pki):
    req, resp, index = pki.path("ocsp.req"), pki.path("ocsp.der"), pki.path("index.txt")
    open(index, "w").close()
    cert, key = pki.server
    openssl("ocsp", "-issuer", pki.ca, "-cert", cert, "-reqout", req, "-no_nonce")
    openssl("ocsp", "-index", index, "-rsigner", pki.ca, "-rkey", pki.ca_key, "-CA", pki.ca,
            "-reqin", req, "-respout", resp, "-ndays", "1")
    s = server(util.TESTSERVER, ["--cert", cert, "--key", key, "--ocsp", resp])
    out = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % s.port,
                          "-servername", "localhost", "-status"],
                         input=b"", capture_output=True, timeout=10).stdout.decode()
    assert "OCSP Response Status: successful" in out, out[:600]
    plain = tls_server(server, pki)
    out = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % plain.port, "-status"],
                         input=b"", capture_output=True, timeout=10).stdout.decode()
    assert "OCSP response: no response sent" in out


# ---- reloads ------------------------------------------------------------------------


def subject_of(port):
    out = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port],
                         input=b"", capture_output=True, timeout=10).stdout.decode()
    return [l for l in out.splitlines() if l.startswith("subject=")][0]


def test_sighup_reloads_without_dropping_connections(server, pki):
    d = tempfile.mkdtemp(prefix="piston-reload-")
    cert, key = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
    first = pki.issue("first.test")
    second = pki.issue("second.test")
    for src, dst in ((first[0], cert), (first[1], key)):
        open(dst, "wb").write(open(src, "rb").read())
    s = server(util.STATIC, ["--cert", cert, "--key", key, "--text", "/hello=hi",
                             "--idle-timeout", "30"])
    assert subject_of(s.port) == "subject=CN = first.test"
    ctx = ssl.create_default_context(cafile=pki.ca)
    ctx.check_hostname = False
    old = http.client.HTTPSConnection("127.0.0.1", s.port, context=ctx, timeout=5)
    old.request("GET", "/hello")
    assert old.getresponse().read() == b"hi"
    for src, dst in ((second[0], cert), (second[1], key)):
        open(dst, "wb").write(open(src, "rb").read())
    s.proc.send_signal(signal.SIGHUP)
    util.wait_for(lambda: any("TLS certificates reloaded" in l for l in s.lines))
    assert subject_of(s.port) == "subject=CN = second.test"
    old.request("GET", "/hello")  # the old connection keeps its session
    assert old.getresponse().read() == b"hi"
    # a broken file: the reload fails, says why, and the last good ones stay
    open(key, "w").write("not a key\n")
    s.proc.send_signal(signal.SIGHUP)
    util.wait_for(lambda: any("TLS reload failed" in l for l in s.lines))
    assert any("holds no PEM private key" in l for l in s.lines)
    assert subject_of(s.port) == "subject=CN = second.test"
    old.close()


def test_reload_through_the_api(server, pki):
    s = tls_server(server, pki)
    r = https_request(s.addr, pki, b"POST /tls-reload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert r.startswith(b"HTTP/1.1 200 ")


def https_request(addr, pki, raw):
    s = client_ctx(pki).wrap_socket(socket.create_connection(addr, timeout=5), server_hostname="localhost")
    s.sendall(raw)
    return s.recv(65536)


# ---- configuration mistakes -------------------------------------------------------


def run_fail(args):
    p = subprocess.run([util.STATIC, "--bind", "127.0.0.1:0", *args],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
    assert p.returncode != 0
    return p.stderr


def test_configuration_mistakes_say_what_to_fix(pki):
    cert, key = pki.server
    enc = pki.path("enc.key")
    openssl("pkey", "-in", key, "-out", enc, "-aes256", "-passout", "pass:secret")
    assert "protected by a passphrase" in run_fail(["--cert", cert, "--key", enc])
    assert "does not match the certificate" in run_fail(["--cert", cert, "--key", pki.client[1]])
    assert "cannot open the certificate file /nonexistent" in run_fail(["--cert", "/nonexistent", "--key", key])
    assert "holds no PEM certificate" in run_fail(["--cert", key, "--key", key])
    assert "needs its --key" in run_fail(["--cert", cert])
    assert "say none, optional" in run_fail(["--verify-client", "sometimes"])
    assert "needs a CA file" in run_fail(["--cert", cert, "--key", key, "--verify-client", "required"])
    assert "say 1.2 or 1.3" in run_fail(["--tls-min-version", "1.1"])
    assert "maximum TLS version \"1.4\": say 1.2 or 1.3" in run_fail(["--tls-max-version", "1.4"])
    assert "the minimum TLS version (1.3) is above the maximum (1.2)" in run_fail(
        ["--cert", cert, "--key", key, "--tls-min-version", "1.3", "--tls-max-version", "1.2"])
    short = pki.path("short.key")
    with open(short, "wb") as f:
        f.write(b"x" * 16)
    assert "has 16 bytes: make one of 32 to 128 random bytes" in run_fail(
        ["--tls-ticket-key-file", short])
    assert "cannot open the ticket key file /nonexistent" in run_fail(
        ["--tls-ticket-key-file", "/nonexistent"])


# ---- bad input ------------------------------------------------------------------------


def test_plain_http_to_the_tls_port(server, pki):
    s = tls_server(server, pki, "--debug-log")
    raw = socket.create_connection(s.addr, timeout=5)
    raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = read_all(raw)
    assert data == (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                    b"Content-Length: 48\r\nConnection: close\r\n\r\n"
                    b"The plain HTTP request was sent to HTTPS port.\r\n")
    util.wait_for(lambda: any("plain HTTP on a TLS port" in l for l in s.lines))
    # garbage gets only the close
    raw = socket.create_connection(s.addr, timeout=5)
    raw.sendall(b"\x00\x01\x02garbage")
    assert raw.recv(4096) == b""
    assert https_get(s.addr, client_ctx(pki))[0] == 200


def client_hello():
    """The bytes of a real ClientHello (Python's, through a memory BIO)."""
    ctx = ssl.create_default_context()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


def test_client_hello_cut_at_every_byte(server, pki):
    s = tls_server(server, pki)
    hello = client_hello()
    assert hello[0] == 0x16 and len(hello) > 200
    for n in range(1, len(hello)):
        raw = socket.create_connection(s.addr, timeout=5)
        raw.sendall(hello[:n])
        raw.shutdown(socket.SHUT_WR)
        got = read_all(raw)
        # nothing, or a TLS alert record: never a handshake reply or HTTP
        assert got == b"" or got[0] == 0x15, (n, got[:20])
        raw.close()
    assert https_get(s.addr, client_ctx(pki))[0] == 200


def test_stalled_handshake_times_out(server, pki):
    s = tls_server(server, pki)  # LIMITS: a 1 s head timeout
    raw = socket.create_connection(s.addr, timeout=5)
    raw.sendall(client_hello()[:100])
    t0 = time.monotonic()
    assert raw.recv(4096) == b""
    assert 0.5 < time.monotonic() - t0 < 4


def test_two_thousand_concurrent_handshakes(server, pki):
    """More handshakes at once than a loop takes in (1,024): the rest wait
    in the kernel's queue, and every one is answered."""
    s = tls_server(server, pki, "--head-timeout", "30")
    ctx = client_ctx(pki)
    n = 2000

    async def one(i):
        r, w = await asyncio.open_connection("127.0.0.1", s.port, ssl=ctx,
                                             server_hostname="localhost")
        w.write(b"GET /info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = await r.read()
        w.close()
        return data.startswith(b"HTTP/1.1 200 ")

    async def main():
        return await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), 120)

    ok = asyncio.run(main())
    assert sum(ok) == n
