"""Apps for test_tls.py: what WSGI, Flask, Django and Starlette see of a
TLS connection (scheme, mod_ssl's variables, the ASGI tls extension)."""
import json
import os

from flask import Flask, request


def wsgi_app(environ, start_response):
    keys = ["wsgi.url_scheme", "HTTPS", "SSL_PROTOCOL", "SSL_CLIENT_VERIFY",
            "SSL_CLIENT_S_DN", "SSL_CLIENT_I_DN", "SSL_CLIENT_CERT", "SERVER_PROTOCOL"]
    seen = {k: environ.get(k) for k in keys}
    seen["pid"] = os.getpid()
    body = json.dumps(seen).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


flask_app = Flask(__name__)


@flask_app.route("/")
def flask_index():
    return {"scheme": request.scheme, "secure": request.is_secure, "url": request.url}


async def asgi_app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        m = await receive()
        await send({"type": "websocket.send", "text": scope["scheme"] + ":" + m.get("text", "")})
        await send({"type": "websocket.close", "code": 1000})
        return
    await receive()
    tls = scope["extensions"].get("tls")
    body = json.dumps({"scheme": scope["scheme"], "tls": tls,
                       "http_version": scope["http_version"]}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def starlette_app():
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def index(request):
        return JSONResponse({"scheme": request.url.scheme, "url": str(request.url)})

    return Starlette(routes=[Route("/", index)])


star = starlette_app()
