"""Piston behind a real nginx (Debian's), TLS at nginx, X-Forwarded-For
from $proxy_add_x_forwarded_for and X-Forwarded-Proto from $scheme, as
docs/deploy.md writes it: Django over a Unix socket, FastAPI (HTTP and
WebSocket) and Express over TCP. The apps see the client (127.0.0.5) and
https."""
import asyncio
import http.client
import json
import ssl

import pytest

from conftest import CLIENT_ADDR, free_port, nginx, node, piston

LOCATION = """
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
"""


def site(port, upstream, cert):
    return """
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  upstream app {{ server {upstream}; keepalive 4; }}
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    location / {{ {loc} }}
  }}
""".format(port=port, upstream=upstream, cert=cert["cert"], key=cert["key"], loc=LOCATION)


def tls_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def get_json(port, path="/whoami", n=1):
    c = http.client.HTTPSConnection("127.0.0.1", port, timeout=15, context=tls_ctx(),
                                    source_address=(CLIENT_ADDR, 0))
    out = []
    for _ in range(n):  # keep-alive to nginx, pooled to the app
        c.request("GET", path, headers={"Host": "shop.example"})
        r = c.getresponse()
        assert r.status == 200, (r.status, r.read())
        out.append(json.loads(r.read()))
    c.close()
    return out


def test_django_over_a_unix_socket(procs, tmp_path, cert):
    sock = str(tmp_path / "app.sock")
    piston(procs, "django_app", "--forwarded-allow-ips", "unix:", bind="unix:" + sock)
    port = free_port()
    nginx(procs, tmp_path, site(port, "unix:" + sock, cert))
    for v in get_json(port, n=3):
        assert v == {"secure": True, "host": "shop.example",
                     "url": "https://shop.example/whoami", "remote": CLIENT_ADDR}


def test_django_without_trust_sees_the_proxy(procs, tmp_path, cert):
    sock = str(tmp_path / "app.sock")
    piston(procs, "django_app", bind="unix:" + sock)  # 127.0.0.1 only: unix: untrusted
    port = free_port()
    nginx(procs, tmp_path, site(port, "unix:" + sock, cert))
    [v] = get_json(port)
    assert v["secure"] is False and v["remote"] == ""


def test_fastapi_http_and_websocket(procs, tmp_path, cert):
    import websockets
    app_port, port = free_port(), free_port()
    piston(procs, "fastapi_app:app", bind="127.0.0.1:%d" % app_port)
    nginx(procs, tmp_path, site(port, "127.0.0.1:%d" % app_port, cert))
    for v in get_json(port, n=2):
        assert v == {"scheme": "https", "client": CLIENT_ADDR,
                     "url": "https://shop.example/whoami"}

    async def talk():
        import socket
        s = socket.socket()
        s.bind((CLIENT_ADDR, 0))
        s.connect(("127.0.0.1", port))
        async with websockets.connect("wss://127.0.0.1:%d/ws" % port, ssl=tls_ctx(),
                                      sock=s, server_hostname="localhost") as ws:
            return json.loads(await ws.recv())
    assert asyncio.run(talk()) == {"scheme": "wss", "client": CLIENT_ADDR}


@pytest.mark.parametrize("trust", [None, "loopback", "true"])
def test_express(procs, tmp_path, cert, trust):
    app_port, port = free_port(), free_port()
    node(procs, "express_app.js", app_port, env={"TRUST_PROXY": trust} if trust else None)
    nginx(procs, tmp_path, site(port, "127.0.0.1:%d" % app_port, cert))
    for v in get_json(port, n=2):
        assert v == {"ip": CLIENT_ADDR, "secure": True, "protocol": "https",
                     "remote": CLIENT_ADDR}
