"""``commerce serve``: the API on waitress, with a demo mode and a clean stop on SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import signal
import time
from collections.abc import Iterator
from datetime import timedelta
from types import FrameType
from typing import Any

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, create_server

from commerce.core.apikeys import new_api_key
from commerce.core.auth import Role
from commerce.core.errors import Conflict, Misconfigured
from commerce.core.events import LogEvent
from commerce.core.ports import CommerceStore
from commerce.entrypoints.cli.context import CliContext
from commerce.entrypoints.demo import ensure_demo
from commerce.entrypoints.logs import check_level, configure_logging, event_fields, flush_logs
from commerce.entrypoints.wiring import make_authenticators

log = logging.getLogger("commerce.serve")

DEFAULT_THREADS = 4
DRAIN_SECONDS = 10.0
"""How long a stop waits for requests in progress to be answered before closing regardless."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve the API with waitress",
        description=(
            "Serve the HTTP API with waitress until SIGTERM or Ctrl-C, which stop accepting "
            "connections, let requests in progress finish, and exit 0."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    parser.add_argument(
        "--port", type=_port, default=8000, help="port to listen on; 0 picks a free one (8000)"
    )
    parser.add_argument(
        "--threads",
        type=_positive,
        default=DEFAULT_THREADS,
        help=f"worker threads answering requests ({DEFAULT_THREADS})",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="migrate, load the demo data set if the tenant has none, print curl examples",
    )
    parser.set_defaults(run=run)


def _port(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {raw!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {raw!r} (0 to 65535)")
    return value


def _positive(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a positive integer: {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive integer: {raw!r}")
    return value


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    # --demo is the one place besides memory:// where authentication ``none`` is allowed.
    settings = dataclasses.replace(ctx.settings, demo=ctx.settings.demo or args.demo)
    if args.demo and "auth" not in settings.extra:
        # Unless COMMERCE_AUTH says otherwise, the demo shows authentication as it is used:
        # it makes an API key and prints it in the curl lines. COMMERCE_AUTH=none turns it off.
        settings = dataclasses.replace(settings, auth=("apikeys",))
    check_level(settings.log_level)

    # Every step that can fail on a bad configuration (a URL no plugin takes, a database that
    # cannot be reached, an unknown authenticator) runs before the JSON logs are switched on,
    # so that such a failure is the one line ``main`` prints, not buried in library chatter.
    revision = None
    if args.demo:
        manager = ctx.schema_manager()
        if manager is not None:
            revision = manager.upgrade()
    store = ctx.store()
    store.check()
    authenticators = make_authenticators(ctx.pm, settings, store)
    # Imported here so that the verbs that do not serve never pay for the HTTP layer.
    from commerce.entrypoints.http.ratelimit import TokenBuckets, parse_policy

    rate_policy = parse_policy(settings.rate_limit, settings.rate_burst)

    configure_logging(settings.log_level)
    scheme = settings.database_url.split(":", 1)[0]
    # Only the scheme: the rest of a URL may carry a password.
    log.info(
        "storage opened",
        extra=event_fields(LogEvent.STORAGE_OPENED, scheme=scheme, revision=revision),
    )
    if "none" in settings.auth:
        log.warning(
            "authentication is off: every request acts as admin of tenant %s",
            settings.tenant,
            extra=event_fields(LogEvent.AUTH_NONE_IN_USE, tenant=settings.tenant),
        )
    loaded = args.demo and ensure_demo(store, settings.tenant) is not None
    demo_key = (
        _demo_key(store, settings.tenant) if args.demo and "apikeys" in settings.auth else None
    )

    # Imported here so that the verbs that do not serve never pay for the HTTP layer.
    from commerce.entrypoints.http.app import create_app

    app = create_app(
        store,
        authenticators,
        max_body_bytes=settings.max_body_bytes,
        idempotency_ttl=timedelta(hours=settings.idempotency_ttl_hours),
        rate_limiter=None if rate_policy is None else TokenBuckets(rate_policy),
    )
    log.info(
        "starting",
        extra=event_fields(LogEvent.SERVICE_STARTING, threads=args.threads, scheme=scheme),
    )
    server = GracefulServer(app, host=args.host, port=args.port, threads=args.threads)
    urls = [_url(host, port) for host, port in server.listening]
    for url in urls:
        log.info("listening on %s", url, extra=event_fields(LogEvent.SERVICE_LISTENING, url=url))

    # The handlers go in before the line that says the server is up, so that whoever reads
    # that line (a test, a supervisor) may signal it at once and still get a clean stop.
    with server.stopped_by_signals():
        if args.demo:
            print(_banner(store, settings.tenant, urls[0], loaded, scheme, settings.auth, demo_key))
        print(f"Serving on {', '.join(urls)} (Ctrl-C or SIGTERM stops it)", flush=True)
        server.serve_until_stopped()
    signum = server.signalled
    log.info(
        "stopped",
        extra=event_fields(
            LogEvent.SERVICE_STOPPED,
            signal=signal.Signals(signum).name if signum else None,
            drained=server.drained,
        ),
    )
    flush_logs()
    return 0


class GracefulServer:
    """A waitress server whose loop this class runs, so that a signal can stop it cleanly.

    waitress has no graceful shutdown of its own: its ``run()`` ends only by an exception
    thrown into the socket loop, which then drops queued requests and never flushes answers
    still buffered. Here a signal only sets a flag and wakes the loop; the loop then closes
    the listening sockets (new connections are refused, not left hanging in the backlog),
    keeps going until every request in progress has been answered and flushed, closing each
    connection as it becomes idle, and only then stops the worker threads. A second signal,
    or ``DRAIN_SECONDS``, cuts the wait short.
    """

    def __init__(self, app: Any, *, host: str, port: int, threads: int) -> None:
        self._map: dict[int, Any] = {}
        try:
            server = create_server(
                app, map=self._map, host=host, port=port, threads=threads, ident="commerce"
            )
        except OSError as exc:
            raise Misconfigured(
                f"cannot listen on {host} port {port}: {exc.strerror or exc}; "
                "choose another --host or --port"
            ) from None
        self._adj = server.adj
        self._dispatcher = server.task_dispatcher
        self._listeners = [d for d in self._map.values() if isinstance(d, BaseWSGIServer)]
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

    def stop(self) -> None:
        """Ask the loop to stop; safe from a signal handler (it takes no lock)."""
        if self._stopping:
            self._hurry = True
        self._stopping = True
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
            self._drain()
        finally:
            self._dispatcher.shutdown(cancel_pending=True, timeout=5)
            wasyncore.close_all(self._map)

    def _poll(self, timeout: float) -> None:
        use_poll = self._adj.asyncore_use_poll
        wasyncore.loop(timeout=timeout, map=self._map, use_poll=use_poll, count=1)

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


def _url(host: str, port: int) -> str:
    if host in ("0.0.0.0", ""):  # noqa: S104 -- recognising the wildcard, not binding it
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _demo_key(store: CommerceStore, tenant: str) -> str:
    """A new admin key of the demo tenant, for the banner's curl lines; one per start."""
    for _ in range(3):
        made = new_api_key()
        # A prefix already taken (about one chance in 10^12) is tried again with a new key.
        with contextlib.suppress(Conflict):
            store.create_api_key(tenant, Role.admin, made.prefix, made.secret_hash)
            return made.token
    raise Conflict("no free API key prefix was found for the demo key; start again")


def _banner(
    store: CommerceStore,
    tenant: str,
    base: str,
    loaded: bool,
    scheme: str,
    auth: tuple[str, ...],
    key: str | None = None,
) -> str:
    """What to paste into a shell to see the demo, with ids that exist in the data."""
    chains = store.list_chains(tenant, after=None, limit=1000)
    items = store.list_items(tenant, after=None, limit=1000)
    chain_id = chains[0].id if chains else 1
    stores = store.list_stores(tenant, chain_id, after=None, limit=1000)
    active = [s for s in stores if s.active] or list(stores)
    store_id = active[0].id if active else 1
    stocked = store.list_levels(tenant, store_id, item_ids=None, after=None, limit=3)
    item_ids = [lv.item_id for lv in stocked] or [1, 2, 3]
    store_count = sum(len(store.list_stores(tenant, c.id, after=None, limit=1000)) for c in chains)

    if loaded:
        how = "loaded the demo data set"
    else:
        how = "the demo tenant already has data; nothing was loaded"
    lasting = (
        "it lives in memory and is gone when the server stops"
        if scheme == "memory"
        else f"it is kept by the {scheme}:// store"
    )
    lines = [
        f"commerce demo: {how} ({lasting}).",
        f'Tenant "{tenant}": {len(chains)} chains, {store_count} stores, {len(items)} items.',
    ]
    header = suffix = ""
    if key is not None:
        lines.append(
            f"Requests need an API key (COMMERCE_AUTH={','.join(auth)}). This one, an admin of "
            f"tenant {tenant!r}, was made for this demo and is shown only here:"
        )
        lines.append(f"  {key}")
        suffix = f" -H 'Authorization: Bearer {key}'"
    elif "none" in auth:
        lines.append(
            f'Authentication is off (COMMERCE_AUTH=none): requests act as tenant "{tenant}".'
        )
    else:
        lines.append(
            f"Requests need credentials of tenant {tenant!r} (COMMERCE_AUTH={','.join(auth)}); "
            "put one in COMMERCE_API_KEY for the lines below."
        )
        header = ' -H "Authorization: Bearer $COMMERCE_API_KEY"'
    paths = [
        "/chain",
        f"/chain/{chain_id}",
        f"/chain/{chain_id}/stores",
        f"/stores/{store_id}",
        f"/stores/{store_id}/inventory",
        f"/stores/{store_id}/inventory?items={','.join(map(str, item_ids))}",
        "/items?limit=5",
        f"/items/{item_ids[0]}",
        f"/items/{item_ids[0]}/inventory",
        "/healthz",
    ]
    lines += ["", "Try:"]
    lines += [f"  curl -s{header} '{base}{path}'{suffix}" for path in paths]
    lines.append("")
    return "\n".join(lines)
