"""FastAPI hello world for benchmarks/run_hosts.sh: the same 13-byte
text/plain body as the other hello apps."""
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

app = FastAPI()


@app.get("/hello", response_class=PlainTextResponse)
def hello():
    return "Hello, World!"
