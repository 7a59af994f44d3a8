"""A page with many assets over HTTPS and HTTP/2, loaded by headless
Chromium from Piston: 20 stylesheets, 20 scripts and 20 PNG images (a few
KiB each, random content) and big.bin (1 MiB), all referenced by
index.html (h2_page.html filled in), which checks each one's content
itself (a script's token, a stylesheet's width, an image's size and pixel
sum, big.bin's SHA-256) and puts its verdict in window.verdict. Through
the hosts:

  c           build/piston-static --cert --key --dir (the engine's file routes)
  cli-static  the piston CLI with --static /=DIR (the app, h2_files_app.py's
              not_found, answers 404 to all else)
  asgi, wsgi  the piston CLI with h2_files_app.py's apps, which read the files
              and send them in 64 KiB chunks
  node        an Express app (express.static) under
              require('piston').createServer({ key, cert }, app)

The certificate is tests/protocol/pki.py's server one (signed by its
throwaway CA); Chromium is told to accept exactly its key
(--ignore-certificate-errors-spki-list, the SHA-256 of its SPKI), not
every certificate. Through the DevTools protocol's Network events the test
asserts that index.html and every asset came with status 200 over "h2" on
at most MAX_CONNECTIONS connections, and that the page found every asset
right. Three more cases check that the test can fail: the server with
--no-http2 (every response is then http/1.1), assets changed on disk
after the page was written (the page names each of them), and a pin of
another key (Chromium refuses the certificate). A missing chromium is a
failure, not a skip. Run by `make test-browser` (part of `make test`)."""

import asyncio
import base64
import hashlib
import json
import os
import random
import shutil
import struct
import tempfile
import time
import zlib

import pytest

from chromium import HERE, NODE, PISTON_CLI, TIMEOUT, Chromium, DevTools, Proc, free_port, util

import pki  # noqa: E402 (tests/protocol, on sys.path through chromium)

PAGE = os.path.join(HERE, "h2_page.html")
N = 20  # stylesheets, scripts and images each
BIG = 1 << 20
# Chromium multiplexes all of an origin's requests on one HTTP/2
# connection; over HTTP/1.1 it would open up to six
MAX_CONNECTIONS = 2


def spki_pin(cert):
    """The base64 SHA-256 of the certificate's SubjectPublicKeyInfo, as
    --ignore-certificate-errors-spki-list wants it."""
    pem = pki.openssl("x509", "-in", cert, "-pubkey", "-noout").stdout
    der = pki.openssl("pkey", "-pubin", "-outform", "DER", input=pem).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture(scope="module")
def certs():
    p = pki.PKI()
    yield p
    shutil.rmtree(p.dir, ignore_errors=True)


def png(width, height, rnd):
    """An opaque RGB PNG of random pixels, and the sum of their bytes."""
    rows = [bytes(rnd.randrange(256) for _ in range(3 * width)) for _ in range(height)]

    def chunk(kind, data):
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    data = (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"".join(b"\0" + r for r in rows)))
            + chunk(b"IEND", b""))
    return data, sum(sum(r) for r in rows)


def padding(rnd):
    return "%x" % rnd.getrandbits(8 * rnd.randrange(1000, 3000))


def write_file(folder, name, data):
    path = os.path.join(folder, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def write_site(folder, seed=1):
    """Writes index.html and its assets into folder; returns the assets'
    paths (index.html first)."""
    rnd = random.Random(seed)
    expected = {"scripts": [], "styles": [], "images": []}
    tags, names = [], ["index.html"]
    for i in range(N):
        width = rnd.randrange(10, 4000)
        write_file(folder, "s/%d.css" % i,
                   "/* %s */\n#c%d { display: block; width: %dpx; height: 1px; }\n"
                   % (padding(rnd), i, width))
        expected["styles"].append(width)
        tags.append('<link rel="stylesheet" href="s/%d.css">' % i)
        token = "%016x" % rnd.getrandbits(64)
        write_file(folder, "j/%d.js" % i,
                   "// %s\nwindow.loaded[%d] = %s;\n" % (padding(rnd), i, json.dumps(token)))
        expected["scripts"].append(token)
        tags.append('<script src="j/%d.js"></script>' % i)
        w, h = rnd.randrange(8, 40), rnd.randrange(8, 40)
        data, total = png(w, h, rnd)
        write_file(folder, "i/%d.png" % i, data)
        expected["images"].append([w, h, total])
        tags.append('<img id="i%d" src="i/%d.png" alt="">' % (i, i))
        tags.append('<div id="c%d"></div>' % i)
        names += ["s/%d.css" % i, "j/%d.js" % i, "i/%d.png" % i]
    big = rnd.randbytes(BIG)
    write_file(folder, "big.bin", big)
    expected["big"] = {"length": BIG, "sha256": hashlib.sha256(big).hexdigest()}
    names.append("big.bin")
    with open(PAGE) as f:
        html = f.read()
    html = html.replace("<!-- ASSETS", "\n".join(tags) + "\n<!--")
    html = html.replace("EXPECTED", json.dumps(expected))
    write_file(folder, "index.html", html)
    return names


def start_host(host, folder, cert, key, http2=True):
    """Starts the host serving folder over HTTPS; returns (its base URL, Proc)."""
    port = free_port()
    bind = "127.0.0.1:%d" % port
    url = "https://127.0.0.1:%d/" % port
    if host == "c":
        assert os.access(util.STATIC, os.X_OK), "%s is missing: run `make`" % util.STATIC
        args = [util.STATIC, "--bind", bind, "--cert", cert, "--key", key, "--dir", folder]
        return url, Proc(args + ([] if http2 else ["--no-http2"]), port)
    if host == "node":
        assert NODE, "node is not on PATH"
        args = [NODE, os.path.join(HERE, "node_h2_static_app.js"), "--bind", bind, "--dir", folder,
                "--cert", cert, "--key", key]
        return url, Proc(args + ([] if http2 else ["--http2", "0"]), port)
    assert os.access(PISTON_CLI, os.X_OK), "%s is missing: run `make dev`" % PISTON_CLI
    app = {"cli-static": "not_found", "asgi": "asgi_app", "wsgi": "wsgi_app"}[host]
    args = [PISTON_CLI, "h2_files_app:" + app, "--bind", bind, "--certfile", cert, "--keyfile", key,
            "--log-level", "warning"]
    if host == "cli-static":
        args += ["--static", "/=" + folder]
    env = dict(os.environ, PISTON_H2_DIR=folder)
    return url, Proc(args + ([] if http2 else ["--no-http2"]), port, cwd=HERE, env=env)


async def load(devtools_port, url, names):
    """Loads url in a new tab with the Network domain on; returns (the
    page's verdict, the navigation's errorText, {url: what the Network
    events said of it}) once the verdict is in and every asset's request
    has finished or failed (or after TIMEOUT)."""
    async with DevTools(devtools_port) as cdp:
        await cdp.call("Network.enable")
        await cdp.call("Network.setCacheDisabled", cacheDisabled=True)
        nav = await cdp.call("Page.navigate", url=url + "index.html")
        deadline = time.monotonic() + TIMEOUT
        verdict, seen = None, {}
        while time.monotonic() < deadline and not nav.get("errorText"):
            verdict = verdict or await cdp.evaluate("window.verdict", check=False)
            seen = requests(cdp.events)
            if verdict and all("end" in seen.get(url + n, {}) for n in names):
                break
            await asyncio.sleep(0.1)
        return verdict, nav.get("errorText"), seen


def requests(events):
    """{url: {status, protocol, connection, end}} from Network events, the
    last request of each URL; end is "finished" or the error."""
    urls, seen = {}, {}
    for method, p in events:
        if method == "Network.requestWillBeSent":
            urls[p["requestId"]] = p["request"]["url"]
            seen[p["request"]["url"]] = {}
        elif method == "Network.responseReceived":
            r = p["response"]
            seen[r["url"]].update(status=r["status"], protocol=r.get("protocol"),
                                  connection=r.get("connectionId"))
        elif method == "Network.loadingFinished" and p["requestId"] in urls:
            seen[urls[p["requestId"]]]["end"] = "finished"
        elif method == "Network.loadingFailed" and p["requestId"] in urls:
            seen[urls[p["requestId"]]]["end"] = p.get("errorText", "failed")
    return seen


def problems(url, names, verdict, error, seen):
    """What went wrong: the page's own findings, then each asset whose
    response was not a 200 over h2 that finished, then too many
    connections."""
    if error:
        return ["navigation: " + error]
    out = ["page: no verdict"] if not verdict else list(verdict["problems"])
    for n in names:
        s = seen.get(url + n, {})
        if (s.get("status"), s.get("protocol"), s.get("end")) != (200, "h2", "finished"):
            out.append("%s: %s" % (n, s or "not requested"))
    conns = {seen.get(url + n, {}).get("connection") for n in names}
    if len(conns) > MAX_CONNECTIONS:
        out.append("%d connections: %s" % (len(conns), sorted(map(str, conns))))
    return out


def run(host, certs, http2=True, pin=None, spoil=None):
    """Serves a fresh site from host, loads it in Chromium pinned to pin
    (default: the server certificate's key); returns (problems, the
    server's output). spoil(folder) may change the files after the page is
    written."""
    cert, key = certs.server
    with tempfile.TemporaryDirectory() as folder:
        names = write_site(folder)
        if spoil:
            spoil(folder)
        url, server = start_host(host, folder, cert, key, http2)
        try:
            pin = "--ignore-certificate-errors-spki-list=" + (pin or spki_pin(cert))
            with Chromium(pin) as browser:
                found = problems(url, names, *asyncio.run(load(browser.port, url, names)))
        finally:
            server.stop()
        assert server.proc.returncode == 0, (host, server.proc.returncode, server.output())
        return found, server.output()


@pytest.mark.parametrize("host", ["c", "cli-static", "asgi", "wsgi", "node"])
def test_chromium_h2_assets(host, certs):
    found, logs = run(host, certs)
    assert found == [], (found, logs)


def test_fails_without_http2(certs):
    found, _ = run("c", certs, http2=False)
    not_h2 = [p for p in found if "'protocol': 'http/1.1'" in p]
    assert len(not_h2) == 3 * N + 2, found


def test_fails_on_a_wrong_asset(certs):
    def spoil(folder):
        with open(os.path.join(folder, "j/7.js"), "a") as f:
            f.write("window.loaded[7] = 'other';\n")
        with open(os.path.join(folder, "s/5.css"), "a") as f:
            f.write("#c5 { width: 3px; }\n")
        os.replace(os.path.join(folder, "i/4.png"), os.path.join(folder, "i/3.png"))
        os.truncate(os.path.join(folder, "big.bin"), BIG - 1)

    found, _ = run("c", certs, spoil=spoil)
    # i/4.png twice: the page has no image, the server answered 404
    named = [p.split(":")[0] for p in found]
    assert named == ["j/7.js", "s/5.css", "i/3.png", "i/4.png", "big.bin", "i/4.png"], found


def test_fails_with_another_key_pinned(certs):
    found, _ = run("c", certs, pin=spki_pin(certs.stranger[0]))
    assert found == ["navigation: net::ERR_CERT_AUTHORITY_INVALID"], found
