"""Raw ASGI apps for tests/python/test_asgi.py."""
import asyncio
import inspect
import json
import os

EVENTS = []        # what apps observed, read back through /events
PROGRESS = {}      # name -> bytes handed to send() so far


def _qs(scope):
    out = {}
    for part in scope["query_string"].decode().split("&"):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k] = v
    return out


async def _body(receive):
    chunks, n = [], 0
    while True:
        m = await receive()
        if m["type"] == "http.disconnect":
            return None, n
        chunks.append(m.get("body", b""))
        n += 1
        if not m.get("more_body"):
            return b"".join(chunks), n


async def _lifespan(scope, receive, send, state_value=None):
    while True:
        m = await receive()
        if m["type"] == "lifespan.startup":
            if state_value is not None:
                scope["state"]["value"] = state_value
                scope["state"]["started"] = True
            await send({"type": "lifespan.startup.complete"})
        elif m["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _json(send, obj, status=200):
    body = json.dumps(obj).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await _lifespan(scope, receive, send, state_value="from-lifespan")
    path = scope["path"]
    q = _qs(scope)
    if path.startswith("/scope"):
        body, n = await _body(receive)
        s = {k: v for k, v in scope.items() if k not in ("headers", "raw_path", "query_string")}
        s["headers"] = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]]
        s["raw_path"] = scope["raw_path"].decode("latin-1")
        s["query_string"] = scope["query_string"].decode("latin-1")
        s["header_types"] = sorted({type(k).__name__ + "/" + type(v).__name__
                                    for k, v in scope["headers"]})
        s["body_len"] = len(body or b"")
        s["extensions"] = sorted(scope.get("extensions") or {})
        return await _json(send, s)
    if path == "/echo":
        body, n = await _body(receive)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream"),
                                (b"x-chunks", str(n).encode())]})
        await send({"type": "http.response.body", "body": body})
        return
    if path == "/stream":
        # n chunks of size bytes, streamed with more_body
        n, size = int(q.get("n", "10")), int(q.get("size", "10"))
        name = q.get("name", "stream")
        PROGRESS[name] = 0
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        chunk = b"x" * size
        try:
            for _ in range(n):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                PROGRESS[name] += size
            await send({"type": "http.response.body", "body": b""})
            EVENTS.append(name + ":done")
        except OSError:
            EVENTS.append(name + ":send-raised")
            raise
        return
    if path == "/progress":
        return await _json(send, PROGRESS)
    if path == "/live":
        import gc
        gc.collect()
        from piston import _piston
        objs = gc.get_objects()
        return await _json(send, {
            "requests": sum(isinstance(o, _piston.AsgiRequest) for o in objs),
            "exchanges": sum(type(o).__name__ == "Exchange" for o in objs)})
    if path == "/events":
        return await _json(send, EVENTS)
    if path == "/wait-disconnect":
        # answer nothing until the client goes away
        body, _ = await _body(receive)
        m = await receive()
        EVENTS.append("wait:" + m["type"])
        return
    if path == "/stream-until-disconnect":
        await _body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        waiter = asyncio.ensure_future(receive())
        while not waiter.done():
            await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
            await asyncio.sleep(0.01)
        EVENTS.append("ticker:" + waiter.result()["type"])
        return
    if path == "/send-misuse":
        # send() is C: it must raise what the spec says, and what it returns
        # must behave as an awaitable everywhere an app may put it
        seen = {}

        async def attempt(name, message):
            try:
                await send(message)
                seen[name] = "ok"
            except Exception as e:
                seen[name] = type(e).__name__

        await attempt("body-before-start", {"type": "http.response.body", "body": b"x"})
        await attempt("bad-status", {"type": "http.response.start", "status": 42})
        await attempt("status-not-int", {"type": "http.response.start", "status": "200"})
        await attempt("unknown-type", {"type": "http.response.nonsense"})
        await attempt("no-type", {"status": 200})
        started = send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
        seen["awaitable"] = inspect.isawaitable(started)
        await asyncio.ensure_future(started)
        await asyncio.create_task(send({"type": "http.response.body", "body": b"",
                                        "more_body": True}))
        await attempt("start-twice", {"type": "http.response.start", "status": 200})
        await attempt("bad-body", {"type": "http.response.body", "body": 42,
                                   "more_body": True})
        body = json.dumps(seen).encode()
        await asyncio.gather(send({"type": "http.response.body", "body": body}))
        await attempt("after-complete", {"type": "http.response.body", "body": b"x"})
        return
    if path == "/error-before":
        raise RuntimeError("boom before start")
    if path == "/error-after-start":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("boom after start")
    if path == "/error-after-body":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("boom after body")
    if path == "/error-after-complete":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})
        raise RuntimeError("boom after the response")
    if path == "/no-response":
        return
    if path == "/bad-header":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"x-bad", b"a\r\nb")]})
        await send({"type": "http.response.body", "body": b"never"})
        return
    if path == "/hang":
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            EVENTS.append("hang:cancelled")
            raise
        return
    if path == "/pathsend":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"),
                                (b"content-length", str(os.path.getsize(q["file"])).encode())]})
        await send({"type": "http.response.pathsend", "path": q["file"]})
        return
    if path == "/trailers":
        await send({"type": "http.response.start", "status": 200, "trailers": True,
                    "headers": [(b"trailer", b"x-checksum")]})
        await send({"type": "http.response.body", "body": b"abc", "more_body": False})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"42")],
                    "more_trailers": False})
        return
    if path == "/status":
        code = int(q.get("code", "200"))
        await send({"type": "http.response.start", "status": code, "headers": []})
        await send({"type": "http.response.body", "body": b"" if code in (204, 304) else b"s"})
        return
    if path == "/state":
        return await _json(send, scope["state"])
    if path == "/pid":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(os.getpid()).encode()})
        return
    if path == "/sleep":
        await asyncio.sleep(float(q.get("s", "0.1")))
        return await _json(send, {"slept": q.get("s")})
    await _json(send, {"path": path}, status=404)


async def no_lifespan(scope, receive, send):
    """Raises on lifespan: --lifespan auto serves anyway."""
    if scope["type"] != "http":
        raise RuntimeError("no lifespan here")
    await _json(send, {"ok": True, "state": scope["state"]})


async def startup_fails(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database is down"})
        return
    await _json(send, {})


async def startup_raises(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        raise ValueError("cannot connect")
    await _json(send, {})


SHUTDOWN_MARK = os.environ.get("PISTON_TEST_SHUTDOWN_MARK")


async def marks_shutdown(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                scope["state"]["pid"] = os.getpid()
                await send({"type": "lifespan.startup.complete"})
            else:
                if SHUTDOWN_MARK:
                    with open(SHUTDOWN_MARK, "a") as f:
                        f.write("shutdown %d\n" % os.getpid())
                await send({"type": "lifespan.shutdown.complete"})
                return
    await _json(send, {"pid": scope["state"]["pid"]})
