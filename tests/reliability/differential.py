"""Differential framing harness: nginx (Debian's nginx-light) on 127.0.0.1
as the reference parser. nginx answers GET /hello itself and proxies
/echo to a piston-testserver, so a body it accepted comes back as nginx
framed it; piston-testserver is asked directly. Each case's bytes are
followed on the same connection by `GET /hello` with Connection: close, so
the outcome shows where each server thinks the first request ended.

In the TLS run (PISTON_TEST_TLS=1) both speak TLS with the run's
certificate (util.tls_files()): nginx listens with `ssl` and proxies /echo
to the piston-testserver over https, and every exchange goes through
util.client_socket, so both parse the same bytes out of TLS records."""

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import util

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

FOLLOW = b"GET /hello HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"

CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    client_header_timeout 2s;
    client_body_timeout 2s;
    keepalive_timeout 5s;
    server {{
        listen 127.0.0.1:{port}{ssl};{certs}
        location = /hello {{ default_type text/plain; return 200 "Hello, World!"; }}
        location /echo {{
            proxy_pass {scheme}://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
        location / {{ return 404; }}
    }}
}}
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Nginx:
    def __init__(self, upstream_port):
        self.dir = tempfile.mkdtemp(prefix="piston-nginx-")
        self.port = free_port()
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            if util.TLS:
                cert, key = util.tls_files()
                tls = dict(ssl=" ssl", scheme="https", certs=(
                    "\n        ssl_certificate %s;\n        ssl_certificate_key %s;" % (cert, key)))
            else:
                tls = dict(ssl="", scheme="http", certs="")
            f.write(CONF.format(dir=self.dir, port=self.port, upstream=upstream_port, **tls))
        self.proc = subprocess.Popen(
            [NGINX, "-p", self.dir, "-c", conf, "-e", os.path.join(self.dir, "error.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = self.proc.stderr.read().decode(errors="replace")
                    raise AssertionError("nginx did not start: %s" % err)
                time.sleep(0.05)

    @property
    def addr(self):
        return ("127.0.0.1", self.port)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def exchange(addr, data, timeout=4.0):
    """Sends data + FOLLOW, reads to EOF (bounded); returns the raw bytes and
    whether the server closed before the deadline."""
    s = util.client_socket(addr, timeout=timeout)
    out = b""
    closed = False
    try:
        try:
            s.sendall(data + FOLLOW)
        except (BrokenPipeError, ConnectionResetError):
            pass
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except (ConnectionResetError, ssl.SSLError):
                # TLS: a close without close_notify after an error
                closed = True
                break
            if not d:
                closed = True
                break
            out += d
    finally:
        s.close()
    return out, closed


def parse_stream(raw):
    """[(status, body)] for each whole response in raw (Content-Length,
    chunked or close-delimited)."""
    out = []
    while raw:
        i = raw.find(b"\r\n\r\n")
        if i < 0:
            break
        head = raw[:i].split(b"\r\n")
        m = re.match(rb"HTTP/1\.[01] (\d{3})", head[0])
        if not m:
            break
        status = int(m.group(1))
        hdrs = {}
        for line in head[1:]:
            n, _, v = line.partition(b":")
            hdrs[n.strip().lower()] = v.strip().lower()
        rest = raw[i + 4 :]
        if status in (204, 304) or 100 <= status < 200:
            body = b""
        elif hdrs.get(b"transfer-encoding") == b"chunked":
            body = b""
            while True:
                j = rest.find(b"\r\n")
                if j < 0:
                    rest = b""
                    break
                n = int(rest[:j].split(b";")[0], 16)
                rest = rest[j + 2 :]
                if n == 0:
                    k = rest.find(b"\r\n\r\n") if not rest.startswith(b"\r\n") else -2
                    rest = rest[2:] if k == -2 else rest[k + 4 :]
                    break
                body += rest[:n]
                rest = rest[n + 2 :]
        elif b"content-length" in hdrs:
            n = int(hdrs[b"content-length"])
            body, rest = rest[:n], rest[n:]
        else:
            body, rest = rest, b""
        if not (100 <= status < 200):
            out.append((status, body))
        raw = rest
    return out


def outcome(addr, data):
    """A comparable summary: the first answer ("ok", body) or ("reject",),
    or ("timeout",) if the server waited for more; then whether the
    follow-up request was answered as a second request."""
    raw, closed = exchange(addr, data)
    rs = parse_stream(raw)
    if not rs:
        first = ("timeout",) if not closed else ("closed",)
        return first, False, rs
    st, body = rs[0]
    if 200 <= st < 300:
        first = ("ok", body)
    elif st == 408:
        first = ("timeout",)
    else:
        first = ("reject",)
    follow = len(rs) >= 2 and rs[1] == (200, b"Hello, World!")
    return first, follow, rs


def python_head_verdict(data):
    """Python's own request-head parser (http.server.BaseHTTPRequestHandler
    .parse_request, with http.client's header parser): "ok" or "reject".
    It knows no body framing, so only the head decision is comparable."""
    import http.server
    import io

    class H(http.server.BaseHTTPRequestHandler):
        def __init__(self, raw):  # no socket: parse from bytes
            self.rfile = io.BytesIO(raw)
            self.wfile = io.BytesIO()
            self.client_address = ("127.0.0.1", 0)
            self.request_version = self.default_request_version = "HTTP/0.9"
            self.command = None
            self.close_connection = True

        def log_message(self, *a):
            pass

    h = H(data)
    h.raw_requestline = h.rfile.readline(65537)
    try:
        ok = h.parse_request()
    except Exception:
        ok = False
    return "ok" if ok else "reject"
