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
import tempfile
import time

import pytest

from chromium import NODE, PISTON_CLI, TIMEOUT, Chromium, DevTools, Proc, free_port, util

HERE = os.path.dirname(os.path.abspath(__file__))
PAGE = os.path.join(HERE, "ws_page.html")


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
    async with DevTools(devtools_port) as cdp:
        await cdp.call("Page.navigate", url=url)
        deadline = time.monotonic() + TIMEOUT
        while True:
            dom = await cdp.evaluate("document.documentElement.outerHTML", check=False) or ""
            out = dom[dom.find('<pre id="out">'):dom.find("</pre>")]
            if " done" in out or "FAILED" in out or time.monotonic() > deadline:
                return dom
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("host", ["c", "asgi", "node"])
def test_chromium_websocket(host):
    with tempfile.TemporaryDirectory() as folder:
        url, procs = start_hosts(host, folder)
        try:
            with Chromium() as browser:
                dom = asyncio.run(page_dom(browser.port, url))
        finally:
            for p in procs:
                p.stop()
        logs = " / ".join(p.output() for p in procs)
        out = dom[dom.find('<pre id="out">'):dom.find("</pre>")]
        assert "open extensions=permessage-deflate" in out, (out, logs)
        for line in ("text ok", "binary ok", "big ok", "closed 1000 done"):
            assert line in out, (line, out, logs)
        for p in procs:
            assert p.proc.returncode == 0, (p.proc.args[0], p.proc.returncode, p.output())
