"""4. Clients that reset (SO_LINGER 0) mid-request and mid-response,
thousands of times and from several threads at once, against the
ASan + UBSan + LeakSanitizer build of piston-testserver (build-asan): no
crash, no sanitizer report, no leak at the SIGTERM exit (exit code 0), no
stuck connection or handle (/stats live=0 at the end)."""

import os
import socket
import ssl
import subprocess
import time

import util
from rel import ASAN_TESTSERVER, TLS, TLS_SCENARIOS, figure, read_some, reset_clients, rst, size

# Over TLS each one is a handshake first, against the ASan build: 3,000 in
# make test's TLS run (the soak keeps 60,000).
N_RESETS = size(6000, 60000, tls=3000)
THREADS = 8

SAN_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:halt_on_error=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
    "LSAN_OPTIONS": "report_objects=1",
}
SAN_MARKERS = ("Sanitizer", "runtime error", "ERROR:", "leak")


# Each scenario sends something, maybe reads part of the answer, then resets.
SCENARIOS = {
    "partial-head": (b"GET /hel", 0),
    "head-no-end": (b"GET /hello HTTP/1.1\r\nHost: test\r\n", 0),
    "partial-body-loop": (b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000, 0),
    "partial-body-thread": (b"POST /echo-thread HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000, 0),
    "partial-chunked-body": (b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n8", 0),
    "expect-continue": (b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n", 1),
    "big-mid-response": (b"GET /big?bytes=4000000 HTTP/1.1\r\nHost: test\r\n\r\n", 100000),
    "big-thread-mid-response": (b"GET /big-thread?bytes=4000000 HTTP/1.1\r\nHost: test\r\n\r\n", 100000),
    "big-before-response": (b"GET /big?bytes=4000000 HTTP/1.1\r\nHost: test\r\n\r\n", 0),
    "chunked-mid-response": (b"GET /chunked?n=2000&size=1000 HTTP/1.1\r\nHost: test\r\n\r\n", 20000),
    "sendfile-mid-response": (b"GET /sendfile HTTP/1.1\r\nHost: test\r\n\r\n", 50000),
    "slow-before-response": (b"GET /slow?ms=20 HTTP/1.1\r\nHost: test\r\n\r\n", 0),
    "never": (b"GET /never HTTP/1.1\r\nHost: test\r\n\r\n", 0),
    "pipelined": (b"GET /hello HTTP/1.1\r\nHost: test\r\n\r\n" * 3 + b"GET /big?bytes=1000000 HTTP/1.1\r\nHost: test\r\n\r\n", 1),
    "abort-mid": (b"GET /abort-mid HTTP/1.1\r\nHost: test\r\n\r\n", 1),
    "echo-mid-response": (b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 300000\r\n\r\n" + b"y" * 300000, 1000),
}
# Over TLS every scenario runs after the handshake, through TLS records, and
# rel.TLS_SCENARIOS add resets in the handshake itself.
SCENARIOS.update(TLS_SCENARIOS)


def test_lsan_is_active_here(tmp_path):
    """Positive control: a leaking program built the same way is reported,
    so an empty report below means no leak, not a disabled LeakSanitizer."""
    src = tmp_path / "leak.c"
    src.write_text("#include <stdlib.h>\nvoid *p;\nint main(void){p=malloc(77);p=0;return 0;}\n")
    exe = tmp_path / "leak"
    subprocess.run(["clang", "-g", "-fsanitize=address", "-o", str(exe), str(src)], check=True, timeout=60)
    env = dict(os.environ, **SAN_ENV)
    r = subprocess.run([str(exe)], env=env, capture_output=True, timeout=30)
    assert r.returncode != 0 and b"LeakSanitizer" in r.stderr and b"77 byte" in r.stderr, r.stderr[-500:]


def test_resets_under_asan_no_crash_no_leak_no_stuck(server):
    s = server(
        ASAN_TESTSERVER,
        ["--head-timeout", "2", "--body-timeout", "2", "--idle-timeout", "2",
         "--write-timeout", "5", "--threads", "2", "--shutdown-timeout", "5"],
        env=SAN_ENV,
        # piston-testserver leaves SIGPIPE at its default and the engine's
        # sendfile path raises it (see test_sendfile_reset_sigpipe below):
        # run it as every other host runs, with SIGPIPE ignored.
        sigpipe_ignored=True,
    )
    per = N_RESETS // THREADS
    t0 = time.monotonic()
    counts = reset_clients(s.addr, SCENARIOS, THREADS, per, 0, join_s=600)
    elapsed = time.monotonic() - t0
    assert s.alive(), s.lines[-30:]
    util.assert_serving(s.addr)
    # every handle released, every connection gone (only /stats's own left)
    st = util.wait_stats(s.addr, lambda st: st["live"] == 0 and st["conns"] <= 1, timeout=15)
    rc = s.stop(timeout=30)
    report = [l for l in s.lines if any(m in l for m in SAN_MARKERS)]
    figure("resets.connections_reset", sum(counts.values()))
    figure("resets.scenarios", len(counts))
    figure("resets.seconds", round(elapsed, 1))
    figure("resets.server_requests_seen", st["requests"])
    figure("resets.closed_events", st["closed_events"])
    figure("resets.sanitizer_report_lines", len(report))
    figure("resets.exit_code", rc)
    assert not report, "\n".join(s.lines[-80:])
    assert rc == 0, s.lines[-40:]
    assert sum(counts.values()) == per * THREADS
    assert len(counts) == len(SCENARIOS)


def test_reset_while_the_host_holds_the_request(server):
    """Clients that send a request the host never answers (/never: no timer
    runs then) and reset at once: each reset reaches the host as
    PISTON_EV_CLOSED and nothing stays. Over TLS against the ASan build the
    server often reads the request behind a reset whose error OpenSSL's own
    write (the session tickets after the handshake) consumed: the socket
    then says only EPOLLHUP, which before our FIN is a reset too."""
    s = server(
        ASAN_TESTSERVER,
        ["--head-timeout", "2", "--body-timeout", "2", "--idle-timeout", "2",
         "--write-timeout", "5", "--threads", "2", "--shutdown-timeout", "5"],
        env=SAN_ENV, sigpipe_ignored=True)
    reset_clients(s.addr, {"never": SCENARIOS["never"]}, THREADS, 60, 0, join_s=600)
    st = util.wait_stats(s.addr, lambda st: st["live"] == 0 and st["conns"] <= 1, timeout=10)
    assert st["closed_events"] >= 1, st


def test_sendfile_reset_sigpipe(server):
    """A client that resets during a sendfile response must not kill a host
    that left SIGPIPE at its default (piston-testserver, any embedding C
    program)."""
    s = server(util.TESTSERVER, [])
    # (over TLS the file is read and encrypted, no sendfile without kTLS:
    # the same resets then test OpenSSL's writes to a reset socket)
    for _ in range(50):
        c = None
        try:
            c = util.client_socket(s.addr, timeout=5)
            c.sendall(b"GET /sendfile HTTP/1.1\r\nHost: test\r\n\r\n")
            read_some(c, 50000)
        except OSError:
            break
        finally:
            if c is not None:
                rst(c)
    time.sleep(0.3)
    alive = s.alive()
    if not alive:
        s.proc.wait(5)
    assert alive, "piston-testserver died with signal %d" % -s.proc.returncode


def _corpus_files():
    dirs = [os.path.join(util.REPO, "fuzz", "corpus"), os.path.join(util.REPO, "build-fuzz", "corpus")]
    files = []
    for d in dirs:
        if os.path.isdir(d):
            files += sorted(os.path.join(d, f) for f in os.listdir(d))
    return files[: size(1500, 100000)]


def test_fuzz_corpus_replayed_over_tcp_under_asan(server):
    """Every fuzz corpus input (fuzz/corpus, and build-fuzz/corpus when a
    fuzz run left one), minus its split-seed byte, sent over a real socket
    to the ASan build, half of them closed by a reset: no crash, no leak,
    nothing left live."""
    files = _corpus_files()
    assert len(files) >= 50, "no fuzz corpus found"
    s = server(ASAN_TESTSERVER, ["--head-timeout", "1", "--body-timeout", "1",
                                 "--idle-timeout", "1", "--max-body-size", "65536"],
               env=SAN_ENV, sigpipe_ignored=True)
    for i, path in enumerate(files):
        with open(path, "rb") as f:
            data = f.read()[1:]
        c = util.client_socket(s.addr, timeout=3)  # over TLS: through TLS records
        try:
            c.sendall(data)
            if i % 2:
                c.shutdown(socket.SHUT_WR)
                c.settimeout(0.5)
                try:
                    while c.recv(65536):
                        pass
                except socket.timeout:
                    pass
        except (ConnectionResetError, BrokenPipeError):
            pass
        except ssl.SSLError:
            assert TLS
            # the server's close without close_notify after its 400
        finally:
            if i % 2:
                c.close()
            else:
                rst(c)
    assert s.alive(), s.lines[-30:]
    st = util.wait_stats(s.addr, lambda st: st["live"] == 0 and st["conns"] <= 1, timeout=15)
    rc = s.stop(timeout=30)
    report = [l for l in s.lines if any(m in l for m in SAN_MARKERS)]
    figure("corpus_replay.inputs", len(files))
    figure("corpus_replay.requests_seen", st["requests"])
    assert not report, "\n".join(s.lines[-80:])
    assert rc == 0
