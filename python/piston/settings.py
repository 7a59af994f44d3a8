"""Settings from elsewhere than the command line: a config file (Python
with gunicorn's variable names, or TOML), PISTON_CMD_ARGS and --env-file.

A config file becomes command-line tokens, so that its values go through
the same checks (and messages) as the options; precedence is gunicorn's:
the command line over PISTON_CMD_ARGS over the file.
"""
import argparse
import difflib
import os
import runpy
import types

from .config import UsageError

# gunicorn's setting -> our option, where the names differ (the others are
# the option's name: max_requests -> --max-requests)
GUNICORN_NAMES = {
    "wsgi_app": "app",
    "graceful_timeout": "--graceful-timeout",
    "keepalive": "--idle-timeout",
    "preload_app": "--preload",
    "reload_dirs": "--reload-dir",
    "pidfile": "--pid",
    "errorlog": "--error-logfile",
    "loglevel": "--log-level",
    "logconfig": "--log-config",
    "raw_env": "--env",
    "limit_request_fields": "--max-headers",
    "accesslog": "--access-logfile",
    "access_log_format": "--access-logformat",
    "reuse_port": "--reuse-port",
}
# gunicorn settings with nothing to map to, and why
UNSUPPORTED = {
    "daemon": "Piston does not daemonize: run it under systemd (docs/deploy.md)",
    "worker_class": "the interface is detected (WSGI threads or ASGI); see --interface",
    "logconfig_dict": "put the dictConfig in a .json file and name it in logconfig",
}
# gunicorn settings that have no meaning here: logged and skipped, so that
# a gunicorn config file runs unchanged
IGNORED = {
    "proc_name": "the process title is not set",
    "default_proc_name": "the process title is not set",
    "worker_connections": "no greenlet workers: see --max-connections",
    "worker_tmp_dir": "workers report to the supervisor on a pipe, not a file",
    "capture_output": "the workers' stderr is the supervisor's",
    "enable_stdio_inheritance": "the workers' stdio is the supervisor's",
    "sendfile": "static files are sent by the engine",
    "spew": "no tracing",
    "tmp_upload_dir": "request bodies are streamed, not spooled",
}
# gunicorn's server hooks: functions in the file, not run by Piston
HOOKS = {"on_starting", "on_reload", "when_ready", "pre_fork", "post_fork",
         "post_worker_init", "worker_int", "worker_abort", "pre_exec", "pre_request",
         "post_request", "child_exit", "worker_exit", "nworkers_changed", "on_exit",
         "ssl_context"}


def load_file(path):
    """The settings of a config file: {name: value}."""
    if not os.path.isfile(path):
        raise UsageError("config file %s: no such file" % path)
    if path.endswith(".toml"):
        import tomllib
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise UsageError("config file %s: not valid TOML: %s" % (path, e))
        # a [piston] table, or the settings at the top
        return data.get("piston", data) if isinstance(data.get("piston"), dict) else data
    try:
        ns = runpy.run_path(path, run_name="__config__")
    except Exception as e:
        raise UsageError("config file %s failed: %s: %s" % (path, type(e).__name__, e))
    out = {}
    for k, v in ns.items():
        if k.startswith("_") or isinstance(v, types.ModuleType):
            continue  # its imports and helpers
        if k in HOOKS and callable(v):
            import logging
            logging.getLogger("piston.error").warning(
                "config file %s: the hook %s() is not run by Piston", path, k)
            continue
        if callable(v):
            continue
        out[k] = v
    return out


def to_tokens(settings, parser, source):
    """Command-line tokens for settings; UsageError names what is wrong."""
    options = parser._option_string_actions
    tokens, app = [], None
    for name, value in settings.items():
        if name in UNSUPPORTED:
            raise UsageError("%s: %s is not supported: %s" % (source, name, UNSUPPORTED[name]))
        if name in IGNORED:
            import logging
            logging.getLogger("piston.error").warning(
                "%s: %s ignored (%s)", source, name, IGNORED[name])
            continue
        if name == "accesslog" and "--access-logfile" not in options and value == "-":
            tokens.append("--access-log")  # one line per response on stderr
            continue
        opt = GUNICORN_NAMES.get(name) or "--" + name.replace("_", "-")
        if opt == "app":
            app = str(value)
            continue
        action = options.get(opt)
        if action is None:
            known = sorted(set(GUNICORN_NAMES) | {o[2:].replace("-", "_") for o in options
                                                   if o.startswith("--")})
            near = difflib.get_close_matches(name, known, 1)
            raise UsageError("%s: unknown setting %r%s" % (
                source, name, " (did you mean %r?)" % near[0] if near else ""))
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            if not isinstance(value, bool):
                raise UsageError("%s: %s wants True or False, not %r" % (source, name, value))
            if value == isinstance(action, argparse._StoreTrueAction):
                tokens.append(opt)
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        if not isinstance(action, argparse._AppendAction) and len(values) != 1:
            raise UsageError("%s: %s wants one value, not a list" % (source, name))
        for v in values:
            if isinstance(v, bool):
                v = "true" if v else "false"
            elif name == "umask" and isinstance(v, int):
                v = "0o%o" % v
            tokens += [opt, str(v)]
    return tokens, app


def read_env_file(path):
    """KEY=VALUE lines (# comments, 'export ', quotes) into os.environ, as
    uvicorn's --env-file; the environment already set wins."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise UsageError("cannot read --env-file %s: %s" % (path, e.strerror))
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "a").isalnum() or key[0].isdigit():
            raise UsageError("--env-file %s line %d: want KEY=VALUE, not %r" % (path, n, line))
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        os.environ.setdefault(key, value)
