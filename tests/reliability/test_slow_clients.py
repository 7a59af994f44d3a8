"""2. Slowloris (heads trickled a byte at a time from many connections) and
stalled bodies are cut by the head and body timeouts (408, then close),
while a normal client's latency stays low during the attack.

3. Slow readers of large responses: the server's memory stays bounded by
the write high-water mark per connection, not by the response size."""

import time

import mass
import util
from rel import (
    BODY_TIMEOUT,
    HEAD_TIMEOUT,
    N_LORIS,
    N_NORMAL,
    N_SLOWBODY,
    P99_BOUND_MS,
    read_body,
    size,
    slow_attack,
    slow_attack_figures,
    slow_readers_figures,
)

# HEAD_TIMEOUT, BODY_TIMEOUT, N_LORIS, N_SLOWBODY, N_NORMAL and P99_BOUND_MS
# (rel.py) are shared with the same attack through Node in test_node_host.py.


def test_slowloris_and_slow_bodies_cut_normal_client_fast(server):
    s = server(
        util.TESTSERVER,
        ["--head-timeout", str(HEAD_TIMEOUT), "--body-timeout", str(BODY_TIMEOUT),
         "--idle-timeout", "5"],
    )

    def check_normal(r):
        assert (r.status, r.body) == (200, b"Hello, World!")

    # the normal client: a fresh connection per request, during the attack
    a = slow_attack(s.addr, N_LORIS, N_SLOWBODY, N_NORMAL, HEAD_TIMEOUT, check_normal)
    bad = [(k, v) for k, v in a.results.items() if not v[1].startswith(b"HTTP/1.1 408 ")]
    assert not bad, "not a 408: %r (%d TLS errors: %r)" % (bad[:3], len(a.ssl_errors), a.ssl_errors[:3])
    # cut by the timeout (plus the loop's timer granularity and our tick)
    assert a.loris_open[-1] < HEAD_TIMEOUT + 1.5, a.loris_open[-1]
    assert a.body_open[-1] < BODY_TIMEOUT + 1.5, a.body_open[-1]
    slow_attack_figures("", a)
    assert a.p99 < P99_BOUND_MS, "p99 %.1f ms during the attack" % a.p99
    util.wait_stats(s.addr, lambda st: st["live"] == 0)


# Over TLS the client decrypts every byte in Python: make test's TLS run has
# 32 readers of 4 MiB (still ten times the write high-water mark per
# reader, so the bound still tells a bounded server from one that buffers
# the response); the soak keeps 256 of 16 MiB.
N_READERS = size(64, 256, tls=32)
BIG = size(8 << 20, 16 << 20, tls=4 << 20)


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
                total += read_body(c, BIG)
            if i % 16 == 0:
                peak = max(peak, mass.rss_kb(s.pid))
    finally:
        for c in conns:
            c.close()
    util.wait_stats(s.addr, lambda st: st["live"] == 0)
    per = (peak - rss0) / N_READERS
    slow_readers_figures("", N_READERS, BIG, total, rss0, rss_stalled, peak, per)
    assert total == N_READERS * BIG
    # bounded by the write high-water (default well under 1 MiB) per
    # connection, not by the size of the response
    assert per < 1024, "%.0f KiB per stalled reader" % per
