#!/usr/bin/python3
"""Open many idle HTTP/1.1 keep-alive connections and measure a server's RSS.

Opens --conns connections to 127.0.0.1:--port, sends one GET on each, reads
the whole response (Content-Length framed), keeps every connection open, then
reads VmRSS of --pid from /proc before and after (--pid may list several
processes, comma-separated, e.g. a master and its worker: their sum). Prints
one line:

  IDLE_RESULT conns=N ok=N rss_before_kb=K rss_after_kb=K

and exits non-zero if fewer than --conns responses were a complete 200.
Standard library only.
"""
import argparse
import errno
import resource
import selectors
import socket
import sys
import time


def vm_rss_kb(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
            else:
                raise RuntimeError(f"no VmRSS for pid {pid}")
    return total


class Conn:
    __slots__ = ("sock", "buf", "sent", "done", "ok")

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.sent = False
        self.done = False
        self.ok = False


def response_complete(buf):
    """Return (complete, status_ok) for a Content-Length framed response."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False, False
    head = bytes(buf[:end]).decode("latin-1").split("\r\n")
    status_ok = head[0].split(" ")[1:2] == ["200"]
    length = 0
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    return len(buf) >= end + 4 + length, status_ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", required=True, type=lambda v: [int(p) for p in v.split(",")],
                    help="PID[,PID...]: the processes whose VmRSS is summed")
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--path", default="/hello")
    ap.add_argument("--inflight", type=int, default=256,
                    help="connections being set up at the same time")
    ap.add_argument("--settle", type=float, default=0.5,
                    help="seconds to wait before each RSS reading")
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else args.conns + 1024
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < args.conns + 64:
        print(f"idle_conns: fd limit {want} is too low for {args.conns} connections",
              file=sys.stderr)
        return 2

    request = (f"GET {args.path} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n"
               "User-Agent: piston-bench-idle\r\nAccept: */*\r\n\r\n").encode()

    time.sleep(args.settle)
    rss_before = vm_rss_kb(args.pid)

    sel = selectors.DefaultSelector()
    conns = []          # every connection, kept open until exit
    opened = 0
    active = 0          # set up but response not complete yet
    ok = 0
    failed = 0
    deadline = time.monotonic() + args.timeout

    while (opened < args.conns or active) and time.monotonic() < deadline:
        while opened < args.conns and active < args.inflight:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            err = s.connect_ex(("127.0.0.1", args.port))
            if err not in (0, errno.EINPROGRESS):
                failed += 1
                s.close()
                opened += 1
                continue
            c = Conn(s)
            conns.append(c)
            sel.register(s, selectors.EVENT_WRITE, c)
            opened += 1
            active += 1
        for key, events in sel.select(timeout=1.0):
            c = key.data
            s = c.sock
            try:
                if not c.sent:
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, "connect")
                    s.sendall(request)
                    c.sent = True
                    sel.modify(s, selectors.EVENT_READ, c)
                    continue
                data = s.recv(65536)
                if not data:
                    raise OSError("closed by server")
                c.buf += data
                complete, status_ok = response_complete(c.buf)
                if complete:
                    c.done = True
                    c.ok = status_ok
                    c.buf = bytearray()
                    ok += status_ok
                    failed += not status_ok
                    sel.unregister(s)
                    active -= 1
            except (OSError, ValueError):
                sel.unregister(s)
                failed += 1
                active -= 1

    # Connections must still be open: check none was closed by the server.
    time.sleep(args.settle)
    rss_after = vm_rss_kb(args.pid)
    still_open = 0
    for c in conns:
        if not c.ok:
            continue
        try:
            c.sock.setblocking(False)
            data = c.sock.recv(1, socket.MSG_PEEK)
            if data == b"":
                continue  # EOF: server closed it
            still_open += 1
        except BlockingIOError:
            still_open += 1
        except OSError:
            pass

    print(f"IDLE_RESULT conns={args.conns} ok={ok} open={still_open} "
          f"rss_before_kb={rss_before} rss_after_kb={rss_after}", flush=True)
    for c in conns:
        c.sock.close()
    return 0 if ok == args.conns and still_open == args.conns else 1


if __name__ == "__main__":
    sys.exit(main())
