"""A total deadline for reading a request body (``BODY_TIMEOUT_SECONDS``, docs/operations.md).

gunicorn's ``gthread`` workers read the body on the request's thread, and gunicorn's worker
``--timeout`` does not cut a gthread request short: a client that sends its body a byte at a
time would hold that thread for as long as it likes, and a few such clients hold them all.
This WSGI middleware reads the whole body before the app runs, while a watchdog thread (one
per process) shuts the socket's read side once the deadline passes: the blocked read then
ends at once, the app answers ``408 request_timeout`` (through Flask, so the answer carries
the usual headers) and gunicorn closes the connection, as the rest of the body never came.

Only under gunicorn (``gunicorn.socket`` in the environ); other servers keep their own
timeouts. Bodies announced over ``MAX_BODY_BYTES`` are not read (Flask answers 413).
"""

from __future__ import annotations

import io
import os
import socket
import threading
import time

# Set in the environ when the body did not arrive in time; the app answers 408 (app.py).
TIMED_OUT = "cartrecovery.body_timed_out"

# How often the watchdog looks for expired reads: the deadline is met within this much.
_SCAN_SECONDS = 0.1


class _Watchdog:
    """Shuts the read side of sockets whose body read outlived its deadline."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: dict[int, tuple[float, socket.socket]] = {}
        self._expired: set[int] = set()
        self._next = 0
        self._pid = None

    def arm(self, sock: socket.socket, seconds: float) -> int:
        with self._lock:
            # gunicorn forks its workers after the app is built: a thread started before
            # the fork does not exist in the worker, so each process starts its own.
            if self._pid != os.getpid():
                self._pid = os.getpid()
                self._armed.clear()
                self._expired.clear()
                threading.Thread(target=self._run, name="body-deadline", daemon=True).start()
            self._next += 1
            self._armed[self._next] = (time.monotonic() + seconds, sock)
            return self._next

    def disarm(self, token: int) -> bool:
        """Stop watching; True when the deadline had passed (the read was cut short)."""
        with self._lock:
            self._armed.pop(token, None)
            if token in self._expired:
                self._expired.discard(token)
                return True
            return False

    def _run(self) -> None:
        while True:
            time.sleep(_SCAN_SECONDS)
            now = time.monotonic()
            with self._lock:
                due = [t for t, (deadline, _) in self._armed.items() if deadline <= now]
                socks = [self._armed.pop(t)[1] for t in due]
                self._expired.update(due)
            for sock in socks:
                try:
                    # Wakes the thread blocked in recv() (it reads end-of-file); the answer
                    # can still be written.
                    sock.shutdown(socket.SHUT_RD)
                except OSError:
                    pass


_WATCHDOG = _Watchdog()


class BodyDeadline:
    def __init__(self, app, seconds: float, max_bytes: int) -> None:
        self.app, self.seconds, self.max_bytes = app, seconds, max_bytes

    def __call__(self, environ, start_response):
        sock = environ.get("gunicorn.socket")
        if sock is None or self.seconds <= 0:
            return self.app(environ, start_response)
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return self.app(environ, start_response)  # Flask refuses it
        if (length <= 0 and not chunked) or length > self.max_bytes:
            return self.app(environ, start_response)
        wanted = length if length > 0 else self.max_bytes + 1
        token = _WATCHDOG.arm(sock, self.seconds)
        try:
            body = environ["wsgi.input"].read(wanted)
        except Exception:  # a chunked body cut short, a reset connection: incomplete either way
            body = None
        finally:
            expired = _WATCHDOG.disarm(token)
        if body is None or (length > 0 and len(body) < length):
            if expired:
                environ[TIMED_OUT] = True
            # Incomplete either way: the app sees an empty body (and answers 408 or refuses
            # the empty body); nothing half-read is stored.
            body = b""
            environ["CONTENT_LENGTH"] = "0"
        environ["wsgi.input"] = io.BytesIO(body)
        return self.app(environ, start_response)
