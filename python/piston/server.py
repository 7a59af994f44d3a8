"""Serving: one process (engine loops on C threads + a pool of Python
threads), or a supervisor that forks worker processes and keeps them alive.

TCP addresses are bound by each worker's engine loops with SO_REUSEPORT, so
the kernel spreads connections over the processes. Unix sockets and
inherited fds (fd://N) are one listening socket, made by the supervisor
before forking and shared by every worker (piston_server_listen_fd).
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

from . import _piston
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


def _shared_socket(spec, backlog):
    """A listening socket made here and shared by every worker."""
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
        self.srv = None
        self.threads = []
        self.count = 0
        self.count_lock = threading.Lock()
        limit = cfg.max_requests
        if limit and cfg.max_requests_jitter:
            limit += random.randint(0, cfg.max_requests_jitter)
        self.max_requests = limit

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
            t = threading.Thread(target=self._work, name="piston-worker-%d" % i,
                                 daemon=True)
            t.start()
            self.threads.append(t)

    def ports(self):
        return [self.srv.port(i) for i in range(len(self.listen))]

    def _work(self):
        srv, app, base, root = self.srv, self.app, self.base, self.cfg.root_path
        limit = self.max_requests
        while True:
            try:
                req = srv.next_request()
            except Exception:  # out of memory: the request got a 500
                log.exception("cannot take a request")
                continue
            if req is None:
                return
            handle(req, app, base, root)
            del req
            if limit:
                with self.count_lock:
                    self.count += 1
                    if self.count == limit:
                        log.info("max requests (%d) reached: restarting", limit)
                        self.on_retire()

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
        self.srv.stop(int(self.cfg.shutdown_timeout * 1000))
        self.srv.join()
        deadline = time.monotonic() + 5
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))


def _install_stop_signals(worker):
    def on_signal(signum, frame):
        worker.stop()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # gunicorn's SIGUSR1: reopen the log files (logrotate moved them)
    signal.signal(signal.SIGUSR1, lambda s, f: reopen_logs(worker))


def _reload_tls(w):
    """SIGHUP with one process: the code stays, the certificates are read
    again (open connections keep theirs)."""
    if not w.cfg.certfile:
        log.info("SIGHUP: nothing to reload with one process")
        return
    try:
        w.srv.tls_reload()
        log.info("SIGHUP: TLS certificates reloaded")
    except _piston.Error as e:
        log.error("SIGHUP: TLS reload failed, the old certificates stay: %s", e.args[1])


def serve_single(app, cfg, worker_cls=None):
    """One process, no supervisor."""
    w = (worker_cls or Worker)(app, cfg)
    _install_stop_signals(w)  # before the first request can be served
    w.start()
    signal.signal(signal.SIGHUP, lambda s, f: _reload_tls(w))
    ports = w.ports()
    for (spec, _), port in zip(w.listen, ports):
        if spec[0] == "tcp":
            spec = ("tcp", spec[1], port)
        scheme = "https" if cfg.certfile else "http"
        log.info("Listening at: %s://%s" % (scheme, show_bind(spec)) if spec[0] == "tcp"
                 else "Listening at: %s" % show_bind(spec))
    if hasattr(w, "describe"):
        log.info("Using %s, pid %d", w.describe(), os.getpid())
    else:
        log.info("Using %d threads, pid %d", cfg.threads, os.getpid())
    w.wait()
    log.info("Shutdown complete")
    return 0


# ---- the supervisor ----------------------------------------------------------

class Supervisor:
    def __init__(self, app, cfg, worker_cls=None):
        self.app = app
        self.cfg = cfg
        self.worker_cls = worker_cls or Worker
        self.listen = []          # [(spec, shared fd or None)]
        self.workers = {}         # pid -> {"ready": bool, "old": bool}
        self.signals = []
        self.stopping = False

    def prepare(self):
        prepare_ops_for_workers(self.cfg, self.cfg.workers)  # before any fork
        backlog = self.cfg.options.get(_piston.OPT_BACKLOG, 1024)
        for b in self.cfg.bind:
            spec = parse_bind(b)
            if spec[0] == "tcp" and self.cfg.reuse_port:
                port = _tcp_precheck(spec[1], spec[2])
                self.listen.append((("tcp", spec[1], port), None))
            else:
                self.listen.append((spec, _shared_socket(spec, backlog)))

    def spawn(self):
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(rfd)
            os.close(self.life_w)
            for info in self.workers.values():  # the other workers' pipes
                self._close_pipe(info)
            code = 0
            try:
                code = self._child(wfd)
            except UsageError as e:
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
        self.workers[pid] = {"ready": False, "old": False, "pipe": rfd, "born": time.monotonic()}
        return pid

    def _child(self, ready_fd):
        for s in (signal.SIGHUP, signal.SIGCHLD, signal.SIGTTIN, signal.SIGTTOU):
            signal.signal(s, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        w = self.worker_cls(self.app, self.cfg, self.listen, multiprocess=True)
        _install_stop_signals(w)

        def retire():
            # the supervisor starts a replacement first, then stops us
            try:
                os.write(ready_fd, b"m")
            except OSError:
                w.stop()
        w.on_retire = retire
        w.start()
        os.write(ready_fd, b"r")
        log.info("Booted worker with pid %d", os.getpid())
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
        """True once pid reported it serves; False if it died first."""
        info = self.workers.get(pid)
        if info is None:
            return False
        if info["ready"]:
            return True
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            r, _, _ = select.select([info["pipe"]], [], [], max(0, end - time.monotonic()))
            if r:
                data = os.read(info["pipe"], 1)
                if data == b"r":
                    info["ready"] = True
                    return True
                self._close_pipe(info)  # died before it was ready
                return False
        return False

    def _retire_requests(self, readable):
        """Workers that wrote 'm' (max requests): replace each, new first."""
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
            if b"m" in data and not info["old"] and not self.stopping:
                self._replace(pid, "max requests reached")

    def run(self):
        self.prepare()
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
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
        log.info("Supervisor pid %d, %d workers x %d threads",
                 os.getpid(), self.cfg.workers, self.cfg.threads)
        for _ in range(self.cfg.workers):
            pid = self.spawn()
            if not self._wait_ready(pid, 30):
                return self._boot_failed()
        fast_failures = 0
        while True:
            pipes = [i["pipe"] for i in self.workers.values()
                     if i["ready"] and i.get("pipe") is not None]
            # no timeout: signals (through the wakeup fd, SIGCHLD too) and
            # the workers' pipes are all there is to wait for
            readable, _, _ = select.select([rpipe] + pipes, [], [])
            if rpipe in readable:
                try:
                    os.read(rpipe, 4096)
                except BlockingIOError:
                    pass
            self._retire_requests(readable)
            sigs, self.signals = self.signals, []
            if signal.SIGTERM in sigs or signal.SIGINT in sigs:
                return self._shutdown()
            for pid, code, info in self._reap():
                if code == EXIT_BOOT_FAILED:
                    return self._boot_failed()
                if time.monotonic() - info["born"] < 1:
                    fast_failures += 1
                    if fast_failures > 10 * self.cfg.workers:
                        log.error("workers keep dying at start: giving up")
                        return self._shutdown(1)
                else:
                    fast_failures = 0
                self.spawn()
            if signal.SIGHUP in sigs:
                self._reload()

    def _reload(self):
        """Replaces the workers one by one: the new one serves before the old
        one stops accepting, and the old one drains its requests."""
        log.info("SIGHUP: replacing %d workers", len(self.workers))
        for pid in [p for p, i in self.workers.items() if not i["old"]]:
            if not self._replace(pid, "reload"):
                return

    def _replace(self, pid, why):
        """Starts a new worker, and once it serves, drains the old one."""
        new = self.spawn()
        if not self._wait_ready(new, 30):
            log.error("new worker %d did not start; keeping worker %d", new, pid)
            return False
        log.info("Worker %d replaced by %d (%s)", pid, new, why)
        info = self.workers.get(pid)
        if info is not None:
            info["old"] = True
            self._close_pipe(info)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        return True

    def _boot_failed(self):
        log.error("Worker failed to boot")
        self._shutdown()
        return 1

    def _shutdown(self, code=0):
        self.stopping = True
        for pid in list(self.workers):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
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


def setup_logging(level="info"):
    root = logging.getLogger("piston")
    if not root.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter(
            "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s",
            "%Y-%m-%d %H:%M:%S %z"))
        root.addHandler(h)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    root.propagate = False


def serve(app, cfg, interface="wsgi"):
    """Serves app with cfg until stopped; returns the exit code.
    interface: 'wsgi' (a pool of threads) or 'asgi' (an asyncio loop)."""
    worker_cls = None
    if interface == "asgi":
        from .asgi import AsgiWorker
        worker_cls = AsgiWorker
    if cfg.workers > 1 or cfg.max_requests > 0:
        return Supervisor(app, cfg, worker_cls).run()
    return serve_single(app, cfg, worker_cls)


def run(app, bind="127.0.0.1:8000", workers=1, threads=8, interface="wsgi", **kw):
    """Serves a WSGI (or, with interface="asgi", an ASGI) app until
    SIGTERM/SIGINT. bind: one address or a list."""
    setup_logging(kw.pop("log_level", "info"))
    if isinstance(bind, str):
        bind = [bind]
    cfg = Config(bind=list(bind), workers=workers, threads=threads, **kw)
    return serve(app, cfg, interface)
