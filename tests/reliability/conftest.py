"""Reliability tests: load, slow clients, resets under ASan/LSan, graceful
shutdown under load, file-mount traversal, differential framing.

Reuses the protocol suite's helpers (tests/protocol/util.py). Every test has
a fast size (the default, for `make test`) and a soak size, chosen by the
environment: PISTON_SOAK=1 (scripts/soak.sh) multiplies the loads.

Figures measured by the tests are collected with `figure(name, value)`,
printed at the end of the run and written to
$PISTON_FIGURES (default: <build>/reliability-figures.json)."""

import functools
import json
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

# rel holds scenarios shared by several tests (their checks among them):
# its asserts report as the tests' own do.
pytest.register_assert_rewrite("rel")

from rel import FIGURES, SOAK, TLS, assert_transport  # noqa: E402

import util  # noqa: E402  (tests/protocol, put on sys.path by rel)


def _binary(path):
    # A missing binary is an error, never a skip: a skipped suite proves nothing.
    assert os.access(path, os.X_OK), (
        "%s is missing: run `make all` (and the build-asan build, see "
        "docs/reliability.md) first, or set PISTON_BUILD / PISTON_ASAN_BUILD" % path
    )
    return path


@pytest.fixture
def server():
    """A factory for servers; each is stopped at the end of the test (exit
    code 0 asserted) unless the test stopped it itself."""
    mine = []

    def make(binary, args=(), env=None, sigpipe_ignored=False):
        """sigpipe_ignored: the server inherits SIG_IGN for SIGPIPE (Python
        ignores it; subprocess normally restores the default in the child),
        as piston-static, the Python and the Node hosts all run."""
        _binary(binary)
        old_env = dict(os.environ)
        old_popen = util.subprocess.Popen
        if env:
            os.environ.update(env)
        if sigpipe_ignored:
            util.subprocess.Popen = functools.partial(old_popen, restore_signals=False)
        try:
            s = util.Server(binary, list(args))
        finally:
            util.subprocess.Popen = old_popen
            os.environ.clear()
            os.environ.update(old_env)
        mine.append(s)
        assert_transport(s)
        return s

    yield make
    for s in mine:
        if s.proc.returncode is None:
            s.stop_ok()


def pytest_terminal_summary(terminalreporter):
    if not FIGURES:
        return
    terminalreporter.write_sep("-", "reliability figures (%s%s)" % (
        "soak" if SOAK else "fast", ", TLS" if TLS else ""))
    for k in sorted(FIGURES):
        terminalreporter.write_line("%-48s %s" % (k, FIGURES[k]))
    path = os.environ.get("PISTON_FIGURES") or os.path.join(
        util.BUILD, "reliability-figures%s.json" % ("-tls" if TLS else ""))
    try:
        with open(path, "w") as f:
            json.dump({"soak": SOAK, "tls": TLS, "figures": FIGURES}, f, indent=1, sort_keys=True)
    except OSError:
        pass
