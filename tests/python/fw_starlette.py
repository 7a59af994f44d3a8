"""A Starlette app (Debian's python3-starlette) for test_asgi_frameworks.py:
middleware, request.stream(), lifespan state."""
import contextlib
import os

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route


class AddHeader(BaseHTTPMiddleware):
    async def dispatch(self, request, call_next):
        response = await call_next(request)
        response.headers["x-middleware"] = "yes"
        return response


class PureAsgi:
    """A pure ASGI middleware: wraps send to add a header."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def wrapped(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(b"x-pure", b"1")]
            await send(message)
        await self.app(scope, receive, wrapped)


@contextlib.asynccontextmanager
async def lifespan(app):
    if os.environ.get("FW_NO_LIFESPAN_STATE"):
        yield
    else:
        yield {"db": "connected", "hits": []}


async def homepage(request):
    return PlainTextResponse("hello " + request.query_params.get("name", "world"))


async def consume(request):
    n = 0
    async for chunk in request.stream():
        n += len(chunk)
    return JSONResponse({"length": n, "method": request.method})


async def form(request):
    f = await request.form()
    return JSONResponse({k: v for k, v in f.items() if isinstance(v, str)})


async def state(request):
    request.state.hits.append(1)
    return JSONResponse({"db": request.state.db, "hits": len(request.state.hits)})


async def echo_json(request):
    return JSONResponse({"got": await request.json()})


app = Starlette(
    routes=[Route("/", homepage), Route("/consume", consume, methods=["POST"]),
            Route("/form", form, methods=["POST"]), Route("/state", state),
            Route("/json", echo_json, methods=["POST"])],
    middleware=[Middleware(PureAsgi), Middleware(AddHeader)],
    lifespan=lifespan,
)
