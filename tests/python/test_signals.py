"""The supervisor's signals, as gunicorn's: SIGHUP reloads the code (a
broken new version keeps the old workers), SIGUSR1 reopens the log files,
SIGTTIN/SIGTTOU add/remove a worker, SIGUSR2/SIGWINCH are logged and
ignored. Real processes, real signals, real sockets."""
import os
import signal
import time

import pytest

from conftest import Server, free_port, piston_cmd, request
from test_workers import children, wait_for

APP = '''
import os
VERSION = %r

def app(environ, start_response):
    body = ("%%s %%d" %% (VERSION, os.getpid())).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''


def write_app(d, version, broken=False, src=APP, name="reload_app"):
    text = src % version
    if broken:
        text += "\ndef broken(:\n"
    (d / (name + ".py")).write_text(text)
    # the same second as the last write: make sure the import sees the change
    for p in (d / "__pycache__").glob(name + "*") if (d / "__pycache__").exists() else []:
        p.unlink()


def start_in(d, *extra):
    port = free_port()
    return Server(piston_cmd() + ["reload_app:app", "--bind", "127.0.0.1:%d" % port]
                  + list(extra), port, cwd=str(d))


def versions(port, n=20):
    out = set()
    for _ in range(n):
        r = request(port)
        assert r.status == 200
        out.add(r.body.split()[0].decode())
    return out


def test_sighup_runs_the_new_code(tmp_path):
    write_app(tmp_path, "v1")
    s = start_in(tmp_path, "--workers", "2", "--threads", "2")
    try:
        assert versions(s.port) == {"v1"}
        write_app(tmp_path, "v2")
        s.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: versions(s.port) == {"v2"}, timeout=20)
        assert wait_for(lambda: len(children(s.proc.pid)) == 2)  # the old ones drained
    finally:
        s.stop()


def test_sighup_with_preload_keeps_the_code(tmp_path):
    write_app(tmp_path, "v1")
    s = start_in(tmp_path, "--workers", "2", "--threads", "2", "--preload")
    try:
        old = wait_for(lambda: len(children(s.proc.pid)) == 2 and children(s.proc.pid))
        write_app(tmp_path, "v2")
        s.proc.send_signal(signal.SIGHUP)
        new = wait_for(lambda: (lambda c: len(c) == 2 and not set(c) & set(old) and c)(
            children(s.proc.pid)), timeout=20)
        assert new, "the workers were replaced"
        assert versions(s.port) == {"v1"}
    finally:
        s.stop()


def test_broken_new_version_keeps_old_workers(tmp_path):
    write_app(tmp_path, "v1")
    s = start_in(tmp_path, "--workers", "2", "--threads", "2")
    try:
        old = wait_for(lambda: len(children(s.proc.pid)) == 2 and children(s.proc.pid))
        write_app(tmp_path, "v2", broken=True)
        s.proc.send_signal(signal.SIGHUP)
        time.sleep(3)
        assert versions(s.port) == {"v1"}
        assert children(s.proc.pid) == old
        # fixed: the next SIGHUP loads it
        write_app(tmp_path, "v3")
        s.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: versions(s.port) == {"v3"}, timeout=20)
        log = s.log()
    finally:
        s.stop()
    why = [l for l in log.splitlines() if "could not start" in l]
    assert len(why) == 1, log
    assert "old workers keep serving" in why[0] and "SyntaxError" in why[0], why
    assert "Traceback" not in log


@pytest.mark.parametrize("app,workers", [("apps:app", "1"), ("apps:app", "2"),
                                         ("asgi_apps:app", "1"), ("asgi_apps:app", "2")])
@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH])
def test_signals_do_not_kill(app, workers, sig):
    port = free_port()
    s = Server(piston_cmd() + [app, "--bind", "127.0.0.1:%d" % port,
                               "--workers", workers], port)
    try:
        if workers == "2":
            assert wait_for(lambda: len(children(s.proc.pid)) == 2)
        before = children(s.proc.pid)
        for _ in range(3):
            s.proc.send_signal(sig)
            time.sleep(0.3)
        assert s.proc.poll() is None, "the server died of %s" % sig.name
        assert request(port, path="/pid").status == 200
        assert children(s.proc.pid) == before  # and so did no worker
        assert s.stop() == 0
        log = s.log()
        if sig != signal.SIGUSR1:
            assert "%s: ignored" % sig.name in log, log
    finally:
        s.stop()


def test_ttin_ttou_change_the_number_of_workers():
    port = free_port()
    s = Server(piston_cmd() + ["apps:app", "--bind", "127.0.0.1:%d" % port,
                               "--workers", "2"], port)
    try:
        assert wait_for(lambda: len(children(s.proc.pid)) == 2)
        s.proc.send_signal(signal.SIGTTIN)
        assert wait_for(lambda: len(children(s.proc.pid)) == 3)
        s.proc.send_signal(signal.SIGTTIN)
        assert wait_for(lambda: len(children(s.proc.pid)) == 4)
        pids = set()
        for _ in range(20):
            pids.add(int(request(port, path="/pid").body))
        assert pids <= set(children(s.proc.pid))
        s.proc.send_signal(signal.SIGTTOU)
        assert wait_for(lambda: len(children(s.proc.pid)) == 3)
        for _ in range(4):  # never below one
            s.proc.send_signal(signal.SIGTTOU)
            time.sleep(0.5)
        assert wait_for(lambda: len(children(s.proc.pid)) == 1)
        time.sleep(0.5)
        assert len(children(s.proc.pid)) == 1
        assert request(port, path="/pid").status == 200
        assert "1 worker is the least" in s.log()
    finally:
        s.stop()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigusr1_reopens_the_error_log(tmp_path, workers):
    log = tmp_path / "error.log"
    port = free_port()
    s = Server(piston_cmd() + ["apps:app", "--bind", "127.0.0.1:%d" % port,
                               "--workers", workers, "--error-logfile", str(log)], port)
    try:
        assert wait_for(lambda: "Listening at" in log.read_text())
        if workers == "2":
            # a worker takes SIGUSR1 once it imported the app (as gunicorn's)
            assert wait_for(lambda: log.read_text().count("Booted worker") == 2)
        os.rename(log, tmp_path / "error.log.1")  # what logrotate does
        s.proc.send_signal(signal.SIGUSR1)
        assert wait_for(lambda: log.exists() and
                        log.read_text().count("log files reopened") == int(workers) +
                        (1 if workers == "2" else 0)), log.exists() and log.read_text()
        lines = log.read_text().splitlines()
        pids = {int(l.split("] [")[1]) for l in lines}
        assert s.proc.pid in pids
        if workers == "2":
            assert set(children(s.proc.pid)) <= pids  # every worker reopened its own
        assert "log files reopened" not in (tmp_path / "error.log.1").read_text()
        assert s.stop() == 0
        assert "Shutdown complete" in log.read_text()
    finally:
        s.stop()
