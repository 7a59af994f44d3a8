"""Apps that answer what the server told them about the client: the WSGI
environ's and the ASGI scope's views, as JSON."""
import json

from asgi_apps import _lifespan

WSGI_KEYS = ["REMOTE_ADDR", "REMOTE_PORT", "wsgi.url_scheme", "HTTPS",
             "SERVER_NAME", "SERVER_PORT", "HTTP_HOST", "HTTP_X_FORWARDED_FOR"]


def wsgi(environ, start_response):
    body = json.dumps({k: environ.get(k) for k in WSGI_KEYS}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def _view(scope):
    return json.dumps({"client": scope.get("client"), "scheme": scope["scheme"],
                       "server": scope.get("server")})


async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        return await _lifespan(scope, receive, send)
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": _view(scope)})
        await send({"type": "websocket.close", "code": 1000})
        return
    body = _view(scope).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
