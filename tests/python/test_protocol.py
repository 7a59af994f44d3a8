"""HTTP behaviour through the Python host, with raw sockets."""
import json
import socket
import threading
import time

import pytest

from conftest import Reader, connect, request



def test_keep_alive(piston_app):
    s = connect(piston_app.port)
    rd = Reader(s)
    for i in range(5):
        s.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        r = rd.response()
        assert r.status == 200 and r.body == b"ok"
        assert r.header("Connection") is None
    s.close()


def test_pipelining(piston_app):
    s = connect(piston_app.port)
    reqs = b"".join(b"GET /env?i=%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(10))
    s.sendall(reqs + b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
    rd = Reader(s)
    for i in range(10):
        assert json.loads(rd.response().body)["QUERY_STRING"] == "i=%d" % i
    assert rd.response().body == b"abc"
    s.close()


def test_chunked_upload_large(piston_app):
    s = connect(piston_app.port)
    s.sendall(b"POST /count-upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    total = 0
    for i in range(200):
        chunk = b"z" * (10000 + i)
        s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        total += len(chunk)
    s.sendall(b"0\r\n\r\n")
    r = Reader(s).response()
    s.close()
    assert r.status == 200 and int(r.body) == total


def test_large_upload(piston_app):
    body = b"u" * (20 * 1024 * 1024)
    r = request(piston_app.port, "POST", "/count-upload", body=body)
    assert r.status == 200 and int(r.body) == len(body)


def test_large_download(piston_app):
    n = 30 * 1024 * 1024 + 7
    r = request(piston_app.port, path="/big?n=%d" % n)
    assert r.status == 200 and len(r.body) == n
    assert r.body[:512] == bytes(range(256)) * 2


def test_slow_reader_download(piston_app):
    """Backpressure: a client that reads slowly still gets every byte."""
    n = 8 * 1024 * 1024
    s = connect(piston_app.port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.sendall(b"GET /big?n=%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % n)
    time.sleep(0.5)  # the server fills the buffers and must wait
    r = Reader(s).response()
    s.close()
    assert len(r.body) == n


def test_100_continue(piston_app):
    s = connect(piston_app.port)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
              b"Expect: 100-continue\r\n\r\n")
    line = b""
    while b"\r\n\r\n" not in line:
        data = s.recv(100)
        assert data
        line += data
    assert line.startswith(b"HTTP/1.1 100 Continue\r\n")
    s.sendall(b"hello")
    r = Reader(s).response()
    s.close()
    assert r.status == 200 and r.body == b"hello"


def test_client_abort_calls_close(start_piston):
    srv = start_piston("apps:app")
    before = json.loads(request(srv.port, path="/stats").body)["closed"]
    s = connect(srv.port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    s.sendall(b"GET /slow-stream HTTP/1.1\r\nHost: x\r\n\r\n")
    assert s.recv(1000)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()  # RST mid-response
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now = json.loads(request(srv.port, path="/stats").body)["closed"]
        if now > before:
            break
        time.sleep(0.05)
    assert now == before + 1
    # and the server still serves
    assert request(srv.port, path="/stream").body == b"one\ntwo\nthree\n"


def test_exception_then_next_request(piston_app):
    s = connect(piston_app.port)
    s.sendall(b"GET /raise HTTP/1.1\r\nHost: x\r\n\r\n")
    r = Reader(s).response()
    assert r.status == 500
    s.close()
    assert request(piston_app.port, path="/ok").status == 200


def test_slow_handler_does_not_stall_others(piston_app):
    results = []
    t = threading.Thread(target=lambda: results.append(request(piston_app.port, path="/sleep?s=2")))
    t.start()
    time.sleep(0.1)
    for _ in range(20):
        assert request(piston_app.port, path="/ok").status == 200
    assert not results  # all 20 were answered while the slow one sleeps
    t.join(5)
    assert results[0].body == b"slept"


def test_concurrent_clients(piston_app):
    errors = []

    def client():
        try:
            s = connect(piston_app.port)
            rd = Reader(s)
            for i in range(50):
                s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n%04d" % i)
                r = rd.response()
                if r.body != b"%04d" % i:
                    errors.append(r.body)
            s.close()
        except Exception as e:  # noqa
            errors.append(e)

    ts = [threading.Thread(target=client) for _ in range(16)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert not errors, errors
    # the pool keeps all its threads (piston_app runs --threads 4)
    assert request(piston_app.port, path="/threads").body == b"4"


def test_body_too_large(start_piston):
    srv = start_piston("apps:app", "--max-body-size", "1000")
    r = request(srv.port, "POST", "/echo", body=b"x" * 2000)
    assert r.status == 413
    s = connect(srv.port)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              + b"200\r\n" + b"x" * 512 + b"\r\n" + b"400\r\n" + b"y" * 1024 + b"\r\n0\r\n\r\n")
    r = Reader(s).response()
    s.close()
    assert r.status == 413
    assert request(srv.port, path="/stream").status == 200
