"""Behind proxies through the Python hosts, in raw bytes from 127.0.0.1 (the
default trusted proxy): WSGI REMOTE_ADDR/REMOTE_PORT/wsgi.url_scheme/HTTPS/
SERVER_NAME/SERVER_PORT, ASGI client/scheme/server (HTTP and WebSocket),
the PROXY protocol, and the CLI's flags."""
import json
import socket
import struct
import subprocess

import pytest

from conftest import connect, free_port, piston_cmd, Server

XFF = [("X-Forwarded-For", "198.51.100.7, 203.0.113.9"),
       ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "shop.example")]


def req(path="/", headers=(), close=True):
    lines = ["GET %s HTTP/1.1" % path, "Host: app.example:8000"]
    lines += ["%s: %s" % h for h in headers]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def bodies(raw):
    out = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        n = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.lower() == b"content-length":
                n = int(v)
        if b"chunked" in head.lower():
            body, raw = b"", rest
            while True:
                size, _, raw = raw.partition(b"\r\n")
                size = int(size, 16)
                body, raw = body + raw[:size], raw[size + 2:]
                if size == 0:
                    raw = raw[raw.find(b"\r\n") + 2:] if not raw.startswith(b"\r\n") else raw[2:]
                    break
            out.append(json.loads(body))
            continue
        out.append(json.loads(rest[:n]))
        raw = rest[n:]
    return out


def exchange(port, data, n=1, pre=b""):
    s = connect(port)
    s.sendall(pre + data)
    raw = b""
    while len(bodies_safe(raw)) < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        raw += chunk
    s.close()
    return bodies(raw)


def bodies_safe(raw):
    try:
        return bodies(raw)
    except (ValueError, json.JSONDecodeError):
        return []


def test_wsgi_environ_from_a_trusted_proxy(start_piston):
    s = start_piston("proxy_apps:wsgi")
    [e] = exchange(s.port, req(headers=XFF))
    # gunicorn's variables, with uvicorn's client: the rightmost untrusted hop
    assert e["REMOTE_ADDR"] == "203.0.113.9"
    assert e["REMOTE_PORT"] == "0"
    assert e["wsgi.url_scheme"] == "https" and e["HTTPS"] == "on"
    assert e["SERVER_NAME"] == "shop.example" and e["SERVER_PORT"] == "443"
    # the fields themselves are left as they came
    assert e["HTTP_HOST"] == "app.example:8000"
    assert e["HTTP_X_FORWARDED_FOR"] == "198.51.100.7, 203.0.113.9"


def test_wsgi_keep_alive_and_untrusted(start_piston):
    s = start_piston("proxy_apps:wsgi")
    a, b = exchange(s.port, req(headers=XFF, close=False) + req(), n=2)
    assert a["REMOTE_ADDR"] == "203.0.113.9"
    assert b["REMOTE_ADDR"] == "127.0.0.1" and b["wsgi.url_scheme"] == "http"
    assert b["HTTPS"] is None and b["SERVER_NAME"] != "shop.example"
    for flags in (["--forwarded-allow-ips", "10.0.0.1"], ["--no-proxy-headers"]):
        s = start_piston("proxy_apps:wsgi", *flags)
        [e] = exchange(s.port, req(headers=XFF))
        assert e["REMOTE_ADDR"] == "127.0.0.1" and e["wsgi.url_scheme"] == "http", flags


def test_asgi_scope_from_a_trusted_proxy(start_piston):
    s = start_piston("proxy_apps:asgi", "--forwarded-allow-ips", "127.0.0.1, 203.0.113.0/24")
    [v] = exchange(s.port, req(headers=XFF + [("X-Forwarded-Port", "8443")]))
    assert v == {"client": ["198.51.100.7", 0], "scheme": "https",
                 "server": ["shop.example", 8443]}
    [v] = exchange(s.port, req())
    assert v["client"][0] == "127.0.0.1" and v["scheme"] == "http"
    assert v["server"] != ["shop.example", 8443]


def test_asgi_websocket_scheme_and_rfc7239(start_piston):
    import asyncio
    import websockets
    s = start_piston("proxy_apps:asgi")

    async def talk():
        async with websockets.connect("ws://127.0.0.1:%d/" % s.port, extra_headers={
                "Forwarded": 'for="[2001:db8::9]:4711";proto=https;host=ws.example'}) as ws:
            return json.loads(await ws.recv())
    v = asyncio.run(talk())
    assert v == {"client": ["2001:db8::9", 4711], "scheme": "wss",
                 "server": ["ws.example", 443]}


def test_unix_socket_peer_trusted_by_unix(tmp_path):
    path = str(tmp_path / "app.sock")
    for trust, want in (("unix:", "192.0.2.5"), ("127.0.0.1", "")):
        args = piston_cmd() + ["proxy_apps:wsgi", "--bind", "unix:" + path,
                               "--forwarded-allow-ips", trust]
        port_holder = free_port()
        proc = subprocess.Popen(args, cwd=__import__("conftest").HERE,
                                env=_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            _wait_unix(path, proc)
            u = socket.socket(socket.AF_UNIX)
            u.settimeout(10)
            u.connect(path)
            u.sendall(req(headers=[("X-Forwarded-For", "192.0.2.5")]))
            raw = b""
            while True:
                c = u.recv(65536)
                if not c:
                    break
                raw += c
            u.close()
            assert bodies(raw)[0]["REMOTE_ADDR"] == want, (trust, port_holder)
        finally:
            proc.terminate()
            proc.wait(20)


def _env():
    import os
    import conftest
    e = dict(os.environ)
    e["PYTHONPATH"] = conftest.HERE + os.pathsep + os.path.join(conftest.ROOT, "python")
    return e


def _wait_unix(path, proc):
    import time
    end = time.monotonic() + 15
    while time.monotonic() < end:
        assert proc.poll() is None, "server exited"
        try:
            u = socket.socket(socket.AF_UNIX)
            u.connect(path)
            u.close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("no unix socket")


def v2_header(addr="192.0.2.1", port=5555):
    body = socket.inet_aton(addr) + socket.inet_aton("192.0.2.2") + struct.pack("!HH", port, 80)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


@pytest.mark.parametrize("app", ["proxy_apps:wsgi", "proxy_apps:asgi"])
def test_proxy_protocol(start_piston, app):
    s = start_piston(app, "--proxy-protocol")
    [v] = exchange(s.port, req(), pre=v2_header())
    if app.endswith("wsgi"):
        assert (v["REMOTE_ADDR"], v["REMOTE_PORT"]) == ("192.0.2.1", "5555")
    else:
        assert v["client"] == ["192.0.2.1", 5555]
    [v] = exchange(s.port, req(), pre=b"PROXY TCP6 2001:db8::1 2001:db8::2 7 8\r\n")
    assert (v.get("REMOTE_ADDR") or v["client"][0]) == "2001:db8::1"
    # no header from a trusted peer: closed without an answer
    c = connect(s.port)
    c.sendall(req())
    try:
        assert c.recv(100) == b""
    except ConnectionResetError:
        pass
    c.close()


def test_bad_forwarded_allow_ips_is_a_sentence():
    p = subprocess.run(piston_cmd() + ["proxy_apps:wsgi", "--bind", "127.0.0.1:%d" % free_port(),
                                       "--forwarded-allow-ips", "10.0.0.0/40"],
                       cwd=__import__("conftest").HERE, env=_env(),
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "bad --forwarded-allow-ips '10.0.0.0/40'" in p.stderr, p.stderr


def test_environment_default(start_piston, monkeypatch):
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.9.9.9")
    s = start_piston("proxy_apps:wsgi")
    [e] = exchange(s.port, req(headers=XFF))
    assert e["REMOTE_ADDR"] == "127.0.0.1"
