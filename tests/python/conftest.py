"""Fixtures: Piston (and gunicorn) as real subprocesses on 127.0.0.1, and
raw-socket helpers where every read has a timeout."""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TIMEOUT = 10



def piston_cmd():
    """The piston CLI: the venv's console script when there is one, else
    `python -m piston` with python/ on the path (a built extension there)."""
    venv = os.path.join(ROOT, ".venv", "bin", "piston")
    if os.path.exists(venv):
        return [venv]
    return [sys.executable, "-m", "piston"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, timeout=TIMEOUT):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("server exited early (%s)" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not listen on %d" % port)


class Server:
    def __init__(self, args, port, cwd=HERE, env=None):
        self.port = port
        self.args = args
        e = dict(os.environ)
        e["PYTHONPATH"] = HERE + os.pathsep + os.path.join(ROOT, "python") + \
            os.pathsep + e.get("PYTHONPATH", "")
        e["PYTHONUNBUFFERED"] = "1"
        if env:
            e.update(env)
        # stderr goes to a file: a pipe nobody reads would fill up and
        # block the server's log writes
        self.errfile = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(args, cwd=cwd, env=e, stdout=subprocess.DEVNULL,
                                     stderr=self.errfile, start_new_session=True)
        wait_port(port, self.proc)

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        return self.proc.returncode

    def log(self):
        self.stop()
        self.errfile.seek(0)
        return self.errfile.read().decode(errors="replace")


@pytest.fixture
def start_piston():
    started = []

    def start(app="apps:app", *extra, port=None):
        port = port or free_port()
        args = piston_cmd() + [app, "--bind", "127.0.0.1:%d" % port] + list(extra)
        s = Server(args, port)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture(scope="module")
def piston_app():
    """One shared server of apps:broken (which falls through to apps:app)."""
    port = free_port()
    s = Server(piston_cmd() + ["apps:broken", "--bind", "127.0.0.1:%d" % port,
                               "--threads", "4"], port)
    yield s
    s.stop()


# ---- raw HTTP over sockets ----------------------------------------------------

def connect(port, timeout=TIMEOUT):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.settimeout(timeout)
    return s


def recv_all(sock):
    """Everything the server sends until it closes the connection."""
    raw = b""
    while True:
        data = sock.recv(65536)
        if not data:
            return raw
        raw += data


class Response:
    def __init__(self, status, reason, headers, body):
        self.status, self.reason, self.headers, self.body = status, reason, headers, body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


class Reader:
    """Reads HTTP/1.1 responses off a socket (Content-Length, chunked, or
    until close)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _more(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def _line(self):
        while b"\r\n" not in self.buf:
            self._more()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            self._more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response(self, head=False):
        line = self._line()
        while True:
            parts = line.split(b" ", 2)
            status = int(parts[1])
            headers = []
            while True:
                h = self._line()
                if not h:
                    break
                k, _, v = h.partition(b":")
                headers.append((k.decode(), v.strip().decode("latin-1")))
            if status != 100:
                break
            line = self._line()
        r = Response(status, parts[2].decode() if len(parts) > 2 else "", headers, b"")
        if head or status in (204, 304):
            return r
        te = r.header("Transfer-Encoding")
        cl = r.header("Content-Length")
        if te and "chunked" in te.lower():
            body = b""
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():
                        pass
                    break
                body += self._exact(size)
                self._exact(2)
            r.body = body
        elif cl is not None:
            r.body = self._exact(int(cl))
        else:
            try:
                while True:
                    self._more()
            except EOFError:
                pass
            r.body, self.buf = self.buf, b""
        return r


def request(port, method="GET", path="/", headers=(), body=b"", head=False):
    s = connect(port)
    try:
        hs = "".join("%s: %s\r\n" % h for h in headers)
        if body and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers):
            hs += "Content-Length: %d\r\n" % len(body)
        s.sendall(("%s %s HTTP/1.1\r\nHost: localhost\r\n%sConnection: close\r\n\r\n"
                   % (method, path, hs)).encode("latin-1") + body)
        return Reader(s).response(head=head or method == "HEAD")
    finally:
        s.close()
