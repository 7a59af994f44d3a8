"""A real browser's WebSocket against Piston: headless Chromium (Debian's
chromium, installed by scripts/setup-deps.sh) loads ws_page.html, which
opens a WebSocket to an echo, sends a text message, a binary one and a
1 MiB one with the permessage-deflate Chromium offers, and writes each
outcome into the page; the test reads the page's DOM. Through three hosts:

  c     the C test server's /ws-echo (--ws-deflate 1); it has no file
        serving, so piston-static --dir serves the page and the page opens
        its WebSocket to the test server's port (browsers apply no
        same-origin rule to WebSocket)
  asgi  the piston CLI with tests/python/asgi_ws_apps.py's /echo and the
        page under --static /page=DIR (permessage-deflate is on by default)
  node  the native App (node_ws_page_app.js): app.static('/page', DIR) and
        app.ws('/ws-echo'), wsDeflate 1

Why not --dump-dom: it dumps once the page's load event and the virtual
time budget are through, and virtual time does not wait for WebSocket
traffic, so it dumped before the 1 MiB echo came back. The test drives the
browser over the DevTools protocol instead (python3-websockets, the suite's
WebSocket client) and reads document.documentElement.outerHTML until the
page says it is done. A missing chromium is a failure, not a skip. Run by
`make test-browser` (part of `make test`)."""

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest
import websockets

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "protocol"))

import util  # noqa: E402

CHROMIUM = shutil.which("chromium")
PAGE = os.path.join(HERE, "ws_page.html")
PISTON_CLI = os.path.join(util.REPO, ".venv", "bin", "piston")
NODE = shutil.which("node")
TIMEOUT = 30


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A server started on a given port, up once the port accepts."""

    def __init__(self, args, port, cwd=None):
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(args, cwd=cwd, stdout=self.log, stderr=self.log,
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


def write_page(folder, ws_path, ws_port=None):
    """ws_page.html with where its WebSocket goes filled in."""
    with open(PAGE) as f:
        html = f.read()
    html = html.replace("WS_PATH", json.dumps(ws_path))
    html = html.replace("WS_PORT", json.dumps(str(ws_port) if ws_port else ""))
    with open(os.path.join(folder, "index.html"), "w") as f:
        f.write(html)


def start_hosts(host, folder):
    """Starts the host's servers; returns (the page's URL, [Proc])."""
    port = free_port()
    if host == "c":
        for b in (util.TESTSERVER, util.STATIC):
            assert os.access(b, os.X_OK), "%s is missing: run `make`" % b
        write_page(folder, "/ws-echo", port)
        ws = Proc([util.TESTSERVER, "--bind", "127.0.0.1:%d" % port, "--ws-deflate", "1"], port)
        page_port = free_port()
        page = Proc([util.STATIC, "--bind", "127.0.0.1:%d" % page_port, "--dir", folder], page_port)
        return "http://127.0.0.1:%d/index.html" % page_port, [ws, page]
    if host == "asgi":
        assert os.access(PISTON_CLI, os.X_OK), "%s is missing: run `make dev`" % PISTON_CLI
        write_page(folder, "/echo")
        p = Proc([PISTON_CLI, "asgi_ws_apps:app", "--bind", "127.0.0.1:%d" % port,
                  "--static", "/page=%s" % folder, "--log-level", "warning"], port,
                 cwd=os.path.join(util.REPO, "tests", "python"))
        return "http://127.0.0.1:%d/page/index.html" % port, [p]
    assert NODE, "node is not on PATH"
    write_page(folder, "/ws-echo")
    p = Proc([NODE, os.path.join(HERE, "node_ws_page_app.js"), "--bind", "127.0.0.1:%d" % port,
              "--page", folder, "--wsDeflate", "1"], port)
    return "http://127.0.0.1:%d/page/index.html" % port, [p]


async def page_dom(devtools_port, url):
    """Opens url in a new tab; returns its DOM once the page is done (or
    after TIMEOUT)."""
    req = urllib.request.Request("http://127.0.0.1:%d/json/new?about:blank" % devtools_port,
                                 method="PUT")
    with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
        target = json.load(r)
    async with websockets.connect(target["webSocketDebuggerUrl"], max_size=None) as cdp:
        ids = iter(range(1, 1 << 30))

        async def call(method, **params):
            i = next(ids)
            await cdp.send(json.dumps({"id": i, "method": method, "params": params}))
            while True:
                m = json.loads(await cdp.recv())
                if m.get("id") == i:
                    assert "error" not in m, m
                    return m["result"]

        await call("Page.navigate", url=url)
        deadline = time.monotonic() + TIMEOUT
        while True:
            r = await call("Runtime.evaluate", expression="document.documentElement.outerHTML")
            dom = r["result"].get("value", "")
            out = dom[dom.find('<pre id="out">'):dom.find("</pre>")]
            if " done" in out or "FAILED" in out or time.monotonic() > deadline:
                return dom
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("host", ["c", "asgi", "node"])
def test_chromium_websocket(host):
    assert CHROMIUM, "chromium is not on PATH: scripts/setup-deps.sh installs it"
    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryDirectory() as profile:
        url, procs = start_hosts(host, folder)
        browser = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--user-data-dir=" + profile, "--remote-debugging-port=0",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        try:
            # Chromium writes the port it took into the profile
            active = os.path.join(profile, "DevToolsActivePort")
            deadline = time.monotonic() + TIMEOUT
            while not (os.path.exists(active) and open(active).read().count("\n") >= 1):
                assert browser.poll() is None, "chromium exited with %s" % browser.returncode
                assert time.monotonic() < deadline, "chromium opened no DevTools port"
                time.sleep(0.05)
            devtools_port = int(open(active).read().split("\n")[0])
            dom = asyncio.run(page_dom(devtools_port, url))
        finally:
            browser.kill()
            browser.wait()
            for p in procs:
                p.stop()
        logs = " / ".join(p.output() for p in procs)
        out = dom[dom.find('<pre id="out">'):dom.find("</pre>")]
        assert "open extensions=permessage-deflate" in out, (out, logs)
        for line in ("text ok", "binary ok", "big ok", "closed 1000 done"):
            assert line in out, (line, out, logs)
        for p in procs:
            assert p.proc.returncode == 0, (p.proc.args[0], p.proc.returncode, p.output())
