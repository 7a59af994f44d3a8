"""permessage-deflate (RFC 7692) through the C test server with
--ws-deflate 1: the negotiation's answers, compressed messages both ways
(raw frames compressed here with zlib), the per-message choice, invalid
compressed data, RSV1 where it has no place, and Python's websockets client
(which offers the extension by default)."""

import asyncio
import os
import zlib

import pytest

import util
import wsconf
from conftest import LIMITS, finish, start


@pytest.fixture(scope="module")
def zs():
    s = start(util.TESTSERVER, ["--ws-deflate", "1", "--ws-max-message", "1000000"] + LIMITS)
    yield s
    finish(s)


def ext_of(ws):
    for line in ws.head.decode().split("\r\n"):
        if line.lower().startswith("sec-websocket-extensions:"):
            return line.split(":", 1)[1].strip()
    return None


def compress(data, bits=15):
    c = zlib.compressobj(wbits=-bits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def decompress(data, bits=15):
    return zlib.decompressobj(wbits=-bits).decompress(data + b"\x00\x00\xff\xff")


def offer(addr, value):
    return wsconf.Ws(addr, "/ws-echo", extra=["Sec-WebSocket-Extensions: " + value])


@pytest.mark.parametrize("value,want", [
    ("permessage-deflate", "permessage-deflate; server_no_context_takeover"),
    ("permessage-deflate; client_max_window_bits",
     "permessage-deflate; server_no_context_takeover; client_max_window_bits=15"),
    ("permessage-deflate; client_max_window_bits=10; server_max_window_bits=12",
     "permessage-deflate; server_no_context_takeover; client_max_window_bits=10; "
     "server_max_window_bits=12"),
    ("permessage-deflate; client_no_context_takeover",
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
    # declined offers, then one taken
    ("permessage-deflate; unknown, permessage-deflate; server_max_window_bits=8, "
     "permessage-deflate; server_max_window_bits=16, x-webkit-deflate-frame, "
     "permessage-deflate; client_max_window_bits=9",
     "permessage-deflate; server_no_context_takeover; client_max_window_bits=9"),
    ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
    ("x-other", None),
])
def test_negotiation(zs, value, want):
    with offer(zs.addr, value) as ws:
        assert ws.status == 101
        assert ext_of(ws) == want


def test_no_extension_when_off(ts):
    with offer(ts.addr, "permessage-deflate") as ws:
        assert ws.status == 101 and ext_of(ws) is None


def test_messages_both_ways(zs):
    with offer(zs.addr, "permessage-deflate; client_max_window_bits") as ws:
        for op_, data in ((wsconf.TEXT, b"a" * 100), (wsconf.BINARY, os.urandom(50) * 40),
                          (wsconf.TEXT, b"x" * 500000)):
            # compressed in, and (long and compressible) compressed out
            ws.send(wsconf.frame(op_, compress(data), rsv=4))
            fin, rsv, op, payload = ws.read_frame()
            assert (fin, rsv, op) == (True, 4, op_)
            assert decompress(payload) == data
        # short ones go uncompressed, either way
        ws.send(wsconf.frame(wsconf.TEXT, b"tiny"))
        assert ws.read_frame() == (True, 0, wsconf.TEXT, b"tiny")
        ws.send(wsconf.frame(wsconf.BINARY, compress(b"\x01\x02"), rsv=4))
        assert ws.read_frame() == (True, 0, wsconf.BINARY, b"\x01\x02")
        # a compressed message over two frames: RSV1 on the first only
        z = compress(b"fragmented " * 20)
        ws.send(wsconf.frame(wsconf.TEXT, z[:5], fin=False, rsv=4) +
                wsconf.frame(wsconf.CONT, z[5:]))
        fin, rsv, op, payload = ws.read_frame()
        assert decompress(payload) == b"fragmented " * 20


def test_context_kept_across_messages(zs):
    """Without client_no_context_takeover the client may refer back to an
    earlier message's bytes; the server's inflater keeps them."""
    with offer(zs.addr, "permessage-deflate") as ws:
        c = zlib.compressobj(wbits=-15)
        for i in range(5):
            data = b"the same sentence, again and again %d " % i * 10
            z = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
            ws.send(wsconf.frame(wsconf.TEXT, z[:-4], rsv=4))
            fin, rsv, op, payload = ws.read_frame()
            assert (decompress(payload) if rsv else payload) == data


@pytest.mark.parametrize("frames,code", [
    ([wsconf.frame(wsconf.TEXT, b"\xff\xfe\xfd not deflate", rsv=4)], 1007),
    ([wsconf.frame(wsconf.TEXT, b"a", fin=False, rsv=4),
      wsconf.frame(wsconf.CONT, b"b", rsv=4)], 1002),
    ([wsconf.frame(wsconf.PING, b"p", rsv=4)], 1002),
    ([wsconf.frame(wsconf.TEXT, compress(b"\xce\xba\xe1\xbd"), rsv=4)], 1007),
    ([wsconf.frame(wsconf.BINARY, compress(b"\0" * 2000000), rsv=4)], 1009),
])
def test_invalid(zs, frames, code):
    with offer(zs.addr, "permessage-deflate") as ws:
        ws.send(b"".join(frames))
        ws.expect_close(code)


def test_rsv1_without_the_extension(zs):
    with wsconf.open_ws(zs.addr, "/ws-echo") as ws:
        ws.send(wsconf.frame(wsconf.TEXT, compress(b"hello"), rsv=4))
        ws.expect_close(1002)


def test_real_client_compresses(zs):
    import websockets

    async def run():
        uri = "%s://%s:%d/ws-echo" % (("wss" if util.TLS else "ws",) + zs.addr)
        tls = {"ssl": util.tls_client_context()} if util.TLS else {}
        async with websockets.connect(uri, max_size=None, **tls) as ws:
            assert [e.name for e in ws.extensions] == ["permessage-deflate"]
            for n in (10, 1000, 50000):
                msg = "κόσμε " * n
                await ws.send(msg)
                assert await ws.recv() == msg

    asyncio.run(run())


def test_final_block_then_more(zs):
    """A message whose deflate data ends with a final block (BFINAL) is
    whole; the next starts a new stream; bytes after a final block are not
    deflate data (1007). The inflater never spins on a spent stream (a hang
    the fuzzer found)."""
    with offer(zs.addr, "permessage-deflate") as ws:
        c = zlib.compressobj(wbits=-15)
        done = c.compress(b"finished " * 10) + c.flush()  # Z_FINISH: BFINAL
        for _ in range(2):
            ws.send(wsconf.frame(wsconf.TEXT, done, rsv=4))
            fin, rsv, op, payload = ws.read_frame()
            assert (decompress(payload) if rsv else payload) == b"finished " * 10
        ws.send(wsconf.frame(wsconf.TEXT, compress(b"flushed, as usual " * 5), rsv=4))
        fin, rsv, op, payload = ws.read_frame()
        assert decompress(payload) == b"flushed, as usual " * 5
        ws.send(wsconf.frame(wsconf.TEXT, done + compress(b" and more"), rsv=4))
        ws.expect_close(1007)
