"""systemd's two protocols, spoken directly (no libsystemd):

- socket activation: the sockets are fds 3 .. 3+LISTEN_FDS-1, meant for
  the process whose pid is LISTEN_PID (sd_listen_fds(3));
- sd_notify(3): "READY=1", "STOPPING=1", "WATCHDOG=1" ... as one datagram
  to the Unix socket $NOTIFY_SOCKET ('@' starts an abstract name).
"""
import os
import socket

SD_LISTEN_FDS_START = 3


def listen_fds(unset=True):
    """The fds systemd passed to this process ([] if none), made
    close-on-exec-free for the workers; unset: the variables are removed
    so that neither the app nor a child takes them for its own."""
    try:
        pid = int(os.environ.get("LISTEN_PID", ""))
        n = int(os.environ.get("LISTEN_FDS", ""))
    except ValueError:
        return []
    if unset:
        for k in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            os.environ.pop(k, None)
    if pid != os.getpid() or n <= 0:
        return []
    return list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + n))


class Notifier:
    """sd_notify for this process; does nothing without $NOTIFY_SOCKET."""

    def __init__(self):
        self.addr = os.environ.pop("NOTIFY_SOCKET", "") or None
        if self.addr and self.addr.startswith("@"):
            self.addr = "\0" + self.addr[1:]
        self.sock = None
        # the watchdog period: WATCHDOG=1 at half of it, as sd_watchdog_enabled(3)
        # advises; only for this pid (WATCHDOG_PID) when systemd says whose
        self.watchdog = None
        try:
            usec = int(os.environ.pop("WATCHDOG_USEC", ""))
            wpid = os.environ.pop("WATCHDOG_PID", "")
            if usec > 0 and (not wpid or int(wpid) == os.getpid()):
                self.watchdog = usec / 1e6 / 2
        except ValueError:
            pass

    def notify(self, state):
        if not self.addr:
            return False
        try:
            if self.sock is None:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self.sock.set_inheritable(False)
            self.sock.sendto(state.encode(), self.addr)
            return True
        except OSError:
            return False  # systemd gone or the socket not there: nothing to tell
