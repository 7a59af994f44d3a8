"""Flask views answered by the engine's response cache ("micro-caching"):
the app computes a product page once, then Piston serves it from C, on the
loop thread, until it expires; the app is not called in between.

    piston examples.cache_flask:app --bind 127.0.0.1:8000 --cache-size 64000000

then GET /product/1 twice: the second answer has an Age field and the
counter in its body has not moved. POST /product/1 changes the product and
purges its page.
"""
import threading

from flask import Flask, jsonify, request

import piston

app = Flask(__name__)
_lock = threading.Lock()
_renders = 0
_prices = {1: 10, 2: 20}


def _render():
    global _renders
    with _lock:
        _renders += 1
        return _renders


@app.get("/product/<int:pid>")
@piston.cache(ttl=10, swr=30)  # 10 s fresh, then 30 s stale while one refresh runs
def product(pid):
    if pid not in _prices:
        return jsonify(error="no such product"), 404
    return jsonify(id=pid, price=_prices[pid], rendered=_render())


@app.post("/product/<int:pid>")
def update(pid):
    _prices[pid] = int(request.form.get("price", 0))
    # every variant of the page (any Host, any Accept-Encoding...)
    return jsonify(purged=piston.purge("/product/%d" % pid))


@app.get("/me")
def me():  # per-user: never marked, so never stored
    return jsonify(user=request.cookies.get("user"))


@app.get("/cache")
def stats():
    return jsonify(piston.cache_stats())
