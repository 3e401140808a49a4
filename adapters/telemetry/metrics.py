"""Prometheus metrics: ``GET /metrics`` in the Prometheus text format, as a plugin.

On by default; the settings (``COMMERCE_*``, see docs/observability.md):

- ``COMMERCE_METRICS``: ``off`` switches the plugin off (no middleware, no route, no wrapper).
- ``COMMERCE_METRICS_TOKEN``: if set, ``/metrics`` answers only ``Authorization: Bearer
  <token>`` (compared in constant time; the token is never logged).
- ``COMMERCE_METRICS_PORT``: if set, ``/metrics`` is served on this port by a server of its
  own (prometheus-client's ``start_http_server``) instead of the API's port;
  ``COMMERCE_METRICS_ADDR`` is the address it binds (default ``0.0.0.0``).
- ``COMMERCE_METRICS_PROBES``: ``on`` counts the probes and ``/metrics`` itself too (they are
  polled every few seconds and left out by default).

What is measured: requests by method, route template and status (count and latency), requests
in flight, every storage port call's latency by port and method, the storage pool's gauges
(``Storage.stats``), and, from the log events (``core.events.listeners``), transaction
retries, inventory changes by outcome, authentication refusals by reason, rate-limit refusals,
feature flag evaluations by flag and result, and every event by its ID.

Several server processes (``commerce serve --workers N`` sets this up itself): set
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory shared by them before any starts. Each
process then writes its values to files there and ``/metrics``, answered by any of them, adds
up every process's files (``MultiProcessCollector``): counters and histograms are summed
(those of a worker that died included, so totals never go back), the in-flight and pool
gauges summed over the live processes. The supervisor empties the directory before a start
and, through ``commerce_worker_exited``, this plugin calls
``prometheus_client.multiprocess.mark_process_dead(pid)`` when a worker exits. With
``COMMERCE_METRICS_PORT``, every worker listens on that port (``SO_REUSEPORT``) and any of
them answers a scrape with the sum. The process, platform and GC collectors are left out in
that mode, as the client documents.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

import falcon
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    values,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from commerce.adapters.telemetry.exposition import MetricsResource, serve_on_port
from commerce.core import events
from commerce.core.errors import Misconfigured
from commerce.core.events import LogEvent, event_log
from commerce.core.ports import Storage
from commerce.plugins import PROBE_PATHS, Instrumentation, hookimpl
from commerce.plugins.hookspecs import Settings

log = event_log(__name__)

METRICS_PATH = "/metrics"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
PORTS = ("catalogue", "inventory", "idempotency", "api_keys")
"""The ``Storage`` ports whose calls are timed."""

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Request methods kept as labels; any other is counted as ``other`` (labels stay bounded)."""

UNMATCHED = "unmatched"
"""The route label of a request no route matched (a 404): raw paths are never labels."""

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STORAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)

_OFF = frozenset({"off", "false", "0", "no"})
_ON = frozenset({"", "on", "true", "1", "yes"})


@dataclasses.dataclass(frozen=True)
class MetricsConfig:
    """The plugin's settings, checked."""

    enabled: bool = True
    token: str | None = dataclasses.field(default=None, repr=False)
    port: int | None = None
    addr: str = "0.0.0.0"  # noqa: S104 - a scrape target is reached from outside by design
    probes: bool = False
    multiproc_dir: str | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, environ: Mapping[str, str] | None = None
    ) -> MetricsConfig:
        env = os.environ if environ is None else environ
        port_raw = settings.get("metrics_port", "").strip()
        port = None
        if port_raw:
            if not (port_raw.isascii() and port_raw.isdigit()) or not 0 < int(port_raw) < 65536:
                raise Misconfigured(
                    f"COMMERCE_METRICS_PORT must be a port number, not {port_raw[:40]!r}"
                )
            port = int(port_raw)
        return cls(
            enabled=_switch(settings, "metrics", default=True),
            token=settings.get("metrics_token", "").strip() or None,
            port=port,
            addr=settings.get("metrics_addr", "").strip() or cls.addr,
            probes=_switch(settings, "metrics_probes", default=False),
            multiproc_dir=(env.get(MULTIPROC_ENV) or env.get(MULTIPROC_ENV.lower())) or None,
        )


def _switch(settings: Settings, key: str, *, default: bool) -> bool:
    raw = settings.get(key, "").strip().lower()
    if raw in _OFF:
        return False
    if raw in _ON:
        return default if raw == "" else True
    raise Misconfigured(f"COMMERCE_{key.upper()} must be on or off, not {raw[:40]!r}")


class Metrics:
    """The service's metrics, and the registry ``/metrics`` serves.

    Single process: the metrics are registered in a registry of their own (with the process,
    platform and GC collectors), so that two apps in one process (tests) never clash.
    Multiprocess (``multiproc_dir``): the metrics write to files in that directory and the
    served registry reads every process's files.
    """

    def __init__(self, multiproc_dir: str | None = None) -> None:
        self.multiprocess = multiproc_dir is not None
        self.registry = CollectorRegistry(auto_describe=True)
        own: CollectorRegistry | None = self.registry
        if multiproc_dir is not None:
            _write_values_to_files()
            MultiProcessCollector(self.registry, path=multiproc_dir)  # type: ignore[no-untyped-call]
            own = None  # the values live in files; the served registry reads those
        else:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        self.requests = Counter(
            "commerce_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ("method", "route", "status"),
            registry=own,
        )
        self.latency = Histogram(
            "commerce_http_request_duration_seconds",
            "Time from the request's arrival to its response, by method, route and status.",
            ("method", "route", "status"),
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.in_flight = Gauge(
            "commerce_http_requests_in_flight",
            "Requests being served now.",
            registry=own,
            multiprocess_mode="livesum",
        )
        self.storage_latency = Histogram(
            "commerce_storage_call_duration_seconds",
            "Time of one storage port call, by port and method (errors included).",
            ("port", "method"),
            buckets=STORAGE_BUCKETS,
            registry=own,
        )
        self.pool = Gauge(
            "commerce_storage_pool",
            "The storage backend's connection pool (size, checked_out, checked_in, overflow).",
            ("stat",),
            registry=own,
            multiprocess_mode="livesum",
        )
        self.retries = Counter(
            "commerce_transaction_retries",
            "Storage transactions retried after a serialization failure or deadlock.",
            registry=own,
        )
        self.adjustments = Counter(
            "commerce_inventory_adjustments",
            "Inventory adjustments by outcome: applied, or insufficient_stock (refused).",
            ("outcome",),
            registry=own,
        )
        self.level_sets = Counter(
            "commerce_inventory_level_sets",
            "Inventory levels set, by outcome: applied, or conflict (expected quantity differs).",
            ("outcome",),
            registry=own,
        )
        self.auth_refusals = Counter(
            "commerce_auth_refusals",
            "Requests refused for their credentials, by reason (role: authenticated, lacking "
            "the role; metrics_token: a scrape without the metrics token).",
            ("reason",),
            registry=own,
        )
        self.rate_limited = Counter(
            "commerce_rate_limited",
            "Requests refused by the per-tenant rate limit (429).",
            registry=own,
        )
        self.flag_evaluations = Counter(
            "commerce_flag_evaluations",
            "Feature flag evaluations of requests, by flag and result: on (the request went "
            "on), off (refused, 404 feature-disabled).",
            ("flag", "result"),
            registry=own,
        )
        self.events = Counter(
            "commerce_log_events",
            "Events logged through the event facade, by ID and name, whatever the log level "
            "(REQUEST_COMPLETED only while the access log is on).",
            ("event", "name"),
            registry=own,
        )
        self._event_children: dict[LogEvent, Any] = {}
        self._stats: list[Callable[[], Mapping[str, float]]] = []

    # -- log events -----------------------------------------------------------------
    def on_event(self, event: LogEvent, fields: Mapping[str, Any]) -> None:
        """A ``core.events`` listener: counts the events metrics follow. Never raises."""
        try:
            child = self._event_children.get(event)
            if child is None:
                child = self._event_children[event] = self.events.labels(event.id, event.name)
            child.inc()
            if event is LogEvent.TRANSACTION_RETRIED:
                self.retries.inc()
            elif event is LogEvent.INVENTORY_ADJUSTED:
                self.adjustments.labels("applied").inc()
            elif event is LogEvent.ADJUSTMENT_REFUSED:
                self.adjustments.labels("insufficient_stock").inc()
            elif event is LogEvent.LEVEL_SET:
                self.level_sets.labels("applied").inc()
            elif event is LogEvent.CAS_CONFLICT and fields.get("conflict") == "expected_quantity":
                self.level_sets.labels("conflict").inc()
            elif event is LogEvent.AUTH_REFUSED:
                self.auth_refusals.labels(str(fields.get("reason", "unknown"))[:40]).inc()
            elif event is LogEvent.ROLE_REFUSED:
                self.auth_refusals.labels("role").inc()
            elif event is LogEvent.RATE_LIMITED:
                self.rate_limited.inc()
            elif event is LogEvent.FLAG_EVALUATED or event is LogEvent.FEATURE_DISABLED:
                result = "on" if event is LogEvent.FLAG_EVALUATED else "off"
                self.flag_evaluations.labels(str(fields.get("flag", "unknown"))[:40], result).inc()
        except Exception:  # noqa: S110 - a listener must never fail the call it observes
            pass

    # -- storage --------------------------------------------------------------------
    def wrap_storage(self, storage: Storage) -> Storage:
        """``storage`` with every port call timed; its ``stats`` feed the pool gauges."""
        if storage.stats is not None:
            self._stats.append(storage.stats)
        timed = {
            port: cast(Any, TimedPort(getattr(storage, port), port, self.storage_latency))
            for port in PORTS
        }
        return dataclasses.replace(storage, **timed)

    def refresh_pool(self) -> None:
        """Copy the storage's pool gauges into the metrics (at each scrape, and after each
        request in multiprocess mode, where the scraping process is not the others)."""
        for stats in self._stats:
            try:
                values = stats()
            except Exception:  # noqa: S112 - stats never raises; a broken one shows no gauges
                continue
            for stat, value in values.items():
                self.pool.labels(stat).set(value)

    # -- exposition -----------------------------------------------------------------
    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The registry in the format ``accept`` asks for (Prometheus text by default)."""
        self.refresh_pool()
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class TimedPort:
    """A storage port whose every method call is observed in a histogram by port and method.

    Attributes are looked up on the wrapped port, so it answers whatever the port does.
    """

    def __init__(self, port: object, name: str, histogram: Histogram) -> None:
        self._port = port
        self._name = name
        self._histogram = histogram

    def __getattr__(self, attr: str) -> Any:
        target = getattr(self._port, attr)
        if attr.startswith("_") or not callable(target):
            return target
        child = self._histogram.labels(self._name, attr)

        @functools.wraps(target)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return target(*args, **kwargs)
            finally:
                child.observe(time.perf_counter() - started)

        self.__dict__[attr] = timed  # the next call skips __getattr__
        return timed

    def __repr__(self) -> str:
        return f"TimedPort({self._port!r})"


class RequestMetrics:
    """Falcon middleware: counts and times each request by method, route template, status.

    Outside the service's own middleware, so the time includes authentication, limits and
    idempotency. ``skip`` paths (the probes and ``/metrics``, by default) are not counted.
    """

    def __init__(self, metrics: Metrics, skip: Iterable[str] = ()) -> None:
        self._metrics = metrics
        self._skip = frozenset(skip)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.path in self._skip:
            return
        req.context.metrics_started = time.perf_counter()
        self._metrics.in_flight.inc()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        started = req.context.get("metrics_started")
        if started is None:
            return
        elapsed = time.perf_counter() - started
        metrics = self._metrics
        metrics.in_flight.dec()
        method = req.method if req.method in METHODS else "other"
        key = (method, req.uri_template or UNMATCHED, resp.status_code)
        children = self._children.get(key)
        if children is None:
            labels = (key[0], key[1], str(key[2]))
            children = (metrics.requests.labels(*labels), metrics.latency.labels(*labels))
            self._children[key] = children
        children[0].inc()
        children[1].observe(elapsed)
        if metrics.multiprocess:
            metrics.refresh_pool()


def _write_values_to_files() -> None:
    """Make the metrics made from now on write to ``PROMETHEUS_MULTIPROC_DIR``'s files.

    prometheus-client chooses how values are kept when it is first imported; the plugin
    manager imports it before ``serve --workers`` has set the directory, so it is chosen
    again here, before the first metric of the process is made.
    """
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


_per_process: dict[str, Metrics] = {}
_per_process_lock = threading.Lock()


def metrics_for(config: MetricsConfig) -> Metrics:
    """A new ``Metrics``; in multiprocess mode the one of this process and directory, as
    two sets of the same metrics in one process would overwrite each other's files."""
    if config.multiproc_dir is None:
        return Metrics()
    with _per_process_lock:
        found = _per_process.get(config.multiproc_dir)
        if found is None:
            found = _per_process[config.multiproc_dir] = Metrics(config.multiproc_dir)
        return found


def instrumentation(config: MetricsConfig) -> Instrumentation:
    """The metrics instrumentation for ``config`` (which must be enabled)."""
    metrics = metrics_for(config)
    if metrics.on_event not in events.listeners:
        events.listeners.append(metrics.on_event)
    skip = () if config.probes else (*PROBE_PATHS, METRICS_PATH)
    stop_server = serve_on_port(metrics, config) if config.port is not None else None

    def close() -> None:
        if metrics.on_event in events.listeners:
            events.listeners.remove(metrics.on_event)
        if stop_server is not None:
            stop_server()

    routes: tuple[tuple[str, object], ...] = ()
    if config.port is None:
        routes = ((METRICS_PATH, MetricsResource(metrics, config.token)),)
    return Instrumentation(
        name="metrics",
        middleware=(RequestMetrics(metrics, skip),),
        routes=routes,
        wrap_storage=metrics.wrap_storage,
        close=close,
    )


@hookimpl
def commerce_worker_exited(pid: int) -> None:
    """A worker of ``serve --workers`` exited: its live gauges no longer count."""
    path = os.environ.get(MULTIPROC_ENV)
    if path and os.path.isdir(path):
        mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


@hookimpl
def commerce_instrumentations(settings: Settings) -> list[Instrumentation]:
    config = MetricsConfig.from_settings(settings)
    return [instrumentation(config)] if config.enabled else []
