"""Worker processes under a supervisor: replacement, drain, reload."""
import os
import signal
import threading
import time

import pytest

from conftest import Server, connect, free_port, piston_cmd, request


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(d))
    return sorted(out)


def wait_for(pred, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return pred()


class Load:
    """Client threads doing requests on fresh connections until stopped."""

    def __init__(self, port, path="/pid", n=4, pause=0.003):
        self.pause = pause
        self.port, self.path = port, path
        self.ok, self.failed, self.pids, self.bodies = 0, [], set(), set()
        self.stopping = False
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run) for _ in range(n)]
        for t in self.threads:
            t.start()

    def _run(self):
        while not self.stopping:
            time.sleep(self.pause)
            t = time.monotonic()
            try:
                r = request(self.port, path=self.path)
                with self.lock:
                    if r.status == 200:
                        self.ok += 1
                        self.bodies.add(r.body)
                        if self.path == "/pid":
                            self.pids.add(int(r.body))
                    else:
                        self.failed.append((t, r.status))
            except Exception as e:  # noqa
                with self.lock:
                    self.failed.append((t, repr(e)))

    def stop(self):
        self.stopping = True
        for t in self.threads:
            t.join(20)


def start(*extra):
    port = free_port()
    return Server(piston_cmd() + ["apps:app", "--bind", "127.0.0.1:%d" % port] + list(extra),
                  port)


def test_sigkill_worker_replaced():
    s = start("--workers", "2", "--threads", "2")
    try:
        pids = wait_for(lambda: len(children(s.proc.pid)) == 2 and children(s.proc.pid))
        assert len(pids) == 2
        load = Load(s.port)
        time.sleep(0.3)
        victim = pids[0]
        os.kill(victim, signal.SIGKILL)
        new = wait_for(lambda: (lambda c: len(c) == 2 and victim not in c and c)(children(s.proc.pid)))
        assert new and victim not in new
        time.sleep(0.5)
        t_after = time.monotonic()
        time.sleep(0.5)
        load.stop()
        assert load.ok > 20
        # only requests caught in the dying worker may fail
        late = [f for f in load.failed if f[0] > t_after]
        assert not late, late
        assert len(load.failed) <= 8, load.failed
        assert set(new) & load.pids, "the new worker serves"
        log = s.log()
        assert "killed by signal 9" in log
    finally:
        s.stop()


def test_sigterm_drains_in_flight():
    s = start("--workers", "2", "--threads", "4")
    try:
        results = []

        def slow():
            try:
                results.append(request(s.port, path="/sleep?s=0.8").body)
            except Exception as e:  # noqa
                results.append(repr(e))

        ts = [threading.Thread(target=slow) for _ in range(6)]
        for t in ts:
            t.start()
        time.sleep(0.3)  # all six are accepted and in the app
        s.proc.send_signal(signal.SIGTERM)
        for t in ts:
            t.join(10)
        assert results == [b"slept"] * 6
        assert s.proc.wait(10) == 0
        # and nothing listens any more
        with pytest.raises(OSError):
            connect(s.port).close()
    finally:
        s.stop()


@pytest.mark.parametrize("app", ["apps:app", "asgi_apps:app"])
def test_sigterm_refuses_new_connections_while_draining(app):
    port = free_port()
    s = Server(piston_cmd() + [app, "--bind", "127.0.0.1:%d" % port, "--workers", "2"], port)
    try:
        assert wait_for(lambda: len(children(s.proc.pid)) == 2)
        results = []
        t = threading.Thread(target=lambda: results.append(
            request(port, path="/sleep?s=2").status))
        t.start()
        time.sleep(0.5)
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert s.proc.poll() is None  # still draining
        with pytest.raises(ConnectionRefusedError):
            connect(port).close()
        t.join(10)
        assert results == [200]
        assert s.proc.wait(10) == 0
        assert "accept:" not in s.log()  # no worker met the closed socket
    finally:
        s.stop()


def test_sigterm_single_process_drains():
    s = start("--threads", "4")
    results = []
    t = threading.Thread(target=lambda: results.append(request(s.port, path="/sleep?s=0.6").body))
    t.start()
    time.sleep(0.2)
    s.proc.send_signal(signal.SIGTERM)
    t.join(10)
    assert results == [b"slept"]
    assert s.proc.wait(10) == 0


@pytest.mark.parametrize("reuse", ["reuse-port", "shared-socket"])
def test_sighup_replaces_workers(reuse):
    extra = ["--reuse-port"] if reuse == "reuse-port" else []
    s = start("--workers", "2", "--threads", "2", *extra)
    try:
        old = wait_for(lambda: len(children(s.proc.pid)) == 2 and children(s.proc.pid))
        load = Load(s.port, n=2)
        time.sleep(0.3)
        s.proc.send_signal(signal.SIGHUP)
        new = wait_for(lambda: (lambda c: len(c) == 2 and not set(c) & set(old) and c)(
            children(s.proc.pid)), timeout=15)
        time.sleep(0.3)
        load.stop()
        assert new, children(s.proc.pid)
        assert load.ok > 10
        assert set(new) & load.pids
        if reuse == "shared-socket":
            assert not load.failed, load.failed
        else:
            # SO_REUSEPORT: connections queued on a closing listener are
            # reset by the kernel unless net.ipv4.tcp_migrate_req=1
            assert len(load.failed) <= 4, load.failed
    finally:
        s.stop()


def test_max_requests_restarts_worker():
    s = start("--workers", "1", "--max-requests", "5", "--max-requests-jitter", "2",
              "--threads", "1")
    try:
        seen = []
        for _ in range(30):
            r = request(s.port, path="/pid")
            assert r.status == 200
            seen.append(int(r.body))
            time.sleep(0.02)
        assert len(set(seen)) >= 4
        # 5 to 7 requests each, plus the few it may take while its
        # replacement starts
        for pid in set(seen):
            assert seen.count(pid) <= 10
        # the last retiring worker may still be finishing while its
        # replacement serves; the supervisor settles on one
        assert wait_for(lambda: len(children(s.proc.pid)) == 1, timeout=10), \
            children(s.proc.pid)
        assert "max requests reached" in s.log()
    finally:
        s.stop()


def test_unix_socket_shared_by_workers(tmp_path):
    import socket as so
    from conftest import Reader
    path = str(tmp_path / "w.sock")
    port = free_port()
    s = Server(piston_cmd() + ["apps:app", "--bind", "unix:" + path,
                               "--bind", "127.0.0.1:%d" % port, "--workers", "2"], port)
    try:
        for _ in range(10):
            c = so.socket(so.AF_UNIX)
            c.settimeout(10)
            c.connect(path)
            c.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            r = Reader(c).response()
            c.close()
            assert r.status == 200 and int(r.body) in children(s.proc.pid)
    finally:
        assert s.stop() == 0
    assert not os.path.exists(path)  # the supervisor removes its socket


def _wakeups(pid):
    """Context switches of every thread of pid so far: each is a wake-up."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except OSError:
            pass  # a thread that ended
    return total


def start_two_workers(app):
    port = free_port()
    s = Server(piston_cmd() + [app, "--bind", "127.0.0.1:%d" % port, "--workers", "2"], port)
    pids = wait_for(lambda: len(children(s.proc.pid)) == 2 and children(s.proc.pid))
    if not pids:
        s.stop()
        raise AssertionError("the supervisor did not start 2 workers")
    return s, pids


@pytest.mark.parametrize("app", ["apps:app", "asgi_apps:app"])
def test_idle_processes_sleep(app):
    # no polling loop anywhere: an idle supervisor and its idle workers
    # (WSGI: engine loop threads, pool threads, main thread; ASGI: the
    # asyncio loop) are not woken at all while nothing happens
    s, pids = start_two_workers(app)
    try:
        assert request(s.port, path="/").status in (200, 404)
        time.sleep(1.0)  # the request's connection closed, its timers gone
        procs = [s.proc.pid] + pids
        before = [_wakeups(p) for p in procs]
        time.sleep(3.0)
        after = [_wakeups(p) for p in procs]
        woken = [a - b for a, b in zip(after, before)]
        assert all(w <= 1 for w in woken), (procs, woken)
    finally:
        s.stop()


@pytest.mark.parametrize("app", ["apps:app", "asgi_apps:app"])
def test_workers_stop_when_supervisor_is_killed(app):
    # SIGKILL leaves no chance to stop the workers: each sees its life pipe
    # close and stops on its own, gracefully
    s, pids = start_two_workers(app)
    try:
        os.kill(s.proc.pid, signal.SIGKILL)
        s.proc.wait(5)

        def gone(pid):
            try:
                with open("/proc/%d/stat" % pid) as f:
                    return f.read().rsplit(")", 1)[1].split()[0] == "Z"
            except OSError:
                return True
        assert wait_for(lambda: all(gone(p) for p in pids), timeout=10), pids
        assert "supervisor is gone: stopping" in s.log()
    finally:
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        s.stop()
