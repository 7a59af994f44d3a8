"""A FastAPI app (Debian's python3-fastapi) for test_asgi_frameworks.py."""
import asyncio
import hashlib
import os
from typing import List, Optional

from fastapi import BackgroundTasks, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel

try:
    from fastapi import File, UploadFile
    import multipart  # noqa: F401 (python3-multipart)
    del multipart
    HAVE_MULTIPART = True
except ImportError:
    HAVE_MULTIPART = False

app = FastAPI()
BG_LOG: List[str] = []
HERE = os.path.dirname(os.path.abspath(__file__))
DATA_FILE = os.path.join(HERE, "asgi_apps.py")


class Item(BaseModel):
    name: str
    price: float
    tags: List[str] = []
    note: Optional[str] = None


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: Optional[str] = None, limit: int = 10):
    return {"item_id": item_id, "q": q, "limit": limit}


@app.post("/items")
async def create_item(item: Item):
    return {"item": item.dict(), "total": item.price * 2}


@app.get("/sync")
def sync_endpoint(x: int = 1):
    return {"sync": True, "x": x}


@app.get("/error/{code}")
async def error(code: int):
    raise HTTPException(status_code=code, detail="nope %d" % code)


@app.get("/headers")
async def headers(request: Request):
    return {"ua": request.headers.get("user-agent"), "x": request.headers.getlist("x-multi"),
            "url": str(request.url), "client_is_tuple": request.client is not None}


@app.get("/stream")
async def stream(n: int = 5):
    async def gen():
        for i in range(n):
            yield ("chunk %d\n" % i).encode()
            await asyncio.sleep(0)
    return StreamingResponse(gen(), media_type="text/plain")


@app.get("/sse")
async def sse():
    async def events():
        for i in range(3):
            yield "id: %d\nevent: tick\ndata: {\"n\": %d}\n\n" % (i, i)
            await asyncio.sleep(0.01)
    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"cache-control": "no-cache"})


@app.get("/sse-forever")
async def sse_forever():
    async def events():
        try:
            i = 0
            while True:
                yield "data: %d\n\n" % i
                i += 1
                await asyncio.sleep(0.01)
        finally:
            BG_LOG.append("sse-closed")
    return StreamingResponse(events(), media_type="text/event-stream")


@app.get("/file")
async def file():
    return FileResponse(DATA_FILE, media_type="text/x-python")


def record(word: str):
    BG_LOG.append(word)


@app.post("/bg/{word}")
async def bg(word: str, tasks: BackgroundTasks):
    tasks.add_task(record, word)
    return PlainTextResponse("queued " + word)


@app.get("/bg-log")
async def bg_log():
    return BG_LOG


if HAVE_MULTIPART:
    @app.post("/upload")
    async def upload(file: UploadFile = File(...)):
        data = await file.read()
        return {"filename": file.filename, "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "content_type": file.content_type}
