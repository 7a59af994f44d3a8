"""WebSocket conformance over raw sockets, written once for every host that
speaks WebSocket: each case takes the server's address and the path of an
echo endpoint (a message comes back as it went; a text "close" makes the
server close with 1000 "bye"). Sections follow Autobahn|Testsuite's:
1 framing and echo, 2 ping/pong, 3 reserved bits, 4 opcodes, 5
fragmentation, 6 UTF-8, 7 close handling, 9 limits; plus the opening
handshake (RFC 6455 4.2)."""

import base64
import hashlib
import os
import socket
import struct
import time


def _sibling_util():
    """tests/protocol/util.py (its TLS-aware client sockets), also when this
    file is loaded by path from another suite that has no `util` of its own
    on the path."""
    import importlib.util
    import sys

    mod = sys.modules.get("util")
    if mod is not None and hasattr(mod, "client_socket"):
        return mod
    spec = importlib.util.spec_from_file_location(
        "piston_protocol_util", os.path.join(os.path.dirname(os.path.abspath(__file__)), "util.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


util = _sibling_util()

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TIMEOUT = 10.0

TEXT, BINARY, CLOSE, PING, PONG, CONT = 1, 2, 8, 9, 10, 0


def accept_of(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def handshake_request(path, key="dGhlIHNhbXBsZSBub25jZQ==", version="13",
                      extra=(), method="GET", proto="HTTP/1.1", upgrade="websocket",
                      connection="Upgrade"):
    lines = ["%s %s %s" % (method, path, proto), "Host: x"]
    if upgrade is not None:
        lines.append("Upgrade: " + upgrade)
    if connection is not None:
        lines.append("Connection: " + connection)
    if key is not None:
        lines.append("Sec-WebSocket-Key: " + key)
    if version is not None:
        lines.append("Sec-WebSocket-Version: " + version)
    lines += list(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def frame(op, payload=b"", fin=True, rsv=0, mask=True, length=None):
    """A client frame; length overrides the encoded length (for lies)."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | op
    if n < 126:
        head = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
    else:
        head = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if len(payload) < 4096 \
        else _mask_fast(payload, key)
    return head + key + body


def _mask_fast(payload, key):
    n = len(payload)
    k = int.from_bytes((key * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ k).to_bytes(n, "big")


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


class Ws:
    """One client connection: the handshake, then frames."""

    def __init__(self, addr, path, **hs):
        self.sock = util.client_socket(addr, timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.sock.sendall(handshake_request(path, **hs))
        self.head = self.read_until(b"\r\n\r\n")
        self.status = int(self.head.split(b" ", 2)[1])

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        d = self.sock.recv(1 << 20)
        if not d:
            raise EOFError("server closed with %r pending" % self.buf[:64])
        self.buf += d

    def read_until(self, delim):
        while delim not in self.buf:
            self._fill()
        i = self.buf.index(delim) + len(delim)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self):
        b0, b1 = self.read_exact(2)
        assert not (b1 & 0x80), "a server frame must not be masked"
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self.read_exact(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self.read_exact(8))
        return bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, self.read_exact(n)

    def message(self):
        """The next data message (server frames are whole), pongs skipped."""
        while True:
            fin, rsv, op, data = self.read_frame()
            assert rsv == 0 and fin, (fin, rsv, op)
            if op != PONG:
                return op, data

    def expect_close(self, code):
        """Reads up to the server's close frame (skipping data and pongs),
        checks its code, answers it and expects the TCP close."""
        while True:
            fin, rsv, op, data = self.read_frame()
            if op == CLOSE:
                break
        got = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
        assert got == code, "close code %r, expected %r (payload %r)" % (got, code, data)
        try:
            self.send(frame(CLOSE, data[:2]))
        except OSError:
            pass
        self.expect_eof()
        return data[2:]

    def expect_eof(self):
        self.sock.settimeout(TIMEOUT)
        end = time.monotonic() + TIMEOUT
        while time.monotonic() < end:
            try:
                d = self.sock.recv(65536)
            except ConnectionResetError:
                return
            if not d:
                return
            assert False, "data after the close: %r" % d[:64]
        assert False, "the server did not close the connection"


def open_ws(addr, path):
    ws = Ws(addr, path)
    assert ws.status == 101, ws.head
    return ws


def echo(ws, op, payload):
    ws.send(frame(op, payload))
    got_op, got = ws.message()
    assert (got_op, got) == (op, payload), (got_op, len(got), len(payload))


# ---- the opening handshake -------------------------------------------------

def hs_accept(addr, path):
    with Ws(addr, path) as ws:
        head = ws.head.decode()
        assert head.startswith("HTTP/1.1 101 Switching Protocols\r\n"), head
        lines = head.lower().split("\r\n")
        assert "upgrade: websocket" in lines
        assert "connection: upgrade" in lines
        assert "sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=" in lines, head
        echo(ws, TEXT, b"after the handshake")


def hs_frames_behind_head(addr, path):
    """A frame sent with the handshake (before the 101) is not lost."""
    sock = util.client_socket(addr, timeout=TIMEOUT)
    sock.sendall(handshake_request(path) + frame(TEXT, b"early"))
    ws = Ws.__new__(Ws)
    ws.sock, ws.buf = sock, b""
    ws.head = ws.read_until(b"\r\n\r\n")
    assert b" 101 " in ws.head.split(b"\r\n")[0]
    assert ws.message() == (TEXT, b"early")
    ws.close()


def hs_bad_version(addr, path):
    with Ws(addr, path, version="8") as ws:
        assert ws.status == 426, ws.head
        assert b"\r\nSec-WebSocket-Version: 13\r\n" in ws.head


def hs_bad(addr, path):
    for kw in ({"key": "c2hvcnQ="}, {"key": None}, {"connection": "keep-alive"},
               {"method": "POST"}, {"proto": "HTTP/1.0"}, {"key": "!" * 22 + "=="}):
        with Ws(addr, path, **kw) as ws:
            assert ws.status == 400, (kw, ws.head)


# ---- 1: framing and echo ---------------------------------------------------

def f1_text_sizes(addr, path):
    with open_ws(addr, path) as ws:
        for n in (0, 1, 125, 126, 127, 65535, 65536, 1 << 20):
            echo(ws, TEXT, b"*" * n)


def f1_binary_sizes(addr, path):
    with open_ws(addr, path) as ws:
        for n in (0, 125, 126, 65535, 65536, 1 << 20):
            echo(ws, BINARY, bytes(range(256)) * (n // 256) + bytes(n % 256))


def f1_16mib(addr, path):
    with open_ws(addr, path) as ws:
        data = os.urandom(16 << 20)
        echo(ws, BINARY, data)


def f1_byte_by_byte(addr, path):
    """A frame dribbled one byte per write is the same frame."""
    with open_ws(addr, path) as ws:
        for b in frame(TEXT, b"slowly, one byte at a time"):
            ws.send(bytes([b]))
        assert ws.message() == (TEXT, b"slowly, one byte at a time")


def f1_many_in_one_write(addr, path):
    with open_ws(addr, path) as ws:
        ws.send(b"".join(frame(TEXT, b"m%d" % i) for i in range(100)))
        for i in range(100):
            assert ws.message() == (TEXT, b"m%d" % i)


def f1_unmasked(addr, path):
    with open_ws(addr, path) as ws:
        ws.send(frame(TEXT, b"bare", mask=False))
        ws.expect_close(1002)


# ---- 2: ping and pong ------------------------------------------------------

def f2_ping(addr, path):
    with open_ws(addr, path) as ws:
        for payload in (b"", b"ping", b"\xff" * 125):
            ws.send(frame(PING, payload))
            assert ws.read_frame() == (True, 0, PONG, payload)


def f2_ping_too_long(addr, path):
    with open_ws(addr, path) as ws:
        ws.send(frame(PING, b"x" * 126))
        ws.expect_close(1002)


def f2_unsolicited_pong(addr, path):
    with open_ws(addr, path) as ws:
        ws.send(frame(PONG, b"unasked"))
        echo(ws, TEXT, b"still open")


def f2_fragmented_ping(addr, path):
    with open_ws(addr, path) as ws:
        ws.send(frame(PING, b"half", fin=False))
        ws.expect_close(1002)


# ---- 3: reserved bits; 4: opcodes ------------------------------------------

def f3_rsv(addr, path):
    for rsv in range(1, 8):
        with open_ws(addr, path) as ws:
            ws.send(frame(TEXT, b"rsv", rsv=rsv))
            ws.expect_close(1002)


def f4_reserved_opcodes(addr, path):
    for op in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15):
        with open_ws(addr, path) as ws:
            echo(ws, TEXT, b"before")
            ws.send(frame(op, b"x"))
            ws.expect_close(1002)


# ---- 5: fragmentation ------------------------------------------------------

def f5_fragments(addr, path):
    with open_ws(addr, path) as ws:
        ws.send(frame(TEXT, b"frag", fin=False) + frame(CONT, b"men", fin=False) +
                frame(CONT, b"ted"))
        assert ws.message() == (TEXT, b"fragmented")
        ws.send(frame(BINARY, b"\x00", fin=False) + frame(CONT, b"", fin=False) +
                frame(CONT, b"\x01"))
        assert ws.message() == (BINARY, b"\x00\x01")


def f5_control_between_fragments(addr, path):
    with open_ws(addr, path) as ws:
        ws.send(frame(TEXT, b"one ", fin=False) + frame(PING, b"p") +
                frame(CONT, b"two"))
        assert ws.read_frame() == (True, 0, PONG, b"p")
        assert ws.message() == (TEXT, b"one two")


def f5_continuation_first(addr, path):
    with open_ws(addr, path) as ws:
        ws.send(frame(CONT, b"orphan"))
        ws.expect_close(1002)


def f5_new_message_inside(addr, path):
    with open_ws(addr, path) as ws:
        ws.send(frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"))
        ws.expect_close(1002)


# ---- 6: UTF-8 --------------------------------------------------------------

VALID_UTF8 = ["κόσμε", "\u0080", "\u07ff", "\u0800", "\uffff", "\U00010000",
              "\U0010ffff", "\ud7ff", "\ue000"]
INVALID_UTF8 = [b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                b"\xf8\x88\x80\x80\x80", b"\xff", b"\x80", b"\xce\xba\xe1\xbd",
                b"\xc2"]


def f6_valid(addr, path):
    with open_ws(addr, path) as ws:
        for s in VALID_UTF8:
            echo(ws, TEXT, s.encode())
        # a character split across fragments is still one character
        e = "κόσμε".encode()
        ws.send(frame(TEXT, e[:3], fin=False) + frame(CONT, e[3:]))
        assert ws.message() == (TEXT, e)


def f6_invalid(addr, path):
    for bad in INVALID_UTF8:
        with open_ws(addr, path) as ws:
            ws.send(frame(TEXT, b"ok " + bad))
            ws.expect_close(1007)


def f6_fail_fast(addr, path):
    """An invalid byte in a first fragment fails the message at once,
    before the rest of it is sent (Autobahn 6.4)."""
    with open_ws(addr, path) as ws:
        ws.send(frame(TEXT, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80",
                      fin=False))
        ws.expect_close(1007)


# ---- 7: closing ------------------------------------------------------------

def f7_client_close(addr, path):
    for payload, want in ((close_payload(1000, b"done"), 1000), (b"", None),
                          (close_payload(4999), 4999), (close_payload(3000), 3000)):
        with open_ws(addr, path) as ws:
            ws.send(frame(CLOSE, payload))
            fin, rsv, op, data = ws.read_frame()
            assert op == CLOSE
            got = struct.unpack("!H", data[:2])[0] if data else None
            assert got == want, (payload, data)
            ws.expect_eof()


def f7_invalid_codes(addr, path):
    for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535):
        with open_ws(addr, path) as ws:
            ws.send(frame(CLOSE, close_payload(code)))
            ws.expect_close(1002)


def f7_one_byte_payload(addr, path):
    with open_ws(addr, path) as ws:
        ws.send(frame(CLOSE, b"\x03"))
        ws.expect_close(1002)


def f7_reason_not_utf8(addr, path):
    with open_ws(addr, path) as ws:
        ws.send(frame(CLOSE, close_payload(1000, b"\xce\xba\xe1\xbd")))
        ws.expect_close(1007)


def f7_data_after_close_ignored(addr, path):
    with open_ws(addr, path) as ws:
        ws.send(frame(CLOSE, close_payload(1000)) + frame(TEXT, b"late"))
        ws.expect_close(1000)


def f7_server_close(addr, path):
    with open_ws(addr, path) as ws:
        ws.send(frame(TEXT, b"close"))
        assert ws.expect_close(1000) == b"bye"


def f7_vanish(addr, path):
    """A client that goes mid-frame costs the server nothing."""
    with open_ws(addr, path) as ws:
        ws.send(frame(BINARY, b"x" * 1000)[:500])
    with open_ws(addr, path) as ws:
        echo(ws, TEXT, b"others are served")


# ---- 9: limits -------------------------------------------------------------

def f9_too_big(addr, path, limit):
    """A message over the limit is refused with 1009 as its first bytes
    arrive, long before the rest is sent; one at the limit goes through."""
    with open_ws(addr, path) as ws:
        echo(ws, BINARY, b"b" * limit)
        ws.send(frame(BINARY, b"b" * (limit + 1))[:64])
        ws.expect_close(1009)
    with open_ws(addr, path) as ws:
        ws.send(frame(TEXT, b"a" * (limit // 2), fin=False) +
                frame(CONT, b"a" * (limit // 2 + 1)))
        ws.expect_close(1009)


# ---- a real client -----------------------------------------------------------

def real_client(addr, path):
    """Python's websockets (Debian's python3-websockets 10.4, asyncio API)
    against the echo endpoint: the first subprotocol offered is chosen,
    text and a 2 MiB binary echo, a ping is answered, "close" closes with
    1000 "bye"."""
    import asyncio
    import websockets

    async def run():
        uri = "%s://%s:%d%s" % ("wss" if util.TLS else "ws", addr[0], addr[1], path)
        tls = {"ssl": util.tls_client_context()} if util.TLS else {}
        async with websockets.connect(uri, subprotocols=["chat", "v2"],
                                      max_size=None, **tls) as ws:
            assert ws.subprotocol == "chat"
            await ws.send("héllo")
            assert await ws.recv() == "héllo"
            big = bytes(range(256)) * 8192
            await ws.send(big)
            assert await ws.recv() == big
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, 5)
            await ws.send("close")
            try:
                await ws.recv()
                assert False, "no close after 'close'"
            except websockets.ConnectionClosedOK as e:
                assert (e.rcvd.code, e.rcvd.reason) == (1000, "bye")

    asyncio.run(asyncio.wait_for(run(), 30))


CASES = [hs_accept, hs_frames_behind_head, hs_bad_version, hs_bad,
         f1_text_sizes, f1_binary_sizes, f1_16mib, f1_byte_by_byte,
         f1_many_in_one_write, f1_unmasked,
         f2_ping, f2_ping_too_long, f2_unsolicited_pong, f2_fragmented_ping,
         f3_rsv, f4_reserved_opcodes,
         f5_fragments, f5_control_between_fragments, f5_continuation_first,
         f5_new_message_inside,
         f6_valid, f6_invalid, f6_fail_fast,
         f7_client_close, f7_invalid_codes, f7_one_byte_payload, f7_reason_not_utf8,
         f7_data_after_close_ignored, f7_server_close, f7_vanish]
