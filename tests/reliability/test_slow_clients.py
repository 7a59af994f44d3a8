"""2. Slowloris (heads trickled a byte at a time from many connections) and
stalled bodies are cut by the head and body timeouts (408, then close),
while a normal client's latency stays low during the attack.

3. Slow readers of large responses: the server's memory stays bounded by
the write high-water mark per connection, not by the response size."""

import selectors
import socket
import threading
import time

import mass
import util
from rel import figure, size

HEAD_TIMEOUT = 2
BODY_TIMEOUT = 1
N_LORIS = size(500, 3000)
N_SLOWBODY = size(200, 1000)
N_NORMAL = size(200, 2000)
P99_BOUND_MS = 50.0

LORIS_HEAD = b"GET /hello HTTP/1.1\r\nHost: test\r\nX-Padding: " + b"a" * 4000


def _connect(addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(addr)
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
            socks[k] = [s, kind, 0, b"", time.monotonic()]
            sel.register(s, selectors.EVENT_READ, k)
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
                            try:
                                st[2] += st[0].send(LORIS_HEAD[st[2] : st[2] + 1])
                                self.bytes_sent += 1
                            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                                pass
                for key, _ in sel.select(max(0.0, next_tick - time.monotonic())):
                    k = key.data
                    st = socks[k]
                    try:
                        data = st[0].recv(65536)
                    except BlockingIOError:
                        continue
                    except ConnectionResetError:
                        data = b""
                    if data:
                        st[3] += data
                        continue
                    sel.unregister(st[0])
                    st[0].close()
                    self.results[k] = (st[1], st[3], time.monotonic() - st[4])
                    del socks[k]
        finally:
            for k, st in socks.items():
                self.results[k] = (st[1], st[3], None)
                st[0].close()
            sel.close()


def test_slowloris_and_slow_bodies_cut_normal_client_fast(server):
    s = server(
        util.TESTSERVER,
        ["--head-timeout", str(HEAD_TIMEOUT), "--body-timeout", str(BODY_TIMEOUT),
         "--idle-timeout", "5"],
    )
    attack = Attack(s.addr, N_LORIS, N_SLOWBODY, max_s=HEAD_TIMEOUT + 8)
    attack.start()
    assert attack.ready.wait(30), "attack did not start"
    assert attack.error is None, attack.error
    # the normal client: a fresh connection per request, during the attack
    lat = []
    req = util.request("GET", "/hello")
    t_end = time.monotonic() + HEAD_TIMEOUT + 1
    for i in range(N_NORMAL):
        t = time.monotonic()
        with util.Conn(s.addr, timeout=5) as c:
            c.send(req)
            r = c.read_response()
        lat.append((time.monotonic() - t) * 1000)
        assert (r.status, r.body) == (200, b"Hello, World!")
        # spread the requests over the attack's whole span
        if i < N_NORMAL - 1:
            time.sleep(max(0.0, (t_end - time.monotonic()) / (N_NORMAL - i)))
    attack.join(HEAD_TIMEOUT + 15)
    assert not attack.is_alive()
    assert attack.error is None, attack.error
    res = attack.results
    assert len(res) == N_LORIS + N_SLOWBODY
    still_open = [k for k, v in res.items() if v[2] is None]
    assert not still_open, "%d attacking connections never closed" % len(still_open)
    bad = [(k, v) for k, v in res.items() if not v[1].startswith(b"HTTP/1.1 408 ")]
    assert not bad, "not a 408: %r" % (bad[:3],)
    loris_open = sorted(v[2] for v in res.values() if v[0] == "loris")
    body_open = sorted(v[2] for v in res.values() if v[0] == "body")
    # cut by the timeout (plus the loop's timer granularity and our tick)
    assert loris_open[-1] < HEAD_TIMEOUT + 1.5, loris_open[-1]
    assert body_open[-1] < BODY_TIMEOUT + 1.5, body_open[-1]
    lat.sort()
    p50 = lat[len(lat) // 2]
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    figure("slowloris.connections", N_LORIS)
    figure("slowloris.head_bytes_trickled", attack.bytes_sent)
    figure("slowloris.max_seconds_open", round(loris_open[-1], 2))
    figure("slowbody.connections", N_SLOWBODY)
    figure("slowbody.max_seconds_open", round(body_open[-1], 2))
    figure("slow_attack.normal_requests", len(lat))
    figure("slow_attack.normal_p50_ms", round(p50, 2))
    figure("slow_attack.normal_p99_ms", round(p99, 2))
    figure("slow_attack.normal_max_ms", round(lat[-1], 2))
    assert p99 < P99_BOUND_MS, "p99 %.1f ms during the attack" % p99
    util.wait_stats(s.addr, lambda st: st["live"] == 0)


N_READERS = size(64, 256)
BIG = size(8 << 20, 16 << 20)


def test_slow_readers_of_large_responses_bounded_memory(server):
    """N clients ask for BIG bytes each and read nothing for a while: the
    server must stop producing at its write high-water mark. Then they read
    everything, and every byte arrives."""
    # The readers are drained one after the other, so the last waits for
    # all the others: the write timeout (which cuts a reader that makes no
    # progress at all) must be longer than that.
    s = server(util.TESTSERVER, ["--write-timeout", "300"])
    util.assert_serving(s.addr)
    rss0 = mass.rss_kb(s.pid)
    conns = [util.Conn(s.addr, timeout=30, rcvbuf=4096) for _ in range(N_READERS)]
    try:
        for c in conns:
            c.send(util.request("GET", "/big?bytes=%d" % BIG))
        time.sleep(1.5)  # the server fills what it can and must then wait
        rss_stalled = mass.rss_kb(s.pid)
        st = util.stats(s.addr)
        assert st["live"] == N_READERS, st  # all in flight, none finished
        peak = rss_stalled
        # now read everything, a socket at a time (the rest keep stalling)
        total = 0
        for i, c in enumerate(conns):
            head = c.read_until(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 "), head
            assert b"Content-Length: %d\r\n" % BIG in head or b"chunked" in head.lower(), head
            if b"Content-Length" in head:
                got = len(c.buf)
                c.buf = b""
                while got < BIG:
                    c.sock.settimeout(30)
                    d = c.sock.recv(1 << 20)
                    assert d, "EOF after %d of %d" % (got, BIG)
                    got += len(d)
                assert got == BIG
                total += got
            if i % 16 == 0:
                peak = max(peak, mass.rss_kb(s.pid))
    finally:
        for c in conns:
            c.close()
    util.wait_stats(s.addr, lambda st: st["live"] == 0)
    per = (peak - rss0) / N_READERS
    figure("slow_readers.connections", N_READERS)
    figure("slow_readers.response_bytes_each", BIG)
    figure("slow_readers.bytes_delivered", total)
    figure("slow_readers.rss_before_kb", rss0)
    figure("slow_readers.rss_stalled_kb", rss_stalled)
    figure("slow_readers.rss_peak_kb", peak)
    figure("slow_readers.rss_per_stalled_reader_kb", round(per, 1))
    assert total == N_READERS * BIG
    # bounded by the write high-water (default well under 1 MiB) per
    # connection, not by the size of the response
    assert per < 1024, "%.0f KiB per stalled reader" % per
