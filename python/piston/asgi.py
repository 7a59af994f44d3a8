"""The ASGI host (ASGI 3.0: HTTP, WebSocket and lifespan): the engine's loop
embedded in an asyncio loop (uvloop when installed).

The asyncio loop watches the engine loop's fd (add_reader) and calls
AsgiServer.poll(), one non-blocking engine pass on this thread. Inside it
the engine calls on_request(exchange, scope) for each new request, with the
scope built in C (python/asgi_scope.c), and the app's task is created there
and then (eagerly on Python >= 3.12, so its first step runs inside the
pass). Events of a request (more body, drained, client gone) come back
inside later passes and wake the coroutines waiting in receive() or send().

send() is C (python/asgi_send.c): for a body that does not fill the
connection's queue it returns an awaitable that is already done, so no
coroutine is made and there is no trip through the event loop. A body sent
as one message becomes one engine call (piston_resp_send, with
Content-Length).
Nothing here frames or validates HTTP: the engine does.

A request that is a valid WebSocket opening handshake (piston_ws_handshake
101) gets a websocket scope instead; a flawed one (400, 426) the engine's
refusal without the app. The session's messages are C too
(python/asgi_ws.c): websocket.send is one piston_ws_send, and receive()
below takes each message with ws_recv(). The engine frames and checks the
protocol; what is here is the ASGI life of the scope (what uvicorn does
when the app returns or fails at each stage).
"""
import asyncio
import logging
import os
import signal
import sys

from . import _piston
from .config import UsageError, configure_server, parse_bind, show_bind

log = logging.getLogger("piston.error")

ClientDisconnected = _piston.ClientDisconnected
BodyTooLarge = _piston.BodyTooLarge

ASGI_VERSION = "3.0"
SPEC_VERSION = "2.5"
READ_SIZE = 65536
COALESCE = 1 << 20  # request body bytes joined into one http.request at most

_EAGER = sys.version_info >= (3, 12)
_DISCONNECT = {"type": "http.disconnect"}
_WS_CONNECT = {"type": "websocket.connect"}
_WS_CONNECTING, _WS_OPEN, _WS_CLOSED, _WS_RESPONSE = range(4)


class BootFailed(Exception):
    """The app cannot serve (lifespan startup failed): exit code != 0."""


def new_event_loop(kind="auto"):
    """uvloop's loop when installed (kind 'auto' or 'uvloop'), else asyncio's."""
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
            return uvloop.new_event_loop()
        except ImportError:
            if kind == "uvloop":
                raise BootFailed("--loop uvloop: uvloop is not installed")
    return asyncio.new_event_loop()


# ---- one request ---------------------------------------------------------------

class Exchange(_piston.AsgiRequest):
    """One request and its response: the receive/send pair given to the app.

    The engine makes these (AsgiServer's exchange_class) and keeps the
    exchange's state in C (status, headers, trailers, started, complete,
    closed, body_done, waiters), where send() of http.response.start and
    http.response.body runs; the rest is here."""

    __slots__ = ("host", "task", "timed_out", "__weakref__")

    def _wait(self):
        f = self.host.loop.create_future()
        ws = self.waiters
        if ws is None:
            self.waiters = [f]
        else:
            ws.append(f)
        return f

    async def receive(self):
        if self.body_done:
            while not (self.closed or self.complete):
                await self._wait()
            return _DISCONNECT
        while True:
            if self.closed and self.complete:
                return _DISCONNECT
            try:
                data = self.body_read(READ_SIZE)
                if data is None:
                    if self.closed:
                        return _DISCONNECT
                    await self._wait()
                    continue
                if not data:
                    self.body_done = True
                    return {"type": "http.request", "body": b"", "more_body": False}
                # join what is already buffered; learn whether it was the end
                chunks = None
                size = len(data)
                while size < COALESCE:
                    more = self.body_read(READ_SIZE)
                    if more is None:
                        break
                    if not more:
                        self.body_done = True
                        break
                    if chunks is None:
                        chunks = [data]
                    chunks.append(more)
                    size += len(more)
                if chunks is not None:
                    data = b"".join(chunks)
                return {"type": "http.request", "body": data,
                        "more_body": not self.body_done}
            except (ClientDisconnected, BodyTooLarge):
                self.closed = True
                self.body_done = True
                return _DISCONNECT
            except RuntimeError:  # released: the exchange is over
                return _DISCONNECT

    # send(message) is AsgiRequest.send, in C; it hands these messages here
    async def _send_other(self, message):
        kind = message["type"]
        if kind == "http.response.pathsend":
            await self._pathsend(message["path"])
        elif kind == "http.response.trailers":
            if not self.trailers or not self.started:
                raise RuntimeError("http.response.trailers without trailers: True")
            if self.complete:
                raise RuntimeError("trailers after the response was complete")
            if not message.get("more_trailers", False):
                self.complete = True
                if not self.closed:
                    self.end(message.get("headers") or ())
                self.wake()
        else:
            raise ValueError("unknown ASGI message type %r" % kind)

    def _timed_out(self):
        # the engine answered 503 (--handler-timeout): nobody waits for the
        # app any more
        self.timed_out = True
        t = self.task
        if t is not None and not t.done():
            t.cancel()

    async def _drain(self):
        # after a write reported pressure: until EV_DRAIN or EV_CLOSED
        await self._wait()
        if self.closed:
            raise ClientDisconnected(_piston.E_CLOSED, "the client went away")

    def _finish(self):
        # the app is done: wake whoever waits, drop the handle
        self.complete = True
        self.closed = True
        self.wake()
        self.release()
        self.host.finished(self)

    async def _ws_drain(self):
        # a websocket.send reported pressure: until EV_DRAIN (other events,
        # a message arriving, wake us too) or the end of the session
        while self.ws_pressure and not self.closed:
            await self._wait()
        if self.closed:
            raise ClientDisconnected(_piston.E_CLOSED, "the client went away")

    async def ws_receive(self):
        """receive() of a websocket scope."""
        if not self.ws_connected:
            self.ws_connected = True
            return dict(_WS_CONNECT)
        while True:
            m = self.ws_recv()
            if m is not None:
                return m
            await self._wait()

    async def run_ws(self, app, scope):
        try:
            await app(scope, self.ws_receive, self.send)
            state = self.ws_state
            if state == _WS_CONNECTING:
                if not self.closed:
                    log.error("ASGI callable returned without sending handshake (%s)",
                              scope["path"])
                self.abort()  # 500, as uvicorn
            elif state == _WS_OPEN:
                # as uvicorn (websockets' handler returning): a normal close
                self.send({"type": "websocket.close", "code": 1000})
            elif state == _WS_RESPONSE and not self.complete:
                log.error("ASGI app returned without completing its response (%s)",
                          scope["path"])
                self.abort()
        except asyncio.CancelledError:
            if self.timed_out:
                log.debug("ASGI task cancelled: handler timeout (%s)", scope["path"])
            self._ws_fail()
            if not self.timed_out:
                raise
        except Exception:
            if not self.closed:
                log.exception("exception in ASGI app (websocket %s)", scope["path"])
            self._ws_fail()
        finally:
            self._finish()

    def _ws_fail(self):
        # before the accept a 500 (uvicorn's answer); after it 1011, an
        # internal error, rather than uvicorn's bare TCP close
        if self.ws_state == _WS_OPEN and not self.closed:
            try:
                self.send({"type": "websocket.close", "code": 1011})
            except Exception:
                pass
        elif self.ws_state != _WS_OPEN:
            self.abort()

    async def _pathsend(self, path):
        if not self.status:
            raise RuntimeError("http.response.pathsend before http.response.start")
        if self.started or self.complete:
            raise RuntimeError("http.response.pathsend after a body")
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            self.started = True
            if self.closed:
                return
            self.start(self.status, self.headers)
            # the engine dups fd and sends from it: nothing is buffered, so
            # no need to wait for the queue to drain
            self.sendfile(fd, 0, size)
        finally:
            os.close(fd)
        self.complete = True
        self.end()
        self.wake()

    async def run(self, app, scope):
        try:
            await app(scope, self.receive, self.send)
            if not self.complete:
                if not self.closed:
                    log.error("ASGI app returned without %s (%s %s)",
                              "completing its response" if self.status
                              else "starting a response", scope["method"], scope["path"])
                self.abort()
        except asyncio.CancelledError:
            if self.timed_out:  # the engine logged it and answered 503
                log.debug("ASGI task cancelled: handler timeout (%s %s)",
                          scope["method"], scope["path"])
            self.abort()
            if not self.timed_out:
                raise
        except ClientDisconnected:
            if not self.closed:
                log.exception("exception in ASGI app (%s %s)", scope["method"], scope["path"])
            self.abort()
        except Exception:
            if not self.closed:
                log.exception("exception in ASGI app (%s %s)", scope["method"], scope["path"])
            self.abort()
        finally:
            self._finish()


# ---- lifespan ----------------------------------------------------------------

class Lifespan:
    """The lifespan protocol: startup before the first request, shutdown
    after the last. mode: 'auto' (an app that raises at once does not speak
    it), 'on' (it must), 'off'."""

    def __init__(self, app, mode, loop):
        self.app = app
        self.mode = mode
        self.loop = loop
        self.state = {}
        self.inbox = asyncio.Queue()
        self.events = {}
        self.task = None
        self.unsupported = False
        self.error = None

    async def _receive(self):
        return await self.inbox.get()

    async def _send(self, message):
        kind = message["type"]
        if kind in ("lifespan.startup.complete", "lifespan.startup.failed",
                    "lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            phase = kind.split(".")[1]
            if kind.endswith("failed"):
                self.error = message.get("message", "") or "(no message)"
            f = self.events.get(phase)
            if f is not None and not f.done():
                f.set_result(kind)
        else:
            raise ValueError("unknown lifespan message %r" % kind)

    async def _main(self):
        scope = {"type": "lifespan",
                 "asgi": {"version": ASGI_VERSION, "spec_version": SPEC_VERSION},
                 "state": self.state}
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as e:
            started = self.events["startup"].done()
            if not started:
                if self.mode == "auto":
                    self.unsupported = True
                    log.info("ASGI 'lifespan' protocol appears unsupported (%s: %s)",
                             type(e).__name__, e)
                else:
                    self.error = "%s: %s" % (type(e).__name__, e)
                    log.error("exception in ASGI lifespan startup", exc_info=True)
            else:
                self.error = "%s: %s" % (type(e).__name__, e)
                log.error("exception in ASGI lifespan", exc_info=True)
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                pass
        else:
            if not self.events["startup"].done():
                # returned without a word: as uvicorn, serve without it
                # (an error with --lifespan on)
                if self.mode == "on":
                    self.error = "the app returned before lifespan.startup.complete"
                else:
                    self.unsupported = True
        finally:
            for f in self.events.values():
                if not f.done():
                    f.set_result(None)

    async def startup(self):
        """Raises BootFailed when the app cannot start."""
        if self.mode == "off":
            return
        self.events["startup"] = self.loop.create_future()
        self.events["shutdown"] = self.loop.create_future()
        self.task = self.loop.create_task(self._main())
        await self.inbox.put({"type": "lifespan.startup"})
        result = await self.events["startup"]
        if self.unsupported:
            return
        if result != "lifespan.startup.complete":
            raise BootFailed("ASGI lifespan startup failed: %s" % (self.error or "the app "
                             "returned before lifespan.startup.complete"))

    async def shutdown(self, timeout=30):
        if self.task is None or self.unsupported or self.task.done():
            return
        await self.inbox.put({"type": "lifespan.shutdown"})
        try:
            result = await asyncio.wait_for(asyncio.shield(self.events["shutdown"]), timeout)
        except asyncio.TimeoutError:
            log.error("ASGI lifespan shutdown timed out")
            self.task.cancel()
            return
        if result == "lifespan.shutdown.failed":
            log.error("ASGI lifespan shutdown failed: %s", self.error)


# ---- one serving process ---------------------------------------------------------

class AsgiWorker:
    """An engine loop embedded in this process's asyncio loop, serving app.
    The same face as server.Worker (start, ports, stop, wait, on_retire), so
    the supervisor runs either."""

    def __init__(self, app, cfg, listen=None, multiprocess=False):
        self.app = app
        self.cfg = cfg
        self.listen = listen if listen is not None else [(parse_bind(b), None) for b in cfg.bind]
        self.multiprocess = multiprocess
        self.on_retire = self.stop
        self.loop = None
        self.srv = None
        self.exchanges = set()
        self.count = 0
        self.stop_requested = False
        self.stop_event = None
        self.drained = None
        self.lifespan = None
        limit = cfg.max_requests
        if limit and cfg.max_requests_jitter:
            import random
            limit += random.randint(0, cfg.max_requests_jitter)
        self.max_requests = limit
        self.root_path = cfg.root_path

    # -- setup
    def start(self):
        cfg = self.cfg
        loop = self.loop = new_event_loop(getattr(cfg, "loop", "auto"))
        asyncio.set_event_loop(loop)
        self.stop_event = asyncio.Event()
        self.drained = loop.create_future()
        if self.stop_requested:
            self.stop_event.set()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self.stop)
            except (ValueError, RuntimeError, NotImplementedError):
                pass  # not the main thread: the caller's handlers stay
        self.lifespan = Lifespan(self.app, getattr(cfg, "lifespan", "auto"), loop)
        try:
            loop.run_until_complete(self.lifespan.startup())
        except BootFailed as e:
            raise UsageError(str(e))
        if cfg.loops > 1:
            log.warning("--loops %d: an ASGI worker has one engine loop, on its asyncio "
                        "thread (use --workers for more cores)", cfg.loops)
        srv = _piston.AsgiServer(self._on_request, Exchange)
        # --ws none: WebSocket requests reach the app as plain HTTP (as
        # uvicorn's today; the engine keeps the connection HTTP/1.1)
        srv.set_websocket(getattr(cfg, "ws", "auto") != "none")
        configure_server(srv, cfg, self.listen, self.multiprocess)
        try:
            srv.start()
        except _piston.Error as e:
            if e.args[0] == _piston.E_TLS:
                raise UsageError(e.args[1])
            raise UsageError("cannot listen on %s: %s" % (
                ", ".join(show_bind(s) for s, _ in self.listen), e.args[1]))
        self.srv = srv
        spec0 = self.listen[0][0]
        if spec0[0] == "tcp":
            self.server = (spec0[1], srv.port(0))
        elif spec0[0] == "unix":
            self.server = (spec0[1], None)
        else:
            self.server = None
        srv.set_scope(self.root_path, self.server, self.lifespan.state)
        loop.add_reader(srv.fd(), self._poll)
        self._poll()

    def ports(self):
        return [self.srv.port(i) for i in range(len(self.listen))]

    def describe(self):
        return "asyncio loop %s.%s" % (type(self.loop).__module__, type(self.loop).__name__)

    # -- the engine, inside the asyncio loop
    def _poll(self):
        if not self.srv.poll():
            self.loop.remove_reader(self.srv.fd())
            if not self.drained.done():
                self.drained.set_result(None)

    def _on_request(self, ex, scope):
        # inside poll: the engine made the exchange and its scope; start the app
        ex.host = self
        ex.timed_out = False
        ex.task = None
        self.exchanges.add(ex)
        coro = ex.run_ws(self.app, scope) if ex.ws else ex.run(self.app, scope)
        if _EAGER:
            ex.task = asyncio.Task(coro, loop=self.loop, eager_start=True)
        else:
            ex.task = self.loop.create_task(coro)
        if self.max_requests:
            self.count += 1
            if self.count == self.max_requests:
                log.info("max requests (%d) reached: restarting", self.max_requests)
                self.on_retire()

    def finished(self, ex):
        self.exchanges.discard(ex)

    # -- stopping
    def stop(self):
        """Asks for a graceful stop (safe from a signal handler)."""
        self.stop_requested = True
        loop = self.loop
        if loop is not None and self.stop_event is not None:
            try:
                loop.call_soon_threadsafe(self.stop_event.set)
            except RuntimeError:
                pass

    def _parent_gone(self, fd):
        # the supervisor's life pipe reads EOF: it is gone
        self.loop.remove_reader(fd)
        log.warning("supervisor is gone: stopping")
        self.stop_event.set()

    async def _serve(self, parent_fd):
        if parent_fd is not None:
            self.loop.add_reader(parent_fd, self._parent_gone, parent_fd)
        await self.stop_event.wait()  # no timeout: idle means asleep
        timeout = self.cfg.shutdown_timeout
        self.srv.stop(int(timeout * 1000))
        self._poll()  # the pass that stops accepting
        getattr(self, "on_draining", lambda: None)()
        try:
            await asyncio.wait_for(asyncio.shield(self.drained), timeout + 5)
        except asyncio.TimeoutError:
            log.error("the engine loop did not drain in time")
        # handlers still running once every connection is gone
        tasks = [ex.task for ex in self.exchanges if ex.task is not None and not ex.task.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=1.0)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        await self.lifespan.shutdown(timeout)

    def wait(self, parent_fd=None):
        """Serves until stop() (or the supervisor is gone: parent_fd, its life
        pipe, reads EOF), then drains and runs the lifespan shutdown."""
        loop = self.loop
        try:
            loop.run_until_complete(self._serve(parent_fd))
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            except Exception:
                pass
            # served and drained: a second SIGTERM/SIGINT while the process
            # finishes must not kill it (closing the loop would put back the
            # default handlers, and so does the interpreter's exit)
            for sig in (signal.SIGTERM, signal.SIGINT):
                try:
                    loop.remove_signal_handler(sig)
                    signal.signal(sig, signal.SIG_IGN)
                except (ValueError, RuntimeError, NotImplementedError):
                    pass  # not the main thread
            asyncio.set_event_loop(None)
            loop.close()
