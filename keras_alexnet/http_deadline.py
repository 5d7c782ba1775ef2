"""HTTP requests with a deadline for the whole exchange, not for each read: the weights
download and the REST client use it. A server that drips one byte at a time, or its status
line, would hold a per-read timeout forever; here a watchdog thread shuts the connection's
socket at the deadline, so the blocked read returns and the caller says why. Redirects are
followed to http and https only.

    with Deadline(600, on_stall=print_stall) as deadline:
        with open_url(url, deadline, timeout=20) as response:
            while block := read_some(response, 1 << 20):
                deadline.progress()
    deadline.expired   # True when the watchdog ended it
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

# A transfer that receives nothing for this long is said to stall (once, on the progress line).
STALL_S = 10.0
_FOLLOWED_SCHEMES = ("http", "https")


class Deadline:
    """A watchdog for one exchange: at `seconds` from its start it shuts every socket it
    watches; after `STALL_S` without `progress()` it calls `on_stall(seconds)` once per stall."""

    def __init__(self, seconds: float, on_stall: Callable[[float], None] | None = None):
        self.seconds, self.on_stall = seconds, on_stall
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._end = self._last = time.monotonic()
        self._stall_told = False

    def __enter__(self) -> Deadline:
        self._end = time.monotonic() + self.seconds
        self._last = time.monotonic()
        threading.Thread(target=self._watch, daemon=True, name="http-deadline").start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
        if self.expired:
            self._shut()

    def progress(self) -> None:
        self._last, self._stall_told = time.monotonic(), False

    def _watch(self) -> None:
        while not self._done.wait(min(1.0, self.seconds)):
            now = time.monotonic()
            if now >= self._end:
                self.expired = True
                self._shut()
                return
            if self.on_stall and not self._stall_told and now - self._last >= STALL_S:
                self._stall_told = True
                self.on_stall(now - self._last)

    def _shut(self) -> None:
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def open_url(request: str | urllib.request.Request, deadline: Deadline, timeout: float):
    """`urllib.request.urlopen` whose connections `deadline` watches (`timeout` bounds each
    socket operation as well), following redirects to http and https only."""

    def watched(base):
        class Connection(base):
            def connect(self):
                super().connect()
                deadline.watch(self.sock)

        return Connection

    plain, secure = watched(http.client.HTTPConnection), watched(http.client.HTTPSConnection)

    class Plain(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(plain, req)

    class Secure(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(secure, req, context=self._context)

    opener = urllib.request.build_opener(Plain, Secure, _HttpRedirectsOnly)
    return opener.open(request, timeout=timeout)


class _HttpRedirectsOnly(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in _FOLLOWED_SCHEMES:
            raise urllib.error.URLError(
                f"a redirect to {newurl[:120]} (only http and https redirects are followed)"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def read_some(response, size: int) -> bytes:
    """What the server has sent so far, up to `size` bytes (without waiting for all of
    `size`, so a drip is seen as it comes)."""
    return response.read1(size) if hasattr(response, "read1") else response.read(size)
