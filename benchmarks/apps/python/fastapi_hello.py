"""FastAPI hello world for benchmarks/run_hosts.sh, in the form of FastAPI's
own first example (an `async def` path operation), with the same 13-byte
text/plain body as the other hello apps. fastapi_sync_hello.py is the same
with a plain `def`, which FastAPI runs in its thread pool."""
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

app = FastAPI()


@app.get("/hello", response_class=PlainTextResponse)
async def hello():
    return "Hello, World!"
