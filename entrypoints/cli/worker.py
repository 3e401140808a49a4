"""One worker of ``commerce serve --workers N`` (``workers.py`` supervises them): its share
of the connections (``ConnectionShares``), its run of the app on the inherited socket, its
stop, and the CPU it may be pinned to.

Workers ignore SIGINT (a Ctrl-C reaches the whole process group; the supervisor relays it
once) and take SIGTERM as "stop" however often it comes, so that a process manager that
signals every process of the service (systemd's default) does not cut their drains short.
A worker whose supervisor has gone stops too. With ``--cpu-affinity`` worker i runs on the
i-th CPU allowed (``pin_to_cpu``). Fork is POSIX: on Windows ``--workers`` stays 1.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import NoReturn

from commerce.core.errors import CommerceError, Misconfigured
from commerce.core.events import LogEvent, event_log
from commerce.entrypoints.bootstrap import Runtime
from commerce.entrypoints.cli.serve import (
    GracefulServer,
    build_app,
    held_logs,
    replay,
)
from commerce.entrypoints.config import Settings
from commerce.entrypoints.http.context import Lifecycle
from commerce.entrypoints.logs import configure_logging, flush_logs

log = event_log("commerce.serve")

EXIT_NOT_DRAINED = 3
"""A worker's exit status when requests in progress at the stop were cut off."""
EXIT_NOT_STARTED = 4
"""A worker's exit status when it could not start (its reason went to the supervisor)."""
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGQUIT})
STALE_SECONDS = 3.0
"""A worker whose event loop has not turned for this long is left out of the fair share
(waitress's loop turns at least once a second): stopped, hung, or gone."""


class ConnectionShares:
    """How many connections each worker holds, in memory the workers share (made before the
    fork), so that new ones go to the worker that holds the fewest.

    All workers wait on the one listening socket and the kernel wakes them all; whichever
    runs first accepts. Left alone, that is often the same one: a client that opens 8
    keep-alive connections at once (a load balancer's pool, a benchmark) may find all 8 in
    one worker and the others idle. Here a worker accepts only while no other live worker
    holds fewer connections, so they spread evenly (to within one) and stay spread.
    """

    _RECORD = struct.Struct("=qd")  # connections, when the worker's loop last turned

    def __init__(self, count: int) -> None:
        self._count = count
        self._memory = mmap.mmap(-1, self._RECORD.size * count)

    def fair(self, worker: int) -> Callable[[int], bool]:
        """For worker ``worker`` (1…N): given its open connections, whether it may accept."""
        me = worker - 1
        record = self._RECORD

        def fair(mine: int) -> bool:
            now = time.monotonic()  # CLOCK_MONOTONIC: the same clock in every process
            record.pack_into(self._memory, me * record.size, mine, now)
            for other in range(self._count):
                if other != me:
                    theirs, turned = record.unpack_from(self._memory, other * record.size)
                    if theirs < mine and now - turned < STALE_SECONDS:
                        return False
            return True

        return fair

    def forget(self, worker: int) -> None:
        """Worker ``worker`` has exited: its count no longer holds the others back."""
        self._RECORD.pack_into(self._memory, (worker - 1) * self._RECORD.size, 0, 0.0)


class _WorkerStop:
    """A worker's signal handlers: SIGTERM stops it (however often it comes), SIGQUIT cuts
    its drain short, SIGINT is ignored (the supervisor relays a Ctrl-C as SIGTERM)."""

    def __init__(self) -> None:
        self.server: GracefulServer | None = None
        self.signalled: int | None = None
        self.hurry = False

    def install(self) -> None:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGQUIT, self._on_quit)
        # Blocked by the supervisor around the fork; one sent meanwhile is delivered now.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    def attach(self, server: GracefulServer) -> None:
        self.server = server
        if self.signalled is not None:
            self._stop()

    def _on_term(self, signum: int, frame: FrameType | None) -> None:
        if self.signalled is None:
            self.signalled = signum
            self._stop()

    def _on_quit(self, signum: int, frame: FrameType | None) -> None:
        self.signalled = self.signalled or signum
        self.hurry = True
        self._stop()

    def _stop(self) -> None:
        server = self.server
        if server is None:
            return
        server.signalled = self.signalled
        server.stop()
        if self.hurry:
            server.stop()  # a second stop cuts the drain short


def run_worker(
    worker: int,
    ready_fd: int,
    sockets: list[socket.socket],
    parent: Runtime,
    settings: Settings,
    *,
    threads: int,
    grace: float,
    fair: Callable[[int], bool] | None = None,
    cpu: int | None = None,
) -> NoReturn:
    """A worker's life, in the forked child: its own runtime and storage, the app on the
    inherited sockets, until SIGTERM; then the exit status says whether it drained.
    ``fair(connections)``: whether it may accept one more now (``ConnectionShares``);
    ``cpu``: run on the ``cpu``-th allowed CPU (``pin_to_cpu``)."""
    code = EXIT_NOT_STARTED
    supervisor = os.getppid()
    stop = _WorkerStop()
    try:
        stop.install()
        if cpu is not None:
            pin_to_cpu(cpu)
        # The log writer's thread did not survive the fork: a new handler starts its own.
        configure_logging(settings.log_level, log_format=settings.log_format)
        with held_logs() as held:
            runtime = Runtime(settings, parent.pm)
        replay([r for r in held if getattr(r, "event", None) is not LogEvent.PLUGIN_LOADED])
        lifecycle = Lifecycle()
        app = build_app(runtime, threads=threads, lifecycle=lifecycle)
        server = GracefulServer(
            app,
            host="",
            port=0,
            threads=threads,
            settings=settings,
            lifecycle=lifecycle,
            grace=grace,
            sockets=sockets,
        )
        if fair is not None:
            server.accept_while(fair)
        stop.attach(server)
        _watch_supervisor(supervisor, server)
        os.write(ready_fd, b"R")
        code = 1
        server.serve_until_stopped()
        runtime.close()
        code = 0 if server.drained else EXIT_NOT_DRAINED
    except BaseException as error:
        if code == EXIT_NOT_STARTED:
            reason = error.detail if isinstance(error, CommerceError) else repr(error)
            with contextlib.suppress(OSError):
                os.write(ready_fd, b"E" + reason.encode("utf-8", "replace")[:4000])
        else:
            log(
                LogEvent.WORKER_FAILED,
                "worker %d failed: %r",
                worker,
                error,
                exc_info=error,
                worker=worker,
                error=repr(error)[:200],
            )
    finally:
        with contextlib.suppress(OSError):
            os.close(ready_fd)
        flush_logs()
    os._exit(code)


def allowed_cpus() -> list[int]:
    """The CPUs this process may run on; ``Misconfigured`` where it cannot choose (only
    Linux lets a process pin itself)."""
    if not hasattr(os, "sched_setaffinity"):
        raise Misconfigured("--cpu-affinity needs Linux (sched_setaffinity); leave it out")
    return sorted(os.sched_getaffinity(0))


def pin_to_cpu(number: int) -> int:
    """Run this thread, and every thread it starts from now on, on one CPU: the
    ``number``-th of those allowed (1-based, round the list). waitress hands each request
    from its event loop thread to a worker thread and back; on two cores those hand-offs
    cross cores and the loop's work per request doubles, on one they stay in its cache
    (docs/performance.md#workers)."""
    allowed = allowed_cpus()
    cpu = allowed[(number - 1) % len(allowed)]
    os.sched_setaffinity(0, {cpu})
    return cpu


def _watch_supervisor(supervisor: int, server: GracefulServer) -> None:
    """Stop ``server`` if the supervisor goes away (killed with SIGKILL, say): the worker
    would otherwise serve on, out of reach of any stop."""

    def watch() -> None:
        while os.getppid() == supervisor:
            time.sleep(1.0)
        server.stop()

    threading.Thread(target=watch, name="commerce-supervisor-watch", daemon=True).start()
