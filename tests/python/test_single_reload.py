"""SIGHUP with one process (no supervisor): the new code runs in the same
process (same pid, the listening sockets handed over open), a broken new
version keeps the old code with one line saying why, and nothing a client
sends meanwhile is refused, reset or lost. WSGI and ASGI, TCP and a Unix
socket; --preload keeps the code. Real processes, signals and sockets."""
import os
import signal
import socket
import time

import pytest

from conftest import Reader, Server, free_port, piston_cmd, request
from test_signals import write_app as signals_write_app
from test_workers import Load, wait_for

WSGI = '''
import os, time
VERSION = %r

def app(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(1)
    body = ("%%s %%d" %% (VERSION, os.getpid())).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''

ASGI = '''
import asyncio, os
VERSION = %r

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        await asyncio.sleep(1)
    body = ("%%s %%d" %% (VERSION, os.getpid())).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
'''


def write_app(d, src, version, broken=False):
    signals_write_app(d, version, broken, src=src, name="one_app")


def start(d, *extra):
    port = free_port()
    return Server(piston_cmd() + ["one_app:app", "--bind", "127.0.0.1:%d" % port]
                  + list(extra), port, cwd=str(d))


def answer(port, path="/"):
    r = request(port, path=path)
    assert r.status == 200
    version, pid = r.body.decode().split()
    return version, int(pid)


@pytest.mark.parametrize("src,extra", [(WSGI, ()), (ASGI, ("--interface", "asgi"))],
                         ids=["wsgi", "asgi"])
def test_sighup_runs_the_new_code_in_the_same_process(tmp_path, src, extra):
    write_app(tmp_path, src, "v1")
    s = start(tmp_path, *extra)
    try:
        v, pid = answer(s.port)
        assert (v, pid) == ("v1", s.proc.pid)
        clients = Load(s.port, path="/", n=3, pause=0.002)
        # a request in flight when the signal comes is answered by the old code
        slow = socket.create_connection(("127.0.0.1", s.port), timeout=20)
        slow.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        time.sleep(0.2)
        write_app(tmp_path, src, "v2")
        s.proc.send_signal(signal.SIGHUP)
        r = Reader(slow).response()
        slow.close()
        assert (r.status, r.body.split()[0]) == (200, b"v1")
        assert wait_for(lambda: answer(s.port)[0] == "v2", timeout=30)
        time.sleep(0.3)
        clients.stop()
        assert answer(s.port) == ("v2", s.proc.pid)
        assert clients.failed == [], clients.failed[:5]
        assert {b.split()[0] for b in clients.bodies} == {b"v1", b"v2"} and clients.ok > 20
        log = s.log()
    finally:
        s.stop()
    assert s.proc.returncode == 0
    assert log.count("SIGHUP: the new code loads: restarting pid %d" % s.proc.pid) == 1, log
    assert "Traceback" not in log


def test_broken_new_version_keeps_the_old_code(tmp_path):
    write_app(tmp_path, WSGI, "v1")
    s = start(tmp_path)
    try:
        write_app(tmp_path, WSGI, "v2", broken=True)
        s.proc.send_signal(signal.SIGHUP)
        time.sleep(3)
        assert answer(s.port) == ("v1", s.proc.pid)
        # fixed: the next SIGHUP loads it
        write_app(tmp_path, WSGI, "v3")
        s.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: answer(s.port)[0] == "v3", timeout=30)
        assert answer(s.port)[1] == s.proc.pid
        log = s.log()
    finally:
        s.stop()
    why = [line for line in log.splitlines() if "could not start" in line]
    assert len(why) == 1, log
    assert "old code keeps serving" in why[0] and "SyntaxError" in why[0], why
    assert "Traceback" not in log


def test_unix_socket_crosses_the_reload_and_goes_at_exit(tmp_path):
    write_app(tmp_path, WSGI, "v1")
    path = str(tmp_path / "one.sock")
    port = free_port()  # only to know when it serves
    s = Server(piston_cmd() + ["one_app:app", "--bind", "unix:" + path,
                               "--bind", "127.0.0.1:%d" % port], port, cwd=str(tmp_path))

    def over_unix():
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(10)
        c.connect(path)
        c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        r = Reader(c).response()
        c.close()
        return r.body.split()[0].decode()

    try:
        assert over_unix() == "v1"
        write_app(tmp_path, WSGI, "v2")
        s.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: answer(port)[0] == "v2", timeout=30)
        assert over_unix() == "v2"
        assert s.stop() == 0
    finally:
        s.stop()
    assert not os.path.exists(path), "the socket file is removed at exit"


def test_preload_keeps_the_code(tmp_path):
    write_app(tmp_path, WSGI, "v1")
    s = start(tmp_path, "--preload")
    try:
        write_app(tmp_path, WSGI, "v2")
        s.proc.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        assert answer(s.port) == ("v1", s.proc.pid)
        log = s.log()
    finally:
        s.stop()
    assert "the code stays" in log, log


def test_check_config(tmp_path):
    import subprocess
    write_app(tmp_path, WSGI, "v1")
    ok = subprocess.run(piston_cmd() + ["one_app:app", "--check-config"], cwd=str(tmp_path),
                        capture_output=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    write_app(tmp_path, WSGI, "v2", broken=True)
    bad = subprocess.run(piston_cmd() + ["one_app:app", "--check-config"], cwd=str(tmp_path),
                         capture_output=True, timeout=60)
    assert bad.returncode != 0 and b"SyntaxError" in bad.stderr
