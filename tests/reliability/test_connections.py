"""1. 10,000 concurrent keep-alive connections on one piston-static process:
every one served twice (the second time after all are open and idle), and
the server's RSS per idle connection under a bound (over TLS: 2,000 in
make test, 10,000 in the soak, and the bound of what OpenSSL holds per
connection, see below)."""

import time

import mass
import util
from rel import NOFILE, TLS, connections_figures, open_and_serve, size

# Over TLS (make test-reliability-tls) every connection is first a
# handshake, done one after the other from this process: 10,000 take some
# 20 s there, so make test's TLS run opens 2,000 and the soak 10,000.
N = size(10000, 10000, tls=2000)
ROUNDS = size(2, 10)
# The README's benchmark measured ~2.3 KiB per idle connection (25.3 MB at
# 10,000); the bound leaves room but catches a per-connection buffer
# (a 16 KiB head buffer kept while idle would be ~4x over it).
# Over TLS each idle connection also holds its OpenSSL connection (the SSL
# object, its session, the cipher states; the engine sets
# SSL_MODE_RELEASE_BUFFERS, so no record buffer is kept while idle):
# measured 17.4 KiB per idle connection at 10,000 and at 2,000. nginx 1.22
# with the same OpenSSL and certificate on this machine: 14.5 KiB per idle
# TLS connection, 0.5 KiB plain. Bound 24 KiB: a 16 KiB record buffer kept
# per idle connection would break it.
MAX_KB_PER_CONN = 24.0 if TLS else 4.0


def test_ten_thousand_keepalive_connections(server):
    assert NOFILE >= N + 200, "RLIMIT_NOFILE %d is too low for %d connections" % (NOFILE, N)
    s = server(
        util.STATIC,
        ["--text", "/hello=Hello, World!", "--idle-timeout", "120", "--head-timeout", "60"],
    )
    util.assert_serving(s.addr)
    time.sleep(0.2)
    rss0 = mass.rss_kb(s.pid)
    socks, t_open, t_first, served = open_and_serve(s.addr, N, ROUNDS)
    try:
        time.sleep(0.5)
        rss1 = mass.rss_kb(s.pid)
        util.assert_serving(s.addr)  # a fresh client still gets in
    finally:
        mass.close_all(socks)
    per = (rss1 - rss0) / N
    connections_figures("", N, served, t_open, t_first, rss0, rss1, per)
    assert per < MAX_KB_PER_CONN, "%.2f KiB per idle connection" % per
    # all closed: the server goes back to serving with its connections freed
    deadline = time.monotonic() + 10
    while True:
        try:
            util.assert_serving(s.addr)
            break
        except (AssertionError, OSError):
            assert time.monotonic() < deadline
            time.sleep(0.1)
