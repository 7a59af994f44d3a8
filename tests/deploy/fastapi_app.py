"""A FastAPI app that answers what Starlette makes of the request and of a
WebSocket: the URL's scheme, the client, the URL itself."""
from fastapi import FastAPI, Request, WebSocket

app = FastAPI()


@app.get("/whoami")
async def whoami(request: Request):
    return {"scheme": request.url.scheme, "client": request.client.host,
            "url": str(request.url)}


@app.websocket("/ws")
async def ws(websocket: WebSocket):
    await websocket.accept()
    await websocket.send_json({"scheme": websocket.url.scheme,
                               "client": websocket.client.host})
    await websocket.close()
