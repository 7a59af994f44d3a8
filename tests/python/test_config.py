"""Configuration beside the command line: a config file (Python with
gunicorn's names, or TOML), PISTON_CMD_ARGS, uvicorn's --host/--port/--uds/
--fd, --pid, --user/--group, --umask, --env-file, --app-dir, --log-config;
and the messages when a value is wrong."""
import json
import os
import pwd
import socket
import signal
import subprocess
import time

import pytest

from conftest import HERE, ROOT, Reader, Server, free_port, piston_cmd, request
from test_cli import one_line_error
from test_workers import children, wait_for

ENV_APP = '''
import json, os

def app(environ, start_response):
    body = json.dumps({"pid": os.getpid(), "uid": os.getuid(), "gid": os.getgid(),
                       "umask": os.umask(0o22), "cwd": os.getcwd(),
                       "env": {k: v for k, v in os.environ.items() if k.startswith("PT_")}
                       }).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
'''


def run_cli(*args, cwd=HERE, env=None, timeout=20):
    e = dict(os.environ)
    e["PYTHONPATH"] = HERE + os.pathsep + os.path.join(ROOT, "python")
    e.update(env or {})
    p = subprocess.run(piston_cmd() + list(args), cwd=cwd, env=e, capture_output=True,
                       timeout=timeout)
    return p.returncode, p.stderr.decode()


def info(port):
    return json.loads(request(port, path="/").body)


def test_python_config_file_with_gunicorn_names(tmp_path):
    port = free_port()
    (tmp_path / "envapp.py").write_text(ENV_APP)
    conf = tmp_path / "piston.conf.py"
    conf.write_text(
        "import multiprocessing\n"
        "bind = ['127.0.0.1:%d']\n"
        "workers = 2\n"
        "threads = 3\n"
        "wsgi_app = 'envapp:app'\n"
        "raw_env = ['PT_A=1', 'PT_B=two']\n"
        "pidfile = %r\n"
        "graceful_timeout = 5\n"
        "proc_name = 'web'\n"
        "loglevel = 'INFO'\n"
        "def post_fork(server, worker):\n"
        "    pass\n" % (port, str(tmp_path / "p.pid")))
    s = Server(piston_cmd() + ["-c", str(conf)], port, cwd=str(tmp_path))
    try:
        assert wait_for(lambda: len(children(s.proc.pid)) == 2)
        got = info(port)
        assert got["env"] == {"PT_A": "1", "PT_B": "two"}
        assert got["pid"] in children(s.proc.pid)
        assert (tmp_path / "p.pid").read_text().strip() == str(s.proc.pid)
        assert s.stop() == 0
        assert not (tmp_path / "p.pid").exists()  # removed at exit
        log = s.log()
        assert "post_fork() is not run by Piston" in log
        assert "proc_name ignored (the process title is not set)" in log
    finally:
        s.stop()


def test_toml_config_and_precedence(tmp_path):
    port, other = free_port(), free_port()
    (tmp_path / "envapp.py").write_text(ENV_APP)
    conf = tmp_path / "piston.toml"
    conf.write_text('wsgi_app = "envapp:app"\nbind = "127.0.0.1:%d"\nworkers = 3\n'
                    'raw_env = ["PT_FROM=file"]\n' % other)
    # the command line over PISTON_CMD_ARGS over the file
    s = Server(piston_cmd() + ["-c", str(conf), "--bind", "127.0.0.1:%d" % port],
               port, cwd=str(tmp_path),
               env={"PISTON_CMD_ARGS": "--workers 2 --env PT_FROM=env"})
    try:
        assert wait_for(lambda: len(children(s.proc.pid)) == 2)
        assert info(port)["env"] == {"PT_FROM": "env"}
        with pytest.raises(OSError):  # the file's bind was replaced, not added
            socket.create_connection(("127.0.0.1", other), timeout=1).close()
    finally:
        s.stop()


@pytest.mark.parametrize("content,needle", [
    ("workers = 'many'\n", "config file"),
    ("workers = 'many'\n", "--workers wants a whole number"),
    ("wrokers = 2\n", "unknown setting 'wrokers' (did you mean 'workers'?)"),
    ("daemon = True\n", "daemon is not supported"),
    ("preload_app = 'yes'\n", "preload_app wants True or False"),
    ("bind = \n", "SyntaxError"),
])
def test_config_file_mistakes(tmp_path, content, needle):
    conf = tmp_path / "bad.conf.py"
    conf.write_text(content)
    code, err = run_cli("apps:app", "-c", str(conf))
    one_line_error(code, err, needle)


def test_config_mistakes_elsewhere(tmp_path):
    code, err = run_cli("apps:app", "-c", str(tmp_path / "none.py"))
    one_line_error(code, err, "no such file")
    (tmp_path / "bad.toml").write_text("workers = [\n")
    code, err = run_cli("apps:app", "-c", str(tmp_path / "bad.toml"))
    one_line_error(code, err, "not valid TOML")
    code, err = run_cli("apps:app", env={"PISTON_CMD_ARGS": "--threads none"})
    one_line_error(code, err, "PISTON_CMD_ARGS", "--threads")
    code, err = run_cli("apps:app", "--user", "no_such_user_xyz")
    one_line_error(code, err, "no user 'no_such_user_xyz'")
    code, err = run_cli("apps:app", "--umask", "999")
    one_line_error(code, err, "--umask")
    (tmp_path / "bad.env").write_text("GOOD=1\nthis line is wrong\n")
    code, err = run_cli("apps:app", "--env-file", str(tmp_path / "bad.env"))
    one_line_error(code, err, "line 2")
    code, err = run_cli("apps:app", "--log-config", str(tmp_path / "none.json"))
    one_line_error(code, err, "--log-config")
    (tmp_path / "bad.json").write_text('{"handlers": {"h": {"class": "no.Such"}}}')
    code, err = run_cli("apps:app", "--log-config", str(tmp_path / "bad.json"))
    one_line_error(code, err, "dictConfig")
    code, err = run_cli()
    one_line_error(code, err, "no app")


def test_uvicorn_host_port_uds_fd(tmp_path):
    port = free_port()
    uds = str(tmp_path / "u.sock")
    ext = socket.socket()
    ext.bind(("127.0.0.1", 0))
    ext.listen(16)
    fd_port = ext.getsockname()[1]
    e = dict(os.environ, PYTHONPATH=HERE + os.pathsep + os.path.join(ROOT, "python"))
    proc = subprocess.Popen(piston_cmd() + ["apps:app", "--host", "127.0.0.1", "--port",
                                            str(port), "--uds", uds, "--fd", str(ext.fileno()),
                                            "--workers", "2"],
                            cwd=HERE, env=e, pass_fds=[ext.fileno()],
                            stderr=subprocess.DEVNULL)
    ext.close()
    try:
        from conftest import wait_port
        wait_port(port, proc)
        assert request(port, path="/pid").status == 200
        assert request(fd_port, path="/pid").status == 200
        c = socket.socket(socket.AF_UNIX)
        c.settimeout(10)
        c.connect(uds)
        c.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert Reader(c).response().status == 200
        c.close()
    finally:
        proc.terminate()
        assert proc.wait(20) == 0


def test_env_file_app_dir_umask_and_user(tmp_path):
    appdir = tmp_path / "code"
    appdir.mkdir()
    (appdir / "envapp.py").write_text(ENV_APP)
    (tmp_path / ".env").write_text('# settings\nexport PT_X="quoted value"\nPT_Y=plain # note\n')
    nobody = pwd.getpwnam("nobody")
    if os.getuid() == 0:  # nobody must reach the app: pytest's dirs are 0700
        for d in (tmp_path.parent.parent, tmp_path.parent, tmp_path, appdir):
            os.chmod(d, 0o755)
    port = free_port()
    extra = ["--user", "nobody"] if os.getuid() == 0 else []
    s = Server(piston_cmd() + ["envapp:app", "--bind", "127.0.0.1:%d" % port,
                               "--app-dir", str(appdir), "--env-file", str(tmp_path / ".env"),
                               "--umask", "027"] + extra, port, cwd=str(tmp_path),
               env={"PT_Y": "from the environment"})
    try:
        got = info(port)
        assert got["env"] == {"PT_X": "quoted value", "PT_Y": "from the environment"}
        assert got["umask"] == 0o27
        if extra:
            assert got["uid"] == nobody.pw_uid and got["gid"] == nobody.pw_gid
            assert os.stat("/proc/%d" % s.proc.pid).st_uid == 0  # the supervisor stays
    finally:
        s.stop()


def test_log_config_json_and_ini(tmp_path):
    out = tmp_path / "dict.log"
    (tmp_path / "log.json").write_text(json.dumps({
        "version": 1,
        "formatters": {"f": {"format": "JSONCONF %(levelname)s %(message)s"}},
        "handlers": {"h": {"class": "logging.FileHandler", "filename": str(out),
                           "formatter": "f"}},
        "loggers": {"piston": {"handlers": ["h"], "level": "INFO", "propagate": False}},
    }))
    port = free_port()
    s = Server(piston_cmd() + ["apps:app", "--bind", "127.0.0.1:%d" % port, "--log-config",
                               str(tmp_path / "log.json")], port)
    s.stop()
    assert "JSONCONF INFO Listening at" in out.read_text()
    ini_out = tmp_path / "ini.log"
    (tmp_path / "log.ini").write_text(
        "[loggers]\nkeys=root,piston\n[handlers]\nkeys=h\n[formatters]\nkeys=f\n"
        "[logger_root]\nhandlers=\n[logger_piston]\nhandlers=h\nlevel=INFO\nqualname=piston\n"
        "propagate=0\n[handler_h]\nclass=FileHandler\nargs=(%r,)\nformatter=f\n"
        "[formatter_f]\nformat=INICONF %%(message)s\n" % str(ini_out))
    port = free_port()
    s = Server(piston_cmd() + ["apps:app", "--bind", "127.0.0.1:%d" % port, "--log-config",
                               str(tmp_path / "log.ini")], port)
    s.stop()
    assert "INICONF Listening at" in ini_out.read_text()


def test_sighup_reads_the_config_file_again(tmp_path):
    port = free_port()
    conf = tmp_path / "piston.conf.py"
    conf.write_text("workers = 2\nthreads = 2\n")
    s = Server(piston_cmd() + ["apps:app", "-c", str(conf), "--bind", "127.0.0.1:%d" % port],
               port)
    try:
        assert wait_for(lambda: len(children(s.proc.pid)) == 2)
        # (a worker's first request may come while its pool still starts)
        assert wait_for(lambda: request(port, path="/threads").body == b"2")
        conf.write_text("workers = 3\nthreads = 5\n")
        s.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: len(children(s.proc.pid)) == 3, timeout=20)
        assert wait_for(lambda: {request(port, path="/threads").body for _ in range(10)}
                        == {b"5"}, timeout=20)
        conf.write_text("workers = 'three'\n")  # a mistake: everything stays
        s.proc.send_signal(signal.SIGHUP)
        time.sleep(2)
        assert wait_for(lambda: len(children(s.proc.pid)) == 3)
        assert request(port, path="/threads").body == b"5"
        log = s.log()
    finally:
        s.stop()
    assert "configuration has a mistake, the old one stays" in log
    assert "SIGHUP: 3 workers" in log


@pytest.mark.skipif(os.getuid() != 0, reason="changing user needs root")
def test_group_alone_and_with_user(tmp_path):
    import grp
    (tmp_path / "envapp.py").write_text(ENV_APP)
    for d in (tmp_path.parent.parent, tmp_path.parent, tmp_path):
        os.chmod(d, 0o755)
    daemon = grp.getgrnam("daemon").gr_gid
    nobody = pwd.getpwnam("nobody").pw_uid
    for extra, uid in ((["--group", "daemon"], 0), (["--user", "nobody", "--group", "daemon"],
                                                    nobody)):
        port = free_port()
        s = Server(piston_cmd() + ["envapp:app", "--bind", "127.0.0.1:%d" % port] + extra,
                   port, cwd=str(tmp_path))
        try:
            got = info(port)
            assert (got["uid"], got["gid"]) == (uid, daemon), extra
        finally:
            s.stop()
