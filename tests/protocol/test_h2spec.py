"""h2spec (the HTTP/2 conformance suite, installed by scripts/setup-deps.sh
into .tools/bin) against piston-static, in clear text (h2c with prior
knowledge) and over TLS (ALPN h2). Every case must pass but the ones named
here, each with the reason it is a known, accepted difference; a case that
starts failing, or one of these that starts passing, fails this test."""

import os
import subprocess
import tempfile
import xml.etree.ElementTree as ET

import pytest

import util

H2SPEC = os.path.join(util.REPO, ".tools", "bin", "h2spec")

KNOWN = {
    # The clear-text port speaks HTTP/1.1 too: bytes that are not the
    # HTTP/2 preface are an HTTP/1.1 request, answered 400 and closed,
    # where h2spec expects an HTTP/2-only port to close at once.
    ("http2/3.5", "Sends invalid connection preface"): "plain",
    # nghttp2 ignores a HEADERS frame on a lower, never-opened stream id
    # rather than failing the connection (it does not remember every id it
    # saw); nghttp2's verdicts are kept as they are.
    ("http2/5.1.1", "Sends stream identifier that is numerically smaller than previous"): "both",
}


def run_h2spec(port, tls):
    assert os.access(H2SPEC, os.X_OK), "h2spec is missing: run scripts/setup-deps.sh"
    report = tempfile.mktemp(suffix=".xml")
    args = [H2SPEC, "-h", "127.0.0.1", "-p", str(port), "-P", "/hello", "-o", "3",
            "-j", report]
    if tls:
        args += ["-t", "-k"]
    subprocess.run(args, capture_output=True, timeout=300)
    failed, passed = set(), 0
    for case in ET.parse(report).getroot().iter("testcase"):
        key = (case.get("package"), case.get("classname"))
        if case.find("failure") is not None or case.find("error") is not None:
            failed.add(key)
        elif case.find("skipped") is None:
            passed += 1
    os.unlink(report)
    return failed, passed


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2spec(tls, tmp_path):
    tls = tls or util.TLS  # the TLS run gives every server a certificate
    cert, key = util.tls_files()
    args = ["--text", "/hello=Hello, World!"]
    if tls:
        args += ["--cert", cert, "--key", key]
    s = util.Server(util.STATIC, args)
    try:
        failed, passed = run_h2spec(s.port, tls)
    finally:
        s.stop_ok()
    expected = {k for k, where in KNOWN.items() if where == "both" or where == ("tls" if tls else "plain")}
    assert failed == expected, "unexpected: %r; now passing: %r" % (
        sorted(failed - expected), sorted(expected - failed))
    assert passed >= 140
