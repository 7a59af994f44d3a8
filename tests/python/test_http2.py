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
    s = start_piston("fw_tls:wsgi_app")
    env, version = curl_json("http://127.0.0.1:%d/" % s.port, "--http2-prior-knowledge")
    assert version == "2" and env["SERVER_PROTOCOL"] == "HTTP/2"
    assert env["wsgi.url_scheme"] == "http"
    env, version = curl_json("http://127.0.0.1:%d/" % s.port)
    assert version == "1.1" and env["SERVER_PROTOCOL"] == "HTTP/1.1"


def test_asgi_over_h2_tls(start_piston):
    pki = PKI()
    s = start_piston("fw_tls:asgi_app", "--certfile", pki.server[0], "--keyfile", pki.server[1])
    d, version = curl_json("https://localhost:%d/" % s.port, "--cacert", pki.ca)
    assert version == "2" and d["http_version"] == "2" and d["scheme"] == "https"
    assert d["tls"]["tls_version"] == 0x0304


def test_h2load_through_both_hosts(start_piston):
    for app in ("fw_tls:wsgi_app", "fw_tls:asgi_app"):
        s = start_piston(app)
        out = subprocess.run(["h2load", "-n", "2000", "-c", "4", "-m", "16",
                              "http://127.0.0.1:%d/" % s.port],
                             capture_output=True, text=True, timeout=60).stdout
        assert "2000 succeeded, 0 failed, 0 errored, 0 timeout" in out, (app, out)
