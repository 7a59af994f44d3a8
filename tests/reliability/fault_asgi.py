"""The ASGI apps of tests/reliability/test_handler_faults.py: a raw ASGI
callable (`raw`) and a FastAPI app (`fastapi_app`) with the same faulty
routes as fault_wsgi.py, served by `.venv/bin/piston fault_asgi:raw` (or
:fastapi_app), which detects ASGI apps.

  GET  /ok          200 "ok"
  GET  /raise       raises before responding (RuntimeError handler-fault-a)
  GET  /raise-mid   starts a streamed response (more_body=True), sends a
                    first chunk, then raises (handler-fault-b)
  GET  /hang        never starts its response: sleeps 30 s; at the handler
                    timeout the engine answers 503 and the host cancels the
                    task, which this route counts (and re-raises)
  GET  /release     nothing to release in ASGI (the task is cancelled): 200
  GET  /hang-done   how many /hang tasks have been cancelled
  POST /upload      reads the whole request body; what it saw is kept
  GET  /last-upload what the last /upload saw: "ok <n>", "http.disconnect"
                    (raw: receive() gave it before the end of the body) or
                    the qualified name of the exception its read raised
                    (FastAPI: starlette.requests.ClientDisconnect); "" if
                    none yet
"""
import asyncio

HANG_CANCELLED = [0]
LAST_UPLOAD = [""]
HANG_MAX_S = 30


def _qualname(e):
    t = type(e)
    return "%s.%s" % (t.__module__, t.__qualname__)


async def _hang():
    try:
        await asyncio.sleep(HANG_MAX_S)
    except asyncio.CancelledError:
        HANG_CANCELLED[0] += 1
        raise


# ---- raw ASGI ----------------------------------------------------------------


async def _text(send, body, status=200):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def raw(scope, receive, send):
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    path = scope["path"]
    if path == "/ok":
        return await _text(send, b"ok")
    if path == "/raise":
        raise RuntimeError("handler-fault-a")
    if path == "/raise-mid":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"part-1\n", "more_body": True})
        await asyncio.sleep(0.1)  # the first chunk is on the wire before the fault
        raise RuntimeError("handler-fault-b")
    if path == "/hang":
        await _hang()
        return await _text(send, b"too late")
    if path == "/hang-done":
        return await _text(send, str(HANG_CANCELLED[0]).encode())
    if path == "/release":
        return await _text(send, b"released")
    if path == "/upload":
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                LAST_UPLOAD[0] = "http.disconnect"
                return  # nobody to answer
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        LAST_UPLOAD[0] = "ok %d" % size
        return await _text(send, b"got it")
    if path == "/last-upload":
        return await _text(send, LAST_UPLOAD[0].encode())
    return await _text(send, b"not found", 404)


# ---- FastAPI -----------------------------------------------------------------


def _make_fastapi():
    from fastapi import FastAPI, Request
    from fastapi.responses import PlainTextResponse, StreamingResponse

    app = FastAPI()

    async def _streamed():
        yield b"part-1\n"
        await asyncio.sleep(0.1)  # the first chunk is on the wire before the fault
        raise RuntimeError("handler-fault-b")

    @app.get("/ok", response_class=PlainTextResponse)
    async def ok():
        return "ok"

    @app.get("/raise")
    async def raise_():
        raise RuntimeError("handler-fault-a")

    @app.get("/raise-mid")
    async def raise_mid():
        return StreamingResponse(_streamed(), media_type="text/plain")

    @app.get("/hang", response_class=PlainTextResponse)
    async def hang():
        await _hang()
        return "too late"

    @app.get("/hang-done", response_class=PlainTextResponse)
    async def hang_done():
        return str(HANG_CANCELLED[0])

    @app.get("/release", response_class=PlainTextResponse)
    async def release():
        return "released"

    @app.post("/upload", response_class=PlainTextResponse)
    async def upload(request: Request):
        try:
            data = await request.body()
        except Exception as e:
            LAST_UPLOAD[0] = _qualname(e)
            raise
        LAST_UPLOAD[0] = "ok %d" % len(data)
        return "got it"

    @app.get("/last-upload", response_class=PlainTextResponse)
    async def last_upload():
        return LAST_UPLOAD[0]

    return app


fastapi_app = _make_fastapi()
