#!/usr/bin/python3
"""Time from exec of a server to its first successful HTTP response.

  startup_time.py --runs N [--port P] [--server-cpu 0 --client-cpu 1] -- CMD ARGS...

Each run picks a free port (substituted for `{port}` in CMD; without the
placeholder, --port is used), takes a timestamp, posix_spawn()s CMD pinned to
--server-cpu, then, pinned to --client-cpu, retries connect() + `GET --path`
in a tight loop until a complete 200 response arrives. The server is then
stopped with SIGTERM (SIGKILL after 3 s). Prints one line:

  STARTUP_RESULT runs=N median_ms=X min_ms=X max_ms=X

and exits non-zero if any run did not get a 200 within --timeout seconds.
Standard library only.
"""
import argparse
import os
import shutil
import signal
import socket
import statistics
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def try_request(port, request):
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", port))
    except OSError:
        s.close()
        return None
    try:
        s.settimeout(2.0)
        s.sendall(request)
        buf = b""
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                length = 0
                for line in buf[:end].split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if len(buf) >= end + 4 + length:
                    return buf.startswith(b"HTTP/1.1 200")
            data = s.recv(65536)
            if not data:
                return False
            buf += data
    except OSError:
        return False
    finally:
        s.close()


def stop(pid):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--path", default="/hello")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("missing server command")
    exe = shutil.which(cmd[0])
    if exe is None:
        ap.error(f"not found: {cmd[0]}")

    ncpu = os.cpu_count() or 1
    server_cpus = {args.server_cpu % ncpu}
    client_cpus = {args.client_cpu % ncpu}
    devnull = os.open(os.devnull, os.O_RDWR)
    times = []
    for _ in range(args.runs):
        port = free_port() if any("{port}" in a for a in cmd) else args.port
        argv = [a.replace("{port}", str(port)) for a in cmd]
        request = (f"GET {args.path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                   "Connection: close\r\n\r\n").encode()
        os.sched_setaffinity(0, server_cpus)   # inherited by the child
        t0 = time.perf_counter_ns()
        pid = os.posix_spawn(exe, argv, os.environ,
                             file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1),
                                           (os.POSIX_SPAWN_DUP2, devnull, 2)])
        os.sched_setaffinity(0, client_cpus)
        ok = False
        deadline = t0 + int(args.timeout * 1e9)
        while time.perf_counter_ns() < deadline:
            r = try_request(port, request)
            if r:
                ok = True
                break
            if r is False:        # connected but not a 200: give it a moment
                time.sleep(0.0005)
        t1 = time.perf_counter_ns()
        stop(pid)
        if not ok:
            print(f"startup_time: no 200 from {' '.join(argv)} within {args.timeout}s",
                  file=sys.stderr)
            return 1
        times.append((t1 - t0) / 1e6)

    print(f"STARTUP_RESULT runs={len(times)} median_ms={statistics.median(times):.2f} "
          f"min_ms={min(times):.2f} max_ms={max(times):.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
