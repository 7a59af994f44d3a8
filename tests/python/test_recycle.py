"""Workers replaced under load lose no connection: --max-requests
recycling, SIGHUP reloads and SIGTTOU scale-down while clients keep
opening new connections. The listening socket is shared by the workers, so
a retiring worker closes only its copy and what is queued on it waits for
the others (with one SO_REUSEPORT socket per worker the kernel resets it)."""
import signal
import time

import pytest

from conftest import Server, free_port, piston_cmd
from test_workers import Load, children, wait_for


def start(*extra):
    port = free_port()
    return Server(piston_cmd() + ["apps:app", "--bind", "127.0.0.1:%d" % port,
                                  "--threads", "2"] + list(extra), port)


def replacements(s):
    """Workers replaced so far, from the log (the server keeps running)."""
    s.errfile.seek(0)
    return s.errfile.read().decode(errors="replace").count("(max requests reached)")


@pytest.mark.parametrize("app_interface", ["wsgi", "asgi"])
def test_max_requests_recycling_loses_nothing(app_interface):
    port = free_port()
    name = "apps:app" if app_interface == "wsgi" else "asgi_apps:app"
    s = Server(piston_cmd() + [name, "--bind", "127.0.0.1:%d" % port, "--threads", "2",
                               "--max-requests", "50", "--max-requests-jitter", "10",
                               "--workers", "2"],
               port)
    try:
        load = Load(port, n=6, pause=0)
        end = time.monotonic() + 120
        # 6000 requests and 10 replacements at least: a worker serves on
        # past its limit while its replacement boots, so on a fast machine
        # 6000 requests may take fewer
        while ((load.ok < 6000 or replacements(s) < 10)
               and time.monotonic() < end and not load.failed):
            time.sleep(0.2)
        load.stop()
        assert not load.failed, load.failed[:5]
        assert load.ok >= 6000
        log = s.log()
        # dozens of workers were replaced (each serves on a little past
        # its limit while its replacement starts)
        replaced = log.count("(max requests reached)")
        assert replaced >= 10, log[-3000:]
        assert len(load.pids) >= replaced
    finally:
        s.stop()


def test_reload_and_scale_down_under_load_lose_nothing():
    s = start("--workers", "3")
    try:
        assert wait_for(lambda: len(children(s.proc.pid)) == 3)
        load = Load(s.port, n=6, pause=0)
        for sig in (signal.SIGHUP, signal.SIGTTOU, signal.SIGHUP, signal.SIGTTIN,
                    signal.SIGTTOU, signal.SIGHUP):
            time.sleep(1.0)
            s.proc.send_signal(sig)
        time.sleep(2.0)
        load.stop()
        assert not load.failed, load.failed[:5]
        assert load.ok > 500
        assert wait_for(lambda: len(children(s.proc.pid)) == 2, timeout=20)
        log = s.log()
        assert log.count("SIGHUP: replacing") == 3
    finally:
        s.stop()
