"""Flask hello world for benchmarks/run_hosts.sh (Piston and gunicorn)."""
from flask import Flask

app = Flask(__name__)


@app.route("/hello")
def hello():
    return "Hello, World!", 200, {"Content-Type": "text/plain"}
