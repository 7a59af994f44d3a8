"""docs/deploy.md's recipes, run as written: the systemd units (socket
activation as systemd does it, Type=notify, ExecReload, KillMode=mixed's
SIGTERM, the watchdog) and the Kubernetes Deployment (its probes, the
preStop sleep, SIGTERM's drain within terminationGracePeriodSeconds)."""
import configparser
import os
import re
import shlex
import signal
import socket
import subprocess
import threading
import time

import yaml

from conftest import HERE, ROOT, Server, free_port, piston_cmd, request
from test_systemd import NotifySocket, env
from test_workers import children

DOC = os.path.join(ROOT, "docs", "deploy.md")


def blocks(lang):
    text = open(DOC, encoding="utf-8").read()
    return re.findall(r"```%s\n(.*?)```" % lang, text, re.S)


def unit(name):
    for b in blocks("ini"):
        if b.startswith("# /etc/systemd/system/%s\n" % name):
            p = configparser.ConfigParser(interpolation=None, strict=False)
            p.optionxform = str
            p.read_string(b)
            return p
    raise AssertionError("docs/deploy.md has no %s" % name)


def test_systemd_units():
    sock, svc = unit("piston.socket"), unit("piston.service")
    host, _, _ = sock["Socket"]["ListenStream"].rpartition(":")
    s = svc["Service"]
    assert s["Type"] == "notify" and s["KillMode"] == "mixed"
    assert float(s["TimeoutStopSec"]) > 30
    argv = shlex.split(s["ExecStart"])
    assert argv[0].endswith("/.venv/bin/piston") and argv[1] == "myapp:app"
    args = piston_cmd() + ["apps:app"] + argv[2:]
    # what systemd does: bind ListenStream with Backlog, start the service
    # with the socket as fd 3, LISTEN_FDS=1, LISTEN_PID=its pid, and
    # NOTIFY_SOCKET, WATCHDOG_USEC for Type=notify and WatchdogSec
    lsock = socket.socket()
    lsock.bind((host, 0))
    lsock.listen(int(sock["Socket"]["Backlog"]))
    port = lsock.getsockname()[1]
    n = NotifySocket()
    watchdog_usec = int(float(s["WatchdogSec"]) * 1e6)
    proc = subprocess.Popen(
        ["bash", "-c", "exec 3<&%d; LISTEN_PID=$$ LISTEN_FDS=1 exec %s"
         % (lsock.fileno(), " ".join(shlex.quote(a) for a in args))],
        cwd=HERE, env=env(NOTIFY_SOCKET=n.env, WATCHDOG_USEC=str(watchdog_usec)),
        pass_fds=[lsock.fileno()], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True)
    lsock.close()
    try:
        ready = n.wait_for("READY=1")[-1].split("\n")
        mainpid = int([x for x in ready if x.startswith("MAINPID=")][0][8:])
        assert mainpid == proc.pid
        assert len(children(mainpid)) == int(argv[argv.index("--workers") + 1])
        assert request(port, path="/pid").status == 200
        n.wait_for("WATCHDOG=1")
        # ExecReload, with $MAINPID as systemd fills it in
        reload = shlex.split(s["ExecReload"].replace("$MAINPID", str(mainpid)))
        assert subprocess.run(reload).returncode == 0
        n.wait_for("RELOADING=1")
        n.wait_for("READY=1")
        assert request(port, path="/pid").status == 200
        # stop: KillMode=mixed sends SIGTERM to the main process
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        n.wait_for("STOPPING=1")
        assert proc.wait(float(s["TimeoutStopSec"])) == 0
        assert time.monotonic() - t0 < float(s["TimeoutStopSec"])
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def test_kubernetes_probes_and_graceful_drain():
    (doc,) = [yaml.safe_load(b) for b in blocks("yaml")]
    spec = doc["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    args = c["args"]
    assert args[:2] == ["piston", "myapp:app"]
    cport = c["ports"][0]["containerPort"]
    port = free_port()
    argv = [a.replace("0.0.0.0:%d" % cport, "127.0.0.1:%d" % port) for a in args[2:]]
    s = Server(piston_cmd() + ["apps:app"] + argv, port)
    try:
        for probe in ("readinessProbe", "livenessProbe"):
            g = c[probe]["httpGet"]
            assert g["port"] == cport
            r = request(port, path=g["path"])
            assert r.status == 200, probe
        path = c["readinessProbe"]["httpGet"]["path"]
        pre = c["lifecycle"]["preStop"]["exec"]["command"]
        assert pre[0] == "sleep"
        # requests in flight when the pod is deleted, still running when
        # SIGTERM comes after the preStop sleep
        results = []

        def slow():
            try:
                results.append(request(port, path="/sleep?s=%g" % (float(pre[1]) + 3)).status)
            except Exception as e:  # noqa
                results.append(repr(e))
        ts = [threading.Thread(target=slow) for _ in range(4)]
        for t in ts:
            t.start()
        time.sleep(0.3)
        t0 = time.monotonic()
        # the kubelet runs preStop, meanwhile new connections still come
        sleeper = subprocess.Popen(pre)
        served = 0
        while sleeper.poll() is None:
            assert request(port, path=path).status == 200
            served += 1
            time.sleep(0.2)
        assert served >= 5
        # then SIGTERM: new connections are refused at once (the probes
        # fail), the requests in flight finish
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert s.proc.poll() is None and results == [], "it did not wait for them"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            refused = False
        except ConnectionRefusedError:
            refused = True
        assert refused, "still accepting connections after SIGTERM"
        for t in ts:
            t.join(30)
        assert results == [200] * 4
        assert s.proc.wait(60) == 0
        assert time.monotonic() - t0 < spec["terminationGracePeriodSeconds"]
    finally:
        s.stop()
