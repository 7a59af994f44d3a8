"""5. Graceful shutdown under load: every request the server accepted before
SIGTERM gets its whole response, new connections are refused, and the
process exits (code 0) within the shutdown deadline."""

import util
from rel import figure, shutdown_figures, shutdown_under_load, shutdown_with_request_that_never_ends, size

N_SLOW = size(100, 400)  # /slow?ms=1500, one host thread each
N_BIG = size(20, 100)  # /big?bytes=4 MiB, clients not reading yet
N_ECHO = size(50, 200)  # POST /echo with a 64 KiB body, pipelined twice
BIG = 4 << 20
ECHO = bytes(range(256)) * 256
DEADLINE = size(10, 30)  # the clients drain 4 MiB responses in Python


def test_graceful_shutdown_under_load(server):
    s = server(util.TESTSERVER, ["--shutdown-timeout", str(DEADLINE), "--write-timeout", "30",
                                 "--threads", "2"])

    def check_slow(r):
        assert r.status == 200, r

    r = shutdown_under_load(s, N_SLOW, N_BIG, N_ECHO, BIG, ECHO, DEADLINE, "live", check_slow)
    shutdown_figures("", N_SLOW + N_BIG + 2 * N_ECHO, r)
    assert r.refused, "a new connection was accepted after SIGTERM"
    assert r.rc == 0, s.lines[-20:]
    assert r.done + r.dropped == N_SLOW + N_BIG + 2 * N_ECHO
    assert r.t_exit < DEADLINE


def test_shutdown_deadline_cuts_a_request_that_never_ends(server):
    s = server(util.TESTSERVER, ["--shutdown-timeout", "2"])
    rc, t = shutdown_with_request_that_never_ends(s, "/never", "live", wait_s=6)
    figure("shutdown.deadline_exit_seconds", round(t, 2))
    assert rc == 0, s.lines[-20:]
    assert 1.5 < t < 4.0, t
