"""Piston: a high-performance HTTP/1.1 server engine in C, hosting WSGI and
ASGI apps.

    piston myapp:app --bind 127.0.0.1:8000 --workers 4

or from Python:

    import piston
    piston.run(app, bind="127.0.0.1:8000", workers=1, threads=8)
"""
from importlib.metadata import version as _version

# the installed distribution's, which setup.py takes from csrc/piston.h
__version__ = _version("piston")

from .cache import cache, cache_header, cache_stats, purge  # noqa: E402,F401
from .config import Config  # noqa: E402,F401
from .server import run  # noqa: E402,F401

__all__ = ["Config", "cache", "cache_header", "cache_stats", "purge", "run",
           "__version__"]
