"""flask_hello.py with its answer marked for a response cache, for
benchmarks/cache_run.sh: Piston's (Piston-Cache) and nginx's proxy_cache in
front of gunicorn (which caches by proxy_cache_valid and hides the field).
The field is written out rather than set with piston.cache so that the same
file runs under gunicorn, where piston is not installed."""
from flask import Flask

app = Flask(__name__)


@app.route("/hello")
def hello():
    return "Hello, World!", 200, {"Content-Type": "text/plain", "Piston-Cache": "ttl=60"}
