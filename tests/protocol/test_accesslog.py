"""The engine's access log: formats (combined, common, json, gunicorn's
atoms), its file and SIGUSR1's reopen, what is logged (the host's answers,
native routes, the engine's own rejections, the forwarded client), and the
escaping that keeps a client from forging lines."""
import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest

import util
from util import Conn, get

CLF_TIME = r"\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000\]"


def lines_of(path, n, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        with open(path, "rb") as f:
            got = f.read().decode("latin-1").splitlines()
        if len(got) >= n or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


def logged(server, tmp_path, fmt=None, extra=()):
    path = str(tmp_path / "access.log")
    args = ["--access-logfile", path] + (["--access-logformat", fmt] if fmt else []) + list(extra)
    return server(util.TESTSERVER, args), path


def test_combined_is_the_default(server, tmp_path):
    s, path = logged(server, tmp_path)
    r = get(s.addr, "/hello?x=1", headers=[("User-Agent", "probe/1.0"), ("Referer", "http://r.example/")])
    assert r.status == 200
    [line] = lines_of(path, 1)
    assert re.fullmatch(r'127\.0\.0\.1 - - %s "GET /hello\?x=1 HTTP/1\.1" 200 %d '
                        r'"http://r\.example/" "probe/1\.0"' % (CLF_TIME, len(r.body)), line), line


def test_common(server, tmp_path):
    s, path = logged(server, tmp_path, "common")
    get(s.addr, "/missing-path")
    [line] = lines_of(path, 1)
    assert re.fullmatch(r'127\.0\.0\.1 - - %s "GET /missing-path HTTP/1\.1" 404 \d+' % CLF_TIME, line), line


def test_json(server, tmp_path):
    s, path = logged(server, tmp_path, "json")
    get(s.addr, "/hello?a=b", headers=[("User-Agent", 'q"uote\\')])
    [line] = lines_of(path, 1)
    v = json.loads(line)
    assert set(v) == {"time", "remote_addr", "remote_port", "method", "path", "query",
                      "protocol", "scheme", "status", "bytes", "duration_us", "host",
                      "referer", "user_agent", "user"}
    assert (v["remote_addr"], v["method"], v["path"], v["query"], v["status"]) == (
        "127.0.0.1", "GET", "/hello", "a=b", 200)
    assert v["protocol"] == "HTTP/1.1" and v["scheme"] == ("https" if util.TLS else "http")
    assert v["user_agent"] == 'q"uote\\' and v["referer"] is None and v["user"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", v["time"])
    assert isinstance(v["duration_us"], int) and v["remote_port"] > 0


def test_gunicorn_atoms(server, tmp_path):
    fmt = ("%(h)s|%(l)s|%(u)s|%(m)s|%(U)s|%(q)s|%(H)s|%(s)s|%(B)s|%(b)s|%(p)s|"
           "%({x-test}i)s|%({content-type}o)s|%({x-none}o)s|%({PATH}e)s|%(T)s|%(M)s|%(D)s|%(L)s")
    s, path = logged(server, tmp_path, fmt)
    r = get(s.addr, "/hello?k=v", headers=[("X-Test", "yes")])
    [line] = lines_of(path, 1)
    f = line.split("|")
    assert f[:15] == ["127.0.0.1", "-", "-", "GET", "/hello", "k=v", "HTTP/1.1", "200",
                      str(len(r.body)), str(len(r.body)), "<%d>" % s.pid, "yes",
                      r.header("Content-Type"), "-", "-"], line
    secs, ms, us, dec = int(f[15]), int(f[16]), int(f[17]), f[18]
    assert secs == us // 1000000 and ms == us // 1000
    assert re.fullmatch(r"\d+\.\d{6}", dec) and abs(float(dec) * 1e6 - us) < 2


def test_basic_auth_user(server, tmp_path):
    # gunicorn's %(u)s, nginx's $remote_user: the name before the first ':'
    # of a Basic credential; anything else is "-"
    import base64
    s, path = logged(server, tmp_path, "%(u)s|%(U)s")
    cases = [
        ("Basic " + base64.b64encode(b"alice:s3cret:x").decode(), "alice"),
        ("basic   " + base64.b64encode(b"bo").decode() + "  ", "bo"),  # no ':'
        ("Basic " + base64.b64encode(b'ev"e\n:pw').decode(), r"ev\x22e\x0a"),  # no forged line
        ("Basic " + base64.b64encode(b":pw").decode(), "-"),
        ("Bearer " + base64.b64encode(b"alice:pw").decode(), "-"),
        ("Basic not*base64", "-"),
        ("Basic YWJj=", "-"),  # not a whole number of quads
        (None, "-"),
    ]
    for i, (auth, _) in enumerate(cases):
        get(s.addr, "/hello?%d" % i, headers=[("Authorization", auth)] if auth else [])
    got = lines_of(path, len(cases))
    assert got == ["%s|/hello" % want for _, want in cases], got
    (tmp_path / "j").mkdir()
    s2, path2 = logged(server, tmp_path / "j", "json")
    get(s2.addr, "/hello", headers=[("Authorization", cases[0][0])])
    [line] = lines_of(path2, 1)
    assert json.loads(line)["user"] == "alice"


def test_duration_covers_the_handler(server, tmp_path):
    s, path = logged(server, tmp_path, "%(D)s %(s)s")
    assert get(s.addr, "/slow?ms=300").status == 200
    [line] = lines_of(path, 1)
    us, status = line.split()
    assert status == "200" and 300000 <= int(us) < 30000000, line


def test_escaping_keeps_lines_whole(server, tmp_path):
    s, path = logged(server, tmp_path, '"%(a)s" "%({x-v}i)s"')
    get(s.addr, "/hello", headers=[("User-Agent", 'a" 200 "x\\'), ("X-V", "t\tab\xff")])
    [line] = lines_of(path, 1)
    assert line == r'"a\x22 200 \x22x\x5c" "t\x09ab\xff"', line


def test_engine_rejections_are_logged(server, tmp_path):
    s, path = logged(server, tmp_path, "%(s)s %(m)s %(U)s",
                     ["--max-headers", "4"])
    with Conn(s.addr) as c:
        c.send(b"GET /too-many HTTP/1.1\r\nHost: x\r\n" + b"X-A: 1\r\n" * 10 + b"\r\n")
        assert c.read_response().status == 431
    with Conn(s.addr) as c:
        c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
        assert c.read_response().status == 400
    got = lines_of(path, 2)
    assert got[0] == "431 GET /too-many", got
    assert got[1].startswith("400 GET /hello"), got


def test_pipelined_batch_all_logged(server, tmp_path):
    s, path = logged(server, tmp_path, "%(U)s")
    with Conn(s.addr) as c:
        c.send(b"".join(b"GET /hello?%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(20)))
        for _ in range(20):
            assert c.read_response().status == 200
    assert lines_of(path, 20) == ["/hello"] * 20


def test_forwarded_client_is_logged(server, tmp_path):
    s, path = logged(server, tmp_path, "%(h)s %({x-forwarded-for}i)s")
    get(s.addr, "/hello", headers=[("X-Forwarded-For", "203.0.113.9")])
    assert lines_of(path, 1) == ["203.0.113.9 203.0.113.9"]


def test_sigusr1_reopens_the_file(server, tmp_path):
    s, path = logged(server, tmp_path, "%(U)s")
    get(s.addr, "/hello?1")
    assert lines_of(path, 1) == ["/hello?1"[:6]]
    os.rename(path, path + ".1")  # what logrotate does
    get(s.addr, "/hello")
    # lines still in the loop's buffer at the reopen go to the new file:
    # wait until this one is written
    assert lines_of(path + ".1", 2) == ["/hello", "/hello"]
    os.kill(s.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 5
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    get(s.addr, "/info")
    assert lines_of(path, 1) == ["/info"]
    assert lines_of(path + ".1", 2) == ["/hello", "/hello"]


def test_bad_format_is_refused_with_the_atom():
    p = subprocess.run([util.TESTSERVER, "--bind", "127.0.0.1:0",
                        "--access-logformat", "%(h)s %(Z)s"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode != 0 and "%(Z)s" in p.stderr, p.stderr
