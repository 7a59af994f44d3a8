"""The engine's access log through the piston CLI (WSGI and ASGI):
--access-logfile, --access-logformat (gunicorn's atoms), SIGUSR1 reopening
the file, and a bad format refused with a sentence."""
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import connect, free_port, piston_cmd


def lines_of(path, n, timeout=10):
    end = time.monotonic() + timeout
    while True:
        got = open(path).read().splitlines() if os.path.exists(path) else []
        if len(got) >= n or time.monotonic() > end:
            return got
        time.sleep(0.05)


def hit(port, target, ua="probe/2", auth=None):
    s = connect(port)
    extra = "Authorization: %s\r\n" % auth if auth else ""
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nUser-Agent: %s\r\n%sConnection: close\r\n\r\n"
               % (target, ua, extra)).encode())
    while s.recv(65536):
        pass
    s.close()


@pytest.mark.parametrize("app", ["proxy_apps:wsgi", "proxy_apps:asgi"])
def test_file_format_and_sigusr1(start_piston, tmp_path, app):
    path = str(tmp_path / "access.log")
    s = start_piston(app, "--access-logfile", path, "--access-logformat",
                     '%(h)s %(u)s "%(r)s" %(s)s "%(a)s" %({x-forwarded-for}i)s %(D)s')
    hit(s.port, "/?a=1", auth="Basic YWxpY2U6cHc=")  # alice:pw
    [line] = lines_of(path, 1)
    head, us = line.rsplit(" ", 1)
    assert head == '127.0.0.1 alice "GET /?a=1 HTTP/1.1" 200 "probe/2" -', line
    assert int(us) >= 0
    os.rename(path, path + ".1")
    assert len(lines_of(path + ".1", 1)) == 1  # written before the reopen
    s.proc.send_signal(signal.SIGUSR1)
    end = time.monotonic() + 10
    while not os.path.exists(path) and time.monotonic() < end:
        time.sleep(0.05)
    hit(s.port, "/after")
    assert lines_of(path, 1)[0].startswith('127.0.0.1 - "GET /after HTTP/1.1" 200')
    assert s.proc.poll() is None  # SIGUSR1 does not kill the server
    assert len(lines_of(path + ".1", 1)) == 1


def test_json_to_a_file(start_piston, tmp_path):
    path = str(tmp_path / "a.json")
    s = start_piston("proxy_apps:wsgi", "--access-logfile", path, "--access-logformat", "json")
    hit(s.port, "/")
    v = json.loads(lines_of(path, 1)[0])
    assert v["status"] == 200 and v["user_agent"] == "probe/2" and v["method"] == "GET"


def test_bad_format_is_a_sentence(tmp_path):
    import conftest
    env = dict(os.environ, PYTHONPATH=conftest.HERE + os.pathsep + os.path.join(conftest.ROOT, "python"))
    p = subprocess.run(piston_cmd() + ["apps:app", "--bind", "127.0.0.1:%d" % free_port(),
                                       "--access-logformat", "%(h)s %(zz)s"],
                       cwd=conftest.HERE, env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "--access-logformat" in p.stderr and "%(zz)s" in p.stderr, p.stderr
