"""fastapi_hello.py with its answer marked for a response cache, for
benchmarks/cache_run.sh (see flask_cached.py)."""
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

app = FastAPI()


@app.get("/hello")
async def hello():
    return PlainTextResponse("Hello, World!", headers={"Piston-Cache": "ttl=60"})
