"""TLS through the Python hosts: `piston --certfile/--keyfile` (and
uvicorn's --ssl-* names) with WSGI, Flask, ASGI and Starlette apps, real
clients (requests, http.client, Python's websockets), client certificates
(--ca-certs/--cert-reqs) seen as mod_ssl's SSL_CLIENT_* and as the ASGI tls
extension, SIGHUP reloading the certificates, and mistakes reported."""
import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time

import pytest

from conftest import HERE, free_port, piston_cmd

sys.path.insert(0, os.path.join(os.path.dirname(HERE), "protocol"))
from pki import PKI  # noqa: E402


@pytest.fixture(scope="module")
def pki():
    return PKI()


def ctx_for(pki, cert=None):
    ctx = ssl.create_default_context(cafile=pki.ca)
    if cert:
        ctx.load_cert_chain(*cert)
    return ctx


def get_json(port, ctx, path="/"):
    import http.client

    c = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    assert r.status == 200, body
    return json.loads(body)


def tls_args(pki, *extra):
    return ["--certfile", pki.server[0], "--keyfile", pki.server[1], *extra]


def test_wsgi_environ_over_tls(start_piston, pki):
    s = start_piston("fw_tls:wsgi_app", *tls_args(pki, "--ca-certs", pki.ca, "--cert-reqs", "1"))
    env = get_json(s.port, ctx_for(pki))
    assert env["wsgi.url_scheme"] == "https" and env["HTTPS"] == "on"
    assert env["SSL_PROTOCOL"] == "TLSv1.3" and env["SSL_CLIENT_VERIFY"] == "NONE"
    assert env["SSL_CLIENT_S_DN"] is None
    env = get_json(s.port, ctx_for(pki, pki.client))
    assert env["SSL_CLIENT_VERIFY"] == "SUCCESS"
    assert env["SSL_CLIENT_S_DN"] == "CN=client one"
    assert env["SSL_CLIENT_I_DN"] == "CN=Piston Test CA"
    # the same PEM the client presented
    assert ssl.PEM_cert_to_DER_cert(env["SSL_CLIENT_CERT"]) == \
        ssl.PEM_cert_to_DER_cert(open(pki.client[0]).read())


def test_flask_sees_https_and_requests_verifies(start_piston, pki):
    import requests

    s = start_piston("fw_tls:flask_app", "--ssl-certfile", pki.server[0],
                     "--ssl-keyfile", pki.server[1])
    r = requests.get("https://localhost:%d/" % s.port, verify=pki.ca, timeout=10)
    assert r.json() == {"scheme": "https", "secure": True,
                        "url": "https://localhost:%d/" % s.port}
    # plain HTTP to it is told what went wrong
    r = requests.get("http://127.0.0.1:%d/" % s.port, timeout=10)
    assert r.status_code == 400 and "plain HTTP request was sent to HTTPS port" in r.text


def test_asgi_scope_tls_extension(start_piston, pki):
    s = start_piston("fw_tls:asgi_app", *tls_args(pki, "--ssl-ca-certs", pki.ca,
                                                      "--ssl-cert-reqs", "2"))
    d = get_json(s.port, ctx_for(pki, pki.client))
    tls = d["tls"]
    assert d["scheme"] == "https"
    assert tls["tls_version"] == 0x0304 and tls["cipher_suite"] in (0x1301, 0x1302, 0x1303)
    assert tls["client_cert_name"] == "CN=client one" and tls["client_cert_error"] is None
    assert ssl.PEM_cert_to_DER_cert(tls["client_cert_chain"][0]) == \
        ssl.PEM_cert_to_DER_cert(open(pki.client[0]).read())
    assert ssl.PEM_cert_to_DER_cert(tls["server_cert"]) == \
        ssl.PEM_cert_to_DER_cert(open(pki.server[0]).read())
    with pytest.raises((ssl.SSLError, ConnectionError)):
        get_json(s.port, ctx_for(pki))  # required: no certificate, no answer


def test_starlette_and_wss(start_piston, pki):
    s = start_piston("fw_tls:star", *tls_args(pki))
    assert get_json(s.port, ctx_for(pki)) == {"scheme": "https",
                                               "url": "https://localhost:%d/" % s.port}
    ws_server = start_piston("fw_tls:asgi_app", *tls_args(pki))
    import websockets

    async def run():
        async with websockets.connect("wss://localhost:%d/" % ws_server.port,
                                      ssl=ctx_for(pki)) as ws:
            await ws.send("hi")
            return await ws.recv()

    assert asyncio.run(run()) == "wss:hi"


def subject(port):
    out = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port],
                         input=b"", capture_output=True, timeout=10).stdout.decode()
    return [l for l in out.splitlines() if l.startswith("subject=")][0]


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_reloads_certificates(start_piston, pki, tmp_path, workers):
    cert, key = str(tmp_path / "c.pem"), str(tmp_path / "k.pem")
    a, b = pki.issue("alpha.test"), pki.issue("beta.test")

    def install(pair):
        for src, dst in zip(pair, (cert, key)):
            with open(src, "rb") as f, open(dst + ".new", "wb") as g:
                g.write(f.read())
            os.replace(dst + ".new", dst)

    install(a)
    s = start_piston("fw_tls:wsgi_app", "--certfile", cert, "--keyfile", key,
                     "--workers", str(workers))
    assert subject(s.port) == "subject=CN = alpha.test"
    install(b)
    s.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 15
    while subject(s.port) != "subject=CN = beta.test":
        assert time.monotonic() < deadline, "still the old certificate"
        time.sleep(0.2)


@pytest.mark.parametrize("tls_version", ["TLSv1_3", "TLSv1_2"])
def test_workers_resume_each_others_sessions(start_piston, pki, tmp_path, tls_version):
    """The supervisor's workers derive the same ticket keys: a session made
    on one resumes on another (SO_REUSEPORT spreads new connections over
    them); with --tls-ticket-key-file, a second server given the same file
    resumes it too."""
    keyfile = str(tmp_path / "ticket.key")
    with open(keyfile, "wb") as f:
        f.write(os.urandom(80))
    ctx = ctx_for(pki)
    ctx.minimum_version = ctx.maximum_version = getattr(ssl.TLSVersion, tls_version)

    def get(port, session):
        """(the worker's pid, whether the session was resumed, the session)"""
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as t:
            t.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = t.recv(65536)
                if not chunk:
                    break
                data += chunk
            return json.loads(data.partition(b"\r\n\r\n")[2])["pid"], t.session_reused, t.session

    s = start_piston("fw_tls:wsgi_app", *tls_args(pki), "--workers", "2")
    pid, _, session = get(s.port, None)
    pids, reused = {pid}, []
    for _ in range(30):
        pid, again, fresh = get(s.port, session)
        pids.add(pid)
        reused.append(again)
        session = fresh if again else session
    assert len(pids) == 2, "SO_REUSEPORT sent every connection to one worker"
    assert all(reused), reused
    a = start_piston("fw_tls:wsgi_app", *tls_args(pki), "--tls-ticket-key-file", keyfile)
    b = start_piston("fw_tls:wsgi_app", *tls_args(pki), "--tls-ticket-key-file", keyfile)
    assert get(b.port, get(a.port, None)[2])[1]
    # without the file, two servers have two secrets
    assert not get(a.port, get(s.port, None)[2])[1]


def run_fail(*args):
    p = subprocess.run(piston_cmd() + ["fw_tls:wsgi_app", "--bind", "127.0.0.1:%d" % free_port(),
                                       *args], cwd=HERE, capture_output=True, text=True,
                       timeout=20, env=dict(os.environ, PYTHONPATH=HERE + os.pathsep +
                                            os.path.join(os.path.dirname(os.path.dirname(HERE)), "python")))
    assert p.returncode != 0
    return p.stderr


def test_mistakes_say_what_to_fix(pki):
    assert "does not match the certificate" in run_fail("--certfile", pki.server[0],
                                                        "--keyfile", pki.client[1])
    assert "needs its --keyfile" in run_fail("--certfile", pki.server[0])
    assert "decrypt it" in run_fail(*tls_args(pki), "--ssl-keyfile-password", "x")
    assert "say 0 (none), 1 (optional) or 2 (required)" in run_fail(*tls_args(pki), "--cert-reqs", "7")
    assert "needs a CA file" in run_fail(*tls_args(pki), "--cert-reqs", "2")
    assert "make one of 32 to 128 random bytes" in run_fail(*tls_args(pki), "--tls-ticket-key-file",
                                                            "/dev/null")
