"""Command lines of piston-static (and the test server's own)."""

import socket
import subprocess

import pytest

import util
from conftest import _binary


def run(binary, args, timeout=5):
    return subprocess.run([_binary(binary)] + args, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=timeout)


@pytest.mark.parametrize("binary", [util.STATIC, util.TESTSERVER])
def test_help(binary):
    p = run(binary, ["--help"])
    assert p.returncode == 0
    assert p.stderr == b""
    out = p.stdout.decode()
    assert "usage" in out.lower() and "--bind" in out


BAD_ARGS = [
    ["--bogus"],
    ["--bind"],
    ["--bind", "127.0.0.1:0", "--threads", "abc"],
    ["--bind", "127.0.0.1:0", "--head-timeout", "soon"],
    ["--bind", "127.0.0.1:0", "--max-body-size", "-1"],
    ["--bind", "127.0.0.1:0", "--idle-timeout"],
    ["--bind", "127.0.0.1:99999"],
]


@pytest.mark.parametrize("args", BAD_ARGS, ids=[" ".join(a) for a in BAD_ARGS])
def test_bad_option_static(args):
    p = run(util.STATIC, args)
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = p.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("piston-static: "), p.stderr
    assert p.stdout == b""


def test_bad_option_testserver():
    p = run(util.TESTSERVER, ["--bogus"])
    assert p.returncode == 2
    assert p.stderr.decode().startswith("piston-testserver: ")


@pytest.mark.parametrize("binary,name", [(util.STATIC, "piston-static"),
                                         (util.TESTSERVER, "piston-testserver")])
def test_port_in_use(binary, name):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        p = run(binary, ["--bind", "127.0.0.1:%d" % port])
        assert p.returncode == 1
        assert p.stderr.decode() == (
            "%s: cannot listen on 127.0.0.1:%d: address already in use\n" % (name, port)
        )
    finally:
        holder.close()


def test_static_listening_line_and_text_routes(server):
    s = server(util.STATIC, ["--text", "/a=first", "--text", "/b/c=second"])
    assert util.get(s.addr, "/a").body == b"first"
    assert util.get(s.addr, "/b/c").body == b"second"
    assert util.get(s.addr, "/b").status == 404
    scheme = "https" if util.TLS else "http"
    assert s.lines[0] == "piston-static: listening on %s://127.0.0.1:%d" % (scheme, s.port)
