"""The deadline of every storage call on a database server: a watchdog thread that shuts down
the socket of a call that runs past it, so that the thread blocked reading it comes back.

Timeouts inside the driver do not cover a server that accepted the connection and then says
nothing: ``statement_timeout`` is the server's own, TCP keepalives and ``tcp_user_timeout``
only notice a peer whose TCP stack is gone. A thread blocked in ``recv`` on such a socket
waits forever, and a few of them hold every worker thread of the service. Shutting the
socket down from another thread makes that ``recv`` return at once (end of stream); the
driver reports a lost connection, SQLAlchemy discards it, and the caller gets
``StorageUnavailable``.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from contextvars import ContextVar
from typing import Any

from commerce.core.events import LogEvent, event_log

log = event_log(__name__)


class DeadlinePassed(Exception):
    """A call's deadline passed before it had a usable connection (raised at checkout)."""


class Watch:
    """The deadline of one storage call, and the connections it is using now.

    Each socket is watched through a duplicate of its file descriptor, taken when the
    connection is checked out: should the driver close the connection meanwhile, its number
    cannot be reused for another socket that the watchdog would then cut by mistake.
    (A call uses one connection at a time; a checkout nested inside it, as a test's hook
    may make, is watched alongside rather than instead.)
    """

    __slots__ = ("_lock", "_sockets", "deadline", "done", "fired", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.fired = False
        self.done = False
        self._lock = threading.Lock()
        self._sockets: dict[int, socket.socket] = {}

    def arm(self, dbapi_connection: Any) -> None:
        """Watch ``dbapi_connection`` until ``release``: at the deadline its socket is shut."""
        fileno = _fileno(dbapi_connection)
        if fileno is None:
            return
        watched = socket.socket(fileno=os.dup(fileno))
        with self._lock:
            previous = self._sockets.pop(id(dbapi_connection), None)
            over = self.done
            if not over:
                self._sockets[id(dbapi_connection)] = watched
                if self.fired:
                    _shut(watched)
        if over:
            watched.close()  # the call is over: nothing left to watch
        if previous is not None:
            previous.close()

    def release(self, dbapi_connection: Any) -> None:
        """``dbapi_connection`` went back to the pool: stop watching it."""
        with self._lock:
            watched = self._sockets.pop(id(dbapi_connection), None)
        if watched is not None:
            watched.close()

    def close(self) -> None:
        """The call is over, however it ended: the watchdog forgets it."""
        with self._lock:
            self.done = True
            watched, self._sockets = list(self._sockets.values()), {}
        for sock in watched:
            sock.close()

    def fire(self) -> bool:
        """Cut the watched connections, if the call is still running; whether it was."""
        with self._lock:
            if self.done:
                return False
            self.fired = True
            # Under the lock, so that ``release`` cannot close a descriptor meanwhile.
            for sock in self._sockets.values():
                _shut(sock)
            return True


class Watchdog:
    """One daemon thread for the whole process, sleeping until the nearest deadline.

    Calls that end in time are not removed from the heap (that would cost a search each);
    they are marked done and dropped when they reach its top, so the thread wakes about
    once per deadline interval, not once per call.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Watch]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, seconds: float) -> Watch:
        """A watch that fires ``seconds`` from now unless closed before."""
        watch = Watch(seconds)
        with self._wake:
            heapq.heappush(self._heap, (watch.deadline, next(self._order), watch))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="commerce-db-watchdog", daemon=True
                )
                self._thread.start()
            elif self._heap[0][2] is watch:
                self._wake.notify()
        return watch

    def _run(self) -> None:
        while True:
            due: list[Watch] = []
            with self._wake:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap)[2])
                if not due:
                    self._wake.wait(self._heap[0][0] - now if self._heap else None)
                    continue
            for watch in due:
                if watch.fire():
                    log(
                        LogEvent.STORAGE_UNAVAILABLE,
                        "a storage call ran past its deadline of %s s: connection cut",
                        watch.seconds,
                        error="deadline",
                    )


WATCHDOG = Watchdog()
"""The process's one watchdog; its thread starts with the first watched call."""

current_watch: ContextVar[Watch | None] = ContextVar("commerce_storage_watch", default=None)
"""The watch of the storage call running in this thread, which the pool's checkout arms."""


def _fileno(dbapi_connection: Any) -> int | None:
    """The connection's socket, for drivers that say (psycopg does)."""
    fileno = getattr(dbapi_connection, "fileno", None)
    if fileno is None:
        return None
    with contextlib.suppress(Exception):
        number = fileno()
        if isinstance(number, int) and number >= 0:
            return number
    return None


def _shut(watched: socket.socket) -> None:
    with contextlib.suppress(OSError):
        watched.shutdown(socket.SHUT_RDWR)
