"""The response cache (--cache-size) through piston-testserver: raw
requests, exact bytes back. The /c/ routes answer "call K" (K counts the
host's answers) marked with Piston-Cache as their query says, so each test
sees from the body and from /cache-stats whether the host was called."""

import concurrent.futures
import re
import threading
import time

import pytest

import util
from test_http2 import H2

CACHE = ["--cache-size", "1000000", "--cache-purge", "1", "--http2", "2"]


@pytest.fixture(scope="module")
def ts():
    s = util.Server(util.TESTSERVER, CACHE)
    yield s
    s.stop_ok()


def stats(addr):
    r = util.get(addr, "/cache-stats")
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", r.body.decode())}


def calls(addr):
    return stats(addr)["calls"]


def one(addr, target, method="GET", headers=()):
    with util.Conn(addr) as c:
        c.send(util.request(method, target, headers=headers))
        return c.read_response(head_request=method == "HEAD")


def test_hit_is_the_stored_response_with_date_and_age(ts):
    first = one(ts.addr, "/c/hit?ttl=30")
    assert first.status == 200 and first.header("Piston-Cache") is None
    time.sleep(1.1)
    hit = one(ts.addr, "/c/hit?ttl=30")
    assert hit.body == first.body
    assert int(hit.header("Age")) >= 1
    k = first.body.decode().split()[1]
    assert hit.masked() == (
        b"HTTP/1.1 200 OK\r\nDate: DATE\r\nContent-Type: text/plain\r\n"
        b"Age: " + hit.header("Age").encode() + b"\r\nContent-Length: %d\r\n\r\n"
        b"call " % len(first.body) + k.encode() + b"\n")
    assert hit.header("Date") != first.header("Date")  # a fresh Date


def test_app_is_called_once_for_many_hits(ts):
    before = calls(ts.addr)
    with util.Conn(ts.addr) as c:  # keep-alive, pipelined
        c.send(util.request("GET", "/c/many?ttl=30") * 20)
        bodies = {c.read_response().body for _ in range(20)}
    assert len(bodies) == 1 and calls(ts.addr) - before == 1


def test_head_answered_from_the_get_entry(ts):
    get = one(ts.addr, "/c/head?ttl=30")
    before = calls(ts.addr)
    head = one(ts.addr, "/c/head?ttl=30", "HEAD")
    assert head.status == 200 and head.header("Age") is not None
    assert head.header("Content-Length") == str(len(get.body))
    assert calls(ts.addr) == before
    # and a HEAD miss stores nothing (it has no body to store)
    one(ts.addr, "/c/head2?ttl=30", "HEAD")
    assert one(ts.addr, "/c/head2?ttl=30").header("Age") is None


def test_304_from_the_entry(ts):
    t = "/c/cond?ttl=30&etag=1&lm=1"
    one(ts.addr, t)
    before = calls(ts.addr)
    r = one(ts.addr, t, headers=[("If-None-Match", '"v1"')])
    assert r.status == 304 and r.header("ETag") == '"v1"'
    assert r.header("Content-Type") is None and r.raw_body == b""
    r = one(ts.addr, t, headers=[("If-None-Match", '"other"')])
    assert r.status == 200
    r = one(ts.addr, t, headers=[("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")])
    assert r.status == 304
    r = one(ts.addr, t, headers=[("If-Modified-Since", "Sat, 05 Nov 1994 08:49:37 GMT")])
    assert r.status == 200
    assert calls(ts.addr) == before


def test_weak_etag(ts):
    t = "/c/weak?ttl=30&etag=2&size=50"
    whole = one(ts.addr, t).body
    for tag in ('"v1"', 'W/"v1"', '"x", W/"v1"'):
        assert one(ts.addr, t, headers=[("If-None-Match", tag)]).status == 304
    # If-Range needs a strong match: the whole body
    r = one(ts.addr, t, headers=[("Range", "bytes=0-4"), ("If-Range", 'W/"v1"')])
    assert r.status == 200 and r.body == whole


def test_byte_ranges_on_the_entry(ts):
    t = "/c/range?ttl=30&size=100&etag=1"
    whole = one(ts.addr, t).body
    r = one(ts.addr, t, headers=[("Range", "bytes=2-9")])
    assert r.status == 206 and r.body == whole[2:10]
    assert r.header("Content-Range") == "bytes 2-9/100"
    r = one(ts.addr, t, headers=[("Range", "bytes=-5")])
    assert r.status == 206 and r.body == whole[-5:]
    r = one(ts.addr, t, headers=[("Range", "bytes=500-")])
    assert r.status == 416 and r.header("Content-Range") == "bytes */100"
    r = one(ts.addr, t, headers=[("Range", "bytes=2-9"), ("If-Range", '"old"')])
    assert r.status == 200 and r.body == whole


def test_ttl_expiry(ts):
    a = one(ts.addr, "/c/ttl?ttl=1").body
    assert one(ts.addr, "/c/ttl?ttl=1").body == a
    time.sleep(1.3)
    assert one(ts.addr, "/c/ttl?ttl=1").body != a


def test_vary(ts):
    t = "/c/vary?ttl=30&vary=Accept-Language"
    en = one(ts.addr, t, headers=[("Accept-Language", "en")]).body
    fr = one(ts.addr, t, headers=[("Accept-Language", "fr")]).body
    none = one(ts.addr, t).body
    assert len({en, fr, none}) == 3
    assert one(ts.addr, t, headers=[("Accept-Language", "en")]).body == en
    assert one(ts.addr, t, headers=[("Accept-Language", "fr")]).body == fr
    assert one(ts.addr, t).body == none


def test_host_is_part_of_the_key(ts):
    with util.Conn(ts.addr) as c:
        c.send(b"GET /c/host?ttl=30 HTTP/1.1\r\nHost: a\r\n\r\n")
        a = c.read_response().body
        c.send(b"GET /c/host?ttl=30 HTTP/1.1\r\nHost: b\r\n\r\n")
        b = c.read_response().body
        c.send(b"GET /c/host?ttl=30 HTTP/1.1\r\nHost: A\r\n\r\n")
        a2 = c.read_response().body
    assert a != b and a2 == a


@pytest.mark.parametrize("query,headers", [
    ("cc=private", []),
    ("cc=no-store", []),
    ("cc=no-cache", []),
    ("setcookie=1", []),
    ("vary=Cookie", [("Cookie", "a=1")]),
    ("vary=*", []),
    ("status=500", []),
    ("status=302", []),
    ("ttl=0", []),
    ("", [("Authorization", "Bearer x")]),
])
def test_not_stored(ts, query, headers):
    q = query if query.startswith("ttl=") else "ttl=30&" + query
    t = "/c/no-%d?%s" % (abs(hash(query + repr(headers))), q)
    a = one(ts.addr, t, headers=headers)
    b = one(ts.addr, t, headers=headers)
    assert a.body != b.body and b.header("Age") is None
    assert a.header("Piston-Cache") is None


def test_authorization_request_does_not_get_a_stored_response(ts):
    t = "/c/authz?ttl=30"
    stored = one(ts.addr, t).body
    assert one(ts.addr, t).body == stored
    assert one(ts.addr, t, headers=[("Authorization", "Basic eDp5")]).body != stored


def test_s_maxage_only_when_honoured(ts, server):
    t = "/c/smax?ttl=0&cc=public,s-maxage=30"
    assert one(ts.addr, t).body != one(ts.addr, t).body
    s = server(util.TESTSERVER, ["--cache-size", "100000", "--cache-honour-s-maxage", "1"])
    a = one(s.addr, t)
    b = one(s.addr, t)
    assert a.body == b.body and b.header("Age") is not None
    assert b.header("Cache-Control") == "public,s-maxage=30"


def test_chunked_response_is_stored_with_a_length(ts):
    t = "/c/chunk?ttl=30&chunked=1&size=300"
    a = one(ts.addr, t)
    assert a.framing == "chunked"
    b = one(ts.addr, t)
    assert b.framing == "length" and b.body == a.body


def test_coalescing_200_requests_on_an_expired_key(ts):
    t = "/c/herd?ttl=1&ms=400"
    one(ts.addr, t)
    time.sleep(1.3)  # expired
    before = stats(ts.addr)
    start = threading.Barrier(200)

    def fetch(_):
        c = util.Conn(ts.addr, timeout=20)
        start.wait()
        c.send(util.request("GET", t))
        r = c.read_response()
        c.close()
        return r.body

    with concurrent.futures.ThreadPoolExecutor(200) as ex:
        bodies = list(ex.map(fetch, range(200)))
    after = stats(ts.addr)
    assert after["calls"] - before["calls"] == 1, (before, after)
    assert len(set(bodies)) == 1
    # each of the others waited for that answer or came after it was stored
    assert after["hits"] - before["hits"] == 199
    assert after["coalesced"] - before["coalesced"] > 0


def test_waiters_answered_when_the_fillers_client_leaves(ts):
    # the client of the request filling the miss disconnects while its
    # host works: the waiters are answered all the same (with that answer
    # when the engine has not seen the client leave, else from the host)
    t = "/c/leave?ttl=30&ms=1500"
    before = calls(ts.addr)
    leader = util.Conn(ts.addr)
    leader.send(util.request("GET", t))
    time.sleep(0.2)
    waiters = [util.Conn(ts.addr, timeout=10) for _ in range(5)]
    for c in waiters:
        c.send(util.request("GET", t))
    time.sleep(0.2)
    leader.close()
    rs = [c.read_response() for c in waiters]
    for c in waiters:
        c.close()
    assert all(r.status == 200 and r.body.startswith(b"call ") for r in rs)
    assert calls(ts.addr) <= before + 6


def test_waiter_that_leaves_is_dropped(ts):
    t = "/c/wleave?ttl=30&ms=600"
    leader = util.Conn(ts.addr)
    leader.send(util.request("GET", t))
    time.sleep(0.1)
    w = util.Conn(ts.addr)
    w.send(util.request("GET", t))
    time.sleep(0.1)
    w.close()
    body = leader.read_response().body
    leader.close()
    assert one(ts.addr, t).body == body  # stored, served


def test_stale_while_revalidate(ts):
    t = "/c/swr?ttl=1&swr=30&ms=600"
    old = one(ts.addr, t).body
    time.sleep(1.2)
    refresher = concurrent.futures.ThreadPoolExecutor(1).submit(one, ts.addr, t)
    time.sleep(0.2)  # the refresh is with the host
    t0 = time.monotonic()
    r = one(ts.addr, t)
    assert r.body == old and time.monotonic() - t0 < 0.4  # stale, at once
    new = refresher.result().body
    assert new != old
    assert one(ts.addr, t).body == new


def test_stale_if_error(ts):
    t = "/c/sie?ttl=1&sie=30"
    old = one(ts.addr, t).body
    time.sleep(1.2)
    one(ts.addr, "/cache-fail?on=1")
    try:
        before = calls(ts.addr)
        r = one(ts.addr, t)
        assert r.status == 200 and r.body == old  # the 500 was replaced
        assert calls(ts.addr) == before + 1  # the host was asked
        plain = one(ts.addr, "/c/sie-none?ttl=1")
        assert plain.status == 500  # nothing stale to fall back on
    finally:
        one(ts.addr, "/cache-fail?on=0")
    r = one(ts.addr, t)
    assert r.status == 200 and r.body != old


def test_uncacheable_key_is_not_serialised(ts):
    # a key whose response may not be stored is passed to the host: its
    # requests do not wait on each other
    t = "/c/pass?cc=private&ms=500"
    one(ts.addr, t)
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        bodies = list(ex.map(lambda _: one(ts.addr, t).body, range(6)))
    assert len(set(bodies)) == 6
    assert time.monotonic() - t0 < 2.0


def test_purge_by_key_and_prefix(ts):
    a = one(ts.addr, "/c/p/a?ttl=30").body
    b = one(ts.addr, "/c/p/b?ttl=30").body
    r = util.get(ts.addr, "/cache-purge?t=/c/p/a?ttl=30")
    assert r.body == b"purged=1"
    assert one(ts.addr, "/c/p/a?ttl=30").body != a
    assert one(ts.addr, "/c/p/b?ttl=30").body == b
    r = util.get(ts.addr, "/cache-purge?t=/c/p/&prefix=1")
    assert r.body == b"purged=2"
    assert one(ts.addr, "/c/p/b?ttl=30").body != b


def test_purge_method_from_loopback(ts):
    a = one(ts.addr, "/c/pm?ttl=30").body
    r = one(ts.addr, "/c/pm?ttl=30", "PURGE")
    assert r.status == 200 and r.header("Piston-Purged") == "1"
    assert one(ts.addr, "/c/pm?ttl=30").body != a
    one(ts.addr, "/c/pm2/x?ttl=30")
    r = one(ts.addr, "/c/pm2/*", "PURGE")
    assert r.header("Piston-Purged") == "1"


def test_purge_method_off_by_default(server):
    s = server(util.TESTSERVER, ["--cache-size", "100000"])
    r = one(s.addr, "/c/x?ttl=30", "PURGE")
    assert r.header("Piston-Purged") is None  # the host's own answer


def test_memory_bound_under_a_key_flood(server):
    s = server(util.TESTSERVER, ["--cache-size", "50000", "--cache-max-entry", "4000"])
    with util.Conn(s.addr) as c:
        for i in range(600):
            c.send(util.request("GET", "/c/flood/%d?ttl=60&size=1000" % i))
            c.read_response()
        c.send(util.request("GET", "/c/big?ttl=60&size=5000"))
        c.read_response()
        c.send(util.request("GET", "/c/big?ttl=60&size=5000"))
        assert c.read_response().header("Age") is None  # over the entry limit
    st = stats(s.addr)
    assert st["bytes"] <= 50000 and st["entries"] >= 30
    assert st["evictions"] >= 500
    # the most recent keys are the ones kept
    assert one(s.addr, "/c/flood/599?ttl=60&size=1000").header("Age") is not None
    assert one(s.addr, "/c/flood/0?ttl=60&size=1000").header("Age") is None


def test_cache_off_by_default(server):
    s = server(util.TESTSERVER, [])
    t = "/c/off?ttl=30"
    a = one(s.addr, t)
    assert a.header("Piston-Cache") is None  # stripped all the same
    assert one(s.addr, t).body != a.body


def test_threads_share_one_cache(server):
    s = server(util.TESTSERVER, ["--cache-size", "100000", "--threads", "2"])
    bodies = set()
    for _ in range(20):  # new connections land on either loop
        bodies.add(one(s.addr, "/c/thr?ttl=30").body)
    assert len(bodies) == 1
    util.get(s.addr, "/cache-purge?t=/c/thr?ttl=30")
    assert one(s.addr, "/c/thr?ttl=30").body not in bodies


def test_http2_hits_head_and_304(ts):
    h = H2(ts.addr)
    try:
        st, head, a, _ = h.response(h.request("/c/h2?ttl=30&etag=1"))
        assert st == 200 and "piston-cache" not in head
        st, head, b, _ = h.response(h.request("/c/h2?ttl=30&etag=1"))
        assert st == 200 and b == a and "age" in head
        assert head["content-length"] == str(len(a))
        st, head, body, _ = h.response(h.request("/c/h2?ttl=30&etag=1", method="HEAD"))
        assert st == 200 and body == b""
        st, head, body, _ = h.response(
            h.request("/c/h2?ttl=30&etag=1", headers=[("if-none-match", '"v1"')]))
        assert st == 304 and body == b""
    finally:
        h.close()


def test_http2_coalescing(ts):
    t = "/c/h2herd?ttl=30&ms=300"
    before = calls(ts.addr)
    h = H2(ts.addr)
    try:
        sids = [h.request(t) for _ in range(20)]
        bodies = {h.response(sid, timeout=10)[2] for sid in sids}
    finally:
        h.close()
    assert len(bodies) == 1 and calls(ts.addr) == before + 1


def test_two_loops_under_concurrent_hits_misses_and_purges(server):
    # two loop threads share the store while worker threads fill misses
    # and the API purges (make test-tsan runs this under ThreadSanitizer)
    s = server(util.TESTSERVER, ["--cache-size", "20000", "--threads", "2"])
    stop = time.monotonic() + 2.0
    errors = []

    def client(i):
        n = 0
        while time.monotonic() < stop:
            k = (i * 7 + n) % 20
            q = "ttl=1&size=500" + ("&ms=5" if k % 3 == 0 else "")
            try:
                with util.Conn(s.addr) as c:
                    for _ in range(5):
                        c.send(util.request("GET", "/c/mt/%d?%s" % (k, q)))
                        r = c.read_response()
                        if r.status != 200:
                            errors.append(r.status)
                    if n % 7 == 0:
                        c.send(util.request("GET", "/cache-purge?t=/c/mt/&prefix=1"))
                        c.read_response()
            except OSError as e:
                errors.append(repr(e))
            n += 1

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(client, range(8)))
    assert not errors
    st = stats(s.addr)
    assert st["hits"] > 0 and st["bytes"] <= 20000


def test_cache_route_marks_responses_without_the_field(server):
    s = server(util.TESTSERVER, ["--cache-size", "100000", "--cache-route", "/c/r=30"])
    for t in ("/c/r?ttl=0", "/c/r/x?ttl=0"):  # the host sets no field
        a = one(s.addr, t)
        b = one(s.addr, t)
        assert b.body == a.body and b.header("Age") is not None
    assert one(s.addr, "/c/rx?ttl=0").body != one(s.addr, "/c/rx?ttl=0").body
    # the rules against storing still hold
    t = "/c/r/p?ttl=0&cc=private"
    assert one(s.addr, t).body != one(s.addr, t).body


def test_waiters_are_bounded_in_number(server):
    s = server(util.TESTSERVER, ["--cache-size", "100000", "--cache-max-waiters", "2"])
    t = "/c/bound?ttl=30&ms=500"
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        futs = [ex.submit(one, s.addr, t)]
        time.sleep(0.15)  # the filler is with the host
        futs += [ex.submit(one, s.addr, t) for _ in range(6)]
        rs = [f.result() for f in futs]
    assert all(r.status == 200 for r in rs)
    st = stats(s.addr)
    assert st["coalesced"] == 2  # the others went to the host
    assert st["calls"] == 5


def test_waiting_is_bounded_in_time(server):
    # a miss with the host longer than --cache-wait: the next request for
    # the key goes to the host and takes the waiters with it
    s = server(util.TESTSERVER, ["--cache-size", "100000", "--cache-wait", "0.3"])
    t = "/c/slowfill?ttl=30&ms=2000"
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        filler = ex.submit(one, s.addr, t)
        time.sleep(0.1)
        waiter = ex.submit(one, s.addr, t)  # waits: the miss is young
        time.sleep(0.5)
        late = ex.submit(one, s.addr, t)  # the miss is too old now
        rs = [filler.result(), waiter.result(), late.result()]
    assert all(r.status == 200 for r in rs)
    st = stats(s.addr)
    assert st["coalesced"] == 1 and st["calls"] == 3
