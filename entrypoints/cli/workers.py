"""``commerce serve --workers N``: N processes answering on one port, under a supervisor.

One process of waitress uses about one core: its worker threads take turns holding the
interpreter lock. To use more, the supervising process binds the listening socket, then
forks N workers; each runs the same app on waitress over its inherited copy of the socket
and accepts new connections while it holds no more than any other (``ConnectionShares``).
Forking after binding, rather than ``SO_REUSEPORT``, keeps the port's queue of connections
in one place: a worker that stops never takes queued connections down with it.

The supervisor:

- checks the configuration (storage reachable, rate limit store known, port free) before
  any worker starts, so a bad one stops the start with one line, as without workers;
- opens no storage the workers share: it closes its own before forking, and each worker
  opens its own connections (a SQLAlchemy pool must never cross a fork);
- replaces a worker that dies, at once the first time, then after a delay that doubles
  while replacements keep dying young (``BACKOFF_FIRST`` to ``BACKOFF_MAX`` seconds);
- on SIGTERM or SIGINT sends SIGTERM to every worker, each of which drains exactly as a
  single server does (``/readyz`` 503 ``draining``, the grace period, the requests in
  progress answered), and exits once they all have; a second signal sends SIGQUIT, which
  cuts their drains short;
- gives the workers a fresh ``PROMETHEUS_MULTIPROC_DIR`` (unless one is set), so that
  ``/metrics`` in any of them is the sum over all, and removes it at exit.

Each worker's side is ``worker.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import select
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import NoReturn

from waitress.adjustments import Adjustments

from commerce.core.errors import Misconfigured
from commerce.core.events import LogEvent, event_log
from commerce.entrypoints.cli.connections import listen, within_descriptors
from commerce.entrypoints.cli.context import CliContext
from commerce.entrypoints.cli.serve import (
    DRAIN_SECONDS,
    drain_grace,
    held_logs,
    replay,
    stopped,
    url_of,
)
from commerce.entrypoints.cli.worker import (
    STOP_SIGNALS,
    ConnectionShares,
    allowed_cpus,
    run_worker,
)
from commerce.entrypoints.config import Settings
from commerce.entrypoints.demo import banner, start_demo
from commerce.entrypoints.logs import configure_logging, flush_logs
from commerce.plugins.registry import scheme_of

log = event_log("commerce.serve")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
BACKOFF_FIRST = 0.5
"""Seconds before replacing a worker that died young the second time in a row."""
BACKOFF_MAX = 30.0
"""The longest wait before a replacement, however often workers keep dying."""
STABLE_SECONDS = 10.0
"""A worker that lived this long died of something other than a crash loop: replaced at once."""
STOP_MARGIN = 10.0
"""Seconds past the longest drain (grace + ``DRAIN_SECONDS``) after which workers still
running are killed, so that a hung worker never keeps the service from stopping."""


def serve_workers(args: argparse.Namespace, ctx: CliContext, settings: Settings) -> int:
    """``serve --workers N`` (N > 1): check, bind, fork, supervise; 0 once all have stopped."""
    if not hasattr(os, "fork"):
        raise Misconfigured("--workers needs fork(), which this system lacks; use --workers 1")
    if args.cpu_affinity:
        allowed_cpus()  # refused here, once, where the system cannot pin
    scheme = scheme_of(settings.database_url)
    if scheme == "memory":
        raise Misconfigured(
            "memory:// keeps its data in one process, so --workers would give each worker "
            "data of its own; use a database they share (sqlite:///commerce.db, postgresql://)"
        )
    with held_logs() as held:
        runtime = ctx.runtime
        if args.demo:
            manager = runtime.schema_manager()
            if manager is not None:
                manager.upgrade()
        runtime.storage.check()
        grace = drain_grace(settings)
        limiter = runtime.rate_limiter
        if limiter is not None and not limiter.shared:
            store = scheme_of(settings.rate_limit_store)
            log(
                LogEvent.RATE_LIMIT_PER_PROCESS,
                "the rate limit is counted in each of the %d workers (%s://): a tenant may "
                "send up to %d times COMMERCE_RATE_LIMIT; set COMMERCE_RATE_LIMIT_STORE=redis://",
                args.workers,
                store,
                args.workers,
                store=store,
                workers=args.workers,
            )
        settings = within_descriptors(settings)
        log(
            LogEvent.SERVICE_STARTING,
            "starting %d workers",
            args.workers,
            threads=args.threads,
            scheme=scheme,
            connection_limit=settings.connection_limit,
            workers=args.workers,
        )
        sockets = listen(args.host, args.port, backlog=Adjustments.backlog)
    configure_logging(settings.log_level, log_format=settings.log_format)
    replay(held)
    try:
        demo = start_demo(runtime, with_key="apikeys" in settings.auth) if args.demo else None
    finally:
        # Nothing the workers would share: each opens its own storage after the fork.
        runtime.close()
    urls = [url_of(*s.getsockname()[:2]) for s in sockets]
    for url in urls:
        log(LogEvent.SERVICE_LISTENING, "listening on %s", url, url=url)

    shares = ConnectionShares(args.workers)

    def start(worker: int, ready: int) -> NoReturn:
        run_worker(
            worker,
            ready,
            sockets,
            runtime,
            settings,
            threads=args.threads,
            grace=grace,
            fair=shares.fair(worker),
            cpu=worker if args.cpu_affinity else None,
        )

    with metrics_directory():
        supervisor = Supervisor(
            args.workers, start, runtime.pm.hook.commerce_worker_exited, shares=shares
        )

        def serving() -> None:
            # Once every worker answers: whoever reads this line may send requests at once.
            if demo is not None:
                print(banner(demo, urls[0], scheme, settings.auth))
            print(f"Serving on {', '.join(urls)} (Ctrl-C or SIGTERM stops it)", flush=True)

        with supervisor.stopped_by_signals():
            supervisor.run(sockets, stop_after=grace + DRAIN_SECONDS + STOP_MARGIN, ready=serving)
    return stopped(supervisor.signalled, drained=supervisor.drained)


@contextlib.contextmanager
def metrics_directory() -> Iterator[None]:
    """A fresh ``PROMETHEUS_MULTIPROC_DIR`` for the workers' metric files, removed after;
    one the operator set is emptied of old files instead, and kept."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        for old in Path(given).glob("*.db"):
            old.unlink(missing_ok=True)
        yield
        return
    made = tempfile.mkdtemp(prefix="commerce-metrics-")
    os.environ[MULTIPROC_ENV] = made
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(made, ignore_errors=True)


@dataclasses.dataclass
class _Slot:
    """One of the N places for a worker, and the process in it (if any)."""

    number: int
    pid: int | None = None
    ready_fd: int | None = None
    """The read end of the pipe the worker says "ready" (or why it failed) on."""
    started: float = 0.0
    ready: bool = False
    failure: str = ""
    dying_young: int = 0
    """Consecutive workers in this slot that died before ``STABLE_SECONDS``."""
    start_at: float = 0.0


class Supervisor:
    """Keeps ``count`` workers running until a signal, then stops them and waits.

    ``start(worker, ready_fd)`` runs in the forked child and never returns; it writes
    ``b"R"`` to ``ready_fd`` once serving, or ``b"E"`` and the reason if it cannot start.
    ``exited(pid=...)`` is told of every worker that ended (the plugins' hook).
    """

    def __init__(
        self,
        count: int,
        start: Callable[[int, int], NoReturn],
        exited: Callable[..., object],
        *,
        shares: ConnectionShares | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._slots = [_Slot(number) for number in range(1, count + 1)]
        self._start = start
        self._exited = exited
        self._shares = shares
        self._monotonic = monotonic
        self._signals: list[int] = []
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._stopping = False
        self._ever_ready = False
        self.signalled: int | None = None
        """The signal that stopped the workers, if one did."""
        self.drained = True
        """Whether every worker answered its requests in progress before exiting."""

    @contextlib.contextmanager
    def stopped_by_signals(self) -> Iterator[None]:
        """While inside, SIGTERM and SIGINT stop the workers; SIGCHLD wakes the loop."""

        def on_signal(signum: int, frame: FrameType | None) -> None:
            self._signals.append(signum)

        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)
        previous = {signum: signal.getsignal(signum) for signum in handled}
        for signum in handled:
            signal.signal(signum, on_signal)
        old_fd = signal.set_wakeup_fd(self._wake_w)
        try:
            yield
        finally:
            signal.set_wakeup_fd(old_fd)
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def run(
        self, sockets: list[socket.socket], *, stop_after: float, ready: Callable[[], None]
    ) -> None:
        """Supervise until every worker has stopped after a signal (see the class); ``ready``
        is called once, when every worker of the first round has said it serves."""
        kill_at: float | None = None
        announced = False
        try:
            while True:
                if not announced and all(slot.ready for slot in self._slots):
                    announced = True
                    ready()
                self._take_signals(sockets)
                if self._stopping and kill_at is None:
                    kill_at = self._monotonic() + stop_after
                self._reap()
                if self._stopping and not any(slot.pid for slot in self._slots):
                    return
                if kill_at is not None and self._monotonic() >= kill_at:
                    self.drained = False
                    self._send(signal.SIGKILL)
                if not self._stopping:
                    self._start_due()
                self._wait(kill_at)
        finally:
            self._send(signal.SIGKILL)
            self._reap(block=True)
            for fd in (self._wake_r, self._wake_w):
                os.close(fd)
            for sock in sockets:
                sock.close()

    # -- the loop's steps -------------------------------------------------------------
    def _take_signals(self, sockets: list[socket.socket]) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            if signum == signal.SIGCHLD:
                continue
            if not self._stopping:
                self._stopping = True
                self.signalled = signum
                # The workers' copies keep the port open through their grace period; this
                # one must not keep it open after them, or connections would queue unserved.
                for sock in sockets:
                    sock.close()
                self._send(signal.SIGTERM)
            else:
                self._send(signal.SIGQUIT)

    def _send(self, signum: int) -> None:
        for slot in self._slots:
            if slot.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, signum)

    def _start_due(self) -> None:
        now = self._monotonic()
        for slot in self._slots:
            if slot.pid is None and slot.start_at <= now:
                self._fork(slot)

    def _fork(self, slot: _Slot) -> None:
        ready_r, ready_w = os.pipe()
        flush_logs()  # nothing half-written in the log writer is copied into the child
        # A stop signal sent to the new worker before it has its own handlers waits for them
        # (``run_worker`` unblocks it) rather than reaching this process's handler in it.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            raise
        if pid != 0:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        if pid == 0:  # pragma: no cover -- the child; measured through the tests' servers
            try:
                os.close(ready_r)
                for fd in (self._wake_r, self._wake_w):
                    os.close(fd)
                for other in self._slots:
                    if other.ready_fd is not None:
                        os.close(other.ready_fd)
            finally:
                self._start(slot.number, ready_w)
        os.close(ready_w)
        slot.pid, slot.ready_fd, slot.ready, slot.failure = pid, ready_r, False, ""
        slot.started = self._monotonic()
        log(
            LogEvent.WORKER_STARTED,
            "worker %d started: pid %d",
            slot.number,
            pid,
            worker=slot.number,
            pid=pid,
        )

    def _wait(self, kill_at: float | None) -> None:
        now = self._monotonic()
        timeout = 1.0
        if not self._stopping:
            due = [slot.start_at - now for slot in self._slots if slot.pid is None]
            timeout = min([timeout, *due])
        if kill_at is not None:
            timeout = min(timeout, kill_at - now)
        fds = [self._wake_r, *(s.ready_fd for s in self._slots if s.ready_fd is not None)]
        try:
            readable, _, _ = select.select(fds, [], [], max(0.0, timeout))
        except InterruptedError:  # pragma: no cover -- retried by Python since 3.5
            return
        for fd in readable:
            if fd == self._wake_r:
                with contextlib.suppress(BlockingIOError):
                    while os.read(fd, 512):
                        pass
                continue
            self._read_ready(fd)

    def _read_ready(self, fd: int) -> None:
        slot = next(s for s in self._slots if s.ready_fd == fd)
        self._heard(slot, os.read(fd, 4096))

    def _heard(self, slot: _Slot, data: bytes) -> None:
        """What a worker said on its pipe: ready, or why it could not start; at its end (no
        more to read), the pipe is closed."""
        if data.startswith(b"R"):
            slot.ready = self._ever_ready = True
        elif data.startswith(b"E"):
            slot.failure = data[1:].decode("utf-8", "replace").strip()
        elif not data and slot.ready_fd is not None:
            os.close(slot.ready_fd)
            slot.ready_fd = None

    def _reap(self, *, block: bool = False) -> None:
        while any(slot.pid for slot in self._slots):
            try:
                pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = next((s for s in self._slots if s.pid == pid), None)
            if slot is not None:
                self._ended(slot, status)

    def _ended(self, slot: _Slot, status: int) -> None:
        pid = slot.pid
        assert pid is not None
        # What the worker said before it ended, if not read yet; then the pipe is closed.
        while slot.ready_fd is not None:
            self._heard(slot, os.read(slot.ready_fd, 4096))
        slot.pid = None
        self._exited(pid=pid)
        if self._shares is not None:
            self._shares.forget(slot.number)
        code = os.waitstatus_to_exitcode(status)
        if self._stopping:
            if code != 0:
                self.drained = False
            return
        if not slot.ready and not self._ever_ready and slot.failure:
            # The first workers cannot start: a configuration the supervisor could not check
            # (a plugin's settings, a metrics port in use). Stop, with the worker's reason.
            self._stopping = True
            self._send(signal.SIGTERM)
            self._reap(block=True)
            raise Misconfigured(slot.failure)
        lived = self._monotonic() - slot.started
        slot.dying_young = slot.dying_young + 1 if lived < STABLE_SECONDS else 1
        delay = 0.0 if slot.dying_young <= 1 else BACKOFF_FIRST * 2 ** (slot.dying_young - 2)
        delay = min(delay, BACKOFF_MAX)
        slot.start_at = self._monotonic() + delay
        killed_by = signal.Signals(-code).name if code < 0 else None
        log(
            LogEvent.WORKER_EXITED,
            "worker %d (pid %d) exited unexpectedly (%s); replacing it in %.1f s",
            slot.number,
            pid,
            killed_by or f"exit status {code}",
            delay,
            worker=slot.number,
            pid=pid,
            exit_code=code if code >= 0 else None,
            signal=killed_by,
            restart_in=delay,
        )


# -- the worker ---------------------------------------------------------------------------
