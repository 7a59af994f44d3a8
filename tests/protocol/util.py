"""Helpers for the protocol tests: server processes, raw sockets, a strict
response reader and exact-bytes comparisons with the Date value masked."""

import os
import re
import signal
import socket
import subprocess
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(REPO, os.environ.get("PISTON_BUILD", "build"))

STATIC = os.path.join(BUILD, "piston-static")
TESTSERVER = os.path.join(BUILD, "piston-testserver")

READ_TIMEOUT = 5.0

# PISTON_TEST_TLS=1 runs the suites over TLS: the engine's servers get a
# certificate (made once per run) and every Conn speaks TLS through
# Python's ssl module, so the same bytes are checked through the TLS
# transport.
TLS = os.environ.get("PISTON_TEST_TLS") == "1"
_tls_files = None


def tls_files():
    """(cert, key) of a throwaway P-256 certificate for 127.0.0.1/localhost."""
    global _tls_files
    if _tls_files is None:
        import tempfile

        d = tempfile.mkdtemp(prefix="piston-tls-")
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec",
             "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
             "-keyout", key, "-out", cert, "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True, capture_output=True,
        )
        _tls_files = (cert, key)
    return _tls_files


def _tls_context():
    import ssl

    class HalfCloseSSLSocket(ssl.SSLSocket):
        # SSLSocket.shutdown() drops the TLS session; a test that half-closes
        # wants a FIN and to go on reading the answer through TLS.
        def shutdown(self, how):
            socket.socket.shutdown(self, how)

        # One OpenSSL session must not be used by two threads at once, and
        # some tests send from a thread while they read: one at a time.
        def _locked(name):
            def call(self, *a, **kw):
                lock = self.__dict__.setdefault("_piston_lock", threading.RLock())
                with lock:
                    return getattr(ssl.SSLSocket, name)(self, *a, **kw)
            return call

        send = _locked("send")
        sendall = _locked("sendall")
        recv = _locked("recv")

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.sslsocket_class = HalfCloseSSLSocket
    return ctx


_TLS_CTX = None


def tls_client_context():
    global _TLS_CTX
    if _TLS_CTX is None:
        _TLS_CTX = _tls_context()
    return _TLS_CTX


def client_socket(addr, timeout=READ_TIMEOUT):
    """A connected client socket, through TLS in the TLS run."""
    sock = socket.create_connection(addr, timeout=timeout)
    return tls_client_context().wrap_socket(sock) if TLS else sock

DATE_RE = re.compile(
    rb"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d "
    rb"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
    rb"\d\d:\d\d:\d\d GMT"
)
DATE_LINE_RE = re.compile(rb"\r\nDate: ([^\r\n]*)\r\n")

REASONS = {
    100: "Continue",
    200: "OK",
    204: "No Content",
    206: "Partial Content",
    304: "Not Modified",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    414: "URI Too Long",
    416: "Range Not Satisfiable",
    417: "Expectation Failed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    505: "HTTP Version Not Supported",
}
# Older RFCs named these differently; either name is acceptable.
ALT_REASONS = {
    413: ("Content Too Large", "Payload Too Large", "Request Entity Too Large"),
    416: ("Range Not Satisfiable", "Requested Range Not Satisfiable"),
}


# ---- server processes ------------------------------------------------------


class Server:
    """A server process started with --bind 127.0.0.1:0; learns its port from
    the one 'listening on' line on stderr, and keeps reading stderr so the
    pipe never fills."""

    def __init__(self, binary, args=(), name=None):
        self.binary = binary
        self.name = name or os.path.basename(binary)
        self.args = ["--bind", "127.0.0.1:0"] + list(args)
        if (TLS and os.path.basename(binary) in ("piston-static", "piston-testserver")
                and "--cert" not in self.args):
            cert, key = tls_files()
            self.args += ["--cert", cert, "--key", key]
        self.lines = []
        self.port = None
        self._ready = threading.Event()
        self.proc = subprocess.Popen(
            [binary] + self.args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        if not self._ready.wait(10):
            self.proc.kill()
            raise AssertionError(
                "%s did not print its listening line; stderr: %r"
                % (self.name, self.lines)
            )
        if self.port is None:
            raise AssertionError(
                "%s exited before listening (rc=%r); stderr: %r"
                % (self.name, self.proc.poll(), self.lines)
            )

    def _read_stderr(self):
        pat = re.compile(
            r"^%s: listening on https?://127\.0\.0\.1:(\d+)$" % re.escape(self.name)
        )
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            m = pat.match(line)
            if m and self.port is None:
                self.port = int(m.group(1))
                self._ready.set()
        self._ready.set()

    @property
    def addr(self):
        return ("127.0.0.1", self.port)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=10):
        """SIGTERM, wait, return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                "%s did not exit within %ss of SIGTERM; stderr: %r"
                % (self.name, timeout, self.lines[-20:])
            )
        self._reader.join(2)
        return rc

    def stop_ok(self):
        rc = self.stop()
        assert rc == 0, "%s exited %r; stderr: %r" % (self.name, rc, self.lines[-20:])

    def rss_kb(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")


# ---- connections -----------------------------------------------------------


class Response:
    def __init__(self):
        self.status = None
        self.reason = None
        self.version = None
        self.headers = []  # [(name, value)] as bytes, in order
        self.head = b""  # raw, including the final CRLFCRLF
        self.raw_body = b""  # raw, as framed on the wire
        self.body = b""  # decoded
        self.trailers = []
        self.framing = None  # "length", "chunked", "close", "none"

    @property
    def raw(self):
        return self.head + self.raw_body

    def header(self, name):
        name = name.lower().encode() if isinstance(name, str) else name.lower()
        vals = [v for n, v in self.headers if n.lower() == name]
        assert len(vals) <= 1, "header %r appears %d times" % (name, len(vals))
        return vals[0].decode("latin-1") if vals else None

    def header_all(self, name):
        name = name.lower().encode()
        return [v.decode("latin-1") for n, v in self.headers if n.lower() == name]

    def masked(self):
        return mask_date(self.raw)

    def __repr__(self):
        return "<Response %r>" % (self.raw[:300],)


def mask_date(raw):
    """Checks the one Date header's format and replaces its value by DATE."""
    head_end = raw.find(b"\r\n\r\n")
    head = raw[: head_end + 2] if head_end >= 0 else raw
    dates = DATE_LINE_RE.findall(head)
    assert len(dates) == 1, "want exactly one Date header in %r" % (head,)
    assert DATE_RE.fullmatch(dates[0]), "bad Date value %r" % (dates[0],)
    return DATE_LINE_RE.sub(b"\r\nDate: DATE\r\n", raw, count=1)


class Conn:
    """A client socket with a read buffer and a strict response reader.
    Every read has a timeout: a hang fails the test."""

    def __init__(self, addr, timeout=READ_TIMEOUT, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(addr)
        if TLS:
            self.sock = tls_client_context().wrap_socket(self.sock)
        self.timeout = timeout
        self.buf = b""
        self.eof = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def reset(self):
        """Closes with an RST (SO_LINGER 0)."""
        import struct

        self.sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self, deadline):
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("timed out; have %r" % (self.buf[:500],))
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise AssertionError("timed out; have %r" % (self.buf[:500],))
        except OSError as e:
            # TLS: the server's close (without close_notify after an error)
            if not TLS or isinstance(e, ConnectionResetError):
                raise
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_until(self, delim, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                out, self.buf = self.buf[: i + len(delim)], self.buf[i + len(delim) :]
                return out
            if not self._fill(deadline):
                raise AssertionError(
                    "EOF before %r; have %r" % (delim, self.buf[:500])
                )

    def _take(self, parts):
        # the reads so far, joined once: appending each to one bytes object
        # copies it whole every time, which for a large body read in small
        # pieces (a small receive buffer) costs seconds
        parts.append(self.buf)
        self.buf = b""
        return len(parts[-1])

    def read_exact(self, n, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        parts, have = [], 0
        while have + len(self.buf) < n:
            have += self._take(parts)
            if not self._fill(deadline):
                raise AssertionError("EOF after %d of %d bytes" % (have, n))
        parts.append(self.buf)
        data = b"".join(parts)
        out, self.buf = data[:n], data[n:]
        return out

    def read_to_eof(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        parts = []
        try:
            while True:
                self._take(parts)
                if not self._fill(deadline):
                    break
        except ConnectionResetError:
            self.eof = True
        parts.append(self.buf)
        self.buf = b""
        return b"".join(parts)

    def read_response(self, head_request=False, timeout=None):
        """Reads one response (interim 1xx responses are returned as such)."""
        timeout = timeout or self.timeout
        r = Response()
        r.head = self.read_until(b"\r\n\r\n", timeout)
        lines = r.head[:-4].split(b"\r\n")
        m = re.fullmatch(rb"(HTTP/1\.[01]) (\d{3}) ([^\r\n]*)", lines[0])
        assert m, "bad status line %r" % (lines[0],)
        r.version = m.group(1)
        r.status = int(m.group(2))
        r.reason = m.group(3).decode("latin-1")
        for line in lines[1:]:
            assert b":" in line and not line[:1].isspace(), "bad header line %r" % (
                line,
            )
            n, v = line.split(b":", 1)
            assert n and n == n.strip(), "bad header name %r" % (n,)
            r.headers.append((n, v.strip(b" \t")))
        te = [v for n, v in r.headers if n.lower() == b"transfer-encoding"]
        cl = [v for n, v in r.headers if n.lower() == b"content-length"]
        assert not (te and cl), "both Content-Length and Transfer-Encoding"
        assert len(cl) <= 1, "several Content-Length headers"
        if head_request or r.status in (204, 304) or 100 <= r.status < 200:
            r.framing = "none"
            return r
        if te:
            assert te == [b"chunked"], "unexpected Transfer-Encoding %r" % (te,)
            r.framing = "chunked"
            self._read_chunked(r, timeout)
        elif cl:
            assert re.fullmatch(rb"\d+", cl[0]), "bad Content-Length %r" % cl
            r.framing = "length"
            r.raw_body = r.body = self.read_exact(int(cl[0]), timeout)
        else:
            r.framing = "close"
            r.raw_body = r.body = self.read_to_eof(timeout)
        return r

    def _read_chunked(self, r, timeout):
        raw = []
        body = []
        while True:
            line = self.read_until(b"\r\n", timeout)
            raw.append(line)
            m = re.fullmatch(rb"([0-9a-fA-F]+)(;[^\r\n]*)?\r\n", line)
            assert m, "bad chunk size line %r" % (line,)
            size = int(m.group(1), 16)
            if size == 0:
                break
            data = self.read_exact(size + 2, timeout)
            assert data.endswith(b"\r\n"), "chunk data not followed by CRLF"
            raw.append(data)
            body.append(data[:-2])
        while True:
            line = self.read_until(b"\r\n", timeout)
            raw.append(line)
            if line == b"\r\n":
                break
            n, v = line[:-2].split(b":", 1)
            r.trailers.append((n, v.strip()))
        r.raw_body = b"".join(raw)
        r.body = b"".join(body)

    def expect_eof(self, timeout=None):
        """The server must close: no more bytes, then EOF (or a reset)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            while self._fill(deadline):
                pass
        except ConnectionResetError:
            self.eof = True
        assert self.buf == b"", "unexpected bytes before EOF: %r" % (self.buf[:300],)

    def expect_open(self, wait):
        """Nothing arrives and the connection stays open for `wait` seconds."""
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(1)
        except socket.timeout:
            return
        raise AssertionError("expected no data and an open connection, got %r" % data)


def request(method, target, headers=(), body=b"", version="HTTP/1.1", host=True):
    lines = ["%s %s %s" % (method, target, version)]
    if host:
        lines.append("Host: test")
    lines += ["%s: %s" % h for h in headers]
    if body and not any(n.lower() in ("content-length", "transfer-encoding") for n, _ in headers):
        lines.append("Content-Length: %d" % len(body))
    if isinstance(body, str):
        body = body.encode()
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def get(addr, target, **kw):
    with Conn(addr) as c:
        c.send(request("GET", target, **kw))
        return c.read_response()


def error_bytes(status, reason=None):
    """The exact shape of an engine error, Date masked."""
    reason = reason or REASONS[status]
    body = (reason + "\n").encode()
    return (
        b"HTTP/1.1 %d %s\r\nDate: DATE\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
        % (status, reason.encode(), len(body), body)
    )


def assert_error(conn, status):
    """Reads an engine error response, checks its exact bytes, then EOF."""
    r = conn.read_response()
    got = r.masked()
    reasons = ALT_REASONS.get(status, (REASONS[status],))
    expected = [error_bytes(status, rs) for rs in reasons]
    assert got in expected, "got %r\nexpected %r" % (got, expected[0])
    conn.expect_eof()
    return r


def assert_serving(addr):
    """A fresh connection still gets an answer."""
    with Conn(addr) as c:
        c.send(request("GET", "/hello"))
        r = c.read_response()
        assert r.status == 200 and r.body == b"Hello, World!"


# How many /stats requests each server got from this process, so tests can
# tell their own requests apart from the ones the handler saw.
stats_calls = {}


def assert_serving_path(addr, target, body):
    with Conn(addr) as c:
        c.send(request("GET", target))
        r = c.read_response()
        assert (r.status, r.body) == (200, body)


def stats(addr):
    stats_calls[addr] = stats_calls.get(addr, 0) + 1
    r = get(addr, "/stats")
    assert r.status == 200, r
    return {k: int(v) for k, v in (kv.split("=") for kv in r.body.decode().split())}


def wait_stats(addr, pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        s = stats(addr)
        if pred(s):
            return s
        if time.monotonic() > deadline:
            raise AssertionError("stats never satisfied the condition: %r" % s)
        time.sleep(0.05)


def pattern(offset, n):
    """The body pattern of /big, /sendfile: byte k is 'a' + k % 26."""
    alpha = b"abcdefghijklmnopqrstuvwxyz"
    start = offset % 26
    reps = (start + n) // 26 + 1
    return (alpha * reps)[start : start + n]


def wait_for(pred, timeout=5.0):
    """Polls pred until it is true; fails the test after timeout."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within %.1f s" % timeout)
        time.sleep(0.02)
