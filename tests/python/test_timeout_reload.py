"""--timeout (a worker whose request is stuck is replaced, the client has
the engine's 503), --graceful-timeout (a retiring worker is not waited for
past it), and --reload (inotify: a saved file restarts the workers)."""
import os
import signal
import threading
import time

from conftest import piston_cmd, request
from test_signals import start_in, versions, write_app
from test_workers import children, start, wait_for


def test_timeout_replaces_a_stuck_worker():
    s = start("--timeout", "1", "--threads", "2")
    try:
        old = wait_for(lambda: len(children(s.proc.pid)) == 1 and children(s.proc.pid))
        t0 = time.monotonic()
        r = request(s.port, path="/sleep?s=30")
        assert r.status == 503  # the engine's, at --timeout
        assert time.monotonic() - t0 < 10
        new = wait_for(lambda: (lambda c: len(c) == 1 and c != old and c)(
            children(s.proc.pid)), timeout=15)
        assert new, "the stuck worker was replaced"
        # the old one is gone too, long before its request would end
        assert wait_for(lambda: old[0] not in children(s.proc.pid), timeout=15)
        assert request(s.port, path="/pid").body == str(new[0]).encode()
        # a request that ends in time does not replace anything
        assert request(s.port, path="/sleep?s=0.2").status == 200
        time.sleep(1.5)
        assert children(s.proc.pid) == new
        log = s.log()
        assert "past --timeout 1" in log and "a request ran past --timeout" in log
    finally:
        s.stop()


def test_graceful_timeout_bounds_a_drain():
    s = start("--workers", "1", "--max-requests", "1000", "--graceful-timeout", "1",
              "--threads", "2")
    try:
        old = wait_for(lambda: children(s.proc.pid))
        got = []
        t = threading.Thread(target=lambda: got.append(
            _status(s.port, "/sleep?s=60")))
        t.start()
        time.sleep(0.5)
        s.proc.send_signal(signal.SIGHUP)
        t0 = time.monotonic()
        assert wait_for(lambda: old[0] not in children(s.proc.pid), timeout=20)
        assert time.monotonic() - t0 < 15  # 1 s of grace + the thread join, not 60
        t.join(20)
        assert got and got[0] != 200
        assert request(s.port, path="/pid").status == 200
    finally:
        s.stop()


def _status(port, path):
    try:
        return request(port, path=path).status
    except Exception as e:  # noqa: the connection closed without an answer
        return repr(e)


def test_reload_restarts_on_save(tmp_path):
    write_app(tmp_path, "v1")
    s = start_in(tmp_path, "--reload")
    try:
        assert versions(s.port, 3) == {"v1"}
        time.sleep(0.5)
        write_app(tmp_path, "v2")
        assert wait_for(lambda: versions(s.port, 3) == {"v2"}, timeout=20)
        # a broken save keeps the running code; the fix is picked up
        write_app(tmp_path, "v3", broken=True)
        time.sleep(2)
        assert versions(s.port, 3) == {"v2"}
        (tmp_path / "pkg").mkdir()  # a new directory is watched too
        time.sleep(0.5)
        (tmp_path / "pkg" / "other.py").write_text("X = 1\n")
        time.sleep(2)
        write_app(tmp_path, "v4")
        assert wait_for(lambda: versions(s.port, 3) == {"v4"}, timeout=20)
        log = s.log()
        assert "reload_app.py changed" in log and "pkg/other.py changed" in log
        assert "SyntaxError" in log
    finally:
        s.stop()


def test_reload_sleeps_while_nothing_changes(tmp_path):
    from test_workers import _wakeups
    write_app(tmp_path, "v1")
    s = start_in(tmp_path, "--reload", "--reload-dir", str(tmp_path))
    try:
        assert versions(s.port, 2) == {"v1"}
        time.sleep(1.0)
        before = _wakeups(s.proc.pid)
        time.sleep(3.0)
        assert _wakeups(s.proc.pid) - before <= 1  # no polling loop
        (tmp_path / "notes.txt").write_text("not python")  # not a reason to reload
        time.sleep(1.0)
        log = s.log()
        assert "notes.txt" not in log and "--reload:" in log
    finally:
        s.stop()


def test_reload_dir_must_exist(tmp_path):
    import subprocess
    from conftest import HERE, ROOT
    env = dict(os.environ, PYTHONPATH=HERE + os.pathsep + os.path.join(ROOT, "python"))
    p = subprocess.run(piston_cmd() + ["apps:app", "--reload", "--reload-dir",
                                       str(tmp_path / "nope")],
                       cwd=HERE, env=env, capture_output=True, timeout=20)
    assert p.returncode == 1
    assert p.stderr.decode().strip().endswith("nope: not a directory")


BLOCKING_ASGI = '''
import os, time

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/block":
        time.sleep(120)  # a synchronous call: the whole event loop stops
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(os.getpid()).encode()})
'''


def test_timeout_replaces_an_asgi_worker_whose_loop_is_blocked(tmp_path):
    from conftest import Server, free_port
    (tmp_path / "blocking.py").write_text(BLOCKING_ASGI)
    port = free_port()
    s = Server(piston_cmd() + ["blocking:app", "--bind", "127.0.0.1:%d" % port,
                               "--timeout", "1", "--graceful-timeout", "1"], port,
               cwd=str(tmp_path))
    try:
        old = wait_for(lambda: len(children(s.proc.pid)) == 1 and children(s.proc.pid))
        assert request(port, path="/").body == str(old[0]).encode()
        t = threading.Thread(target=lambda: _status(port, "/block"))
        t.start()
        new = wait_for(lambda: (lambda c: c and old[0] not in c and c)(children(s.proc.pid)),
                       timeout=20)
        assert new, "the blocked worker was replaced and killed"
        assert request(port, path="/").body == str(new[0]).encode()
        t.join(20)
        log = s.log()
        assert "event loop has been blocked" in log and "did not stop within" in log
    finally:
        s.stop()
