"""Fixtures: the servers under test, started with --bind 127.0.0.1:0 and
stopped with SIGTERM at teardown (exit code 0 is asserted)."""

import os
import resource
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import util  # noqa: E402

# 2,000 concurrent connections need more descriptors than the usual 1,024,
# in this process and in the servers, which inherit the limit.
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
_want = 8192 if _hard == resource.RLIM_INFINITY else min(_hard, 8192)
if _soft < _want:
    resource.setrlimit(resource.RLIMIT_NOFILE, (_want, _hard))

_running = []

# Limits shared by the module-wide servers: short timeouts so the suite is
# fast, limits small enough to reach with a few KiB.
LIMITS = [
    "--head-timeout", "1",
    "--body-timeout", "1",
    "--idle-timeout", "1",
    "--write-timeout", "2",
    "--max-head-size", "8192",
    "--max-url-size", "1024",
    "--max-headers", "32",
]


def _binary(path):
    # A missing binary is an error, never a skip: a skipped suite proves nothing.
    assert os.access(path, os.X_OK), (
        "%s is missing: run `make` (and `make build/piston-testserver`) first, "
        "or set PISTON_BUILD" % path
    )
    return path


def start(binary, args):
    s = util.Server(_binary(binary), args)
    _running.append(s)
    return s


def finish(s):
    if s in _running:
        _running.remove(s)
    s.stop_ok()


@pytest.fixture(autouse=True)
def _servers_survive():
    """After every test, each server still running must be alive: no input
    may take a server down."""
    yield
    dead = [(s.name, s.proc.returncode, s.lines[-10:]) for s in _running if not s.alive()]
    for s in list(_running):
        if not s.alive():
            _running.remove(s)
    assert not dead, "server died during the test: %r" % (dead,)


@pytest.fixture(scope="module")
def static():
    """piston-static with one fixed route and the shared limits."""
    s = start(
        util.STATIC,
        ["--text", "/hello=Hello, World!", "--max-body-size", "1024"] + LIMITS,
    )
    yield s
    finish(s)


@pytest.fixture(scope="module")
def ts():
    """piston-testserver with generous body limits and short timeouts."""
    s = start(util.TESTSERVER, ["--max-body-size", str(16 << 20)] + LIMITS)
    yield s
    finish(s)


@pytest.fixture(scope="module")
def ts_small():
    """piston-testserver with small limits, to reach 413/414/431 cheaply."""
    s = start(
        util.TESTSERVER,
        [
            "--max-body-size", "1000",
            "--max-head-size", "2048",
            "--max-url-size", "256",
            "--max-headers", "16",
            "--head-timeout", "1",
            "--body-timeout", "1",
            "--idle-timeout", "1",
        ],
    )
    yield s
    finish(s)


@pytest.fixture
def server():
    """A factory for servers with their own options, stopped (exit 0
    asserted) at the end of the test unless the test stopped them."""
    mine = []

    def make(binary, args=()):
        s = start(binary, list(args))
        mine.append(s)
        return s

    yield make
    for s in mine:
        if s.proc.returncode is None:
            finish(s)
        elif s in _running:
            _running.remove(s)
