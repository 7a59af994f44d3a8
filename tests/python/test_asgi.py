"""The ASGI host with raw ASGI apps (tests/python/asgi_apps.py): scope,
receive, send, disconnects, backpressure, lifespan, errors, pipelining and
the engine's own rejections."""
import json
import os
import signal
import socket
import struct
import subprocess
import time

import pytest

from conftest import (HERE, ROOT, Reader, Server, connect, free_port, piston_cmd, recv_all,
                      request)


@pytest.fixture(scope="module")
def asgi():
    port = free_port()
    s = Server(piston_cmd() + ["asgi_apps:app", "--bind", "127.0.0.1:%d" % port,
                               "--root-path", "/mnt", "--handler-timeout", "1",
                               "--write-high-water", "65536"], port)
    yield s
    s.stop()


def get_json(port, path, **kw):
    r = request(port, path=path, **kw)
    assert r.status == 200, (r.status, r.body)
    return json.loads(r.body)


def events(port):
    return get_json(port, "/events")


def wait_for(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return pred()


# ---- scope ------------------------------------------------------------------

# escapes of every kind: UTF-8 (%e2%82%ac), invalid UTF-8 (%C3%28), '/' and
# '%' themselves, and '%' without two hex digits (kept as it is)
MIXED_PATH = "/scope/a%2Fb%25c/%zz%4%C3%28/%e2%82%ac+x%4"


def test_path_percent_decoded_then_utf8(asgi):
    """path is raw_path percent-decoded, then UTF-8 with errors='replace':
    what urllib.parse.unquote gives (the host's decoder before the engine's)."""
    from urllib.parse import unquote
    s = get_json(asgi.port, MIXED_PATH + "?q=%20")
    assert s["raw_path"] == MIXED_PATH
    assert s["path"] == "/scope/a/b%c/%zz%4\ufffd(/\u20ac+x%4"
    assert s["path"] == unquote(MIXED_PATH, errors="replace")
    assert s["query_string"] == "q=%20"


def test_literal_non_ascii_target_is_rejected(asgi):
    """Bytes that are not ASCII never reach the host: the engine answers 400,
    with or without escapes around them, so only escapes are decoded."""
    for raw in (b"/scope/caf\xc3\xa9", b"/scope/caf\xc3\xa9/%C3%A9%20x"):
        s = connect(asgi.port)
        try:
            s.sendall(b"GET " + raw + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            assert Reader(s).response().status == 400
        finally:
            s.close()
    assert request(asgi.port, path="/scope").status == 200


def test_scope(asgi):
    s = get_json(asgi.port, "/scope/caf%C3%A9%20x/%2F?a=1&b=%20",
                 headers=[("X-Custom", "One"), ("X-Custom", "Two")])
    assert s["type"] == "http"
    assert s["asgi"] == {"version": "3.0", "spec_version": "2.5"}
    assert s["http_version"] == "1.1"
    assert s["method"] == "GET"
    assert s["scheme"] == "http"
    assert s["path"] == "/scope/café x//"
    assert s["raw_path"] == "/scope/caf%C3%A9%20x/%2F"
    assert s["query_string"] == "a=1&b=%20"
    assert s["root_path"] == "/mnt"
    assert s["header_types"] == ["bytes/bytes"]
    hs = s["headers"]
    assert hs[0] == ["host", "localhost"]
    assert ["x-custom", "One"] in hs and ["x-custom", "Two"] in hs
    assert hs.index(["x-custom", "One"]) < hs.index(["x-custom", "Two"])
    assert all(k == k.lower() for k, _ in hs)
    assert s["client"][0] == "127.0.0.1" and isinstance(s["client"][1], int)
    assert s["server"] == ["127.0.0.1", asgi.port]
    assert s["state"] == {"value": "from-lifespan", "started": True}
    assert "http.response.pathsend" in s["extensions"]


def test_http10_and_head(asgi):
    sock = connect(asgi.port)
    try:
        sock.sendall(b"GET /scope HTTP/1.0\r\n\r\n")
        r = Reader(sock).response()
        assert json.loads(r.body)["http_version"] == "1.0"
    finally:
        sock.close()
    r = request(asgi.port, "HEAD", "/scope")
    assert r.status == 200 and r.body == b"" and int(r.header("Content-Length")) > 0


# ---- receive -------------------------------------------------------------------

def test_small_body_one_message(asgi):
    r = request(asgi.port, "POST", "/echo", body=b"hello")
    assert r.status == 200 and r.body == b"hello"
    assert r.header("x-chunks") == "1"
    assert r.header("Content-Length") == "5"


def test_chunked_body_streamed(asgi):
    sock = connect(asgi.port)
    try:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5\r\nhello\r\n")
        time.sleep(0.2)
        sock.sendall(b"6\r\n world\r\n0\r\n\r\n")
        r = Reader(sock).response()
        assert r.body == b"hello world"
        assert int(r.header("x-chunks")) >= 2
    finally:
        sock.close()


def test_large_body(asgi):
    body = os.urandom(3 * 1024 * 1024)
    r = request(asgi.port, "POST", "/echo", body=body)
    assert r.status == 200 and r.body == body


def test_disconnect_while_waiting(asgi):
    """A reset is a client that left (a FIN alone is a half-close that
    still gets its answer: test_compat_engine.py)."""
    sock = connect(asgi.port)
    sock.sendall(b"GET /wait-disconnect HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.2)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    assert wait_for(lambda: "wait:http.disconnect" in events(asgi.port))


def test_disconnect_while_streaming(asgi):
    sock = connect(asgi.port)
    sock.sendall(b"GET /stream-until-disconnect HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"tick" in sock.recv(4096)
    sock.close()
    assert wait_for(lambda: "ticker:http.disconnect" in events(asgi.port))


# ---- send ---------------------------------------------------------------------------

def test_streaming_chunked(asgi):
    r = request(asgi.port, path="/stream?n=50&size=100")
    assert r.status == 200 and r.body == b"x" * 5000
    assert r.header("Transfer-Encoding") == "chunked"


def test_backpressure_slow_reader(asgi):
    """The app streams 64 MB; a client that does not read holds it to what
    the queue and the socket buffers take, then gets every byte."""
    total = 64 * 1024 * 1024
    sock = connect(asgi.port, timeout=30)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.sendall(b"GET /stream?n=1024&size=65536&name=slow HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(1.0)
    sent = get_json(asgi.port, "/progress").get("slow", 0)
    assert 0 < sent < 16 * 1024 * 1024, sent
    time.sleep(0.5)
    assert get_json(asgi.port, "/progress")["slow"] == sent  # it waits, not spins
    # read it all (counting, not keeping: framing adds a few bytes a chunk)
    got = 0
    tail = b""
    while not tail.endswith(b"\r\n0\r\n\r\n"):
        d = sock.recv(1 << 20)
        assert d, "connection closed early"
        got += len(d)
        tail = (tail + d)[-16:]
    sock.close()
    assert total < got < total + 1024 * 16
    assert wait_for(lambda: "slow:done" in events(asgi.port))


def test_backpressure_client_gone(asgi):
    sock = connect(asgi.port)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.sendall(b"GET /stream?n=100000&size=65536&name=gone HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.5)
    sock.close()
    assert wait_for(lambda: "gone:send-raised" in events(asgi.port))
    assert request(asgi.port, path="/scope").status == 200


def test_pathsend(asgi, tmp_path):
    f = tmp_path / "data.bin"
    data = os.urandom(200000)
    f.write_bytes(data)
    r = request(asgi.port, path="/pathsend?file=%s" % f)
    assert r.status == 200 and r.body == data


def test_trailers(asgi):
    sock = connect(asgi.port)
    try:
        sock.sendall(b"GET /trailers HTTP/1.1\r\nHost: x\r\nTE: trailers\r\nConnection: close\r\n\r\n")
        raw = recv_all(sock)
    finally:
        sock.close()
    assert b"\r\n\r\n3\r\nabc\r\n0\r\n" in raw
    assert b"x-checksum: 42" in raw.lower()


@pytest.mark.parametrize("code", [201, 204, 304, 404, 503])
def test_statuses(asgi, code):
    r = request(asgi.port, path="/status?code=%d" % code)
    assert r.status == code


def test_pipelining(asgi):
    sock = connect(asgi.port)
    try:
        reqs = b"".join(b"GET /sleep?s=0.0%d HTTP/1.1\r\nHost: x\r\n\r\n" % (5 - i)
                        for i in range(5))
        reqs += b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        sock.sendall(reqs)
        rd = Reader(sock)
        for i in range(5):
            r = rd.response()
            assert json.loads(r.body) == {"slept": "0.0%d" % (5 - i)}
        assert rd.response().body == b"abc"
    finally:
        sock.close()


def test_concurrent_requests_interleave(asgi):
    """Slow handlers do not hold up others: 20 sleepers run at once."""
    socks = []
    t0 = time.monotonic()
    for _ in range(20):
        s = connect(asgi.port)
        s.sendall(b"GET /sleep?s=0.5 HTTP/1.1\r\nHost: x\r\n\r\n")
        socks.append(s)
    for s in socks:
        assert Reader(s).response().status == 200
        s.close()
    assert time.monotonic() - t0 < 3


# ---- errors -----------------------------------------------------------------------

def test_send_checks_and_awaitable(asgi):
    r = request(asgi.port, path="/send-misuse")
    assert r.status == 200
    assert json.loads(r.body) == {
        "body-before-start": "RuntimeError", "bad-status": "ValueError",
        "status-not-int": "ValueError", "unknown-type": "ValueError",
        "no-type": "KeyError", "awaitable": True, "start-twice": "RuntimeError",
        "bad-body": "TypeError"}
    # the app's last, refused send came after the response: it is whole
    assert request(asgi.port, path="/scope").status == 200


def test_exception_before_start(asgi):
    r = request(asgi.port, path="/error-before")
    assert r.status == 500
    assert request(asgi.port, path="/scope").status == 200


def test_exception_after_start_is_500(asgi):
    # the start message is held until the first body: nothing was sent yet
    r = request(asgi.port, path="/error-after-start")
    assert r.status == 500


def test_exception_after_body_closes(asgi):
    sock = connect(asgi.port)
    try:
        sock.sendall(b"GET /error-after-body HTTP/1.1\r\nHost: x\r\n\r\n")
        with pytest.raises((EOFError, ValueError, ConnectionError)):
            Reader(sock).response()
    finally:
        sock.close()
    assert request(asgi.port, path="/scope").status == 200


def test_exception_after_complete_keeps_response(asgi):
    r = request(asgi.port, path="/error-after-complete")
    assert r.status == 200 and r.body == b"done"


def test_no_response_is_500(asgi):
    assert request(asgi.port, path="/no-response").status == 500


def test_bad_header_is_500(asgi):
    assert request(asgi.port, path="/bad-header").status == 500


def test_handler_timeout(asgi):
    # the engine answers 503 and the app's task is cancelled: the app's
    # finally clause records it
    t0 = time.monotonic()
    sock = connect(asgi.port)
    try:
        sock.sendall(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")  # keep-alive asked
        r = Reader(sock).response()
        assert r.status == 503
        assert ("Connection", "close") in r.headers
        assert sock.recv(1) == b""  # and closed
    finally:
        sock.close()
    assert 0.8 < time.monotonic() - t0 < 5
    assert wait_for(lambda: "hang:cancelled" in get_json(asgi.port, "/events"))


def test_engine_rejections_never_reach_app(asgi):
    sock = connect(asgi.port)
    try:
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")  # no Host
        assert Reader(sock).response().status == 400
    finally:
        sock.close()
    sock = connect(asgi.port)
    try:
        sock.sendall(b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert Reader(sock).response().status in (414, 431)
    finally:
        sock.close()
    sock = connect(asgi.port)
    try:
        sock.sendall(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n")
        assert Reader(sock).response().status in (400, 505)
    finally:
        sock.close()
    assert request(asgi.port, path="/scope").status == 200


def test_expect_continue(asgi):
    sock = connect(asgi.port)
    try:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 100")
        sock.sendall(b"hello")
        r = Reader(sock).response()
        assert r.status == 200 and r.body == b"hello"
    finally:
        sock.close()


def test_unix_socket(tmp_path):
    path = str(tmp_path / "s.sock")
    port = free_port()  # a TCP bind too, for the fixture's readiness check
    s = Server(piston_cmd() + ["asgi_apps:app", "--bind", "unix:" + path,
                               "--bind", "127.0.0.1:%d" % port], port)
    try:
        u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        u.settimeout(10)
        u.connect(path)
        u.sendall(b"GET /scope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        sc = json.loads(Reader(u).response().body)
        u.close()
        assert sc["client"] is None
        assert sc["server"] == [path, None]
    finally:
        s.stop()


def test_body_too_large(start_piston):
    srv = start_piston("asgi_apps:app", "--max-body-size", "1000")
    r = request(srv.port, "POST", "/echo", body=b"x" * 5000)
    assert r.status == 413


def test_native_routes_and_static(start_piston, tmp_path):
    (tmp_path / "f.txt").write_bytes(b"file\n")
    srv = start_piston("asgi_apps:app", "--route", "/health=OK", "--static",
                       "/files=%s" % tmp_path)
    assert request(srv.port, path="/health").body == b"OK"
    assert request(srv.port, path="/files/f.txt").body == b"file\n"
    assert request(srv.port, path="/scope").status == 200


def test_nothing_leaks(asgi):
    """After requests of every kind (errors, timeouts, disconnects, streams),
    only the request asking holds a handle."""
    for path in ["/scope", "/error-before", "/error-after-body", "/no-response",
                 "/bad-header", "/hang", "/stream?n=3&size=10", "/trailers"]:
        try:
            request(asgi.port, path=path)
        except (EOFError, ConnectionError):
            pass
    for _ in range(3):
        sock = connect(asgi.port)
        sock.sendall(b"GET /stream-until-disconnect HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.recv(100)
        sock.close()
    ok = wait_for(lambda: get_json(asgi.port, "/live") == {"requests": 1, "exchanges": 1})
    assert ok, get_json(asgi.port, "/live")


def test_sigterm_drains_in_flight(start_piston):
    srv = start_piston("asgi_apps:app")
    sock = connect(srv.port)
    try:
        sock.sendall(b"GET /sleep?s=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)
        srv.proc.send_signal(signal.SIGTERM)
        r = Reader(sock).response()
        assert r.status == 200 and json.loads(r.body) == {"slept": "1"}
    finally:
        sock.close()
    assert srv.stop() == 0
    assert "Shutdown complete" in srv.log()


# ---- lifespan --------------------------------------------------------------------------

def run_cli(*args, timeout=20, env=None):
    e = dict(os.environ)
    e["PYTHONPATH"] = HERE + os.pathsep + os.path.join(ROOT, "python")
    if env:
        e.update(env)
    p = subprocess.run(piston_cmd() + list(args), cwd=HERE, env=e, capture_output=True,
                       timeout=timeout)
    return p.returncode, p.stderr.decode()


def test_startup_failed_message_exits():
    code, err = run_cli("asgi_apps:startup_fails", "--bind", "127.0.0.1:%d" % free_port())
    assert code != 0
    assert "lifespan startup failed" in err and "database is down" in err
    assert "Traceback" not in err


def test_startup_raises(start_piston):
    # --lifespan on: an error, exit != 0
    code, err = run_cli("asgi_apps:startup_raises", "--lifespan", "on",
                        "--bind", "127.0.0.1:%d" % free_port())
    assert code != 0
    assert "lifespan startup failed" in err and "cannot connect" in err
    # auto (as uvicorn): the app does not speak lifespan; serve anyway
    srv = start_piston("asgi_apps:startup_raises")
    assert request(srv.port, path="/").status == 200
    assert "unsupported" in srv.log()


def test_startup_failure_with_workers():
    code, err = run_cli("asgi_apps:startup_fails", "--workers", "2",
                        "--bind", "127.0.0.1:%d" % free_port())
    assert code != 0
    assert "database is down" in err


def test_lifespan_auto_unsupported(start_piston):
    srv = start_piston("asgi_apps:no_lifespan")
    assert get_json(srv.port, "/") == {"ok": True, "state": {}}
    assert "lifespan" in srv.log()


def test_lifespan_on_requires_support():
    code, err = run_cli("asgi_apps:no_lifespan", "--lifespan", "on",
                        "--bind", "127.0.0.1:%d" % free_port())
    assert code != 0 and "lifespan startup failed" in err


def test_lifespan_off(start_piston):
    srv = start_piston("asgi_apps:app", "--lifespan", "off")
    assert get_json(srv.port, "/state") == {}


def test_lifespan_shutdown_on_sigterm(tmp_path):
    mark = tmp_path / "mark"
    port = free_port()
    s = Server(piston_cmd() + ["asgi_apps:marks_shutdown", "--bind", "127.0.0.1:%d" % port],
               port, env={"PISTON_TEST_SHUTDOWN_MARK": str(mark)})
    pid = get_json(port, "/")["pid"]
    assert s.stop() == 0
    assert mark.read_text() == "shutdown %d\n" % pid


def test_workers_and_signals(tmp_path):
    mark = tmp_path / "mark"
    port = free_port()
    s = Server(piston_cmd() + ["asgi_apps:marks_shutdown", "--bind", "127.0.0.1:%d" % port,
                               "--workers", "2"],
               port, env={"PISTON_TEST_SHUTDOWN_MARK": str(mark)})
    pids = set()
    for _ in range(40):
        pids.add(get_json(port, "/")["pid"])
        if len(pids) == 2:
            break
    assert len(pids) >= 1
    # SIGHUP replaces the workers
    s.proc.send_signal(signal.SIGHUP)
    time.sleep(1.5)
    new = set()
    for _ in range(40):
        new.add(get_json(port, "/")["pid"])
    assert not (new & pids)
    assert s.stop() == 0
    lines = mark.read_text().splitlines()
    assert len(lines) >= 4  # two old workers drained, two new ones stopped


def test_max_requests_replaces_worker(start_piston):
    srv = start_piston("asgi_apps:marks_shutdown", "--max-requests", "5")
    pids = []
    for _ in range(30):
        try:
            pids.append(get_json(srv.port, "/")["pid"])
        except (EOFError, ConnectionError):
            pass
        if len(set(pids)) > 1:
            break
        time.sleep(0.05)
    assert len(set(pids)) > 1, pids
    assert srv.stop() == 0


@pytest.mark.parametrize("name", ["asgi_app", "asgi_instance"])
def test_detected_and_served(start_piston, name):
    # the apps answer nothing: a 500 from the host, and the server lives on
    srv = start_piston("apps:" + name)
    assert request(srv.port, path="/").status == 500
    assert request(srv.port, path="/").status == 500


def test_asyncio_loop_option(start_piston):
    srv = start_piston("asgi_apps:app", "--loop", "asyncio")
    assert get_json(srv.port, "/state")["value"] == "from-lifespan"
    assert "_UnixSelectorEventLoop" in srv.log()
