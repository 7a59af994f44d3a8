"""Real proxies in front of Piston: nginx and HAProxy started from configs
written per test, with the apps behind them run by the piston CLI (.venv),
node and the C test server. Clients connect from 127.0.0.5 (a loopback
address of their own), so the client address the apps report is told apart
from the proxy's 127.0.0.1."""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.join(ROOT, os.environ.get("PISTON_BUILD", "build"))
CLIENT_ADDR = "127.0.0.5"
TIMEOUT = 15


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(check, proc, what, timeout=TIMEOUT):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError("%s exited early (%s)" % (what, proc.returncode))
        try:
            check()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("%s did not start" % what)


def tcp_up(port):
    return lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close()


def unix_up(path):
    def check():
        u = socket.socket(socket.AF_UNIX)
        try:
            u.connect(path)
        finally:
            u.close()
    return check


def need(tool):
    # a missing tool is a failure, never a skip (scripts/setup-deps.sh installs it)
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
    assert path, "%s is missing: run scripts/setup-deps.sh" % tool
    return path


class Proc:
    def __init__(self, args, ready, what, cwd=HERE, env=None):
        e = dict(os.environ)
        e["PYTHONPATH"] = HERE + os.pathsep + os.path.join(ROOT, "python")
        e.update(env or {})
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(args, cwd=cwd, env=e, stdin=subprocess.DEVNULL,
                                     stdout=self.err, stderr=self.err,
                                     start_new_session=True)
        self.what = what
        wait_for(ready, self.proc, what)

    def log(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(5)


@pytest.fixture
def procs():
    started = []
    yield started
    for p in reversed(started):
        p.stop()


@pytest.fixture(scope="session")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    c, k = str(d / "cert.pem"), str(d / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-keyout", k,
                    "-out", c, "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    both = str(d / "both.pem")  # HAProxy wants the key with the chain
    with open(both, "w") as f:
        f.write(open(c).read() + open(k).read())
    return {"cert": c, "key": k, "pem": both}


def piston(procs, app, *args, bind):
    venv = os.path.join(ROOT, ".venv", "bin", "piston")
    cmd = [venv] if os.path.exists(venv) else [sys.executable, "-m", "piston"]
    ready = unix_up(bind[5:]) if bind.startswith("unix:") else tcp_up(int(bind.rsplit(":", 1)[1]))
    p = Proc(cmd + [app, "--bind", bind] + list(args), ready, "piston " + app)
    procs.append(p)
    return p


def node(procs, script, port, env=None):
    e = {"PORT": str(port)}
    e.update(env or {})
    p = Proc(["node", os.path.join(HERE, script)], tcp_up(port), script, env=e)
    procs.append(p)
    return p


def run_testserver(procs, port, *args):
    p = Proc([os.path.join(BUILD, "piston-testserver"), "--bind", "127.0.0.1:%d" % port]
             + list(args), tcp_up(port), "piston-testserver")
    procs.append(p)
    return p


# Started as root (a container), nginx's workers would run as nobody and
# could not reach a socket in the test's private directory.
NGINX = """
{user}
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 128; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
{body}
}}
"""


def nginx(procs, tmp_path, body):
    d = str(tmp_path / "nginx")
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX.format(d=d, body=body,
                             user="user root;" if os.geteuid() == 0 else ""))
    port = int(re.search(r"listen 127\.0\.0\.1:(\d+)", body).group(1))
    p = Proc([need("nginx"), "-p", d, "-c", conf], tcp_up(port), "nginx")
    procs.append(p)
    return p


def haproxy(procs, tmp_path, body):
    d = tmp_path / "haproxy"
    d.mkdir(exist_ok=True)
    conf = str(d / "haproxy.cfg")
    with open(conf, "w") as f:
        f.write(body)
    port = int(re.search(r"bind 127\.0\.0\.1:(\d+)", body).group(1))
    p = Proc([need("haproxy"), "-db", "-f", conf], tcp_up(port), "haproxy")
    procs.append(p)
    return p
