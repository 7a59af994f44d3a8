"""1. 10,000 concurrent keep-alive connections on one piston-static process:
every one served twice (the second time after all are open and idle), and
the server's RSS per idle connection under a bound."""

import time

import mass
import util
from rel import NOFILE, connections_figures, open_and_serve, size

N = size(10000, 10000)
ROUNDS = size(2, 10)
# The README's benchmark measured ~2.3 KiB per idle connection (25.3 MB at
# 10,000); the bound leaves room but catches a per-connection buffer
# (a 16 KiB head buffer kept while idle would be ~4x over it).
MAX_KB_PER_CONN = 4.0


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
