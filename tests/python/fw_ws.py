"""Starlette and FastAPI WebSocket endpoints (Debian's packages), unchanged
framework code, for test_asgi_websocket.py: served by Piston and by
Debian's uvicorn.

/ws     accept (choosing "chat" if offered), then for each text: "bye"
        closes with 4003 "bye", "raise" raises, else send_json
        {"echo", "n"}; bytes come back reversed; the code of a
        WebSocketDisconnect is recorded
/deny   closes before accepting (403)
/codes  (HTTP) the recorded disconnect codes, JSON; /reasons (Starlette
        only) their reasons
"""
from fastapi import FastAPI
from fastapi import WebSocket as FWebSocket
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

CODES = []
REASONS = []


async def chat(ws):
    sub = "chat" if "chat" in ws.scope["subprotocols"] else None
    await ws.accept(subprotocol=sub)
    try:
        while True:
            m = await ws.receive()
            if m["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(m["code"], m.get("reason"))
            if m.get("bytes") is not None:
                await ws.send_bytes(m["bytes"][::-1])
                continue
            text = m["text"]
            if text == "bye":
                await ws.close(code=4003)
                return
            if text == "raise":
                raise ValueError("the app failed")
            await ws.send_json({"echo": text, "n": len(text),
                                "q": ws.query_params.get("q")})
    except WebSocketDisconnect as e:
        CODES.append(e.code)
        REASONS.append(e.reason)


async def deny(ws):
    await ws.close()


async def codes(request):
    return JSONResponse(CODES)


async def reasons(request):
    return JSONResponse(REASONS)


starlette_app = Starlette(routes=[WebSocketRoute("/ws", chat), WebSocketRoute("/deny", deny),
                                  Route("/codes", codes), Route("/reasons", reasons)])

app = FastAPI()


@app.websocket("/ws")
async def fastapi_chat(websocket: FWebSocket):
    await chat(websocket)


@app.websocket("/deny")
async def fastapi_deny(websocket: FWebSocket):
    await websocket.close()


@app.websocket("/text")
async def fastapi_text(websocket: FWebSocket):
    await websocket.accept()
    try:
        while True:
            data = await websocket.receive_text()
            await websocket.send_text("got " + data)
    except WebSocketDisconnect as e:
        CODES.append(e.code)


@app.get("/codes")
async def fastapi_codes():
    return CODES
