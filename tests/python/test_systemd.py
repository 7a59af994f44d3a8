"""systemd's protocols without systemd: socket activation by the real
systemd-socket-activate (and by hand, LISTEN_FDS/LISTEN_PID and fd 3, for
one process), and sd_notify datagrams received on a Unix socket here."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import HERE, ROOT, free_port, piston_cmd, request
from test_workers import children


class NotifySocket:
    """What systemd listens on: a Unix datagram socket ('@': abstract)."""

    def __init__(self, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "piston-test-%d-%d" % (os.getpid(), time.monotonic_ns())
            self.sock.bind("\0" + name)
            self.env = "@" + name
        else:
            self.dir = tempfile.mkdtemp()
            self.env = os.path.join(self.dir, "notify")
            self.sock.bind(self.env)
        self.sock.settimeout(15)

    def next(self):
        return self.sock.recv(4096).decode()

    def wait_for(self, state):
        seen = []
        while True:
            m = self.next()
            seen.append(m)
            if state in m.split("\n"):
                return seen


def env(**extra):
    e = dict(os.environ)
    e["PYTHONPATH"] = HERE + os.pathsep + os.path.join(ROOT, "python")
    e.update(extra)
    return e


@pytest.mark.skipif(not shutil.which("systemd-socket-activate"),
                    reason="systemd-socket-activate (Debian's systemd package) is not installed; "
                           "test_socket_activation_by_hand speaks the same protocol")
def test_socket_activation_and_notify_with_systemd_socket_activate():
    port = free_port()
    n = NotifySocket()
    # its -E passes variables on to the service it starts
    proc = subprocess.Popen(
        ["systemd-socket-activate", "-l", "127.0.0.1:%d" % port,
         "-E", "PYTHONPATH=" + env()["PYTHONPATH"], "-E", "NOTIFY_SOCKET=" + n.env,
         "-E", "WATCHDOG_USEC=400000"]
        + piston_cmd() + ["apps:app", "--workers", "2"],
        cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        time.sleep(0.5)
        # the first connection starts piston (exec'd in place, the same pid),
        # which serves it on the socket it was given
        r = request(port, path="/pid")
        assert r.status == 200 and int(r.body) in children(proc.pid)
        seen = n.wait_for("READY=1")
        assert "MAINPID=%d" % proc.pid in seen[-1].split("\n")
        assert n.wait_for("WATCHDOG=1") and n.wait_for("WATCHDOG=1")  # every 0.2 s
        assert len(children(proc.pid)) == 2
        proc.send_signal(signal.SIGHUP)
        n.wait_for("RELOADING=1")
        n.wait_for("READY=1")
        proc.send_signal(signal.SIGTERM)
        n.wait_for("STOPPING=1")
        assert proc.wait(20) == 0
        err = proc.stderr.read().decode()
        assert "Listening at: fd://3" in err
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_socket_activation_by_hand(workers):
    # exactly what systemd does: the socket on fd 3, LISTEN_FDS=1 and
    # LISTEN_PID set to the service's own pid (known only after the fork:
    # shell sets it, then becomes piston; dash takes no fd above 9)
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(64)
    port = lsock.getsockname()[1]
    n = NotifySocket(abstract=True)
    cmd = " ".join("'%s'" % a for a in piston_cmd() + ["apps:app", "--workers", workers])
    proc = subprocess.Popen(
        ["bash", "-c", "exec 3<&%d; LISTEN_PID=$$ LISTEN_FDS=1 exec %s" % (lsock.fileno(), cmd)],
        cwd=HERE, env=env(NOTIFY_SOCKET=n.env), pass_fds=[lsock.fileno()],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    lsock.close()  # piston holds it now
    try:
        try:
            n.wait_for("READY=1")
        except TimeoutError:
            proc.kill()
            raise AssertionError(proc.communicate()[1].decode())
        assert request(port, path="/pid").status == 200
        proc.send_signal(signal.SIGTERM)
        n.wait_for("STOPPING=1")
        assert proc.wait(20) == 0
        assert "Listening at: fd://3" in proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@pytest.mark.parametrize("listen_pid,expect", [("$$", "[3] None None"),
                                               ("1", "[] None None")])
def test_listen_fds_for_this_process_only(listen_pid, expect):
    # sd_listen_fds(3): the fds are ours only when LISTEN_PID is our pid;
    # either way the variables are removed, so the app's children do not
    # take them for theirs
    code = ("import os; from piston import systemd; "
            "print(systemd.listen_fds(), os.environ.get('LISTEN_FDS'), "
            "os.environ.get('LISTEN_PID'))")
    p = subprocess.run(["sh", "-c", "LISTEN_PID=%s LISTEN_FDS=1 exec '%s' -c \"%s\""
                        % (listen_pid, sys.executable, code)],
                       env=env(), capture_output=True, timeout=20)
    assert p.stdout.decode().strip() == expect, p.stderr
