"""HTTP/2 through the Python hosts: the engine speaks it (h2c with prior
knowledge, h2 by ALPN on TLS) and the apps see SERVER_PROTOCOL HTTP/2
(WSGI) and http_version "2" (ASGI); many streams of one connection reach
the app at once and every one is answered (h2load)."""
import json
import os
import subprocess
import sys

from conftest import HERE

sys.path.insert(0, os.path.join(os.path.dirname(HERE), "protocol"))
from pki import PKI  # noqa: E402


def curl_json(url, *flags):
    out = subprocess.run(["curl", "-sS", *flags, "-w", "\n%{http_version}", url],
                         capture_output=True, text=True, timeout=20, check=True).stdout
    body, _, version = out.rpartition("\n")
    return json.loads(body), version


def test_wsgi_over_h2c(start_piston):
    s = start_piston("fw_tls:wsgi_app", "--h2c")
    env, version = curl_json("http://127.0.0.1:%d/" % s.port, "--http2-prior-knowledge")
    assert version == "2" and env["SERVER_PROTOCOL"] == "HTTP/2"
    assert env["wsgi.url_scheme"] == "http"
    env, version = curl_json("http://127.0.0.1:%d/" % s.port)
    assert version == "1.1" and env["SERVER_PROTOCOL"] == "HTTP/1.1"


def test_no_http2(start_piston):
    pki = PKI()
    s = start_piston("fw_tls:asgi_app", "--certfile", pki.server[0], "--keyfile", pki.server[1],
                     "--no-http2")
    d, version = curl_json("https://localhost:%d/" % s.port, "--cacert", pki.ca)
    assert version == "1.1" and d["http_version"] == "1.1"


def test_asgi_over_h2_tls(start_piston):
    pki = PKI()
    s = start_piston("fw_tls:asgi_app", "--certfile", pki.server[0], "--keyfile", pki.server[1])
    d, version = curl_json("https://localhost:%d/" % s.port, "--cacert", pki.ca)
    assert version == "2" and d["http_version"] == "2" and d["scheme"] == "https"
    assert d["tls"]["tls_version"] == 0x0304


def test_h2load_through_both_hosts(start_piston):
    for app in ("fw_tls:wsgi_app", "fw_tls:asgi_app"):
        s = start_piston(app, "--h2c")
        out = subprocess.run(["h2load", "-n", "2000", "-c", "4", "-m", "16",
                              "http://127.0.0.1:%d/" % s.port],
                             capture_output=True, text=True, timeout=60).stdout
        assert "2000 succeeded, 0 failed, 0 errored, 0 timeout" in out, (app, out)


# ---- 1xx, Upgrade: h2c and per-stream timeouts through both hosts -------------

# apps:_raw: wsgiref.validate refuses a read() of wsgi.input without a size
HOSTS = [("apps:_raw", "WSGI"), ("asgi_apps:app", "ASGI")]


def curl(*args):
    return subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=30)


def test_upgrade_h2c_through_both_hosts(start_piston):
    """curl --http2 on an http:// URL: the 101, then the app answers the
    upgraded request on stream 1 and sees HTTP/2."""
    for app, key, want in (("fw_tls:wsgi_app", "SERVER_PROTOCOL", "HTTP/2"),
                           ("fw_tls:asgi_app", "http_version", "2")):
        s = start_piston(app, "--h2c")
        p = curl("--http2", "-v", "-w", "\n%{http_version}", "http://127.0.0.1:%d/" % s.port)
        body, _, version = p.stdout.decode().rpartition("\n")
        assert version == "2" and json.loads(body)[key] == want, (app, p.stdout)
        assert "< HTTP/1.1 101 Switching Protocols" in p.stderr.decode()


def test_upgrade_h2c_ignored_without_h2c(start_piston):
    """Without --h2c the Upgrade: h2c request is plain HTTP/1.1, and the
    connection carries the next request too (curl reuses it)."""
    for app, key, want in (("fw_tls:wsgi_app", "SERVER_PROTOCOL", "HTTP/1.1"),
                           ("fw_tls:asgi_app", "http_version", "1.1")):
        s = start_piston(app)
        url = "http://127.0.0.1:%d/" % s.port
        p = curl("--http2", "-w", "\n%{http_version} %{num_connects}\n", url, url)
        lines = p.stdout.decode().splitlines()
        assert lines[1] == "1.1 1" and lines[3] == "1.1 0", (app, lines)
        assert json.loads(lines[0])[key] == want and json.loads(lines[2])[key] == want


def test_expect_100_continue_through_both_hosts(start_piston):
    """Expect: 100-continue on a stream: the app's first read sends the 100
    (a HEADERS frame), then curl sends the body and gets it echoed."""
    for app, _ in HOSTS:
        s = start_piston(app, "--h2c")
        p = curl("--http2-prior-knowledge", "-v", "-H", "Expect: 100-continue",
                 "--expect100-timeout", "20", "--data-binary", "x" * 2000,
                 "http://127.0.0.1:%d/echo" % s.port)
        err = p.stderr.decode()
        assert "< HTTP/2 100" in err and err.index("< HTTP/2 100") < err.index("< HTTP/2 200"), err
        assert p.stdout == b"x" * 2000, app


def h2_exchange(port, send, until):
    """Raw HTTP/2 (python3-h2): send(conn) queues the client's frames; the
    events until until(events) holds."""
    import socket
    import h2.config
    import h2.connection
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    send(c)
    sock.sendall(c.data_to_send())
    events = []
    while not until(events):
        data = sock.recv(65536)
        assert data, events
        events += c.receive_data(data)
        sock.sendall(c.data_to_send())
    sock.close()
    return events


def statuses(events):
    import h2.events
    return {e.stream_id: dict(e.headers)[b":status"] for e in events
            if isinstance(e, h2.events.ResponseReceived)}


def get(c, sid, path, end=True, headers=()):
    c.send_headers(sid, [(":method", "GET" if end else "POST"), (":path", path),
                         (":scheme", "http"), (":authority", "x")] + list(headers),
                   end_stream=end)


def test_handler_timeout_per_stream_through_both_hosts(start_piston):
    """An app that does not answer a stream in time: the 503 on that
    stream, while the connection's other stream is answered."""
    import h2.events
    for app, path in (("apps:_raw", "/sleep?s=3"), ("asgi_apps:app", "/hang")):
        s = start_piston(app, "--h2c", "--handler-timeout", "1", "--threads", "4")
        p = curl("--http2-prior-knowledge", "-w", "%{http_code}",
                 "http://127.0.0.1:%d%s" % (s.port, path))
        assert p.stdout == b"Service Unavailable\n503", (app, p.stdout)

        def send(c):
            get(c, 1, path)
            get(c, 3, "/echo")
        events = h2_exchange(s.port, send, lambda ev: sum(
            isinstance(e, h2.events.StreamEnded) for e in ev) == 2)
        assert statuses(events) == {1: b"503", 3: b"200"}, app


def test_body_timeout_per_stream_through_both_hosts(start_piston):
    """A stream whose body stalls: 408 on the stream after the body
    timeout, then RST_STREAM NO_ERROR; the connection goes on."""
    import h2.events
    for app, _ in HOSTS:
        s = start_piston(app, "--h2c", "--body-timeout", "1")

        def send(c):
            get(c, 1, "/echo", end=False, headers=[("content-length", "100")])
            c.send_data(1, b"x" * 10)
            get(c, 3, "/echo")
        events = h2_exchange(s.port, send, lambda ev: any(
            isinstance(e, h2.events.StreamReset) for e in ev))
        assert statuses(events) == {1: b"408", 3: b"200"}, app
        reset = [e for e in events if isinstance(e, h2.events.StreamReset)]
        assert reset[0].stream_id == 1 and reset[0].error_code == 0
