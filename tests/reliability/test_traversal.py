"""6. File-mount traversal over HTTP: piston-static --dir on a temporary
tree, a secret file next to (outside) the root, symlinks out of the root;
hundreds of encodings of "go up" must never return anything from outside."""

import itertools
import os

import pytest

import util
from rel import figure

SECRET = b"TOP-SECRET-7f3a9c"
INSIDE = b"inside file\n"


@pytest.fixture
def tree(tmp_path):
    outside = tmp_path / "outside"
    root = tmp_path / "www"
    (root / "sub" / "deeper").mkdir(parents=True)
    outside.mkdir()
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (outside / "secret.txt").write_bytes(SECRET)
    (root / "index.txt").write_bytes(INSIDE)
    (root / "sub" / "deeper" / "f.txt").write_bytes(INSIDE)
    os.symlink(str(tmp_path / "secret.txt"), str(root / "link-abs"))
    os.symlink("../secret.txt", str(root / "link-rel"))
    os.symlink(str(outside), str(root / "link-dir"))
    os.symlink("../../outside", str(root / "sub" / "link-dir2"))
    os.symlink("/etc/passwd", str(root / "passwd"))
    os.symlink("/proc/self/root", str(root / "magic"))
    os.symlink("index.txt", str(root / "ok-link"))  # stays inside
    return root


UPS = [
    "..", "%2e%2e", "%2E%2E", ".%2e", "%2e.", "%252e%252e", "..%00", "%2e%2e%00",
    "..%2f..", "..\\..", "..%5c..", "..%5C..", "%c0%ae%c0%ae", "%e0%80%ae%e0%80%ae",
    "%uff0e%uff0e", "..;", "...", ". .", "%2e%2e%2f%2e%2e",
]
SEPS = ["/", "%2f", "%2F", "\\", "%5c", "//", "/./", "%00/", "%252f"]
TARGETS = ["secret.txt", "outside/secret.txt", "etc/passwd", "proc/self/environ"]
PREFIXES = ["/", "/sub/", "/sub/deeper/", "//", "/./", "/index.txt/"]


def _payloads():
    out = set()
    for pre, up, sep, tgt in itertools.product(PREFIXES, UPS, SEPS, TARGETS):
        for depth in (1, 2, 3, 8):
            out.add(pre + (up + sep) * depth + tgt)
    out.update([
        "/link-abs", "/link-rel", "/link-dir/secret.txt", "/sub/link-dir2/secret.txt",
        "/passwd", "/magic/etc/passwd", "/link-dir/../secret.txt",
        "/" + "a/" * 3000 + "../" * 3001 + "secret.txt",
        "/" + "x" * 7000, "/" + "../" * 2500 + "secret.txt",
        "/secret.txt%00.txt", "/index.txt%00/../../secret.txt",
        "http://test/../secret.txt", "http://test/%2e%2e/secret.txt",
        "/%2e%2e/%2e%2e/secret.txt", "/sub/..%2f..%2fsecret.txt",
        "/sub%2f..%2f..%2fsecret.txt", "/..%252fsecret.txt",
        "/%2e%2e%5csecret.txt", "/\\..\\secret.txt", "/sub/deeper/../../../secret.txt",
        "/%C0%AE%C0%AE/secret.txt", "/.%00./secret.txt", "/%00", "/..",
        "/.", "/%2e", "/sub/%2e%2e", "/sub/..", "/sub/.%2e/..%2f/secret.txt",
    ])
    return sorted(out)


def test_file_mount_never_leaves_the_root(server, tree):
    s = server(util.STATIC, ["--dir", str(tree), "--max-url-size", "16384",
                             "--max-head-size", "32768", "--idle-timeout", "5"])
    # positive controls: the mount works, and a symlink inside the root
    # to a file inside the root is served
    for path in ("/index.txt", "/sub/deeper/f.txt", "/ok-link"):
        r = util.get(s.addr, path)
        assert (r.status, r.body) == (200, INSIDE), (path, r)
    payloads = _payloads()
    statuses = {}
    leaks = []
    c = util.Conn(s.addr)
    try:
        for p in payloads:
            req = ("GET %s HTTP/1.1\r\nHost: test\r\n\r\n" % p).encode("latin-1")
            c.send(req)
            r = c.read_response()
            statuses[r.status] = statuses.get(r.status, 0) + 1
            if SECRET in r.body or b"root:" in r.body or (r.status == 200 and r.body != INSIDE):
                leaks.append((p[:120], r.status, r.body[:80]))
            if r.header("Connection") == "close":
                c.expect_eof()
                c.close()
                c = util.Conn(s.addr)
    finally:
        c.close()
    figure("traversal.requests_tried", len(payloads))
    figure("traversal.statuses", dict(sorted(statuses.items())))
    figure("traversal.leaks", len(leaks))
    assert not leaks, leaks[:10]
    # only "not found"-like answers (and 200 for paths that resolve inside)
    assert set(statuses) <= {200, 400, 404, 414, 431}, statuses
    util.assert_serving_path(s.addr, "/index.txt", INSIDE)
