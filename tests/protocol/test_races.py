"""Races between a host thread and the loop, repeated until they would show.

A worker thread ends its response while the loop is still busy with the same
connection (it has just read the body the worker was waiting for). The loop
must not move on to the next request before it has applied the worker's
posted bytes: once, that left the response behind and the client got nothing
until the idle timeout closed the connection.
"""
from util import Conn


def test_thread_response_racing_body_arrival(ts):
    for i in range(300):
        with Conn(ts.addr, timeout=3) as c:
            c.send(b"POST /echo-thread HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                   b"Expect: 100-continue\r\n\r\n")
            assert c.read_exact(25) == b"HTTP/1.1 100 Continue\r\n\r\n"
            c.send(b"hello")
            r = c.read_response()
            assert (r.status, r.body) == (200, b"hello"), "iteration %d" % i


def test_thread_responses_pipelined_on_one_connection(ts):
    with Conn(ts.addr, timeout=5) as c:
        reqs = b"".join(
            b"POST /echo-thread HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n%03d" % i
            for i in range(200))
        c.send(reqs)
        for i in range(200):
            r = c.read_response()
            assert (r.status, r.body) == (200, b"%03d" % i)
