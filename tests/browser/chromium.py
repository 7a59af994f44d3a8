"""What the browser tests share: servers started on a free port (Proc),
headless Chromium started with a throwaway profile (Chromium), and a
DevTools protocol session on a new tab (DevTools: calls, and the events
that came in meanwhile), over python3-websockets. A missing chromium is a
failure, not a skip."""

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import websockets

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "protocol"))

import util  # noqa: E402

CHROMIUM = shutil.which("chromium")
NODE = shutil.which("node")
PISTON_CLI = os.path.join(util.REPO, ".venv", "bin", "piston")
TIMEOUT = 30


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A server started on a given port, up once the port accepts."""

    def __init__(self, args, port, cwd=None, env=None):
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + TIMEOUT
        while True:
            assert self.proc.poll() is None, "%s exited: %s" % (args[0], self.output())
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "%s is not listening" % args[0]
                time.sleep(0.05)

    def output(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-2000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Chromium:
    """Headless Chromium with a throwaway profile and a DevTools port
    (self.port), as a context manager; extra flags are added to the
    command line."""

    def __init__(self, *flags):
        assert CHROMIUM, "chromium is not on PATH: scripts/setup-deps.sh installs it"
        self.flags = flags

    def __enter__(self):
        self.profile = tempfile.mkdtemp(prefix="piston-chromium-")
        # its own process group, so that its helper processes go with it
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--user-data-dir=" + self.profile,
             "--remote-debugging-port=0", *self.flags, "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            start_new_session=True)
        try:
            # Chromium writes the port it took into the profile
            active = os.path.join(self.profile, "DevToolsActivePort")
            deadline = time.monotonic() + TIMEOUT
            while not (os.path.exists(active) and open(active).read().count("\n") >= 1):
                assert self.proc.poll() is None, "chromium exited with %s" % self.proc.returncode
                assert time.monotonic() < deadline, "chromium opened no DevTools port"
                time.sleep(0.05)
            self.port = int(open(active).read().split("\n")[0])
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        # a helper may still be writing into the profile for a moment
        for _ in range(50):
            shutil.rmtree(self.profile, ignore_errors=True)
            if not os.path.exists(self.profile):
                break
            time.sleep(0.1)


class DevTools:
    """A DevTools protocol session on a new tab of the browser at
    devtools_port, as an async context manager: `await call(method,
    **params)` returns the result; the events that arrive meanwhile are
    kept in self.events as (method, params)."""

    def __init__(self, devtools_port):
        self.devtools_port = devtools_port
        self.events = []
        self._ids = iter(range(1, 1 << 30))

    async def __aenter__(self):
        req = urllib.request.Request(
            "http://127.0.0.1:%d/json/new?about:blank" % self.devtools_port, method="PUT")
        with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
            target = json.load(r)
        self._ws = await websockets.connect(target["webSocketDebuggerUrl"], max_size=None)
        return self

    async def __aexit__(self, *exc):
        await self._ws.close()

    async def call(self, method, **params):
        i = next(self._ids)
        await self._ws.send(json.dumps({"id": i, "method": method, "params": params}))
        while True:
            m = json.loads(await asyncio.wait_for(self._ws.recv(), TIMEOUT))
            if m.get("id") == i:
                assert "error" not in m, m
                return m["result"]
            if "method" in m:
                self.events.append((m["method"], m.get("params", {})))

    async def evaluate(self, expression, check=True):
        """The value of a JavaScript expression in the page (JSON-able);
        with check False, None if it threw (a page still loading has no
        document yet)."""
        r = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in r:
            assert not check, r
            return None
        return r["result"].get("value")
