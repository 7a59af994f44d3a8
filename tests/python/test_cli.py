"""The command line: options that reach the engine, and errors a user
understands (one line on stderr, exit code != 0, no traceback)."""
import os
import socket
import subprocess
import sys

import pytest

from conftest import HERE, ROOT, Server, connect, free_port, piston_cmd, request, Reader


def run_cli(*args, timeout=20):
    env = dict(os.environ)
    env["PYTHONPATH"] = HERE + os.pathsep + os.path.join(ROOT, "python")
    p = subprocess.run(piston_cmd() + list(args), cwd=HERE, env=env, capture_output=True,
                       timeout=timeout)
    return p.returncode, p.stderr.decode()


def one_line_error(code, err, *needles):
    assert code != 0
    assert "Traceback" not in err, err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], err


def test_import_error():
    code, err = run_cli("no_such_module_xyz:app", "--bind", "127.0.0.1:%d" % free_port())
    one_line_error(code, err, "no_such_module_xyz")


def test_missing_attribute():
    code, err = run_cli("apps:nope", "--bind", "127.0.0.1:%d" % free_port())
    one_line_error(code, err, "nope")


def test_not_callable():
    code, err = run_cli("apps:not_callable", "--bind", "127.0.0.1:%d" % free_port())
    one_line_error(code, err, "not callable")


def test_port_in_use():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        code, err = run_cli("apps:app", "--bind", "127.0.0.1:%d" % port)
        one_line_error(code, err, "address already in use")
        code, err = run_cli("apps:app", "--bind", "127.0.0.1:%d" % port, "--workers", "2")
        one_line_error(code, err, "address already in use")
    finally:
        s.close()


@pytest.mark.parametrize("args,needle", [
    (["--bind", "nonsense"], "nonsense"),
    (["--bind", "127.0.0.1:99999"], "--bind"),
    (["--workers", "zero"], "--workers"),
    (["--threads", "0"], "--threads"),
    (["--max-body-size", "-5"], "--max-body-size"),
    (["--idle-timeout", "abc"], "--idle-timeout"),
    (["--route", "health"], "--route"),
    (["--static", "/s=/no/such/dir"], "not a directory"),
    (["--no-such-option"], "unrecognized"),
    (["--interface", "cgi"], "--interface"),
    (["--ws", "wsproto"], "--ws"),
    (["--ws-max-size", "-1"], "--ws-max-size"),
    (["--ws-max-size", "10"], "OPT_WS_MAX_MESSAGE: 10 is out of the engine's range"),
    (["--max-head-size", "1"], "OPT_MAX_HEAD_SIZE: 1 is out of the engine's range"),
])
def test_bad_options(args, needle):
    code, err = run_cli("apps:app", *args)
    one_line_error(code, err, needle)


@pytest.mark.parametrize("name", ["asgi_app", "AsgiClass", "asgi_instance"])
def test_asgi_detected(start_piston, name):
    # detected and served by the ASGI host (these apps answer nothing: 500)
    srv = start_piston("apps:" + name)
    assert request(srv.port, path="/").status == 500
    assert "asyncio loop" in srv.log()


def test_factory_routes_static_root_path(start_piston, tmp_path):
    (tmp_path / "hello.txt").write_bytes(b"static hello\n")
    srv = start_piston("apps:factory", "--factory", "--route", "/health=OK",
                       "--static", "/files=%s" % tmp_path, "--root-path", "/app")
    r = request(srv.port, path="/health")
    assert r.status == 200 and r.body == b"OK"
    assert r.header("Content-Type").startswith("text/plain")
    r = request(srv.port, path="/files/hello.txt")
    assert r.status == 200 and r.body == b"static hello\n"
    r = request(srv.port, path="/files/../apps.py")
    assert r.status == 404
    import json
    e = json.loads(request(srv.port, path="/app/env/x").body)
    assert e["SCRIPT_NAME"] == "/app" and e["PATH_INFO"] == "/env/x"


def test_python_m_piston_and_cwd_import(tmp_path):
    (tmp_path / "cwdapp.py").write_text(
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'from cwd']\n")
    port = free_port()
    env = {"PYTHONPATH": os.path.join(ROOT, "python")}
    s = Server([sys.executable, "-m", "piston", "cwdapp", "--bind", "127.0.0.1:%d" % port],
               port, cwd=str(tmp_path), env=env)
    try:
        assert request(port, path="/").body == b"from cwd"
    finally:
        assert s.stop() == 0


def test_unix_socket(tmp_path):
    path = str(tmp_path / "p.sock")
    port = free_port()  # a TCP bind too, for the readiness check
    s = Server(piston_cmd() + ["apps:app", "--bind", "unix:" + path,
                               "--bind", "127.0.0.1:%d" % port], port)
    try:
        c = socket.socket(socket.AF_UNIX)
        c.settimeout(10)
        c.connect(path)
        c.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        r = Reader(c).response()
        c.close()
        assert r.body == b"one\ntwo\nthree\n"
    finally:
        assert s.stop() == 0


def ipv6_port(host):
    """A free port on the IPv6 address host; the test is skipped without one."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        t = socket.socket(socket.AF_INET6)
        t.bind((host, 0))
        port = t.getsockname()[1]
        t.close()
        return port
    except OSError:
        pytest.skip("no %s to bind" % host)


def test_ipv6_bind():
    port = ipv6_port("::1")
    env = dict(os.environ, PYTHONPATH=HERE + os.pathsep + os.path.join(ROOT, "python"))
    p = subprocess.Popen(piston_cmd() + ["apps:app", "--bind", "[::1]:%d" % port], cwd=HERE,
                         env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        import time
        for _ in range(100):
            try:
                c = socket.create_connection(("::1", port), timeout=5)
                break
            except OSError:
                time.sleep(0.05)
        c.settimeout(10)
        c.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert Reader(c).response().body == b"one\ntwo\nthree\n"
        c.close()
    finally:
        p.terminate()
        assert p.wait(10) == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_ipv6_any_is_ipv6_only(workers):
    # '[::]' is IPv6's (IPv4 has 0.0.0.0), as the engine binds it (nginx's
    # ipv6only=on), whoever makes the socket: one process or a supervisor,
    # whatever the system's bindv6only says
    port = ipv6_port("::")
    import time
    env = dict(os.environ, PYTHONPATH=HERE + os.pathsep + os.path.join(ROOT, "python"))
    p = subprocess.Popen(piston_cmd() + ["apps:app", "--bind", "[::]:%d" % port,
                                         "--workers", workers], cwd=HERE,
                         env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("::1", port), timeout=5).close()
                break
            except OSError:
                time.sleep(0.05)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
    finally:
        p.terminate()
        assert p.wait(20) == 0


def test_fd_bind_and_idle_timeout():
    """fd://N: an inherited listening socket (systemd style)."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    port = ls.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=HERE + os.pathsep + os.path.join(ROOT, "python"))
    p = subprocess.Popen(piston_cmd() + ["apps:app", "--bind", "fd://%d" % ls.fileno(),
                                         "--idle-timeout", "0.3"],
                         cwd=HERE, env=env, pass_fds=[ls.fileno()],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ls.close()
    try:
        c = connect(port)
        c.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        assert Reader(c).response().body == b"one\ntwo\nthree\n"
        # the keep-alive connection is closed after --idle-timeout
        import time
        t0 = time.monotonic()
        assert c.recv(10) == b""
        assert 0.2 < time.monotonic() - t0 < 3
        c.close()
    finally:
        p.terminate()
        assert p.wait(10) == 0
