"""Shared by the reliability tests (imported as `rel`, not through
conftest, so that the protocol suite's conftest can never shadow it)."""

import os
import random
import resource
import selectors
import socket
import ssl
import struct
import sys
import threading
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
if os.path.join(os.path.dirname(HERE), "protocol") not in sys.path:
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "protocol"))

import mass  # noqa: E402
import util  # noqa: E402

# 10,000 connections: the client and the server (which inherits the limit)
# both need more descriptors; raise the soft limit to the hard limit.
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
_want = 65536 if _hard == resource.RLIM_INFINITY else _hard
if _soft < _want:
    resource.setrlimit(resource.RLIMIT_NOFILE, (_want, _hard))
NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[0]

SOAK = os.environ.get("PISTON_SOAK", "") not in ("", "0")

ASAN_BUILD = os.path.join(util.REPO, os.environ.get("PISTON_ASAN_BUILD", "build-asan"))
ASAN_TESTSERVER = os.path.join(ASAN_BUILD, "piston-testserver")

FIGURES = {}

# PISTON_TEST_TLS=1 (make test-reliability-tls): the suite runs over TLS the
# way tests/protocol does (util.TLS): util.Server gives piston-static and
# piston-testserver util.tls_files()'s certificate, and every client socket
# is util.client_socket's (or a util.Conn). The other servers read the same
# files: the Node apps from these variables (node_common.js hands them to
# createServer as {key, cert}), the Python CLI by --certfile/--keyfile
# (python_cli_tls_args). The variables are inherited by every child.
TLS = util.TLS
if TLS:
    TLS_CERT, TLS_KEY = util.tls_files()
    os.environ["PISTON_TEST_TLS_CERT"] = TLS_CERT
    os.environ["PISTON_TEST_TLS_KEY"] = TLS_KEY

# What a non-blocking send or recv raises when it has to wait, plain or TLS.
WOULD_BLOCK = mass.WOULD_BLOCK


def assert_transport(s):
    """The server s said it listens on https in the TLS run, http otherwise
    (its listening line), so a plain server can never pass the TLS run."""
    scheme = "https://" if TLS else "http://"
    assert any(scheme in l and "127.0.0.1:%d" % s.port in l for l in s.lines), (
        "%s does not listen on %s: %r" % (s.name, scheme, s.lines[:5]))


def python_cli_tls_args():
    """The Python CLI's arguments for the run's transport."""
    return ["--certfile", TLS_CERT, "--keyfile", TLS_KEY] if TLS else []


def size(fast, soak, tls=None):
    """The load for the run: fast (make test) or soak (PISTON_SOAK=1); in
    the TLS run of make test, `tls` instead when given (a smaller fast
    size where handshakes and OpenSSL's buffers would make the fast run
    too long or too big; the soak keeps its size over TLS)."""
    if SOAK:
        return soak
    return tls if (TLS and tls is not None) else fast


def figure(name, value):
    FIGURES[name] = value


def client_hello():
    """The first flight of a TLS handshake as this run's client sends it
    (util.tls_client_context's ClientHello), made in memory."""
    out = ssl.MemoryBIO()
    obj = util.tls_client_context().wrap_bio(ssl.MemoryBIO(), out)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


# The reset scenarios (rel.reset_clients) the TLS run adds to the plain
# ones, {name: (bytes, bytes read before the reset)}: a "tls-" scenario's
# bytes go raw, without a handshake of ours, so these cut the handshake
# itself: within the ClientHello, and after the whole ClientHello once the
# server's first flight has begun to arrive.
TLS_SCENARIOS = {}
if TLS:
    _hello = client_hello()
    TLS_SCENARIOS = {
        "tls-partial-clienthello": (_hello[: len(_hello) // 2], 0),
        "tls-clienthello-then-reset": (_hello, 1),
    }


def send_while_reading(c, data, timeout=60.0, read_after=0.0):
    """Sends data on c (a util.Conn or a wsconf.Ws: its .sock and its read
    buffer .buf) while reading what comes back into c.buf (from read_after
    seconds on), from this one thread: an SSL socket may not be read and
    written by two threads at once (util's lock would then hold a blocked
    sendall against the read that would unblock it), and a plain socket is
    driven the same way so that both runs do the same thing. Returns once
    all of data is sent; c's own readers then go on from c.buf."""
    sock = c.sock
    old_timeout = sock.gettimeout()
    sock.setblocking(False)
    t0 = time.monotonic()
    end = t0 + timeout
    view = memoryview(data)
    chunk = 256 * 1024
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    try:
        while view:
            assert time.monotonic() < end, "%d bytes left unsent at the deadline" % len(view)
            reading = time.monotonic() - t0 >= read_after
            sel.modify(sock, selectors.EVENT_WRITE | (selectors.EVENT_READ if reading else 0))
            for _, ev in sel.select(0.05):
                if ev & selectors.EVENT_WRITE:
                    # TLS: after SSLWantWriteError the same bytes are offered
                    # again (OpenSSL wants the retry to carry them)
                    try:
                        n = sock.send(view[:chunk])
                    except WOULD_BLOCK:
                        n = 0
                    view = view[n:]
                if ev & selectors.EVENT_READ and reading:
                    try:
                        d = sock.recv(1 << 20)
                        while TLS and sock.pending():
                            d += sock.recv(1 << 20)
                    except WOULD_BLOCK:
                        continue
                    assert d, "EOF while sending, %d bytes left" % len(view)
                    c.buf += d
    finally:
        sel.close()
        sock.settimeout(old_timeout)



# ---- resets -------------------------------------------------------------------


def rst(sock):
    """Closes with an RST (SO_LINGER 0)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def read_some(sock, n):
    """Reads up to n bytes (at least 1), bounded by the socket timeout."""
    got = 0
    while got < n:
        d = sock.recv(min(65536, n - got))
        if not d:
            break
        got += len(d)
    return got


def _reset_client(addr, scenarios, n, seed, counts, errors):
    rnd = random.Random(seed)
    names = sorted(scenarios)
    for _ in range(n):
        name = rnd.choice(names)
        data, read = scenarios[name]
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(10)
        try:
            s.connect(addr)
            if TLS and not name.startswith("tls-"):
                # the handshake, then the scenario's bytes through TLS (a
                # "tls-" scenario sends its bytes raw: a part of a handshake)
                s = util.tls_client_context().wrap_socket(s)
            s.sendall(data)
            if read:
                read_some(s, read)
            elif rnd.random() < 0.5:
                time.sleep(0.001)  # sometimes let the server start on it
        except (ConnectionResetError, BrokenPipeError):
            pass  # the server may already have answered and closed
        except OSError as e:
            errors.append((name, repr(e)))
        finally:
            rst(s)
        counts[name] = counts.get(name, 0) + 1


def reset_clients(addr, scenarios, threads, per_thread, seed0, join_s):
    """`threads` client threads (seeds seed0, seed0 + 1, ...), each making
    per_thread connections: a scenario {name: (bytes sent, bytes read before
    the reset)} picked at random, then a reset. Returns {name: count}."""
    counts_per = [dict() for _ in range(threads)]
    errors = []
    ths = [
        threading.Thread(target=_reset_client, daemon=True,
                         args=(addr, scenarios, per_thread, seed0 + k, counts_per[k], errors))
        for k in range(threads)
    ]
    for t in ths:
        t.start()
    for t in ths:
        t.join(join_s)
        assert not t.is_alive(), "a client thread is stuck"
    assert not errors, errors[:5]
    counts = {}
    for c in counts_per:
        for k, v in c.items():
            counts[k] = counts.get(k, 0) + v
    return counts


# ---- many keep-alive connections ------------------------------------------------


def open_and_serve(addr, n, rounds):
    """Opens n connections (mass.open_many), then `rounds` times sends
    GET /hello on every one and checks every answer. Returns (socks, t_open,
    t_first, served); the caller closes socks (mass.close_all), which are
    closed here if a check fails."""
    t0 = time.monotonic()
    socks = mass.open_many(addr, n)
    try:
        t_open = time.monotonic() - t0
        req = util.request("GET", "/hello")
        served = 0
        t_first = None
        for _ in range(rounds):
            t1 = time.monotonic()
            out = mass.request_all(socks, req)
            if t_first is None:
                t_first = time.monotonic() - t1
            bad = [o for o in out if o != (200, b"Hello, World!")]
            assert not bad, bad[:3]
            served += len(out)
    except BaseException:
        mass.close_all(socks)
        raise
    return socks, t_open, t_first, served


def connections_figures(prefix, n, served, t_open, t_first, rss0, rss1, per):
    figure(prefix + "connections.concurrent", n)
    figure(prefix + "connections.requests_served", served)
    figure(prefix + "connections.open_seconds", round(t_open, 2))
    figure(prefix + "connections.first_round_seconds", round(t_first, 2))
    figure(prefix + "connections.rss_before_kb", rss0)
    figure(prefix + "connections.rss_with_idle_conns_kb", rss1)
    figure(prefix + "connections.rss_per_idle_conn_kb", round(per, 2))


# ---- slowloris, stalled bodies and slow readers -----------------------------------

# The attack of test_slow_clients.py, the same through the Node host
# (test_node_host.py): head and body timeouts (s), attacking connections,
# the normal client's requests during the attack and its p99 bound.
HEAD_TIMEOUT = 2
BODY_TIMEOUT = 1
N_LORIS = size(500, 3000)
N_SLOWBODY = size(200, 1000)
N_NORMAL = size(200, 2000)
P99_BOUND_MS = 50.0
LORIS_HEAD = b"GET /hello HTTP/1.1\r\nHost: test\r\nX-Padding: " + b"a" * 4000


def _connect(addr):
    s = util.client_socket(addr, timeout=5)  # over TLS: handshake done
    s.setblocking(False)
    return s


class Attack(threading.Thread):
    """One thread driving every attacking connection: slowloris sockets get
    one more head byte each tick; slow-body sockets sent a head and 10 body
    bytes of 100,000 and then stall. Records, per socket, what came back
    and when the server closed it."""

    def __init__(self, addr, n_loris, n_body, max_s):
        super().__init__(daemon=True)
        self.addr = addr
        self.n_loris = n_loris
        self.n_body = n_body
        self.max_s = max_s
        self.results = {}  # sock index -> (kind, bytes received, seconds open)
        self.bytes_sent = 0
        self.ready = threading.Event()
        self.error = None
        self.ssl_errors = []

    def run(self):
        try:
            self._run()
        except BaseException as e:  # reported by the test
            self.error = e
            self.ready.set()

    def _run(self):
        sel = selectors.DefaultSelector()
        socks = {}
        t0 = time.monotonic()
        for k in range(self.n_loris + self.n_body):
            s = _connect(self.addr)
            kind = "loris" if k < self.n_loris else "body"
            if kind == "body":
                s.send(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\n0123456789")
            else:
                # the first head byte at once: on a loaded machine making
                # the rest of the connections (TLS handshakes) can outlast
                # the head timeout, and a connection that sent nothing is
                # closed without an answer, not given a 408
                s.send(LORIS_HEAD[:1])
                self.bytes_sent += 1
            socks[k] = [s, kind, 1 if kind == "loris" else 0, b"", time.monotonic()]
            sel.register(s, selectors.EVENT_READ, k)
            # the server's closes of the first ones are seen while the rest
            # connect, not only once all are made
            self._read(sel, socks, 0)
        self.ready.set()
        end = t0 + self.max_s
        tick = 0.05
        next_tick = time.monotonic()
        try:
            while socks and time.monotonic() < end:
                now = time.monotonic()
                if now >= next_tick:
                    next_tick = now + tick
                    for k, st in socks.items():
                        if st[1] == "loris" and st[2] < len(LORIS_HEAD):
                            # over TLS each byte goes in a record of its own
                            try:
                                st[2] += st[0].send(LORIS_HEAD[st[2] : st[2] + 1])
                                self.bytes_sent += 1
                            except WOULD_BLOCK + (BrokenPipeError, ConnectionResetError,
                                                  ssl.SSLEOFError):
                                pass  # closed by the server: what it said is read below
                self._read(sel, socks, max(0.0, next_tick - time.monotonic()))
        finally:
            for k, st in socks.items():
                self.results[k] = (st[1], st[3], None)
                st[0].close()
            sel.close()

    def _read(self, sel, socks, timeout):
        """What the server sent on the sockets readable within timeout;
        those it closed are recorded (kind, bytes, seconds open) and
        dropped from socks."""
        for key, _ in sel.select(timeout):
            k = key.data
            st = socks[k]
            try:
                data = st[0].recv(65536)
                while TLS and data and st[0].pending():
                    data += st[0].recv(65536)
            except WOULD_BLOCK:
                continue
            except ConnectionResetError:
                data = b""
            except ssl.SSLError as e:
                # TLS: a close the record layer calls unclean
                self.ssl_errors.append(repr(e))
                data = b""
            if data:
                st[3] += data
                continue
            sel.unregister(st[0])
            st[0].close()
            self.results[k] = (st[1], st[3], time.monotonic() - st[4])
            del socks[k]


def slow_attack(addr, n_loris, n_body, n_normal, head_timeout, check_normal):
    """Runs an Attack (n_loris slowloris heads, n_body stalled bodies) and,
    during it, n_normal GET /hello from a normal client, a fresh connection
    each, spread over the attack's span; check_normal(response) checks each.
    Once every attacker is closed, returns the Attack with: results,
    loris_open and body_open (the seconds each kind stayed open, sorted),
    first_ms (a first normal request's, behind the attackers' arrival),
    lat (the normal client's latencies in ms, sorted), p50, p99."""
    attack = Attack(addr, n_loris, n_body, max_s=head_timeout + 8)
    attack.start()
    assert attack.ready.wait(30), "attack did not start"
    assert attack.error is None, attack.error
    lat = []
    req = util.request("GET", "/hello")

    def normal():
        t = time.monotonic()
        with util.Conn(addr, timeout=5) as c:
            c.send(req)
            r = c.read_response()
        check_normal(r)
        return (time.monotonic() - t) * 1000

    # The attackers have connected; the server may still be taking them
    # from its accept queue, a flood of arrivals the first normal request
    # waits behind (its time is a figure, not a latency under the attack:
    # the bound is about slow clients, and a real flood arrives over time).
    attack.first_ms = normal()
    t_end = time.monotonic() + head_timeout + 1
    for i in range(n_normal):
        lat.append(normal())
        # spread the requests over the attack's whole span
        if i < n_normal - 1:
            time.sleep(max(0.0, (t_end - time.monotonic()) / (n_normal - i)))
    attack.join(head_timeout + 15)
    assert not attack.is_alive()
    assert attack.error is None, attack.error
    res = attack.results
    assert len(res) == n_loris + n_body
    still_open = [k for k, v in res.items() if v[2] is None]
    assert not still_open, "%d attacking connections never closed" % len(still_open)
    attack.loris_open = sorted(v[2] for v in res.values() if v[0] == "loris")
    attack.body_open = sorted(v[2] for v in res.values() if v[0] == "body")
    lat.sort()
    attack.lat = lat
    attack.p50 = lat[len(lat) // 2]
    attack.p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    return attack


def slow_attack_figures(prefix, attack):
    figure(prefix + "slowloris.connections", attack.n_loris)
    figure(prefix + "slowloris.head_bytes_trickled", attack.bytes_sent)
    figure(prefix + "slowloris.max_seconds_open", round(attack.loris_open[-1], 2))
    figure(prefix + "slowbody.connections", attack.n_body)
    figure(prefix + "slowbody.max_seconds_open", round(attack.body_open[-1], 2))
    figure(prefix + "slow_attack.first_request_behind_the_arrivals_ms", round(attack.first_ms, 2))
    figure(prefix + "slow_attack.normal_requests", len(attack.lat))
    figure(prefix + "slow_attack.normal_p50_ms", round(attack.p50, 2))
    figure(prefix + "slow_attack.normal_p99_ms", round(attack.p99, 2))
    figure(prefix + "slow_attack.normal_max_ms", round(attack.lat[-1], 2))


def read_body(c, n, expect=None):
    """Reads the rest of a Content-Length body of n bytes from util.Conn c
    (what its buffer holds, then the socket, 30 s per read); checks it
    against expect (the body's bytes) if given. Returns the count."""
    got = 0
    d = c.buf
    c.buf = b""
    c.sock.settimeout(30)
    while True:
        if d:
            if expect is not None:
                assert d == expect[got : got + len(d)], "wrong bytes at offset %d" % got
            got += len(d)
        if got >= n:
            break
        d = c.sock.recv(1 << 20)
        assert d, "EOF after %d of %d" % (got, n)
    assert got == n, (got, n)
    return got


def slow_readers_figures(prefix, n, big, total, rss0, rss_stalled, peak, per):
    figure(prefix + "slow_readers.connections", n)
    figure(prefix + "slow_readers.response_bytes_each", big)
    figure(prefix + "slow_readers.bytes_delivered", total)
    figure(prefix + "slow_readers.rss_before_kb", rss0)
    figure(prefix + "slow_readers.rss_stalled_kb", rss_stalled)
    figure(prefix + "slow_readers.rss_peak_kb", peak)
    figure(prefix + "slow_readers.rss_per_stalled_reader_kb", round(per, 1))


# ---- graceful shutdown ------------------------------------------------------------


def shutdown_under_load(s, n_slow, n_big, n_echo, big, echo, deadline, inflight_stat, check_slow,
                        n_idle=0):
    """Graceful shutdown of server s under load: n_slow GET /slow?ms=1500 and
    n_big GET /big?bytes=big (read by nobody yet) in flight (by /stats's
    inflight_stat), then n_echo connections each with two POST /echo of echo
    pipelined, then SIGTERM. n_idle keep-alive connections that made one
    request before must be closed at once. Every request accepted before
    the signal must be answered whole (check_slow(response) checks the slow
    ones) and the process must exit within deadline + 2 s. Returns what the
    test asserts: refused (a new connection after SIGTERM), done (responses
    complete), dropped (pipelined requests never accepted), rc, t_exit."""
    slow = [util.Conn(s.addr, timeout=30) for _ in range(n_slow)]
    bigs = [util.Conn(s.addr, timeout=30, rcvbuf=8192) for _ in range(n_big)]
    echos = [util.Conn(s.addr, timeout=30) for _ in range(n_echo)]
    idle = [util.Conn(s.addr, timeout=30) for _ in range(n_idle)]
    expect = util.pattern(0, big)
    try:
        for c in idle:
            c.send(util.request("GET", "/hello"))
            r = c.read_response()
            assert (r.status, r.body) == (200, b"Hello, World!"), r
        for c in slow:
            c.send(util.request("GET", "/slow?ms=1500"))
        for c in bigs:
            c.send(util.request("GET", "/big?bytes=%d" % big))
        util.wait_stats(s.addr, lambda st: st[inflight_stat] >= n_slow + n_big, timeout=20)
        # the echo requests' bodies arrive around the signal
        for c in echos:
            c.send(util.request("POST", "/echo", body=echo) * 2)
        t0 = time.monotonic()
        s.proc.send_signal(15)
        time.sleep(0.3)
        refused = False
        try:
            socket.create_connection(s.addr, timeout=2).close()
        except ConnectionRefusedError:
            refused = True
        done = 0
        dropped = 0
        for c in idle:
            c.expect_eof(timeout=5)  # closed at once, not at the idle timeout
        for c in echos:
            # The first request of each pair was being read or answered at
            # SIGTERM: it must complete. The second, pipelined behind it, is
            # parsed only when the first ends; if the stop came first, the
            # engine answers the first with Connection: close and closes, the
            # second never having been accepted (RFC 9112 9.6: the client
            # retries it on a new connection). It is answered whole or not at all.
            r = c.read_response()
            assert (r.status, r.body) == (200, echo), r
            done += 1
            if r.header("Connection") == "close":
                c.expect_eof()
                dropped += 1
            else:
                r = c.read_response()
                assert (r.status, r.body) == (200, echo), r
                done += 1
        for c in slow:
            r = c.read_response()
            check_slow(r)
            c.expect_eof()
            done += 1
        for c in bigs:
            r = c.read_response(timeout=30)
            assert r.status == 200 and r.body == expect, r.head
            c.expect_eof()
            done += 1
        rc = s.proc.wait(deadline + 2)
        t_exit = time.monotonic() - t0
    finally:
        for c in slow + bigs + echos + idle:
            c.close()
    return types.SimpleNamespace(refused=refused, done=done, dropped=dropped, rc=rc, t_exit=t_exit)


def shutdown_figures(prefix, in_flight, r):
    figure(prefix + "shutdown.requests_in_flight_at_sigterm", in_flight)
    figure(prefix + "shutdown.responses_complete", r.done)
    figure(prefix + "shutdown.pipelined_not_yet_read_closed", r.dropped)
    figure(prefix + "shutdown.exit_seconds_after_sigterm", round(r.t_exit, 2))


def shutdown_with_request_that_never_ends(s, target, inflight_stat, wait_s):
    """SIGTERM while GET target is in flight (by /stats's inflight_stat);
    returns the exit code and the seconds from the signal to the exit
    (the process must exit within wait_s)."""
    with util.Conn(s.addr, timeout=10) as c:
        c.send(util.request("GET", target))
        util.wait_stats(s.addr, lambda st: st[inflight_stat] >= 1)
        t0 = time.monotonic()
        s.proc.send_signal(15)
        rc = s.proc.wait(wait_s)
        t = time.monotonic() - t0
        c.read_to_eof(timeout=5)
    return rc, t
