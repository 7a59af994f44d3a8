"""The ASGI websocket scope's additions over the engine: the peer's close
reason in websocket.disconnect (ASGI spec 2.5), through a raw ASGI app and
a Starlette endpoint, and the piston.pubsub extension (piston.subscribe,
piston.unsubscribe, piston.publish) fanning out to many real clients
(Python's websockets, Debian's python3-websockets)."""
import asyncio
import json
import time
import urllib.request

import websockets

from test_asgi_websocket import fetch_text, piston, run, uri


def _poll(fetch, n, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        got = fetch()
        if len(got) >= n or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def test_disconnect_reason_raw_asgi():
    s = piston("asgi_ws_apps:app")
    try:
        async def go():
            async with websockets.connect(uri(s, "/record")) as ws:
                await ws.close(code=4001, reason="client says bye")
            async with websockets.connect(uri(s, "/record")) as ws:
                await ws.close(code=1000)
        run(go())
        reasons = _poll(lambda: json.loads(run(fetch_text(s, "/reasons"))), 2)
        codes = json.loads(run(fetch_text(s, "/codes")))
        assert codes == [4001, 1000]
        # the spec's default when there is none: ""
        assert reasons == ["client says bye", ""]
    finally:
        assert s.stop() == 0


def test_disconnect_reason_starlette():
    s = piston("fw_ws:starlette_app")
    try:
        async def go():
            async with websockets.connect(uri(s, "/ws")) as ws:
                await ws.send("hello")
                await ws.recv()
                await ws.close(code=4002, reason="d\u00e9j\u00e0 vu")

        run(go())

        def reasons():
            with urllib.request.urlopen("http://127.0.0.1:%d/reasons" % s.port) as r:
                return json.loads(r.read())
        # Starlette's WebSocketDisconnect carries what the message said
        assert _poll(reasons, 1) == ["d\u00e9j\u00e0 vu"]
    finally:
        assert s.stop() == 0


async def ask(ws, text):
    await ws.send(text)
    return await ws.recv()


def test_pubsub_fan_out_sender_excluded():
    s = piston("asgi_ws_apps:app")
    n = 20

    async def go():
        cs = [await websockets.connect(uri(s, "/pubsub")) for _ in range(n)]
        try:
            for c in cs:
                assert await ask(c, "sub room") == "ok sub"
            # the sender's next message is its answer, not the publication
            assert await ask(cs[0], "pub room hello all") == "ok pub"
            for c in cs[1:]:
                assert await c.recv() == "hello all"
            # include_self: the sender gets it too, before its answer
            await cs[3].send("pubself room to everyone")
            assert await cs[3].recv() == "to everyone"
            assert await cs[3].recv() == "ok pubself"
            for i, c in enumerate(cs):
                if i != 3:
                    assert await c.recv() == "to everyone"
            # bytes
            assert await ask(cs[1], "pubbin room raw") == "ok pubbin"
            for c in cs[:1] + cs[2:]:
                assert await c.recv() == b"raw"
            # one leaves the topic: the next publication misses it only
            assert await ask(cs[5], "unsub room") == "ok unsub"
            assert await ask(cs[0], "pub room again") == "ok pub"
            for i, c in enumerate(cs[1:], 1):
                if i != 5:
                    assert await c.recv() == "again"
            assert await ask(cs[5], "echo still here") == "ok still here"
            # a topic nobody follows
            assert await ask(cs[0], "pub nobody x") == "ok pub"
            assert await ask(cs[1], "echo nothing came") == "ok nothing came"
        finally:
            for c in cs:
                await c.close()
        # the sessions' subscriptions ended with them: a new subscriber
        # alone on the topic gets nothing from its own publication, and a
        # second one gets exactly one copy
        a = await websockets.connect(uri(s, "/pubsub"))
        b = await websockets.connect(uri(s, "/pubsub"))
        assert await ask(a, "sub room") == "ok sub"
        assert await ask(b, "pubself room once") == "ok pubself"
        assert await a.recv() == "once"
        assert await ask(a, "echo end") == "ok end"
        await a.close()
        await b.close()

    try:
        run(go())
    finally:
        assert s.stop() == 0

