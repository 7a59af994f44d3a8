"""The engine's response cache under the Python hosts (WSGI and ASGI, the
piston CLI with --cache-size): raw requests over sockets; the apps count
their calls (cache_apps.py), so each test sees whether the app ran."""
import concurrent.futures
import re
import threading
import time

import pytest

from conftest import Reader, connect

HOSTS = {"wsgi": "cache_apps:wsgi", "asgi": "cache_apps:asgi"}


def get(port, target, method="GET", headers=()):
    s = connect(port)
    try:
        lines = ["%s %s HTTP/1.1" % (method, target), "Host: t"]
        lines += ["%s: %s" % h for h in headers]
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return Reader(s).response(head=method == "HEAD")
    finally:
        s.close()


def stats(port):
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", get(port, "/stats").body.decode())}


@pytest.fixture(params=sorted(HOSTS))
def srv(request, start_piston):
    s = start_piston(HOSTS[request.param], "--cache-size", "1000000")
    s.kind = request.param
    return s


def test_hit_served_without_the_app(srv):
    a = get(srv.port, "/c/a?ttl=30")
    assert a.header("Piston-Cache") is None
    before = stats(srv.port)["calls"]
    for _ in range(5):
        b = get(srv.port, "/c/a?ttl=30")
        assert b.body == a.body and b.header("Age") is not None
        assert b.header("Piston-Cache") is None
    assert stats(srv.port)["calls"] == before
    assert stats(srv.port)["hits"] >= 5


def test_head_and_304_from_the_entry(srv):
    t = "/c/cond?ttl=30&etag=1"
    body = get(srv.port, t).body
    before = stats(srv.port)["calls"]
    h = get(srv.port, t, "HEAD")
    assert h.status == 200 and h.header("Content-Length") == str(len(body))
    r = get(srv.port, t, headers=[("If-None-Match", '"v1"')])
    assert r.status == 304 and r.header("ETag") == '"v1"'
    assert stats(srv.port)["calls"] == before


def test_vary(srv):
    t = "/c/vary?ttl=30&vary=Accept-Language"
    en = get(srv.port, t, headers=[("Accept-Language", "en")]).body
    fr = get(srv.port, t, headers=[("Accept-Language", "fr")]).body
    assert en != fr
    assert get(srv.port, t, headers=[("Accept-Language", "en")]).body == en


@pytest.mark.parametrize("query,headers", [
    ("cc=private", []), ("cc=no-store", []), ("setcookie=1", []),
    ("", [("Authorization", "Basic eDp5")]), ("ttl=0", []),
])
def test_not_stored(srv, query, headers):
    q = query if query.startswith("ttl=") else "ttl=30&" + query
    t = "/c/no?%s" % q
    assert get(srv.port, t, headers=headers).body != get(srv.port, t, headers=headers).body


def test_ttl_expiry(srv):
    a = get(srv.port, "/c/ttl?ttl=1").body
    assert get(srv.port, "/c/ttl?ttl=1").body == a
    time.sleep(1.3)
    assert get(srv.port, "/c/ttl?ttl=1").body != a


def test_coalescing_200_on_an_expired_key(srv):
    t = "/c/herd?ttl=1&ms=300"
    get(srv.port, t)
    time.sleep(1.3)
    before = stats(srv.port)["calls"]
    barrier = threading.Barrier(200)

    def one(_):
        s = connect(srv.port, timeout=30)
        barrier.wait()
        s.sendall(("GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % t).encode())
        body = Reader(s).response().body
        s.close()
        return body

    with concurrent.futures.ThreadPoolExecutor(200) as ex:
        bodies = set(ex.map(one, range(200)))
    assert len(bodies) == 1
    assert stats(srv.port)["calls"] == before + 1


def test_purge_from_the_app(srv):
    a = get(srv.port, "/c/p/1?ttl=30").body
    b = get(srv.port, "/c/p/2?ttl=30").body
    assert get(srv.port, "/purge?t=/c/p/1?ttl=30").body == b"purged=1"
    assert get(srv.port, "/c/p/1?ttl=30").body != a
    assert get(srv.port, "/c/p/2?ttl=30").body == b
    assert get(srv.port, "/purge?t=/c/p/&prefix=1").body == b"purged=2"


def test_memory_bound_under_a_key_flood(start_piston):
    s = start_piston("cache_apps:wsgi", "--cache-size", "40000")
    for i in range(300):
        get(s.port, "/c/flood/%d?ttl=60&size=1000" % i)
    st = stats(s.port)
    assert st["bytes"] <= 40000 and st["evictions"] >= 250 and st["entries"] >= 20


@pytest.mark.parametrize("app", ["cache_apps:wsgi_all", "cache_apps:asgi_all"])
def test_decorated_app(start_piston, app):
    s = start_piston(app, "--cache-size", "100000")
    a = get(s.port, "/anything")
    assert a.header("Piston-Cache") is None
    b = get(s.port, "/anything")
    assert b.body == a.body and b.header("Age") is not None
    assert get(s.port, "/other").body != a.body


def test_flask_views(start_piston):
    s = start_piston("cache_apps:flask_app", "--cache-size", "100000")
    a = get(s.port, "/product/1")
    assert a.header("Content-Type") == "application/json"
    assert get(s.port, "/product/1").body == a.body
    assert get(s.port, "/product/2").body != a.body
    t = get(s.port, "/text")
    assert get(s.port, "/text").body == t.body
    assert get(s.port, "/user").body != get(s.port, "/user").body
    assert get(s.port, "/purge/1").body == b"purged=1"
    assert get(s.port, "/product/1").body != a.body


def test_fastapi_endpoint(start_piston):
    s = start_piston("cache_apps:fastapi_app", "--cache-size", "100000")
    a = get(s.port, "/item/7")
    assert a.status == 200 and b'"id":7' in a.body
    b = get(s.port, "/item/7")
    assert b.body == a.body and b.header("Age") is not None


def test_cli_s_maxage_and_purge_method(start_piston):
    s = start_piston("cache_apps:wsgi", "--cache-size", "100000",
                     "--cache-honour-s-maxage", "--cache-purge")
    t = "/c/sm?ttl=0&cc=public,s-maxage=30"
    a = get(s.port, t).body
    assert get(s.port, t).body == a
    r = get(s.port, t, "PURGE")
    assert r.status == 200 and r.header("Piston-Purged") == "1"
    assert get(s.port, t).body != a


def test_decorator_checks_its_arguments():
    import piston
    with pytest.raises(ValueError):
        piston.cache(ttl=0)
    with pytest.raises(ValueError):
        piston.cache(ttl=5, swr=-1)
    assert piston.cache_header(5, swr=10) == ("Piston-Cache", "ttl=5, swr=10")


@pytest.mark.parametrize("app,path", [("examples.cache_flask:app", "/product/1"),
                                      ("examples.cache_django:application", "/feed")])
def test_examples(app, path):
    from conftest import ROOT, Server, free_port, piston_cmd
    port = free_port()
    s = Server(piston_cmd() + [app, "--bind", "127.0.0.1:%d" % port,
                               "--cache-size", "1000000"], port, cwd=ROOT)
    try:
        a = get(port, path)
        assert a.status == 200 and a.header("Piston-Cache") is None
        b = get(port, path)
        assert b.body == a.body and b.header("Age") is not None
        if a.header("ETag"):
            assert get(port, path, headers=[("If-None-Match", a.header("ETag"))]).status == 304
    finally:
        assert s.stop() == 0


@pytest.mark.parametrize("kind", sorted(HOSTS))
def test_cli_cache_route(start_piston, kind):
    s = start_piston(HOSTS[kind], "--cache-size", "100000", "--cache-route", "/c/r=30")
    t = "/c/r/1?ttl=0"  # the app sets no field
    a = get(s.port, t).body
    assert get(s.port, t).body == a
    assert get(s.port, "/c/other?ttl=0").body != get(s.port, "/c/other?ttl=0").body


def test_cli_cache_route_checks_its_ttl(start_piston):
    import subprocess
    from conftest import HERE, piston_cmd
    r = subprocess.run(piston_cmd() + ["cache_apps:wsgi", "--cache-route", "/x=soon"],
                       cwd=HERE, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "--cache-route /x=soon" in r.stderr
