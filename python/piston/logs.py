"""The error log: where it goes (stderr, --error-logfile, --log-config),
and reopening its files on SIGUSR1 (after logrotate moved them).

Other logs that keep files open (an access log) register a function with
on_reopen(); reopen() calls them too, in whichever process got SIGUSR1.
"""
import json
import logging
import logging.config
import os
import sys

from .config import UsageError

FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
DATEFMT = "%Y-%m-%d %H:%M:%S %z"

_reopeners = []


def on_reopen(fn):
    """fn() is called on every reopen() (SIGUSR1), after the error log's."""
    _reopeners.append(fn)


def setup_logging(level="info", errorlog=None, log_config=None):
    """Level and destination of the 'piston' loggers. errorlog: a file
    path, or None / '-' for stderr. log_config: a logging configuration
    file (.json: dictConfig, else the ini format of fileConfig), applied
    after, so that it can change everything."""
    root = logging.getLogger("piston")
    if errorlog not in (None, "", "-"):
        try:
            h = logging.FileHandler(errorlog, encoding="utf-8")
        except OSError as e:
            raise UsageError("cannot open --error-logfile %s: %s" % (errorlog, e.strerror))
        for old in list(root.handlers):
            root.removeHandler(old)
        root.addHandler(h)
    elif not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
    for h in root.handlers:
        h.setFormatter(logging.Formatter(FORMAT, DATEFMT))
    root.setLevel(level.upper() if isinstance(level, str) else level)
    root.propagate = False
    if log_config:
        apply_log_config(log_config)


def apply_log_config(path):
    if not os.path.isfile(path):
        raise UsageError("--log-config %s: no such file" % path)
    try:
        if path.endswith(".json"):
            with open(path, encoding="utf-8") as f:
                conf = json.load(f)
            if not isinstance(conf, dict):
                raise ValueError("the JSON must be an object (a dictConfig)")
            conf.setdefault("version", 1)
            # the loggers configured before stay (piston.error included)
            conf.setdefault("disable_existing_loggers", False)
            logging.config.dictConfig(conf)
        else:
            logging.config.fileConfig(path, disable_existing_loggers=False)
    except (ValueError, TypeError, KeyError, AttributeError, ImportError, OSError) as e:
        what = "a dictConfig JSON" if path.endswith(".json") else "a logging ini file"
        raise UsageError("--log-config %s is not %s that logging accepts: %s: %s"
                         % (path, what, type(e).__name__, e))


def _file_handlers():
    seen = []
    loggers = [logging.getLogger()] + [l for l in logging.Logger.manager.loggerDict.values()
                                       if isinstance(l, logging.Logger)]
    for lg in loggers:
        for h in lg.handlers:
            if isinstance(h, logging.FileHandler) and h not in seen:
                seen.append(h)
    return seen


def reopen():
    """Reopens every logging file (the files were moved or truncated by
    logrotate), then whatever registered with on_reopen()."""
    for h in _file_handlers():
        h.acquire()
        try:
            if h.stream is not None:
                h.stream.close()
            h.stream = h._open()
        except OSError as e:
            sys.stderr.write("piston: cannot reopen %s: %s\n" % (h.baseFilename, e.strerror))
        finally:
            h.release()
    for fn in _reopeners:
        try:
            fn()
        except Exception:
            logging.getLogger("piston.error").exception("reopening a log failed")
