"""ws (npm) on piston.createServer against the conformance cases of
tests/protocol/wsconf.py, and the same library on node:http: the cases test
ws's own framing (the engine only carries the bytes after the 101), so the
assertion is that both servers give the same result for every case, not
that ws passes each of them. The app is tests/node/ws_lib_echo_app.js.

Where ws answers otherwise than Piston's engine does (the cases' expected
bytes are the engine's), the case fails the same way on both servers;
node/README.md lists them. Run by `make test-node` (after `npm test`)."""

import os
import re
import shutil
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "protocol"))

import util  # noqa: E402
import wsconf  # noqa: E402

NODE = shutil.which("node")
APP = os.path.join(HERE, "ws_lib_echo_app.js")
ADDON = os.path.join(util.REPO, "build", "Release", "piston.node")


def start(server):
    # A missing node, addon or ws is an error, never a skip.
    assert NODE, "node is not on PATH"
    assert os.path.exists(ADDON), "%s is missing: run `make node` first" % ADDON
    return util.Server(APP, ["--server", server])


@pytest.fixture(scope="module")
def servers():
    s = {"piston": start("piston"), "node": start("node")}
    yield s
    for v in s.values():
        assert v.stop() == 0, v.lines[-20:]


def outcome(case, addr):
    """'pass', or what failed: the exception's type and message, with a
    response quoted in it cut to its status line (a plain HTTP answer's
    headers are each server's own: Date, Connection, Keep-Alive)."""
    try:
        case(addr, "/ws-echo")
    except AssertionError as e:
        msg = re.sub(r"b'(HTTP/1\.\d \d{3}[^\\']*)[^']*'", r"b'\1 ...'", str(e))
        return "AssertionError: %s" % msg
    except OSError as e:
        return "%s" % type(e).__name__
    return "pass"


def settled(addr):
    """Every session's close handler ran (and, on piston, every handle went
    back)."""
    return util.wait_stats(addr, lambda s: s["live"] == 0 and s["sessions"] == 0)


# Where ws (8.x) answers otherwise than the cases (the engine) expect, on
# both servers alike; node/README.md lists them too:
# - hs_bad_version: ws also speaks version 8 (101, not 426);
# - hs_bad: without "upgrade" in Connection the request is no upgrade, so it
#   is a plain request (the app's 404), as node:http makes it; the other
#   flawed handshakes get ws's 400;
# - f6_fail_fast: ws checks UTF-8 when a text message is complete, not in
#   its first fragment: the case waits for a close that does not come.
WS_DIFFERS = {"hs_bad_version", "hs_bad", "f6_fail_fast"}


@pytest.fixture(scope="module", autouse=True)
def _short_waits():
    """The cases' waits are for the engine's answers; f6_fail_fast waits in
    vain here, so it waits less (the other cases are far from it)."""
    old = wsconf.TIMEOUT
    wsconf.TIMEOUT = 3.0
    yield
    wsconf.TIMEOUT = old


@pytest.mark.parametrize("case", wsconf.CASES, ids=lambda c: c.__name__)
def test_same_as_on_node_http(servers, case):
    got = {}
    for name, s in servers.items():
        got[name] = outcome(case, s.addr)
        settled(s.addr)
        assert s.alive(), "%s died; stderr: %r" % (name, s.lines[-20:])
    assert got["piston"] == got["node"], got
    differs = case.__name__ in WS_DIFFERS
    assert (got["piston"] != "pass") == differs, (
        "ws %s this case now: update WS_DIFFERS and node/README.md (%s)"
        % ("fails" if not differs else "passes", got["piston"]))
