"""Raw ASGI WebSocket apps for tests/python/test_asgi_websocket.py, served by
Piston and by Debian's uvicorn alike.

app: by path
  /echo        accepts (with the first subprotocol offered) and echoes each
               message; a text "close" closes with 1000 "bye", "close-now"
               with 4000 (what tests/protocol/wsconf.py expects)
  /deny        websocket.close before the accept
  /http        the websocket.http.response extension: 401 with a body
  /return      returns before accepting;  /raise  raises before accepting
  /raise-after raises after the accept (after one echo)
  /scope       accepts and sends the scope (JSON, text)
  /record      accepts, takes messages until websocket.disconnect, and
               records its code and reason; /codes and /reasons send the
               recorded ones (JSON)
  /pubsub      the piston.pubsub extension, driven by text commands: "sub
               T", "unsub T" (answered "ok sub" / "ok unsub"), "pub T MSG"
               (to T's subscribers but the sender), "pubself T MSG" (the
               sender too), "pubbin T MSG" (as bytes), each answered "ok
               <command>" after the publish; "echo X" answers "ok X"
  /send-after-close  closes with 1000 and reports what a further send did
  /big         sends N bytes (N from the query string) in 64 KiB messages,
               then "done" (backpressure: send() waits for the drain);
               /progress sends how many it has sent so far
Plain HTTP requests get 200 "http <path>".
"""
import json

from asgi_apps import _lifespan

CODES = []
REASONS = []
RESULTS = []
PROGRESS = {"big": 0}  # bytes of /big handed to send() so far
REPORTS = {"/codes": CODES, "/reasons": REASONS, "/results": RESULTS, "/progress": PROGRESS}


async def _http(scope, receive, send):
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": ("http " + scope["path"]).encode()})


async def echo(scope, receive, send):
    m = await receive()
    assert m == {"type": "websocket.connect"}, m
    subs = scope["subprotocols"]
    await send({"type": "websocket.accept", "subprotocol": subs[0] if subs else None})
    while True:
        m = await receive()
        if m["type"] == "websocket.disconnect":
            return
        text = m.get("text")
        if text == "close":
            await send({"type": "websocket.close", "code": 1000, "reason": "bye"})
        elif text == "close-now":
            await send({"type": "websocket.close", "code": 4000})
        elif text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": m["bytes"]})


def _jsonable(scope):
    out = {}
    for k, v in scope.items():
        if k == "headers":
            v = [[a.decode("latin-1"), b.decode("latin-1")] for a, b in v]
        elif isinstance(v, bytes):
            v = v.decode("latin-1")
        elif isinstance(v, tuple):
            v = list(v)
        out[k] = v
    return out


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await _lifespan(scope, receive, send)
    if scope["type"] == "http":
        return await _http(scope, receive, send)
    path = scope["path"]
    if path == "/echo":
        return await echo(scope, receive, send)
    if path in REPORTS:  # what earlier sessions recorded, as JSON text
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(REPORTS[path])})
        await send({"type": "websocket.close"})
        return
    if path == "/deny":
        await receive()
        await send({"type": "websocket.close", "code": 1008})
        return
    if path == "/http":
        await send({"type": "websocket.http.response.start", "status": 401,
                    "headers": [(b"content-type", b"text/plain"), (b"x-why", b"token")]})
        await send({"type": "websocket.http.response.body", "body": b"no ",
                    "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"entry"})
        return
    if path == "/return":
        await receive()
        return
    if path == "/raise":
        await receive()
        raise RuntimeError("before the accept")
    if path == "/raise-after":
        await receive()
        await send({"type": "websocket.accept"})
        m = await receive()
        await send({"type": "websocket.send", "text": m.get("text")})
        raise RuntimeError("after the accept")
    if path.startswith("/scope"):
        await receive()
        await send({"type": "websocket.accept", "headers": [(b"x-extra", b"yes")]})
        await send({"type": "websocket.send", "text": json.dumps(_jsonable(scope))})
        await send({"type": "websocket.close"})
        return
    if path == "/record":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            m = await receive()
            if m["type"] == "websocket.disconnect":
                CODES.append(m["code"])
                REASONS.append(m.get("reason"))
                return
    if path == "/pubsub":
        return await pubsub(receive, send)
    if path == "/send-after-close":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})
        try:
            await send({"type": "websocket.send", "text": "late"})
            RESULTS.append("sent")
        except Exception as e:
            RESULTS.append(type(e).__name__)
        m = await receive()
        RESULTS.append(m)
        return
    if path == "/big":
        PROGRESS["big"] = 0
        await receive()
        await send({"type": "websocket.accept"})
        n = int(scope["query_string"] or b"0")
        chunk = b"z" * 65536
        sent = 0
        try:
            while sent < n:
                await send({"type": "websocket.send", "bytes": chunk[:n - sent]})
                sent += min(65536, n - sent)
                PROGRESS["big"] = sent
            await send({"type": "websocket.send", "text": "done"})
            RESULTS.append(["big", sent])
        except OSError as e:
            RESULTS.append(["big-error", type(e).__name__, sent])
        return
    await send({"type": "websocket.close"})



async def pubsub(receive, send):
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        m = await receive()
        if m["type"] == "websocket.disconnect":
            return
        cmd, _, rest = m["text"].partition(" ")
        topic, _, msg = rest.partition(" ")
        if cmd in ("sub", "unsub"):
            await send({"type": "piston.%ssubscribe" % ("un" if cmd == "unsub" else ""),
                        "topic": topic})
        elif cmd == "pub":
            await send({"type": "piston.publish", "topic": topic, "text": msg})
        elif cmd == "pubself":
            await send({"type": "piston.publish", "topic": topic.encode(), "text": msg,
                        "include_self": True})
        elif cmd == "pubbin":
            await send({"type": "piston.publish", "topic": topic, "bytes": msg.encode()})
        await send({"type": "websocket.send", "text": "ok " + (cmd if cmd != "echo" else rest)})
