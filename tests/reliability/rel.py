"""Shared by the reliability tests (imported as `rel`, not through
conftest, so that the protocol suite's conftest can never shadow it)."""

import os
import resource
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if os.path.join(os.path.dirname(HERE), "protocol") not in sys.path:
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "protocol"))

import util  # noqa: E402

# 10,000 connections: the client and the server (which inherits the limit)
# both need more descriptors; raise the soft limit to the hard limit.
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
_want = 65536 if _hard == resource.RLIM_INFINITY else _hard
if _soft < _want:
    resource.setrlimit(resource.RLIMIT_NOFILE, (_want, _hard))
NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[0]

SOAK = os.environ.get("PISTON_SOAK", "") not in ("", "0")

ASAN_BUILD = os.path.join(util.REPO, os.environ.get("PISTON_ASAN_BUILD", "build-asan"))
ASAN_TESTSERVER = os.path.join(ASAN_BUILD, "piston-testserver")

FIGURES = {}


def size(fast, soak):
    return soak if SOAK else fast


def figure(name, value):
    FIGURES[name] = value


