"""FastAPI hello world with a plain `def` path operation: FastAPI runs it in
its thread pool (anyio), so each request also pays a thread hand-off. The
same 13-byte text/plain body as the other hello apps."""
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

app = FastAPI()


@app.get("/hello", response_class=PlainTextResponse)
def hello():
    return "Hello, World!"
