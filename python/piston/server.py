"""Serving: one process (engine loops on C threads + a pool of Python
threads), or a supervisor that forks worker processes and keeps them alive.

Under the supervisor every address is one listening socket, made before
forking and shared by every worker (piston_server_listen_fd), as gunicorn
does: a worker that retires closes only its copy, so the connections queued
on the socket wait for the others instead of being reset. --reuse-port
gives each worker its own SO_REUSEPORT socket instead: measured with
benchmarks/listen_modes.sh (2 workers, 2 loaded cores) it was no faster
and used no less CPU per request, keep-alive or not, and the kernel resets
the connections queued on a closing one.
"""
import errno
import logging
import os
import random
import select
import signal
import socket
import sys
import threading
import time

from . import _piston, logs, systemd
from .config import (Config, UsageError, configure_server, parse_bind,
                     prepare_ops_for_workers, reopen_logs, show_bind)
from .wsgi import base_environ, handle

log = logging.getLogger("piston.error")

# Exit code of a worker that could not start (bad bind, ...): the
# supervisor stops instead of replacing it forever.
EXIT_BOOT_FAILED = 3


# ---- addresses -------------------------------------------------------------

def _family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _tcp_precheck(host, port):
    """Port in use / address not available, found before any fork, and
    port 0 turned into a real port so that every worker shares it."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise UsageError("cannot use --bind %s:%d: %s" % (host, port, e.strerror))
    fam, _, _, _, addr = infos[0]
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(addr)
        return s.getsockname()[1]
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise UsageError("cannot listen on %s:%d: address already in use" % (host, port))
        raise UsageError("cannot listen on %s:%d: %s" % (host, port, e.strerror))
    finally:
        s.close()


def _shared_socket(spec, options):
    """A listening socket made here and shared by every worker, with the
    engine's options (cfg.options) for it as the engine's own would have."""
    backlog = options.get(_piston.OPT_BACKLOG, 1024)
    kind = spec[0]
    if kind == "fd":
        fd = spec[1]
        try:
            os.fstat(fd)
        except OSError:
            raise UsageError("bad --bind fd://%d: not an open file descriptor" % fd)
        os.set_inheritable(fd, True)
        return fd
    if kind == "unix":
        path = spec[1]
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if os.path.exists(path):
                # a stale socket of an earlier run (never a regular file)
                import stat
                if stat.S_ISSOCK(os.stat(path).st_mode):
                    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    try:
                        probe.connect(path)
                        raise UsageError("cannot listen on unix:%s: address already in use" % path)
                    except (ConnectionRefusedError, FileNotFoundError):
                        os.unlink(path)
                    finally:
                        probe.close()
            s.bind(path)
        except OSError as e:
            s.close()
            raise UsageError("cannot listen on unix:%s: %s" % (path, e.strerror))
    else:
        host, port = spec[1], spec[2]
        s = socket.socket(_family(host), socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if s.family == socket.AF_INET6:
            # set either way, as the engine does: '::' is IPv6's unless
            # asked, whatever the system's bindv6only says
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY,
                         1 if options.get(_piston.OPT_IPV6_ONLY, 1) else 0)
        try:
            s.bind((host, port))
        except OSError as e:
            s.close()
            if e.errno == errno.EADDRINUSE:
                raise UsageError("cannot listen on %s:%d: address already in use" % (host, port))
            raise UsageError("cannot listen on %s:%d: %s" % (host, port, e.strerror))
    s.listen(backlog)
    fd = s.detach()
    os.set_inheritable(fd, True)
    return fd


def _bound(spec, fd):
    """(spec, fd) with the port the kernel chose for a TCP port 0."""
    if spec[0] == "tcp" and spec[2] == 0:
        s = socket.socket(fileno=os.dup(fd))
        spec = ("tcp", spec[1], s.getsockname()[1])
        s.close()
    return spec, fd


# ---- where the app comes from ----------------------------------------------

class AppSource:
    """The app and its interface ('wsgi' | 'asgi'), from load() -> (app,
    interface). preload: loaded once, here, before any fork (gunicorn's
    --preload: SIGHUP then restarts workers with the same code); else each
    worker imports it after the fork, so a reload runs the new code."""

    def __init__(self, load, preload=True, reconfigure=None, restart=None):
        self._load = load
        self.preload = preload
        # one process: a restart.Restart, for SIGHUP to run the new code
        self.restart = restart
        # () -> Config read again (the config file, PISTON_CMD_ARGS) on
        # SIGHUP, as gunicorn does; raises UsageError on a mistake
        self.reconfigure = reconfigure
        self._loaded = load() if preload else None

    def load(self):
        return self._loaded if self._loaded is not None else self._load()


def worker_class(interface):
    if interface == "asgi":
        from .asgi import AsgiWorker
        return AsgiWorker
    return Worker


# ---- one serving process ---------------------------------------------------

class Worker:
    """An engine server, its loops and a pool of Python threads running app."""

    def __init__(self, app, cfg, listen=None, multiprocess=False):
        self.app = app
        self.cfg = cfg
        # [(spec, fd or None)]: fd for shared sockets
        self.listen = listen if listen is not None else [(parse_bind(b), None) for b in cfg.bind]
        self.multiprocess = multiprocess
        self.stopping = threading.Event()
        # stop() also writes here, so that wait() sleeps in select() with no
        # timeout: an idle worker wakes for nothing
        self._stop_r, self._stop_w = os.pipe()
        os.set_blocking(self._stop_w, False)
        # called once --max-requests is reached; default: stop by itself
        self.on_retire = self.stop
        # called once a request ran past --timeout (under a supervisor)
        self.on_stuck = self.stop
        # called once stopping: the engine accepts no more
        self.on_draining = lambda: None
        self.srv = None
        self.threads = []
        self.count = 0
        self.count_lock = threading.Lock()
        limit = cfg.max_requests
        if limit and cfg.max_requests_jitter:
            limit += random.randint(0, cfg.max_requests_jitter)
        self.max_requests = limit
        # per pool thread: when its request started (0: idle), for --timeout
        self.busy = [0.0] * cfg.threads

    def start(self):
        """Binds and starts serving; raises UsageError on a bad bind."""
        cfg = self.cfg
        srv = _piston.Server()
        configure_server(srv, cfg, self.listen, self.multiprocess)
        server_name, server_port = "localhost", "0"
        try:
            srv.start(cfg.loops)
        except _piston.Error as e:
            if e.args[0] == _piston.E_TLS:
                raise UsageError(e.args[1])
            raise UsageError("cannot listen on %s: %s" % (
                ", ".join(show_bind(s) for s, _ in self.listen), e.args[1]))
        spec0 = self.listen[0][0]
        if spec0[0] == "tcp":
            server_name = spec0[1]
            server_port = str(srv.port(0))
        self.srv = srv
        self.base = base_environ(server_name, server_port, cfg.threads > 1,
                                 self.multiprocess)
        for i in range(cfg.threads):
            t = threading.Thread(target=self._work, args=(i,), name="piston-worker-%d" % i,
                                 daemon=True)
            t.start()
            self.threads.append(t)
        if cfg.timeout > 0:
            threading.Thread(target=self._watch_stuck, name="piston-timeout",
                             daemon=True).start()

    def ports(self):
        return [self.srv.port(i) for i in range(len(self.listen))]

    def _work(self, i):
        srv, app, base, root = self.srv, self.app, self.base, self.cfg.root_path
        limit = self.max_requests
        busy, timed = self.busy, self.cfg.timeout > 0
        while True:
            try:
                req = srv.next_request()
            except Exception:  # out of memory: the request got a 500
                log.exception("cannot take a request")
                continue
            if req is None:
                return
            if timed:
                busy[i] = time.monotonic()
            handle(req, app, base, root)
            busy[i] = 0.0
            del req
            if limit:
                with self.count_lock:
                    self.count += 1
                    if self.count == limit:
                        log.info("max requests (%d) reached: restarting", limit)
                        self.on_retire()

    def _watch_stuck(self):
        """--timeout: a pool thread in one request for longer gets this
        process replaced (a Python thread cannot be stopped; the engine's
        handler timeout already answered its client 503). Wakes at most
        every timeout/2, and only with --timeout."""
        timeout = self.cfg.timeout
        wait = timeout / 2
        while not self.stopping.wait(wait):
            now = time.monotonic()
            started = [t for t in self.busy if t]
            oldest = min(started) if started else 0.0
            if oldest and now - oldest >= timeout:
                log.error("a request has run for %.1f s, past --timeout %g: "
                          "replacing this worker", now - oldest, timeout)
                self.on_stuck()
                return
            wait = (oldest + timeout - now + 0.01) if oldest else timeout / 2

    def stop(self):
        """Asks for a graceful stop (safe from a signal handler and from any
        thread)."""
        self.stopping.set()
        try:
            os.write(self._stop_w, b"s")
        except OSError:
            pass  # full: a wake-up is already pending

    def wait(self, parent_fd=None):
        """Serves until stop() (or the supervisor is gone: parent_fd, the
        read end of its life pipe, then reads EOF), then drains: no new
        connections, requests in flight get shutdown_timeout."""
        fds = [self._stop_r] + ([parent_fd] if parent_fd is not None else [])
        while not self.stopping.is_set():
            readable, _, _ = select.select(fds, [], [])
            if parent_fd is not None and parent_fd in readable:
                log.warning("supervisor is gone: stopping")
                break
        self.stopping.set()
        self.srv.stop(int(self.cfg.shutdown_timeout * 1000))
        self.on_draining()
        self.srv.join()
        deadline = time.monotonic() + 5
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))


def watch_event_loop(loop, timeout, on_stuck):
    """--timeout for an ASGI worker: the app runs on the asyncio loop that
    also runs the engine, so an app blocking it (a synchronous call in a
    coroutine) stops everything and the engine's 503 cannot come. A thread
    asks the loop to answer every timeout/2 (only with --timeout); no answer
    for timeout seconds gets the worker replaced."""
    last = [time.monotonic()]

    def beat():
        last[0] = time.monotonic()

    def watch():
        while True:
            time.sleep(timeout / 2)
            if loop.is_closed():
                return
            if time.monotonic() - last[0] >= timeout:
                log.error("the event loop has been blocked for %.1f s, past --timeout %g: "
                          "replacing this worker", time.monotonic() - last[0], timeout)
                on_stuck()
                return
            try:
                loop.call_soon_threadsafe(beat)
            except RuntimeError:
                return  # closed meanwhile
    threading.Thread(target=watch, name="piston-timeout", daemon=True).start()


def _install_stop_signals(worker):
    def on_signal(signum, frame):
        worker.stop()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # gunicorn's SIGUSR1 reopens the log files (logrotate moved them): the
    # engine's access log with the error log (logs.reopen, the handler)
    logs.on_reopen(lambda: reopen_logs(worker))


def _on_usr1(signum, frame):
    logs.reopen()
    log.info("SIGUSR1: log files reopened")


def _ignored(what):
    def handler(signum, frame):
        log.info("%s: ignored (%s)", signal.Signals(signum).name, what)
    return handler


# what gunicorn does with them, where it does not apply here
NO_USR2 = "no binary upgrade; SIGHUP reloads the code"
NO_WINCH = "gunicorn stops its workers on it only when daemonized; Piston never daemonizes"


def _reload_tls(w):
    """SIGHUP with one process whose app was loaded once (--preload, or an
    app object given to piston.run): the code stays, the certificates are
    read again (open connections keep theirs)."""
    if w.srv is None:
        log.info("SIGHUP: not serving yet: nothing to reload")
        return
    if not w.cfg.certfile:
        log.info("SIGHUP: the app was loaded once (--preload, or given as an object): "
                 "the code stays")
        return
    try:
        w.srv.tls_reload()
        log.info("SIGHUP: TLS certificates reloaded (the app was loaded once: the code stays)")
    except _piston.Error as e:
        log.error("SIGHUP: TLS reload failed, the old certificates stay: %s", e.args[1])


def _restart_listeners(cfg, restart):
    """One process that SIGHUP restarts: its listening sockets are made here
    (or taken over from the image before it), to be handed to the next."""
    specs = [parse_bind(b) for b in cfg.bind]
    if restart.inherited is None:
        return [_bound(spec, _shared_socket(spec, cfg.options)) for spec in specs]
    kept = [spec for spec, _ in restart.inherited]
    added = [spec for spec in specs if spec[0] != "fd" and spec not in kept]
    if added:
        log.warning("SIGHUP: %s added to the addresses: that takes a restart",
                    ", ".join(show_bind(spec) for spec in added))
    return restart.inherited


def _shut_listeners(listen):
    """New clients are refused from now on, rather than queued on a socket
    nobody accepts from until this process exits: the sockets made here
    ([(spec, fd)]) are shut down (for every process sharing them) and the
    Unix socket files removed. Inherited ones (fd://, systemd's) are left
    open: their owner keeps them for the next start."""
    # the WSGI engine's loops run on their own threads: give them the pass
    # in which they act on the stop
    time.sleep(0.05)
    for spec, fd in listen:
        if fd is None or spec[0] == "fd":
            continue
        s = socket.socket(fileno=os.dup(fd))
        try:
            s.shutdown(socket.SHUT_RD)
        except OSError:
            pass
        finally:
            s.close()
        if spec[0] == "unix":
            try:
                os.unlink(spec[1])
            except OSError:
                pass


def serve_single(app, cfg, worker_cls=None, restart=None):
    """One process, no supervisor. restart (a restart.Restart): SIGHUP runs
    the new code in this process, else it keeps the code."""
    w = (worker_cls or Worker)(app, cfg)
    notifier = systemd.Notifier()
    # every handler before the first socket exists: a client (a test, a
    # probe) may signal as soon as the port answers
    _install_stop_signals(w)
    if restart:
        signal.signal(signal.SIGHUP, lambda s, f: restart.request(w.stop, notifier.notify))
    else:
        signal.signal(signal.SIGHUP, lambda s, f: _reload_tls(w))
    signal.signal(signal.SIGUSR1, _on_usr1)
    signal.signal(signal.SIGUSR2, _ignored(NO_USR2))
    signal.signal(signal.SIGWINCH, _ignored(NO_WINCH))
    for s in (signal.SIGTTIN, signal.SIGTTOU):
        signal.signal(s, _ignored("one process has no workers; use --workers"))
    if restart:
        listen = w.listen = _restart_listeners(cfg, restart)
        w.on_draining = lambda: None if restart.go else _shut_listeners(listen)
    w.start()
    ports = w.ports()
    for (spec, fd), port in zip(w.listen, ports):
        if spec[0] == "tcp" and fd is None:
            spec = ("tcp", spec[1], port)
        scheme = "https" if cfg.certfile else "http"
        log.info("Listening at: %s://%s" % (scheme, show_bind(spec)) if spec[0] == "tcp"
                 else "Listening at: %s" % show_bind(spec))
    if hasattr(w, "describe"):
        log.info("Using %s, pid %d", w.describe(), os.getpid())
    else:
        log.info("Using %d threads, pid %d", cfg.threads, os.getpid())
    notifier.notify("READY=1\nMAINPID=%d" % os.getpid())
    if notifier.watchdog:
        _watchdog_thread(notifier)
    w.wait()
    if restart and restart.go:
        restart.execute(listen)
        return 1  # execve failed (logged)
    notifier.notify("STOPPING=1")
    log.info("Shutdown complete")
    return 0


def _watchdog_thread(notifier):
    """WATCHDOG=1 at half of systemd's WatchdogSec (only when it is set)."""
    def beat():
        while True:
            notifier.notify("WATCHDOG=1")
            time.sleep(notifier.watchdog)
    threading.Thread(target=beat, name="piston-watchdog", daemon=True).start()


def drop_privileges(cfg):
    """--user/--group, in a worker before it loads the app (the supervisor
    keeps its rights: it bound the sockets and may bind again)."""
    if cfg.gid is not None:
        if os.getuid() == 0:
            os.setgroups([])
        os.setgid(cfg.gid)
    if cfg.uid is not None:
        if cfg.gid is None and os.getuid() == 0:
            import pwd
            os.setgroups([])
            os.setgid(pwd.getpwuid(cfg.uid).pw_gid)
        os.setuid(cfg.uid)


# ---- the supervisor ----------------------------------------------------------

# What a worker writes on its pipe to the supervisor: it serves; it cannot
# start (the reason follows); it reached --max-requests; a request of its
# ran past --timeout; it stopped accepting (and drains).
MSG_READY, MSG_ERROR, MSG_RETIRE, MSG_STUCK, MSG_DRAINING = b"r", b"e", b"m", b"t", b"d"

SUPERVISOR_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD,
                      signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH, signal.SIGTTIN,
                      signal.SIGTTOU)


class Supervisor:
    def __init__(self, source, cfg):
        if not isinstance(source, AppSource):  # an app, as before
            app = source
            source = AppSource(lambda: (app, "wsgi"))
        self.source = source
        self.cfg = cfg
        self.listen = []          # [(spec, shared fd or None)]
        self.workers = {}         # pid -> {"ready", "old", "pipe", "born", "deadline"}
        self.size = cfg.workers   # changed by SIGTTIN/SIGTTOU
        self.signals = []
        self.stopping = False
        self.watcher = None
        self.notifier = systemd.Notifier()

    def prepare(self):
        prepare_ops_for_workers(self.cfg, self.cfg.workers)  # before any fork
        for b in self.cfg.bind:
            spec = parse_bind(b)
            if spec[0] == "tcp" and self.cfg.reuse_port:
                port = _tcp_precheck(spec[1], spec[2])
                self.listen.append((("tcp", spec[1], port), None))
            else:
                spec, fd = _bound(spec, _shared_socket(spec, self.cfg.options))
                if spec[0] == "unix" and (self.cfg.uid is not None or self.cfg.gid is not None):
                    os.chown(spec[1], -1 if self.cfg.uid is None else self.cfg.uid,
                             -1 if self.cfg.gid is None else self.cfg.gid)
                self.listen.append((spec, fd))

    def spawn(self):
        rfd, wfd = os.pipe()
        # a SIGTERM for the new worker before it set its handlers would run
        # the supervisor's (and be lost): blocked over the fork, the child
        # gets it once it has its own
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        pid = os.fork()
        if pid != 0:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        if pid == 0:
            os.close(rfd)
            os.close(self.life_w)
            if self.watcher is not None:
                self.watcher.close()
            for info in self.workers.values():  # the other workers' pipes
                self._close_pipe(info)
            code = 0
            try:
                code = self._child(wfd, blocked)
            except UsageError as e:
                # the supervisor says it (one line), at boot or on reload
                try:
                    os.write(wfd, MSG_ERROR + str(e).encode("utf-8", "replace")[:3000])
                except OSError:
                    sys.stderr.write("piston: %s\n" % e)
                code = EXIT_BOOT_FAILED
            except BaseException:
                log.exception("worker failed")
                code = 1
            finally:
                try:
                    sys.stderr.flush()
                    sys.stdout.flush()
                finally:
                    os._exit(code)
        os.close(wfd)
        self.workers[pid] = {"ready": False, "old": False, "pipe": rfd,
                             "born": time.monotonic(), "deadline": None}
        return pid

    def _child(self, ready_fd, sigmask):
        for s in SUPERVISOR_SIGNALS:
            signal.signal(s, signal.SIG_DFL)
        # what the supervisor handles must not kill a worker when it is
        # sent to the whole process group (SIGUSR1: until its handler is set)
        for s in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH,
                  signal.SIGTTIN, signal.SIGTTOU):
            signal.signal(s, signal.SIG_IGN)
        signal.set_wakeup_fd(-1)
        signal.pthread_sigmask(signal.SIG_SETMASK, sigmask)  # SIGTERM: stop at once
        drop_privileges(self.cfg)
        app, interface = self.source.load()
        w = worker_class(interface)(app, self.cfg, self.listen, multiprocess=True)
        _install_stop_signals(w)
        # after the app's import (as gunicorn): the supervisor forwards it
        signal.signal(signal.SIGUSR1, _on_usr1)

        def tell(msg):
            # the supervisor starts a replacement first, then stops us
            def send():
                try:
                    os.write(ready_fd, msg)
                except OSError:
                    w.stop()
            return send
        w.on_retire = tell(MSG_RETIRE)
        w.on_stuck = tell(MSG_STUCK)
        w.on_draining = tell(MSG_DRAINING)
        w.start()
        if self.cfg.timeout > 0 and interface == "asgi":
            watch_event_loop(w.loop, self.cfg.timeout, w.on_stuck)
        try:
            os.write(ready_fd, MSG_READY)
            log.info("Booted worker with pid %d", os.getpid())
        except OSError:  # it died while we started
            log.warning("supervisor is gone: stopping")
            w.stop()
        w.wait(parent_fd=self.life_r)
        return 0

    def _on_signal(self, signum, frame):
        self.signals.append(signum)

    def _reap(self):
        """Collects dead workers; returns those that died unexpectedly."""
        dead = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            info = self.workers.pop(pid, None)
            if info is None:
                continue
            self._close_pipe(info)
            code = os.waitstatus_to_exitcode(status)
            if info["old"] or self.stopping:
                continue
            if code == EXIT_BOOT_FAILED:
                continue  # it said why (MSG_ERROR), and was not replaced
            if code == 0:
                log.info("Worker %d exited; replacing it", pid)
            elif code < 0:
                log.error("Worker %d was killed by signal %d; replacing it", pid, -code)
            else:
                log.error("Worker %d exited with code %d; replacing it", pid, code)
            dead.append((pid, code, info))
        return dead

    @staticmethod
    def _close_pipe(info):
        if info.get("pipe") is not None:
            os.close(info["pipe"])
            info["pipe"] = None

    def _wait_ready(self, pid, timeout):
        """(True, None) once pid serves; (False, why) if it could not start
        (then it is gone or going: marked old, killed if it hangs)."""
        info = self.workers.get(pid)
        if info is None:
            return False, None
        if info["ready"]:
            return True, None
        end = time.monotonic() + timeout
        why = "it did not start within %d s" % timeout
        while time.monotonic() < end:
            r, _, _ = select.select([info["pipe"]], [], [], max(0, end - time.monotonic()))
            if r:
                data = os.read(info["pipe"], 4096)
                if data[:1] == MSG_READY:
                    info["ready"] = True
                    if MSG_RETIRE in data[1:]:
                        info["retire"] = True
                    return True, None
                why = (data[1:].decode("utf-8", "replace") if data[:1] == MSG_ERROR
                       else "it exited before it served")
                break
        info["old"] = True
        self._close_pipe(info)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return False, why

    def _messages(self, readable):
        """What the ready workers wrote: retire or stuck -> replace each,
        the new one first."""
        for pid, info in list(self.workers.items()):
            if info.get("pipe") not in readable:
                continue
            try:
                data = os.read(info["pipe"], 16)
            except OSError:
                data = b""
            if not data:
                self._close_pipe(info)  # it is exiting; _reap replaces it
                continue
            if info["old"] or self.stopping:
                continue
            if MSG_STUCK in data:
                self._replace(pid, "a request ran past --timeout")
            elif MSG_RETIRE in data:
                self._replace(pid, "max requests reached")

    def _timeout(self):
        """select()'s timeout: the nearest deadline (a draining worker to
        kill, the systemd watchdog), or None: sleep until something happens."""
        now = time.monotonic()
        times = [i["deadline"] for i in self.workers.values() if i["deadline"]]
        if self.next_watchdog:
            times.append(self.next_watchdog)
        return max(0.0, min(times) - now) if times else None

    def _deadlines(self):
        now = time.monotonic()
        for pid, info in list(self.workers.items()):
            if info["deadline"] and now >= info["deadline"]:
                log.error("Worker %d did not stop within --graceful-timeout: killing it", pid)
                info["deadline"] = None
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.next_watchdog and now >= self.next_watchdog:
            self.notifier.notify("WATCHDOG=1")
            self.next_watchdog = now + self.notifier.watchdog

    def _boot(self):
        """Starts --workers, all at once (each imports the app: in
        parallel); (True, None) or (False, why)."""
        for pid in [self.spawn() for _ in range(self.size)]:
            ok, why = self._wait_ready(pid, 60)
            if not ok:
                return False, why
        return True, None

    def run(self):
        self.prepare()
        for s in SUPERVISOR_SIGNALS:
            signal.signal(s, self._on_signal)
        rpipe, wpipe = os.pipe()
        os.set_blocking(wpipe, False)
        signal.set_wakeup_fd(wpipe)
        # The life pipe: only this process keeps its write end, so a worker
        # reads EOF from it the moment the supervisor is gone, however it
        # died, without polling getppid().
        self.life_r, self.life_w = os.pipe()
        for spec, _ in self.listen:
            log.info("Listening at: %s", ("http://" if spec[0] == "tcp" else "") + show_bind(spec))
        log.info("Supervisor pid %d, %d workers x %d threads%s",
                 os.getpid(), self.size, self.cfg.threads,
                 " (app preloaded)" if self.source.preload else "")
        if self.cfg.reload:
            from .reloader import Watcher
            self.watcher = Watcher(self.cfg.reload_dirs or [os.getcwd()])
            log.info("--reload: watching %d directories under %s", len(self.watcher.wds),
                     ", ".join(self.cfg.reload_dirs or [os.getcwd()]))
        self.next_watchdog = None
        ok, why = self._boot()
        if not ok:
            return self._boot_failed(why)
        self.notifier.notify("READY=1\nMAINPID=%d" % os.getpid())
        if self.notifier.watchdog:
            self.next_watchdog = time.monotonic()
        fast_failures = 0
        while True:
            pipes = [i["pipe"] for i in self.workers.values()
                     if i["ready"] and i.get("pipe") is not None]
            extra = [self.watcher.fd] if self.watcher else []
            # no timeout unless a deadline is due: signals (through the
            # wakeup fd, SIGCHLD too), the workers' pipes and the watched
            # files are all there is to wait for
            readable, _, _ = select.select([rpipe] + pipes + extra, [], [], self._timeout())
            if rpipe in readable:
                try:
                    os.read(rpipe, 4096)
                except BlockingIOError:
                    pass
            self._messages(readable)
            self._deadlines()
            sigs, self.signals = self.signals, []
            if signal.SIGTERM in sigs or signal.SIGINT in sigs:
                return self._shutdown()
            for pid, code, info in self._reap():
                if time.monotonic() - info["born"] < 1:
                    fast_failures += 1
                    if fast_failures > 10 * self.size:
                        log.error("workers keep dying at start: giving up")
                        return self._shutdown(1)
                else:
                    fast_failures = 0
                self._add_worker("replacing worker %d" % pid)
            if not self._live():
                log.error("no worker left (the app does not load): stopping")
                return self._shutdown(1)
            if self.watcher and self.watcher.fd in readable:
                self._files_changed()
            for sig in sigs:
                self._signal(sig)

    def _live(self):
        return [p for p, i in self.workers.items() if not i["old"]]

    def _signal(self, sig):
        if sig == signal.SIGHUP:
            self._reread_config()
            self._reload("SIGHUP")
        elif sig == signal.SIGUSR1:
            logs.reopen()
            log.info("SIGUSR1: log files reopened; the workers reopen theirs")
            for pid in self.workers:
                try:
                    os.kill(pid, signal.SIGUSR1)
                except ProcessLookupError:
                    pass
        elif sig == signal.SIGTTIN:
            self.size += 1
            log.info("SIGTTIN: %d workers", self.size)
            self._add_worker("SIGTTIN")
        elif sig == signal.SIGTTOU:
            live = self._live()
            if self.size <= 1 or not live:
                log.info("SIGTTOU: ignored, 1 worker is the least")
                return
            self.size -= 1
            oldest = min(live, key=lambda p: self.workers[p]["born"])
            log.info("SIGTTOU: %d workers (worker %d stops)", self.size, oldest)
            self._retire(oldest)
        elif sig == signal.SIGUSR2:
            log.info("SIGUSR2: ignored (%s)", NO_USR2)
        elif sig == signal.SIGWINCH:
            log.info("SIGWINCH: ignored (%s)", NO_WINCH)

    def _reread_config(self):
        """The new workers get the configuration as it is now; what the
        supervisor set up at start (the addresses, the user) stays."""
        if self.source.reconfigure is None:
            return
        try:
            cfg = self.source.reconfigure()
        except UsageError as e:
            log.error("SIGHUP: the configuration has a mistake, the old one stays: %s", e)
            return
        kept = ("bind", "uid", "gid", "pidfile", "reuse_port", "reload", "reload_dirs")
        # (systemd's sockets are passed once: fd:// binds are not compared)
        socket_activated = any(b.startswith("fd://") for b in self.cfg.bind)
        changed = [k for k in kept if getattr(cfg, k) != getattr(self.cfg, k)
                   and not (k == "bind" and socket_activated)]
        if changed:
            log.warning("SIGHUP: %s changed: that takes a restart", ", ".join(changed))
        for k in kept:
            setattr(cfg, k, getattr(self.cfg, k))
        if cfg.workers != self.cfg.workers:
            log.info("SIGHUP: %d workers", cfg.workers)
            self.size = cfg.workers
        self.cfg = cfg

    def _add_worker(self, why):
        ok, err = self._wait_ready(self.spawn(), 60)
        if not ok:
            log.error("%s: a new worker could not start: %s", why, err)
        return ok

    def _files_changed(self):
        changed = self.watcher.changes()
        if not changed:
            return
        # an editor or a checkout writes several files at once: one reload
        time.sleep(0.2)
        changed += self.watcher.changes()
        names = sorted(set(os.path.relpath(p) for p in changed))
        self._reload("--reload: %s changed" % ", ".join(names[:3]) +
                     (" and %d more" % (len(names) - 3) if len(names) > 3 else ""))

    def _reload(self, why):
        """Replaces the workers one by one: the new one serves before the old
        one stops accepting, and the old one drains its requests. If the new
        code cannot start, the old workers keep serving."""
        live = self._live()
        log.info("%s: replacing %d workers", why, len(live))
        self.notifier.notify("RELOADING=1")
        for pid in live:
            if not self._replace(pid, why):
                break
        # a worker short (it failed at a reload before, or the configuration
        # asks for more): complete the set; too many: retire the oldest
        while len(self._live()) < self.size:
            if not self._add_worker(why):
                break
        while len(self._live()) > self.size:
            self._retire(min(self._live(), key=lambda p: self.workers[p]["born"]))
        self.notifier.notify("READY=1")

    def _replace(self, pid, why):
        """Starts a new worker, and once it serves, drains the old one."""
        new = self.spawn()
        ok, err = self._wait_ready(new, 60)
        if not ok:
            log.error("%s: the new worker could not start, the old workers keep "
                      "serving: %s", why, " ".join(err.split()) if err else "")
            return False
        log.info("Worker %d replaced by %d (%s)", pid, new, why)
        self._retire(pid)
        return True

    def _retire(self, pid):
        info = self.workers.get(pid)
        if info is None:
            return
        info["old"] = True
        self._close_pipe(info)
        info["deadline"] = time.monotonic() + self.cfg.shutdown_timeout + 5
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def _close_listeners(self):
        """On SIGTERM new clients are refused at once, as gunicorn's: once
        every worker said its engine stopped accepting, the shared sockets
        are shut down (_shut_listeners)."""
        pending = {i["pipe"] for i in self.workers.values()
                   if i["ready"] and not i["old"] and i.get("pipe") is not None}
        end = time.monotonic() + 2
        while pending and time.monotonic() < end:
            r, _, _ = select.select(list(pending), [], [], max(0, end - time.monotonic()))
            for fd in r:
                try:
                    data = os.read(fd, 64)
                except OSError:
                    data = b""
                if not data or MSG_DRAINING in data:
                    pending.discard(fd)
        _shut_listeners(self.listen)

    def _boot_failed(self, why):
        self._shutdown()
        if why:
            raise UsageError(why)
        log.error("Worker failed to boot")
        return 1

    def _shutdown(self, code=0):
        self.stopping = True
        self.notifier.notify("STOPPING=1")
        for pid in list(self.workers):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        self._close_listeners()
        deadline = time.monotonic() + self.cfg.shutdown_timeout + 10
        while self.workers and time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            info = self.workers.pop(pid, None)
            if info:
                self._close_pipe(info)
        for pid in list(self.workers):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for spec, fd in self.listen:
            if spec[0] == "unix":
                try:
                    os.unlink(spec[1])
                except OSError:
                    pass
        log.info("Shutdown complete")
        return code


def setup_logging(level="info", errorlog=None, log_config=None):
    logs.setup_logging(level, errorlog, log_config)


def needs_supervisor(cfg):
    """One process serves unless something needs workers to replace."""
    return (cfg.workers > 1 or cfg.max_requests > 0 or cfg.timeout > 0 or cfg.reload
            or cfg.uid is not None or cfg.gid is not None)


def serve_source(source, cfg):
    """Serves the app of an AppSource until stopped; the exit code."""
    if cfg.pidfile:
        _write_pid(cfg.pidfile)
    try:
        if needs_supervisor(cfg):
            return Supervisor(source, cfg).run()
        app, interface = source.load()
        return serve_single(app, cfg, worker_class(interface), source.restart)
    finally:
        if cfg.pidfile:
            try:
                os.unlink(cfg.pidfile)
            except OSError:
                pass


def _write_pid(path):
    try:
        with open(path, "w") as f:
            f.write("%d\n" % os.getpid())
    except OSError as e:
        raise UsageError("cannot write --pid %s: %s" % (path, e.strerror))


def serve(app, cfg, interface="wsgi"):
    """Serves app with cfg until stopped; returns the exit code.
    interface: 'wsgi' (a pool of threads) or 'asgi' (an asyncio loop)."""
    return serve_source(AppSource(lambda: (app, interface)), cfg)


def run(app, bind="127.0.0.1:8000", workers=1, threads=8, interface="wsgi", **kw):
    """Serves a WSGI (or, with interface="asgi", an ASGI) app until
    SIGTERM/SIGINT. bind: one address or a list."""
    setup_logging(kw.pop("log_level", "info"))
    if isinstance(bind, str):
        bind = [bind]
    cfg = Config(bind=list(bind), workers=workers, threads=threads, **kw)
    return serve(app, cfg, interface)
