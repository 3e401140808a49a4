"""``commerce serve``: the API on waitress, with a demo mode and a clean stop on SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import signal
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from types import FrameType
from typing import Any

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, create_server

from commerce.core.errors import Misconfigured
from commerce.core.events import LogEvent, event_log
from commerce.entrypoints.bootstrap import Runtime
from commerce.entrypoints.cli.connections import (
    CLEANUP_SECONDS,
    ProblemChannel,
    ReadDeadlines,
    listen_host,
    port_number,
    positive_whole,
    waitress_options,
    within_descriptors,
)
from commerce.entrypoints.cli.context import CliContext
from commerce.entrypoints.config import Settings
from commerce.entrypoints.demo import banner, start_demo
from commerce.entrypoints.http.context import Lifecycle
from commerce.entrypoints.logs import check_format, check_level, configure_logging, flush_logs
from commerce.plugins.registry import scheme_of

log = event_log("commerce.serve")

DEFAULT_THREADS = 4
DRAIN_SECONDS = 10.0
"""How long a stop waits for requests in progress to be answered before closing regardless."""
DRAIN_GRACE_SETTING = "drain_grace_seconds"
"""``COMMERCE_DRAIN_GRACE_SECONDS``: after SIGTERM, how long the server keeps accepting (and
answering, ``/readyz`` with 503 ``draining``) before it closes its listening sockets, so that
a load balancer polling readiness stops sending first. 0 (the default) closes them at once."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve the API with waitress",
        description=(
            "Serve the HTTP API with waitress until SIGTERM or Ctrl-C, which stop accepting "
            "connections, let requests in progress finish, and exit 0."
        ),
    )
    parser.add_argument(
        "--host",
        type=listen_host,
        default="127.0.0.1",
        help="address to listen on: an IP address or a host name (%(default)s)",
    )
    parser.add_argument(
        "--port",
        type=port_number,
        default=8000,
        help="port to listen on; 0 picks a free one (8000)",
    )
    parser.add_argument(
        "--threads",
        type=positive_whole,
        default=DEFAULT_THREADS,
        help=f"worker threads answering requests ({DEFAULT_THREADS})",
    )
    parser.add_argument(
        "--workers",
        type=positive_whole,
        default=1,
        help="processes sharing the port, each with --threads threads; more than 1 needs a "
        "POSIX system and a database they share, see docs/performance.md (1)",
    )
    parser.add_argument(
        "--cpu-affinity",
        action="store_true",
        help="run each process on one CPU of its own (Linux): waitress's loop and threads then "
        "share a core, faster with several connections at once; see docs/performance.md",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="migrate, load the demo data set if the tenant has none, print curl examples",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    # --demo is the one place besides memory:// where authentication ``none`` is allowed.
    settings = dataclasses.replace(ctx.settings, demo=ctx.settings.demo or args.demo)
    if args.demo and "auth" not in settings.extra:
        # Unless COMMERCE_AUTH says otherwise, the demo shows authentication as it is used:
        # it makes an API key and prints it in the curl lines. COMMERCE_AUTH=none turns it off.
        settings = dataclasses.replace(settings, auth=("apikeys",))
    check_level(settings.log_level)
    check_format(settings.log_format)
    ctx.configure(settings)
    if args.workers > 1 or args.cpu_affinity:
        from commerce.entrypoints.cli import worker, workers

        if args.workers > 1:
            return workers.serve_workers(args, ctx, settings)
        worker.pin_to_cpu(1)  # before any thread starts: they inherit it

    # Every step that can fail on a bad configuration (a URL no plugin takes, a database that
    # cannot be reached, an unknown authenticator, a port in use) runs before the JSON logs
    # are switched on, so that such a failure is the one line ``main`` prints, not buried in
    # library chatter. What is logged meanwhile is held, and written once the JSON logs are on.
    with held_logs() as held:
        runtime = ctx.runtime
        if args.demo:
            manager = runtime.schema_manager()
            if manager is not None:
                manager.upgrade()
        runtime.storage.check()
        lifecycle = Lifecycle()
        grace = drain_grace(settings)
        app = build_app(runtime, threads=args.threads, lifecycle=lifecycle)
        settings = within_descriptors(settings)
        scheme = scheme_of(settings.database_url)
        log(
            LogEvent.SERVICE_STARTING,
            "starting",
            threads=args.threads,
            scheme=scheme,
            connection_limit=settings.connection_limit,
        )
        # The port is bound before the demo makes its key: a port in use stops the start
        # with one line and leaves no admin key behind that nobody saw.
        server = GracefulServer(
            app,
            host=args.host,
            port=args.port,
            threads=args.threads,
            settings=settings,
            lifecycle=lifecycle,
            grace=grace,
        )
    configure_logging(settings.log_level, log_format=settings.log_format)
    replay(held)
    try:
        demo = start_demo(runtime, with_key="apikeys" in settings.auth) if args.demo else None
    except BaseException:
        server.close()
        raise
    urls = [url_of(host, port) for host, port in server.listening]
    for url in urls:
        log(LogEvent.SERVICE_LISTENING, "listening on %s", url, url=url)

    # The handlers go in before the line that says the server is up, so that whoever reads
    # that line (a test, a supervisor) may signal it at once and still get a clean stop.
    with server.stopped_by_signals():
        if demo is not None:
            print(banner(demo, urls[0], scheme, settings.auth))
        print(f"Serving on {', '.join(urls)} (Ctrl-C or SIGTERM stops it)", flush=True)
        server.serve_until_stopped()
    return stopped(server.signalled, drained=server.drained)


def stopped(signum: int | None, *, drained: bool) -> int:
    """Log the stop (the signal that asked for it, whether every request was answered),
    write out the last log lines, and give ``serve``'s exit status."""
    log(
        LogEvent.SERVICE_STOPPED,
        "stopped",
        signal=signal.Signals(signum).name if signum else None,
        drained=drained,
    )
    flush_logs()
    return 0


def build_app(runtime: Runtime, *, threads: int, lifecycle: Lifecycle) -> Any:
    """The WSGI app ``serve`` runs (in each worker, with ``--workers``), from ``runtime``."""
    # Imported here so that the verbs that do not serve never pay for the HTTP layer.
    from commerce.entrypoints.http.app import create_app

    settings = runtime.settings
    return create_app(
        runtime.storage,
        runtime.authenticators,
        max_body_bytes=settings.max_body_bytes,
        idempotency_ttl=timedelta(hours=settings.idempotency_ttl_hours),
        rate_limiter=runtime.rate_limiter,
        # A share of the threads per tenant, so that one tenant cannot hold them all.
        tenant_concurrency=settings.tenant_concurrency_for(threads),
        instrumentations=runtime.instrumentations,
        slow_request_ms=settings.slow_request_ms,
        lifecycle=lifecycle,
        flags=runtime.flags,
    )


def drain_grace(settings: Settings) -> float:
    """``COMMERCE_DRAIN_GRACE_SECONDS``: seconds from 0 to ``DRAIN_SECONDS`` (0 if unset)."""
    raw = settings.extra.get(DRAIN_GRACE_SETTING, "").strip()
    if not raw:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= DRAIN_SECONDS:
        raise Misconfigured(
            f"COMMERCE_DRAIN_GRACE_SECONDS={raw[:40]!r} is not a number of seconds from 0 to "
            f"{DRAIN_SECONDS:g}"
        )
    return value


class _Held(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def held_logs() -> Iterator[list[logging.LogRecord]]:
    """While inside, the ``commerce`` loggers' records are kept instead of written: before
    the JSON logs are configured they would reach stderr as plain text, or not at all."""
    logger = logging.getLogger("commerce")
    held = _Held()
    level, propagate = logger.level, logger.propagate
    logger.addHandler(held)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield held.records
    finally:
        logger.removeHandler(held)
        logger.setLevel(level)
        logger.propagate = propagate


def replay(records: list[logging.LogRecord]) -> None:
    """Write held records through the handlers configured since, at their own time stamps."""
    for record in records:
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)


class GracefulServer:
    """A waitress server whose loop this class runs, so that a signal can stop it cleanly.

    waitress has no graceful shutdown of its own: its ``run()`` ends only by an exception
    thrown into the socket loop, which then drops queued requests and never flushes answers
    still buffered. Here a signal only sets a flag and wakes the loop; the loop then closes
    the listening sockets (new connections are refused, not left hanging in the backlog),
    keeps going until every request in progress has been answered and flushed, closing each
    connection as it becomes idle, and only then stops the worker threads. A second signal,
    or ``DRAIN_SECONDS``, cuts the wait short.

    From the signal on, ``lifecycle.draining`` is set, so ``/readyz`` answers 503 ``draining``.
    With a ``grace`` (seconds), the server first keeps accepting and answering for that long,
    so that whoever polls readiness (a load balancer, Kubernetes) learns of the stop and stops
    sending before connections are refused.
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str,
        port: int,
        threads: int,
        settings: Settings | None = None,
        lifecycle: Lifecycle | None = None,
        grace: float = 0.0,
        sockets: Sequence[socket.socket] = (),
    ) -> None:
        settings = Settings() if settings is None else settings
        self._lifecycle = lifecycle
        self._grace = grace
        self._map: dict[int, Any] = {}
        # ``sockets``: listening already (bound by ``serve --workers``'s supervisor).
        where = {"sockets": list(sockets)} if sockets else {"host": host, "port": port}
        try:
            server = create_server(
                app,
                map=self._map,
                threads=threads,
                ident="commerce",
                **where,
                **waitress_options(settings),
            )
        except OSError as exc:
            raise Misconfigured(
                f"cannot listen on {host} port {port}: {exc.strerror or exc}; "
                "choose another --host or --port"
            ) from None
        except ValueError as exc:  # waitress: a host it cannot resolve
            raise Misconfigured(
                f"cannot listen on {host} port {port}: {exc}; choose another --host"
            ) from None
        self._adj = server.adj
        self._dispatcher = server.task_dispatcher
        self._listeners = [d for d in self._map.values() if isinstance(d, BaseWSGIServer)]
        for listener in self._listeners:
            # waitress's own refusals (malformed framing, a body over the limit) become
            # problem documents like every other error of the API.
            listener.channel_class = ProblemChannel
        self._deadlines = ReadDeadlines(settings.read_timeout)
        self._next_sweep = 0.0
        self._stopping = False
        self._hurry = False
        self.signalled: int | None = None
        """The signal that stopped the server, if one did."""
        self.drained = False
        """Whether every request in progress at the stop was answered before closing."""

    @property
    def listening(self) -> list[tuple[str, int]]:
        """Every (host, port) the server accepts on; with ``--port 0``, the port it was given."""
        # getsockname() answers numerically, so a port of 0 shows as the one the OS chose.
        return [(host, int(port)) for host, port in (s.getsockname() for s in self._listeners)]

    def accept_while(self, fair: Callable[[int], bool]) -> None:
        """Accept new connections only while ``fair(connections open here)`` says so
        (``serve --workers``: a worker with more than its share leaves them to the others)."""
        for listener in self._listeners:

            def readable(listener: Any = listener, original: Any = listener.readable) -> bool:
                return bool(original()) and fair(len(listener.active_channels))

            listener.readable = readable  # type: ignore[method-assign]

    def stop(self) -> None:
        """Ask the loop to stop; safe from a signal handler (it takes no lock)."""
        if self._stopping:
            self._hurry = True
        self._stopping = True
        if self._lifecycle is not None:
            self._lifecycle.draining = True
        # Wakes the loop's select() at once; a bare write to a pipe, no lock taken.
        for listener in self._listeners:
            listener.pull_trigger()

    @contextlib.contextmanager
    def stopped_by_signals(self) -> Iterator[None]:
        """While inside, SIGTERM and SIGINT stop the server (see ``signalled``)."""

        def on_signal(signum: int, frame: FrameType | None) -> None:
            self.signalled = self.signalled or signum
            self.stop()

        previous = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.getsignal(signum)
            signal.signal(signum, on_signal)
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def serve_until_stopped(self) -> None:
        try:
            while not self._stopping:
                self._poll(float(self._adj.asyncore_loop_timeout))
            signum = self.signalled
            log(
                LogEvent.DRAINING,
                "draining: finishing the requests in progress, then closing",
                signal=signal.Signals(signum).name if signum else None,
                in_flight=sum(
                    1
                    for c in list(self._map.values())
                    if isinstance(c, HTTPChannel) and (c.requests or c.request is not None)
                ),
            )
            self._linger()
            self._drain()
        finally:
            self.close()

    def close(self) -> None:
        """Stop the worker threads and close every socket; what a stop ends with."""
        self._dispatcher.shutdown(cancel_pending=True, timeout=5)
        wasyncore.close_all(self._map)

    def _poll(self, timeout: float) -> None:
        use_poll = self._adj.asyncore_use_poll
        wasyncore.loop(timeout=timeout, map=self._map, use_poll=use_poll, count=1)
        now = time.time()
        if now >= self._next_sweep:
            # Between two turns of the loop, so no connection is read while it is looked at.
            self._next_sweep = now + CLEANUP_SECONDS
            self._deadlines.sweep(self._map, now)

    def _linger(self) -> None:
        """Serve as before, listening sockets open, for the grace period (see the class)."""
        deadline = time.monotonic() + self._grace
        while not self._hurry and (left := deadline - time.monotonic()) > 0:
            self._poll(min(left, float(self._adj.asyncore_loop_timeout)))

    def _drain(self) -> None:
        for listener in self._listeners:
            # The base close shuts the listening socket only; waitress's own close() would
            # also close the trigger the loop still needs.
            wasyncore.dispatcher.close(listener)
        deadline = time.monotonic() + DRAIN_SECONDS
        while not self._hurry and time.monotonic() < deadline:
            channels = [c for c in self._map.values() if isinstance(c, HTTPChannel)]
            if not channels:
                self.drained = True
                return
            for channel in channels:
                # The lock is the one a worker holds while it finishes a request, so a
                # connection is never marked while its answer is still being written.
                with channel.requests_lock:  # type: ignore[attr-defined]  # not in the stubs
                    if not channel.requests and channel.request is None:
                        # Idle, or only flushing an answer: waitress refuses further input
                        # and closes the connection once its output buffer is empty.
                        channel.close_when_flushed = True
            self._poll(0.05)


def url_of(host: str, port: int) -> str:
    if host in ("0.0.0.0", ""):  # noqa: S104 -- recognising the wildcard, not binding it
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
