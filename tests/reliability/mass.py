"""Many connections from one thread: blocking connects, then one selector
that sends a request on each socket and reads one Content-Length-framed
response from each. Every wait is bounded by a deadline.

In the TLS run (PISTON_TEST_TLS=1) every socket is util.client_socket's:
the handshake is done, blocking, as it connects; then the same selector
drives SSL sockets, whose non-blocking reads and writes say "not now" with
SSLWantReadError/SSLWantWriteError (a record not whole yet, a session
ticket read instead of data) where a plain socket raises BlockingIOError."""

import selectors
import socket
import ssl
import struct
import time

import util

# What a non-blocking send or recv raises when it has to wait, plain or TLS.
WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


def open_many(addr, n, deadline_s=60.0):
    socks = []
    end = time.monotonic() + deadline_s
    try:
        for _ in range(n):
            assert time.monotonic() < end, "connects took longer than %ss" % deadline_s
            s = util.client_socket(addr, timeout=5.0)
            s.setblocking(False)
            socks.append(s)
    except BaseException:
        close_all(socks)
        raise
    return socks


def close_all(socks, reset=False):
    for s in socks:
        try:
            if reset:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        except OSError:
            pass


def _parse(buf):
    """(status, body, rest) if buf holds a whole response, else None."""
    i = buf.find(b"\r\n\r\n")
    if i < 0:
        return None
    head = buf[:i].split(b"\r\n")
    status = int(head[0].split(b" ", 2)[1])
    cl = 0
    for line in head[1:]:
        n, _, v = line.partition(b":")
        if n.strip().lower() == b"content-length":
            cl = int(v.strip())
    if len(buf) < i + 4 + cl:
        return None
    return status, buf[i + 4 : i + 4 + cl], buf[i + 4 + cl :]


def request_all(socks, req, deadline_s=60.0):
    """Sends req on every socket and reads one response from each; returns
    [(status, body)] in socket order. Fails on EOF, reset or deadline."""
    sel = selectors.DefaultSelector()
    out = [None] * len(socks)
    bufs = [b""] * len(socks)
    pending = [req] * len(socks)
    for k, s in enumerate(socks):
        sel.register(s, selectors.EVENT_WRITE | selectors.EVENT_READ, k)
    left = len(socks)
    end = time.monotonic() + deadline_s
    try:
        while left:
            t = end - time.monotonic()
            assert t > 0, "%d of %d responses missing at the deadline" % (left, len(socks))
            for key, ev in sel.select(min(t, 1.0)):
                k = key.data
                s = key.fileobj
                if ev & selectors.EVENT_WRITE and pending[k]:
                    try:
                        n = s.send(pending[k])
                    except WOULD_BLOCK:
                        n = 0
                    pending[k] = pending[k][n:]
                    if not pending[k]:
                        sel.modify(s, selectors.EVENT_READ, k)
                if ev & selectors.EVENT_READ:
                    try:
                        data = s.recv(65536)
                        # TLS: what OpenSSL decrypted and holds, which the
                        # selector cannot see
                        while util.TLS and s.pending():
                            data += s.recv(65536)
                    except WOULD_BLOCK:
                        continue
                    assert data, "connection %d closed before its response" % k
                    bufs[k] += data
                    r = _parse(bufs[k])
                    if r:
                        out[k] = (r[0], r[1])
                        assert r[2] == b"", "extra bytes on connection %d" % k
                        sel.unregister(s)
                        left -= 1
    finally:
        sel.close()
    return out


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")
