"""Piston behind a real HAProxy (Debian's) speaking the PROXY protocol to
it: send-proxy-v2 and send-proxy, in clear and over TLS to Piston (the
PROXY header first, then the handshake), HAProxy's health checks with
check-send-proxy among the traffic. The C test server's /client and a
Django app report the client HAProxy accepted: 127.0.0.5 and the very
port the test connected from."""
import http.client
import json
import socket

import pytest

from conftest import CLIENT_ADDR, free_port, haproxy, piston, run_testserver

CFG = """
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind 127.0.0.1:{port}
  default_backend be
backend be
  option httpchk GET {check}
  server app 127.0.0.1:{app} {send} check inter 300 check-send-proxy {tls}
"""


def ask(port, path):
    """Two requests on one connection from CLIENT_ADDR: the bodies, and the
    local port the connection came from."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=15,
                                   source_address=(CLIENT_ADDR, 0))
    bodies = []
    for _ in range(2):
        c.request("GET", path)
        r = c.getresponse()
        assert r.status == 200, (r.status, r.read())
        bodies.append(r.read().decode())
    local = c.sock.getsockname()[1]
    c.close()
    return bodies, local


@pytest.mark.parametrize("send", ["send-proxy-v2", "send-proxy"])
@pytest.mark.parametrize("tls", [False, True])
def test_testserver_behind_haproxy(procs, tmp_path, cert, send, tls):
    app, port = free_port(), free_port()
    args = ["--proxy-protocol"] + (["--cert", cert["cert"], "--key", cert["key"]] if tls else [])
    run_testserver(procs, app, *args)
    haproxy(procs, tmp_path, CFG.format(port=port, app=app, send=send, check="/hello",
                                        tls="ssl verify none" if tls else ""))
    bodies, local = ask(port, "/client")
    for b in bodies:
        assert b == "remote=%s:%d secure=%d host=:0\n" % (CLIENT_ADDR, local, int(tls))


def test_django_behind_haproxy_v2(procs, tmp_path, cert):
    app, port = free_port(), free_port()
    piston(procs, "django_app", "--proxy-protocol", bind="127.0.0.1:%d" % app)
    haproxy(procs, tmp_path, CFG.format(port=port, app=app, send="send-proxy-v2",
                                        check="/whoami", tls=""))
    bodies, _ = ask(port, "/whoami")
    for b in bodies:
        assert json.loads(b)["remote"] == CLIENT_ADDR


def test_a_direct_client_of_a_proxy_protocol_port_is_closed(procs):
    # 127.0.0.1 is trusted: it must say PROXY first; plain HTTP gets no answer
    app = free_port()
    run_testserver(procs, app, "--proxy-protocol")
    s = socket.create_connection(("127.0.0.1", app), timeout=10)
    s.sendall(b"GET /client HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        assert s.recv(100) == b""
    except ConnectionResetError:
        pass
    s.close()
