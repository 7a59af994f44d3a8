"""--metrics, --health and --limit-concurrency through the piston CLI: one
WSGI process, two prefork workers whose counters one scrape sums (read
with prometheus_client's parser), and ASGI."""
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import connect


def http(port, target="/", timeout=10):
    s = connect(port, timeout)
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % target).encode())
    raw = b""
    while True:
        c = s.recv(65536)
        if not c:
            break
        raw += c
    s.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def scrape(port):
    status, body = http(port, "/metrics")
    assert status == 200
    out = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def worker_bytes(m):
    return [v for k, v in m.items() if k[0] == "piston_worker_sent_bytes_total"]


def get2xx(m):
    return m[("piston_requests_total", (("method", "GET"), ("status", "2xx")))]


@pytest.mark.parametrize("app", ["proxy_apps:wsgi", "proxy_apps:asgi"])
def test_one_process(start_piston, app):
    s = start_piston(app, "--metrics", "/metrics", "--health", "/ready")
    for _ in range(5):
        assert http(s.port, "/x")[0] == 200
    assert http(s.port, "/ready") == (200, b"OK\n")
    m = scrape(s.port)
    assert get2xx(m) == 6
    assert m[("piston_request_duration_seconds_count", ())] == 6


def test_workers_are_summed(start_piston):
    s = start_piston("proxy_apps:wsgi", "--workers", "2", "--metrics", "/metrics")
    scrapes = 0  # each scrape counts once answered

    def counted_scrape():
        nonlocal scrapes
        m = scrape(s.port)
        scrapes += 1
        return m

    # the port answers once the first worker is up; the second may still be
    # importing the app: wait until a scrape names both
    deadline = time.monotonic() + 30
    while len(worker_bytes(counted_scrape())) < 2:
        assert time.monotonic() < deadline, "the second worker never started"
        time.sleep(0.05)
    # which worker accepts is the kernel's choice (on a busy machine one may
    # take them all): go on until both have answered some
    n = 0
    while n < 40 or min(worker_bytes(counted_scrape())) == 0:
        assert time.monotonic() < deadline + 30, "one worker answered every request"
        assert http(s.port, "/x")[0] == 200
        n += 1
    # every scrape sums both workers, whichever answers it
    for i in range(12):
        m = scrape(s.port)
        assert get2xx(m) == n + scrapes + i
    per = worker_bytes(m)
    assert len(per) == 2 and sum(per) == m[("piston_sent_bytes_total", ())]
    assert min(per) > 0


def test_limit_concurrency(start_piston):
    s = start_piston("apps:app", "--limit-concurrency", "1", "--threads", "4")
    held = connect(s.port)
    held.sendall(b"GET /sleep?s=2 HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.5)
    status, body = http(s.port, "/hello")
    assert (status, body) == (503, b"Service Unavailable\n")
    held.recv(65536)
    held.close()
    assert http(s.port, "/env")[0] == 200
