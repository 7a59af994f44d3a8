"""--reload: inotify(7) on the app's directories, through libc (ctypes),
so that the supervisor sleeps in select() until a file really changes
(no polling loop, no dependency)."""
import ctypes
import ctypes.util
import errno
import logging
import os
import struct

log = logging.getLogger("piston.error")

IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
MASK = IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF

# directories never worth watching (many files, none of them the app's)
SKIP = {"__pycache__", "node_modules", ".git", ".hg", ".venv", "venv", ".tox", "build"}
EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then the name


class Watcher:
    """Watches dirs (recursively) for changes to files matching suffixes."""

    def __init__(self, dirs, suffixes=(".py",)):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._add = libc.inotify_add_watch
        self._add.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self.fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1: " + os.strerror(ctypes.get_errno()))
        self.suffixes = tuple(suffixes)
        self.wds = {}  # wd -> directory
        for d in dirs:
            self._watch_tree(os.path.abspath(d))

    def _watch_tree(self, top):
        for d, subdirs, _ in os.walk(top):
            subdirs[:] = [s for s in subdirs if s not in SKIP and not s.startswith(".")]
            wd = self._add(self.fd, os.fsencode(d), MASK)
            if wd < 0:
                e = ctypes.get_errno()
                if e == errno.ENOSPC:
                    log.warning("--reload: out of inotify watches (fs.inotify.max_user_watches) at %s", d)
                    return
                continue  # gone meanwhile, or not readable
            self.wds[wd] = d

    def directories(self):
        return sorted(set(self.wds.values()))

    def changes(self):
        """The changed paths that matter among the pending events ([]: none)."""
        out = []
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return out
            i = 0
            while i + EVENT.size <= len(buf):
                wd, mask, _, n = EVENT.unpack_from(buf, i)
                name = buf[i + EVENT.size:i + EVENT.size + n].split(b"\0", 1)[0]
                i += EVENT.size + n
                d = self.wds.get(wd)
                if d is None:
                    continue
                path = os.path.join(d, os.fsdecode(name)) if name else d
                if mask & IN_ISDIR:
                    if mask & (IN_CREATE | IN_MOVED_TO) and os.path.basename(path) not in SKIP:
                        self._watch_tree(path)  # a new package: watch it too
                    continue
                if mask & IN_DELETE_SELF:
                    self.wds.pop(wd, None)
                    continue
                if path.endswith(self.suffixes):
                    out.append(path)

    def close(self):
        os.close(self.fd)
