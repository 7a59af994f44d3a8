"""The engine's Prometheus endpoint (--metrics), read with a real parser of
the text format (prometheus_client's), the readiness route (--health) and
--limit-concurrency, through the C test server."""
import signal
import time

from prometheus_client.parser import text_string_to_metric_families

import util
from util import Conn, get


def scrape(addr, path="/metrics"):
    r = get(addr, path)
    assert r.status == 200
    assert r.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
    out = {}
    for fam in text_string_to_metric_families(r.body.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def val(m, name, **labels):
    return m[(name, tuple(sorted(labels.items())))]


def test_counts_and_histogram(server):
    s = server(util.TESTSERVER, ["--metrics", "/metrics", "--max-headers", "8"])
    for _ in range(3):
        assert get(s.addr, "/hello").status == 200
    assert get(s.addr, "/slow?ms=120").status == 200
    assert get(s.addr, "/nope").status == 404
    with Conn(s.addr) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        assert c.read_response().body == b"hello"
    with Conn(s.addr) as c:
        c.send(b"GET /x HTTP/1.1\r\nHost: x\r\n" + b"A: 1\r\n" * 20 + b"\r\n")
        assert c.read_response().status == 431
    m = scrape(s.addr)
    assert val(m, "piston_requests_total", method="GET", status="2xx") == 4
    assert val(m, "piston_requests_total", method="GET", status="4xx") == 2  # 404, 431
    assert val(m, "piston_requests_total", method="POST", status="2xx") == 1
    assert val(m, "piston_rejected_total", status="431") == 1
    assert val(m, "piston_rejected_total", status="400") == 0
    count = val(m, "piston_request_duration_seconds_count")
    assert count == 7
    assert val(m, "piston_request_duration_seconds_bucket", le="+Inf") == 7
    # the /slow one took over 0.1 s, the others far less
    assert val(m, "piston_request_duration_seconds_bucket", le="0.1") == 6
    assert val(m, "piston_request_duration_seconds_sum") >= 0.12
    assert val(m, "piston_received_bytes_total") > 200
    assert val(m, "piston_sent_bytes_total") > 500
    # the scrape itself is counted once answered
    m2 = scrape(s.addr)
    assert val(m2, "piston_requests_total", method="GET", status="2xx") == 5
    assert val(m2, "piston_worker_sent_bytes_total", worker=str(s.pid)) == val(
        m2, "piston_sent_bytes_total")


def test_gauges(server):
    s = server(util.TESTSERVER, ["--metrics", "/metrics"])
    idle = [Conn(s.addr) for _ in range(3)]
    held = Conn(s.addr)
    held.send(b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n")
    util.wait_for(lambda: val(scrape(s.addr), "piston_in_flight_requests") == 1)
    m = scrape(s.addr)
    # the three idle, the held one, the scrape's own
    assert val(m, "piston_open_connections") == 5
    assert val(m, "piston_worker_in_flight_requests", worker=str(s.pid)) == 1
    held.reset()  # a FIN alone leaves the request to be answered
    for c in idle:
        c.close()
    util.wait_for(lambda: val(scrape(s.addr), "piston_in_flight_requests") == 0)
    util.wait_for(lambda: val(scrape(s.addr), "piston_open_connections") == 1)


def test_limit_concurrency(server):
    s = server(util.TESTSERVER, ["--limit-concurrency", "1", "--metrics", "/metrics"])
    held = Conn(s.addr)
    held.send(b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n")
    util.wait_for(lambda: val(scrape(s.addr), "piston_in_flight_requests") == 1)
    r = get(s.addr, "/hello")
    assert r.status == 503
    assert r.body == b"Service Unavailable\n"
    # native routes are not limited (the metrics answered above)
    held.reset()  # the client is gone: its request is no longer in flight
    util.wait_for(lambda: get(s.addr, "/hello").status == 200)
    assert val(scrape(s.addr), "piston_rejected_total", status="503") == 1


def test_health_is_503_while_draining(server):
    s = server(util.TESTSERVER, ["--health", "/healthz", "--shutdown-timeout", "5"])
    r = get(s.addr, "/healthz")
    assert (r.status, r.body) == (200, b"OK\n")
    assert r.header("Cache-Control") == "no-store"
    held = Conn(s.addr)
    held.send(b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n")
    late = Conn(s.addr)
    late.send(b"GET /healthz HTTP/1.1\r\n")  # on its way when the drain begins
    time.sleep(0.2)
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    late.send(b"Host: x\r\n\r\n")
    r = late.read_response()
    assert (r.status, r.body) == (503, b"draining\n")
    assert r.header("Connection") == "close"
    held.close()
    late.close()
    assert s.stop() == 0


def test_cache_counters(server):
    """With the response cache on, its counters are in the scrape (this
    process's: the cache is each process's own)."""
    s = server(util.TESTSERVER, ["--metrics", "/metrics", "--cache-size", "100000"])
    m = scrape(s.addr)
    assert val(m, "piston_cache_hits_total", worker=str(s.pid)) == 0
    for _ in range(3):
        assert get(s.addr, "/c/metrics?ttl=30").status == 200
    m = scrape(s.addr)
    w = str(s.pid)
    assert val(m, "piston_cache_misses_total", worker=w) == 1
    assert val(m, "piston_cache_stores_total", worker=w) == 1
    assert val(m, "piston_cache_hits_total", worker=w) == 2
    assert val(m, "piston_cache_entries", worker=w) == 1
    assert val(m, "piston_cache_bytes", worker=w) > 0
    # no cache, no cache families
    plain = server(util.TESTSERVER, ["--metrics", "/metrics"])
    assert not [k for k in scrape(plain.addr) if k[0].startswith("piston_cache_")]
