"""OpenTelemetry tracing, as a plugin: a server span per request, a child span per storage call.

Off by default. It is switched on, and set up, by OpenTelemetry's own standard variables:

- ``OTEL_TRACES_EXPORTER``: ``otlp`` (OTLP over HTTP/protobuf; the endpoint and headers from
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` and the other
  ``OTEL_EXPORTER_OTLP_*`` variables, read by the exporter: OpenTelemetry's, with an encoder
  of the service's, ``otlp.py``), ``console`` (spans as JSON on stdout), several separated
  by commas, or ``none``. Unset: tracing is off (OpenTelemetry's
  own default would be ``otlp``; a service that nobody asked to send traces sends none).
- ``OTEL_SDK_DISABLED=true`` switches it off whatever the exporter says.
- ``OTEL_SERVICE_NAME`` (default ``commerce``) and ``OTEL_RESOURCE_ATTRIBUTES`` name the
  service in the traces.
- ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG``: ``always_on``, ``always_off``,
  ``traceidratio``, ``parentbased_always_on`` (the default), ``parentbased_always_off``,
  ``parentbased_traceidratio``; the argument is the ratio (0 to 1) of the ``traceidratio`` ones.

And one of the service's (``COMMERCE_*``): ``COMMERCE_TRACE_PROBES=on`` traces the health
probes and ``/metrics`` too, which are left out by default (polled every few seconds, they
would be most of the traces).

What it produces:

- one ``SERVER`` span per request, named by its route template (``GET
  /stores/{store_id}/inventory``; only the method when no route matched), with the
  semantic-convention attributes (``http.request.method``, ``http.route``, ``url.path``,
  ``http.response.status_code``) and ``commerce.request_id``; a 5xx marks it as an error.
  A W3C ``traceparent`` (and ``tracestate``) header is honoured: the span is the caller's
  span's child, in the caller's trace.
- one ``CLIENT`` span per call of a storage port (``inventory.adjust``), child of the span
  current at the call, with ``db.system`` where the backend is a known database
  (``postgresql``, ``cockroachdb``, ``sqlite``), ``db.operation.name`` (the method) and
  ``commerce.tenant`` (the tenant the call is for). Calls made outside a traced request (start-up,
  the CLI) open none.
- every log line written while a span is current carries its ``trace_id`` and ``span_id``
  (a provider in ``core.context.providers``, merged by the log formatter).

It is Falcon middleware of its own rather than OpenTelemetry's Falcon instrumentation, which
works by replacing the class ``falcon.App`` when ``instrument()`` runs: an app built before, or
built by ``falcon.App`` imported before, is not traced, and the patch is global to the process.
The tracer is the plugin's own too (``lean_spans.py``: OpenTelemetry's API and the SDK's
sampler, limits, processors and exporters, with spans that cost a third of the SDK's to make),
not installed as the global one, so that two apps in one process (the tests) never share
exporters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

import falcon
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, SynchronousMultiSpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from commerce.adapters.telemetry.lean_spans import LeanSpan, LeanTracer
from commerce.adapters.telemetry.tracing_config import NAME, TracingConfig
from commerce.core import context, spans
from commerce.core.errors import CommerceError
from commerce.core.ports import Storage
from commerce.plugins import PROBE_PATHS, Instrumentation, hookimpl
from commerce.plugins.hookspecs import Settings

PORTS = ("catalogue", "inventory", "idempotency", "api_keys")
"""The ``Storage`` ports whose calls open spans."""

UNTRACED_PATHS: frozenset[str] = PROBE_PATHS | {"/metrics"}
"""Left out unless ``COMMERCE_TRACE_PROBES`` is on."""

DB_SYSTEMS = {
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "cockroachdb": "cockroachdb",
    "sqlite": "sqlite",
}
"""URL scheme of a ``Storage.name`` -> the semantic conventions' ``db.system``."""


# -- the log fields ------------------------------------------------------------------------
def log_ids() -> Mapping[str, object]:
    """``trace_id`` and ``span_id`` of the current span, as hex (``{}`` outside any span)."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return {}
    return {
        "trace_id": trace.format_trace_id(span_context.trace_id),
        "span_id": trace.format_span_id(span_context.span_id),
    }


def register_log_ids() -> None:
    """Add ``log_ids`` to ``core.context.providers`` (once, however often it is called)."""
    if log_ids not in context.providers:
        context.providers.append(log_ids)


# -- the server span -----------------------------------------------------------------------
class _HeaderGetter(Getter[falcon.Request]):
    def get(self, carrier: falcon.Request, key: str) -> list[str] | None:
        value = carrier.get_header(key)
        return None if value is None else [value]

    def keys(self, carrier: falcon.Request) -> list[str]:
        return list(carrier.headers)


_GETTER = _HeaderGetter()
_PROPAGATOR = TraceContextTextMapPropagator()


class ServerSpans:
    """Falcon middleware: a ``SERVER`` span around each request, current while it runs.

    Placed outside the service's own middleware (``Instrumentation.middleware``), it opens the
    span before the request id is given and closes it after the request line is logged, so
    that every line of the request carries the trace id.
    """

    def __init__(self, tracer: trace.Tracer, *, skip: Iterable[str] = UNTRACED_PATHS) -> None:
        self._tracer = tracer
        self._skip = frozenset(skip)

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.otel_span = None
        if req.path in self._skip:
            return
        # Most requests carry no trace context: then there is nothing to extract.
        parent = (
            None
            if req.get_header("traceparent") is None
            else _PROPAGATOR.extract(req, getter=_GETTER)
        )
        span = self._tracer.start_span(
            req.method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": req.method,
                "url.path": req.path,
                "url.scheme": req.scheme,
            },
        )
        req.context.otel_span = span
        req.context.otel_token = otel_context.attach(trace.set_span_in_context(span, parent))
        req.context.otel_spans = spans.open_spans_with(self._open_usecase)

    def _open_usecase(self, name: str) -> UseCaseSpan:
        return UseCaseSpan(self._tracer, name)

    def process_resource(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        resource: object,
        params: dict[str, object],
    ) -> None:
        span = req.context.get("otel_span")
        if span is not None and req.uri_template:
            span.update_name(f"{req.method} {req.uri_template}")

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        span = req.context.get("otel_span")
        if span is None:
            return
        req.context.otel_span = None
        try:
            status = resp.status_code
            # The attributes known by now, in one call (each call takes the span's lock).
            attributes: dict[str, str | int] = {}
            if req.uri_template:
                attributes["http.route"] = req.uri_template
            attributes["http.response.status_code"] = status
            request_id = req.context.get("request_id")
            if request_id is not None:
                attributes["commerce.request_id"] = request_id
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
                attributes["error.type"] = str(status)
            if isinstance(span, LeanSpan):
                span.set_known(attributes)
            else:
                span.set_attributes(attributes)
            span.end()
        finally:
            spans.close_spans(req.context.otel_spans)
            otel_context.detach(req.context.otel_token)


# -- the use case spans --------------------------------------------------------------------
class UseCaseSpan:
    """The span of one use case call: ``INTERNAL``, current while the use case runs.

    A domain refusal (``CommerceError``) is an answer: an event on the span, status unset.
    """

    __slots__ = ("_name", "_span", "_token", "_tracer")

    def __init__(self, tracer: trace.Tracer, name: str) -> None:
        self._tracer = tracer
        self._name = name

    def __enter__(self) -> trace.Span:
        self._span = self._tracer.start_span(self._name, kind=SpanKind.INTERNAL)
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: Any
    ) -> None:
        span = self._span
        try:
            if isinstance(error, CommerceError):
                span.add_event("refused", {"exception.type": type(error).__name__})
            elif error is not None:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        finally:
            otel_context.detach(self._token)
            span.end()


# -- the storage spans ---------------------------------------------------------------------
def db_system(storage: Storage) -> str | None:
    """``db.system`` of the storage, from the scheme of its name (``postgresql+psycopg://``)."""
    scheme = storage.name.partition(":")[0].partition("+")[0].lower()
    return DB_SYSTEMS.get(scheme)


class TracedPort:
    """A port whose every method call is a ``CLIENT`` span named ``port.method``.

    Only inside a recording span (a traced request): elsewhere the call goes straight through.
    A domain refusal (``CommerceError``: not found, a conflict, short of stock) is an answer,
    not a failure: it is recorded on the span as an event, the status left unset; any other
    exception marks the span as an error.
    """

    def __init__(
        self, port: object, name: str, tracer: trace.Tracer, attributes: Mapping[str, str]
    ) -> None:
        self._port = port
        self._name = name
        self._tracer = tracer
        self._attributes = dict(attributes)

    def __getattr__(self, method: str) -> Any:
        # Called only for a name not yet found on the proxy: a method's wrapper is kept on it,
        # so later calls find it at once.
        target = getattr(self._port, method)
        if method.startswith("_") or not callable(target):
            return target
        wrapped = self._wrap(method, target)
        setattr(self, method, wrapped)
        return wrapped

    def _wrap(self, method: str, target: Callable[..., Any]) -> Callable[..., Any]:
        tracer = self._tracer
        span_name = f"{self._name}.{method}"
        attributes = {**self._attributes, "db.operation.name": method}

        def traced(*args: Any, **kwargs: Any) -> Any:
            if not trace.get_current_span().is_recording():
                return target(*args, **kwargs)
            # Every port method takes the tenant first (a tenant id is no secret).
            tenant = args[0] if args and isinstance(args[0], str) else None
            # start_span and attach by hand: start_as_current_span's context managers cost
            # as much again as the span itself.
            span = tracer.start_span(
                span_name,
                kind=SpanKind.CLIENT,
                attributes=attributes
                if tenant is None
                else {**attributes, "commerce.tenant": tenant},
            )
            token = otel_context.attach(trace.set_span_in_context(span))
            try:
                return target(*args, **kwargs)
            except CommerceError as e:
                span.add_event("refused", {"exception.type": type(e).__name__})
                raise
            except BaseException as e:
                span.record_exception(e)
                span.set_status(Status(StatusCode.ERROR, type(e).__name__))
                raise
            finally:
                otel_context.detach(token)
                span.end()

        traced.__name__ = method
        traced.__doc__ = target.__doc__
        return traced

    def __repr__(self) -> str:
        return f"TracedPort({self._port!r})"


def traced_storage(storage: Storage, tracer: trace.Tracer) -> Storage:
    """``storage`` with each port's calls in spans of their own; ``check``/``close`` as they are."""
    system = db_system(storage)
    attributes = {"db.system": system} if system is not None else {}
    ports = {
        port: cast(Any, TracedPort(getattr(storage, port), port, tracer, attributes))
        for port in PORTS
    }
    return dataclasses.replace(storage, **ports)


# -- the plugin ----------------------------------------------------------------------------
def batch_processor(exporter: SpanExporter) -> BatchSpanProcessor:
    """The ``BatchSpanProcessor`` that sends the spans to ``exporter``: for the OTLP exporter,
    one that queues the spans encoded (``otlp.EncodingBatchSpanProcessor``)."""
    if type(exporter).__module__ == "commerce.adapters.telemetry.otlp":
        # Imported only with the OTLP exporter, which is optional (as is its package).
        from commerce.adapters.telemetry.otlp import EncodingBatchSpanProcessor

        return EncodingBatchSpanProcessor(exporter)
    return BatchSpanProcessor(exporter)


def instrumentation(
    config: TracingConfig,
    *,
    processors: Sequence[SpanProcessor] | None = None,
) -> Instrumentation:
    """The tracing instrumentation of ``config``; ``processors`` replace the exporters' (tests
    pass a ``SimpleSpanProcessor`` over an ``InMemorySpanExporter``)."""
    if processors is None:
        processors = [batch_processor(exporter) for exporter in config.make_exporters()]
    every = SynchronousMultiSpanProcessor()  # type: ignore[no-untyped-call]
    for processor in processors:
        every.add_span_processor(processor)
    # The plugin's own tracer and spans (lean_spans.py), over the SDK's sampler, resource,
    # limits and processors. Not installed as the global provider: two apps in one process
    # (the tests) never share exporters.
    tracer = LeanTracer(
        sampler=config.make_sampler(),
        resource=Resource.create({"service.name": config.service_name}),
        processor=every,
        scope=InstrumentationScope(NAME, "", ""),  # as the SDK's get_tracer(NAME) names it
    )
    register_log_ids()
    skip = frozenset() if config.probes else UNTRACED_PATHS
    return Instrumentation(
        name="tracing",
        middleware=(ServerSpans(tracer, skip=skip),),
        wrap_storage=lambda storage: traced_storage(storage, tracer),
        close=every.shutdown,
    )


@hookimpl
def commerce_instrumentations(settings: Settings) -> list[Instrumentation]:
    config = TracingConfig.from_settings(settings)
    return [instrumentation(config)] if config.enabled else []
