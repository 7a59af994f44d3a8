"""WSGI (PEP 3333) semantics through the real server: environ, wsgi.input,
start_response, write(), iterables, file_wrapper, errors."""
import json

from conftest import request


def env(port, path="/env", **kw):
    r = request(port, path=path, **kw)
    assert r.status == 200, r.body
    return json.loads(r.body)


def test_environ_required_keys(piston_app):
    e = env(piston_app.port, "/env?a=1&b=%20", headers=[("X-Foo", "bar")])
    assert e["REQUEST_METHOD"] == "GET"
    assert e["SCRIPT_NAME"] == ""
    assert e["PATH_INFO"] == "/env"
    assert e["QUERY_STRING"] == "a=1&b=%20"
    assert e["SERVER_NAME"] == "127.0.0.1"
    assert e["SERVER_PORT"] == str(piston_app.port)
    assert e["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert e["REMOTE_ADDR"] == "127.0.0.1"
    assert int(e["REMOTE_PORT"]) > 0
    assert e["wsgi.url_scheme"] == "http"
    assert e["wsgi.multithread"] is True
    assert e["wsgi.multiprocess"] is False
    assert e["wsgi.run_once"] is False
    assert e["wsgi.input_terminated"] is True
    assert e["headers"]["HTTP_X_FOO"] == "bar"
    assert e["headers"]["HTTP_HOST"] == "localhost"


def test_environ_headers(piston_app):
    e = env(piston_app.port, headers=[("Accept", "a"), ("accept", "b"), ("X_Under", "dropped"),
                                      ("Content-Type", "text/x"), ("X-Multi-Word", "v")])
    h = e["headers"]
    assert h["HTTP_ACCEPT"] == "a, b"
    assert "HTTP_X_UNDER" not in h
    assert "HTTP_CONTENT_TYPE" not in h
    assert e["CONTENT_TYPE"] == "text/x"
    assert h["HTTP_X_MULTI_WORD"] == "v"


def test_path_info_percent_decoded_latin1(piston_app):
    e = env(piston_app.port, "/env/%C3%A9/a%2Fb")
    # PEP 3333: bytes decoded as latin-1
    assert e["PATH_INFO"].encode("latin-1") == b"/env/\xc3\xa9/a/b"


def test_path_info_mixed_escapes(piston_app):
    """PATH_INFO is the engine's decoding of the path's escapes (a '%'
    without two hex digits stays), as bytes in latin-1 characters."""
    from urllib.parse import unquote_to_bytes
    raw = "/env/a%2Fb%25c/%zz%4%C3%28/%e2%82%ac+x%4"
    e = env(piston_app.port, raw + "?q=%20")
    assert e["PATH_INFO"].encode("latin-1") == b"/env/a/b%c/%zz%4\xc3(/\xe2\x82\xac+x%4"
    assert e["PATH_INFO"].encode("latin-1") == unquote_to_bytes(raw)
    assert e["QUERY_STRING"] == "q=%20"


def test_content_length_and_type(piston_app):
    e = env(piston_app.port, method="POST", headers=[("Content-Type", "application/json")],
            body=b"{}")
    assert e["CONTENT_LENGTH"] == "2"
    assert e["CONTENT_TYPE"] == "application/json"


def test_http10(piston_app):
    from conftest import connect, Reader
    s = connect(piston_app.port)
    s.sendall(b"GET /env HTTP/1.0\r\n\r\n")
    r = Reader(s).response()
    s.close()
    assert json.loads(r.body)["SERVER_PROTOCOL"] == "HTTP/1.0"


def test_input_read_all(piston_app):
    body = b"x" * 100000
    assert request(piston_app.port, "POST", "/echo", body=body).body == body


def test_input_readline_readlines(piston_app):
    r = request(piston_app.port, "POST", "/echo-lines", body=b"first\nabcdef\nl2\nl3")
    d = json.loads(r.body)
    assert d == {"first": "first\n", "limited": "abc", "rest": ["def\n", "l2\n", "l3"]}


def test_input_iteration(piston_app):
    r = request(piston_app.port, "POST", "/echo-iter", body=b"a\nb\nc")
    assert r.body == b"a\n|b\n|c"


def test_input_read_n(piston_app):
    r = request(piston_app.port, "POST", "/echo-chunks", body=b"y" * 2500)
    assert r.body == b"3:2500"


def test_chunked_request_body(piston_app):
    from conftest import connect, Reader
    s = connect(piston_app.port)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    r = Reader(s).response()
    s.close()
    assert r.status == 200 and r.body == b"hello world"


def test_stream_chunked_and_close(piston_app):
    r = request(piston_app.port, path="/stream")
    assert r.header("Transfer-Encoding") == "chunked"
    assert r.body == b"one\ntwo\nthree\n"


def test_late_start_response(piston_app):
    r = request(piston_app.port, path="/late")
    assert r.status == 201 and r.header("X-Late") == "yes" and r.body == b"late"


def test_write_callable(piston_app):
    r = request(piston_app.port, path="/write")
    assert r.body == b"written and returned"


def test_single_element_gets_content_length(piston_app):
    r = request(piston_app.port, path="/ok")
    assert r.header("Content-Length") == "2" and r.header("Transfer-Encoding") is None


def test_empty_204(piston_app):
    r = request(piston_app.port, path="/empty")
    assert r.status == 204 and r.body == b""


def test_file_wrapper_sendfile(piston_app):
    import apps
    data = open(apps.__file__, "rb").read()
    r = request(piston_app.port, path="/file")
    assert r.status == 200 and r.body == data
    r = request(piston_app.port, path="/file-nolen")
    assert r.status == 200 and r.body == data[10:]


def test_head(piston_app):
    r = request(piston_app.port, "HEAD", "/ok")
    assert r.status == 200 and r.header("Content-Length") == "2"


def test_errors_are_500_and_server_goes_on(piston_app):
    for path in ("/raise", "/raise-before-body", "/bad-header", "/bad-status",
                 "/no-start", "/str-body"):
        r = request(piston_app.port, path=path)
        assert r.status == 500, path
        assert b"Injected" not in b"".join(v.encode() for _, v in r.headers)
        assert request(piston_app.port, path="/ok").body == b"ok"


def test_exc_info_replaces_headers(piston_app):
    r = request(piston_app.port, path="/exc-info")
    assert r.status == 500 and r.body == b"recovered"


def test_error_after_start_closes(piston_app):
    from conftest import connect, Reader
    s = connect(piston_app.port)
    s.sendall(b"GET /raise-late HTTP/1.1\r\nHost: x\r\n\r\n")
    rd = Reader(s)
    try:
        rd.response()
        truncated = False
    except EOFError:
        truncated = True
    s.close()
    assert truncated  # a chunked body without its last chunk: the client sees the failure
    assert request(piston_app.port, path="/ok").body == b"ok"


def test_traceback_logged(start_piston):
    srv = start_piston("apps:broken")
    assert request(srv.port, path="/raise").status == 500
    log = srv.log()
    assert "Traceback" in log and "RuntimeError: boom" in log and "GET /raise" in log


def test_handler_timeout_503_and_late_writes_quiet(start_piston):
    """--handler-timeout: an app that has not started its response in time
    has its client answered by the engine (503, Connection: close); the
    held thread's later write fails without a traceback. With both threads
    held, a queued request is answered in time too."""
    import threading
    import time
    srv = start_piston("apps:broken", "--handler-timeout", "0.5", "--threads", "2")
    results = []

    def hung():
        t0 = time.monotonic()
        r = request(srv.port, path="/sleep?s=1.5")
        results.append((r.status, r.header("Connection"), r.body, time.monotonic() - t0))

    ths = [threading.Thread(target=hung) for _ in range(3)]
    for t in ths:
        t.start()
    for t in ths:
        t.join(10)
    assert len(results) == 3
    for status, conn, body, took in results:
        assert (status, conn, body) == (503, "close", b"Service Unavailable\n")
        assert 0.4 < took < 1.4, took
    time.sleep(1.5)  # the held threads finish and write, too late
    assert request(srv.port, path="/ok").body == b"ok"
    log = srv.log()
    assert log.count("handler timeout: GET /sleep not answered within 500 ms: sent 503") == 3
    assert "Traceback" not in log and "Error handling" not in log
