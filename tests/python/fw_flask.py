"""A small Flask app served by both gunicorn and Piston in test_frameworks."""
import hashlib
import os

from flask import (Flask, Response, abort, jsonify, make_response, redirect,
                   render_template_string, request, send_file, stream_with_context, url_for)

app = Flask(__name__)
DATA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "apps.py")


@app.route("/")
def index():
    return render_template_string(
        "<h1>Hello {{ name }}</h1><p>{{ items|join(', ') }}</p>",
        name=request.args.get("name", "world"), items=["a", "b", "c"])


@app.route("/json")
def json_route():
    return jsonify(ok=True, n=int(request.args.get("n", 3)), list=[1, 2, 3])


@app.route("/json", methods=["POST"])
def json_post():
    data = request.get_json()
    return jsonify(got=data, length=request.content_length), 201


@app.route("/form", methods=["POST"])
def form():
    f = request.files.get("upload")
    out = {"fields": dict(request.form)}
    if f:
        data = f.read()
        out["file"] = {"name": f.filename, "size": len(data),
                       "md5": hashlib.md5(data).hexdigest()}
    return jsonify(out)


@app.route("/cookie")
def set_cookie():
    resp = make_response("cookie set")
    resp.set_cookie("flavour", "oatmeal", httponly=True)
    return resp


@app.route("/readcookie")
def read_cookie():
    return "flavour=%s" % request.cookies.get("flavour", "none")


@app.route("/redirect")
def go():
    return redirect(url_for("index", name="redirected"))


@app.route("/stream")
def stream():
    def gen():
        for i in range(5):
            yield "line %d\n" % i
    return Response(stream_with_context(gen()), mimetype="text/plain")


@app.route("/file")
def file():
    return send_file(DATA_FILE, mimetype="text/plain")


@app.route("/missing")
def missing():
    abort(404)


@app.route("/headers")
def headers():
    return jsonify(ua=request.headers.get("User-Agent"), x=request.headers.get("X-Test"),
                   remote=request.remote_addr, scheme=request.scheme, path=request.path,
                   query=request.query_string.decode())
