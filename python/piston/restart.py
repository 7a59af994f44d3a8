"""SIGHUP with one process (no supervisor, no --preload): the new code runs
by starting this same command again in this process. execve keeps the pid,
so systemd, --pid files and whatever sends the signals see one server
throughout, and the listening sockets cross it open: a client that
connects meanwhile waits in the backlog and is answered by the new code;
none is refused or reset. Before anything stops, a child process reads the
configuration and imports the new code (--check-config); if that fails,
the old code keeps serving and one line says why, as the supervisor does
for its workers."""
import json
import logging
import os
import subprocess
import sys
import threading

log = logging.getLogger("piston")

# the listeners handed to the next image of this process: {"pid": the pid
# they are meant for (execve keeps it), "listen": [[spec, fd], ...]}
ENV = "PISTON_RESTART_LISTEN"
# systemd's: its sockets are among the listeners handed over, so the next
# image must not take them a second time
SYSTEMD_ENV = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")
CHECK_TIMEOUT = 60


class Restart:
    """The command as it was started (its directory and environment), and
    the listeners a previous image of this process handed over (inherited:
    [(spec, fd)] or None)."""

    def __init__(self, cwd, environ):
        self.cwd = cwd
        self.environ = {k: v for k, v in environ.items() if k != ENV}
        self.inherited = self._take_inherited(environ.get(ENV))
        os.environ.pop(ENV, None)  # neither the app nor its children see it
        self.argv = [sys.executable] + list(sys.orig_argv[1:])
        self._busy = threading.Lock()
        self.go = False  # set once the new code loaded: wait() then ends in execute()

    @staticmethod
    def _take_inherited(value):
        if not value:
            return None
        try:
            d = json.loads(value)
            if d["pid"] != os.getpid():
                return None
            return [(tuple(spec), int(fd)) for spec, fd in d["listen"]]
        except (ValueError, KeyError, TypeError):
            log.warning("%s is not what this process hands over: ignored", ENV)
            return None

    def request(self, stop, notify):
        """From the SIGHUP handler: checks the new code on a thread, then
        stop() (a graceful one) if it loads."""
        if not self._busy.acquire(blocking=False):
            log.info("SIGHUP: a reload is already under way")
            return
        threading.Thread(target=self._check, args=(stop, notify), name="piston-reload",
                         daemon=True).start()

    def _check(self, stop, notify):
        why = None
        try:
            r = subprocess.run(self.argv + ["--check-config"], cwd=self.cwd,
                               env=self.environ, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=CHECK_TIMEOUT)
            if r.returncode != 0:
                lines = r.stdout.decode(errors="replace").strip().splitlines()
                why = lines[-1] if lines else "exit code %d" % r.returncode
        except subprocess.TimeoutExpired:
            why = "importing it took longer than %d s" % CHECK_TIMEOUT
        except OSError as e:
            why = "cannot start %s: %s" % (self.argv[0], e.strerror)
        if why:
            log.error("SIGHUP: the new code could not start, the old code keeps "
                      "serving: %s", why)
            self._busy.release()
            return
        log.info("SIGHUP: the new code loads: restarting pid %d with it", os.getpid())
        notify("RELOADING=1")
        self.go = True
        stop()

    def execute(self, listen):
        """Replaces this process with the command started again, listen
        ([(spec, fd)]) handed over. Returns only if execve failed."""
        env = {k: v for k, v in self.environ.items() if k not in SYSTEMD_ENV}
        env[ENV] = json.dumps({"pid": os.getpid(),
                               "listen": [[list(spec), fd] for spec, fd in listen]})
        for _, fd in listen:
            os.set_inheritable(fd, True)
        for h in logging.getLogger().handlers + log.handlers:
            h.flush()
        try:
            os.chdir(self.cwd)
            os.execve(self.argv[0], self.argv, env)
        except OSError as e:
            log.error("SIGHUP: cannot start %s again: %s", self.argv[0], e.strerror)
