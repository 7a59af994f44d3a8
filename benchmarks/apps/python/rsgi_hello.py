"""Raw RSGI hello world (granian's own interface) for benchmarks/peers_run.sh:
the same response as wsgi_hello.py and asgi_hello.py."""

BODY = b"Hello, World!"
HEADERS = [("content-type", "text/plain"), ("content-length", str(len(BODY)))]


async def app(scope, proto):
    proto.response_bytes(200, HEADERS, BODY)
