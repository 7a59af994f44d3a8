"""The WSGI host (PEP 3333): one request handle in, one app call, the
response out through the engine. Nothing here frames, chunks or validates
HTTP: the engine does (a bad header makes piston_resp_start fail, which is
the app's error and becomes a 500), and a body of one chunk goes out in one
call (piston_resp_send_reason) that adds its Content-Length. Only the status
string is checked here, for PEP 3333's "NNN Reason" form; its reason phrase
goes on the wire (piston_resp_start_reason) unless it is the engine's own
for the code.
"""
import logging
import os
import sys

from . import _piston

log = logging.getLogger("piston.error")

Input = _piston.Input
ClientDisconnected = _piston.ClientDisconnected
BodyTooLarge = _piston.BodyTooLarge


class FileWrapper:
    """wsgi.file_wrapper: served with sendfile(2) when the object has a real
    file descriptor, iterated in blocks otherwise."""

    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        return self

    def __next__(self):
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration

    def fileno_range(self):
        """(fd, offset, size to the end of the file) or None."""
        f = self.filelike
        try:
            fd = f.fileno()
            offset = f.tell() if hasattr(f, "tell") else 0
            st = os.fstat(fd)
        except (AttributeError, OSError, ValueError):
            return None
        import stat
        if not stat.S_ISREG(st.st_mode):
            return None
        return fd, offset, max(0, st.st_size - offset)


def base_environ(server_name, server_port, multithread, multiprocess):
    """The keys that are the same for every request of a server."""
    return {
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": multithread,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "wsgi.file_wrapper": FileWrapper,
        "SERVER_NAME": server_name,
        "SERVER_PORT": str(server_port),
        "SERVER_SOFTWARE": "piston",
        "SCRIPT_NAME": "",
    }


_DIGITS = "0123456789"
# status string -> (code, reason phrase to send, or None when it is the
# engine's own phrase for the code).
# Apps use a handful of status strings; the cache is bounded all the same.
_statuses = {}
_STATUS_CACHE_MAX = 1024


def parse_status(status):
    """PEP 3333's status: 'NNN Reason' (three digits, one space, a phrase
    with no surrounding whitespace) -> (code, reason or None). The phrase is
    latin-1 text without control characters (RFC 9112 reason-phrase)."""
    got = _statuses.get(status)
    if got is not None:
        return got
    if type(status) is not str:
        raise TypeError("status must be str, not %s" % type(status).__name__)
    if len(status) < 5 or status[3] != " " or status[0] not in _DIGITS or \
            status[1] not in _DIGITS or status[2] not in _DIGITS:
        raise ValueError("bad status %r: want 'NNN Reason'" % (status,))
    reason = status[4:]
    if reason != reason.strip():
        raise ValueError("bad status %r: whitespace around the reason phrase"
                         % (status,))
    for ch in reason:
        o = ord(ch)
        if o > 0xFF or (o < 0x20 and ch != "\t") or o == 0x7F:
            raise ValueError("bad status %r: the reason phrase must be latin-1 "
                             "text without control characters" % (status,))
    code = int(status[:3])
    if code < 200:
        raise ValueError("bad status %r: 1xx is not a final status" % (status,))
    got = (code, None if reason == _piston.reason(code) else reason)
    if len(_statuses) < _STATUS_CACHE_MAX:
        _statuses[status] = got
    return got


class _Exchange:
    """start_response, write() and the body loop for one request."""

    __slots__ = ("req", "status", "reason", "headers", "sent")

    def __init__(self, req):
        self.req = req
        self.status = None
        self.reason = None
        self.headers = None
        self.sent = False

    def start_response(self, status, headers, exc_info=None):
        if exc_info:
            try:
                if self.sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response() called twice without exc_info")
        code, reason = parse_status(status)
        if type(headers) is not list:
            raise TypeError("headers must be a list, not %s" % type(headers).__name__)
        self.status = code
        self.reason = reason
        self.headers = headers
        return self.write

    def _start(self):
        if self.status is None:
            raise AssertionError("the app did not call start_response()")
        self.sent = True
        self.req.start(self.status, self.headers, self.reason)

    def write(self, data):
        if type(data) is not bytes:
            raise TypeError("write() wants bytes, not %s" % type(data).__name__)
        if not self.sent:
            self._start()
        if data:
            self.req.write(data)

    def _content_length(self):
        for name, value in self.headers:
            if len(name) == 14 and name.lower() == "content-length":
                return value
        return None

    def serve(self, result):
        req = self.req
        if (type(result) is list or type(result) is tuple) and len(result) == 1 \
                and not self.sent:
            body = result[0]
            if type(body) is not bytes:
                raise TypeError("the app's body must be bytes, not %s" %
                                type(body).__name__)
            if self.status is None:
                raise AssertionError("the app did not call start_response()")
            cl = self._content_length()
            if cl is None or cl == str(len(body)):
                # one engine call, which adds the Content-Length
                self.sent = True
                req.send(self.status, self.headers, body, self.reason)
                return
        if isinstance(result, FileWrapper) and not self.sent and self.status is not None:
            rng = result.fileno_range()
            if rng is not None:
                fd, offset, size = rng
                cl = self._content_length()
                if cl is not None and cl.isdigit():
                    size = min(size, int(cl))
                self._start()
                req.sendfile(fd, offset, size)
                req.end()
                return
        for chunk in result:
            if type(chunk) is not bytes:
                raise TypeError("the app's body must yield bytes, not %s" %
                                type(chunk).__name__)
            if chunk:
                if not self.sent:
                    self._start()
                req.write(chunk)
        if not self.sent:
            self._start()
        req.end()


def handle(req, app, base, root_path=""):
    """Runs one request through the app. Never raises."""
    if req.started:
        # the engine answered it while it waited in the queue (the handler
        # timeout, with every thread held): the app's writes could only fail
        log.debug("already answered by the engine: %s %s", req.method, req.target)
        req.finish()
        return
    result = None
    try:
        environ = req.environ(base, root_path)
        environ["wsgi.input"] = Input(req)
        ex = _Exchange(req)
        result = app(environ, ex.start_response)
        ex.serve(result)
    except ClientDisconnected:
        log.debug("client went away during %s %s", req.method, req.target)
        req.abort()
    except BodyTooLarge:
        log.info("request body over the limit: %s %s", req.method, req.target)
        req.abort()
    except BaseException:  # SystemExit in an app must not kill a pool thread
        try:
            what = "%s %s" % (req.method, req.target)
        except Exception:
            what = "a request"
        log.exception("Error handling %s", what)
        req.abort()
    finally:
        if result is not None and hasattr(result, "close"):
            try:
                result.close()
            except Exception:
                log.exception("Error closing the app's response iterable")
        req.finish()
