"""The tracing plugin's own spans: OpenTelemetry's API, lighter to make than the SDK's.

The SDK's ``Tracer.start_span`` and ``Span.end`` cost about 17 µs of CPU a span on the 2-vCPU
machine of docs/observability.md, with no processor at all. Most of it goes to what a span
of this plugin never needs: a lock per span, attribute maps that check and copy every value
on the way in, bounded lists for events, a snapshot taken at the end so that later changes
cannot reach the exporter, and the SDK's own metrics about spans. A request traced end to
end opens three spans (server, use case, storage call), so that was 50 µs a request.

``LeanTracer`` makes ``LeanSpan``s, which are both an ``opentelemetry.trace.Span`` (what
code that finds the current span sees) and an SDK ``ReadableSpan`` (what span processors
and exporters take), so every processor and exporter of the SDK, and the service's OTLP
encoder, handle them as they handle the SDK's.

What is kept, as the SDK does it:

- the sampler decides (``OTEL_TRACES_SAMPLER``), with the same arguments; a span it does
  not record is a ``NonRecordingSpan`` that carries the trace on;
- ids from the SDK's ``RandomIdGenerator``; the trace flags, trace state and the W3C
  random-trace-id flag as the SDK sets them (the OTLP encoder's test compares bytes);
- the span limits (``OTEL_SPAN_*_LIMIT``, ``OTEL_ATTRIBUTE_*``): past the count the oldest
  attribute, event or link makes way and is counted as dropped; text is cut to the length
  limit;
- attributes set through the API, and event attributes, are checked and kept by
  OpenTelemetry's own attribute map (``BoundedAttributes``), as in the SDK's spans;
- the status rules (``OK`` is final, ``UNSET`` is never set), ``record_exception``'s event,
  a second ``end`` ignored, nothing changed once ended.

What differs: a span is not locked. Each is changed only by the thread that runs its request
(one request, one thread, in a WSGI server) until it ends, and read by the exporter's thread
only after, when nothing changes it any more. And the attributes that the plugin itself gives
(``start_span(attributes=…)`` and ``set_known``: text and integers it builds) are kept in a
plain dict, unchecked, as long as no limit can apply to them; the first attribute set through
the API, or a length limit, moves them into the checked map.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from time import time_ns
from typing import Any, cast

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, SpanProcessor
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision, Sampler
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util import types

_UNSET = Status(StatusCode.UNSET)


class LeanSpan(ReadableSpan, trace.Span):
    """A recording span of ``LeanTracer``; see the module's docstring."""

    _dropped_events = 0
    _dropped_links = 0
    _limits: SpanLimits
    _processor: SpanProcessor

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        links: Sequence[trace.Link],
        tracer: LeanTracer,
        start_time: int,
    ) -> None:
        limits = self._limits = tracer.limits
        # ReadableSpan's own constructor is not called: it would make a Resource when none is
        # given and sets nothing that is not set here.
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._attributes: dict[str, Any] | BoundedAttributes = attributes
        if limits.max_span_attribute_length is not None or _over(
            len(attributes), limits.max_span_attributes
        ):
            self._attributes = self._bounded()
        self._events: list[Event] = []
        self._links = links
        if links and limits.max_links is not None and len(links) > limits.max_links:
            kept = max(limits.max_links, 0)  # the last ones, as in the SDK's bounded list
            self._links = tuple(links[len(links) - kept :])
            self._dropped_links = len(links) - kept
        self._resource = tracer.resource
        self._instrumentation_scope = tracer.scope
        self._instrumentation_info = None
        self._status = _UNSET
        self._start_time = start_time
        self._end_time = None
        self._processor = tracer.processor

    # -- ReadableSpan ---------------------------------------------------------------------
    @property
    def dropped_attributes(self) -> int:
        attributes = self._attributes
        return attributes.dropped if isinstance(attributes, BoundedAttributes) else 0

    def _bounded(self) -> BoundedAttributes:
        """The attributes in OpenTelemetry's own checked map, as the SDK's spans keep them:
        from the first change through the API on, or from the start under a length limit."""
        limits = self._limits
        return BoundedAttributes(
            limits.max_span_attributes,
            self._attributes,
            immutable=False,
            max_value_len=limits.max_span_attribute_length,
        )

    def set_known(self, attributes: Mapping[str, str | int]) -> None:
        """``set_attributes`` for values the plugin itself made (text and integers, no
        longer than the limit allows): set as they are while the limits cannot be reached."""
        mine = self._attributes
        if (
            self._end_time is not None
            or isinstance(mine, BoundedAttributes)
            or self._limits.max_span_attribute_length is not None
            or _over(len(mine) + len(attributes), self._limits.max_span_attributes)
        ):
            self.set_attributes(attributes)
            return
        for key, value in attributes.items():
            mine.pop(key, None)  # a key set again moves to the end, as in the SDK's map
            mine[key] = value

    @property
    def dropped_events(self) -> int:
        return self._dropped_events

    @property
    def dropped_links(self) -> int:
        return self._dropped_links

    # -- trace.Span -----------------------------------------------------------------------
    def get_span_context(self) -> SpanContext:
        context = self._context
        assert context is not None  # given to every LeanSpan
        return context

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        self.set_attributes({key: value})

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        if self._end_time is not None:
            return
        mine = self._attributes
        if not isinstance(mine, BoundedAttributes):
            mine = self._attributes = self._bounded()
        for key, value in attributes.items():
            mine[key] = value

    def add_event(
        self, name: str, attributes: types.Attributes = None, timestamp: int | None = None
    ) -> None:
        if self._end_time is not None:
            return
        limits = self._limits
        if limits.max_events is not None and limits.max_events <= 0:
            self._dropped_events += 1
            return
        if _full(len(self._events), limits.max_events):
            del self._events[0]  # the oldest makes way, as in the SDK's bounded list
            self._dropped_events += 1
        bounded = BoundedAttributes(
            limits.max_event_attributes,
            attributes,
            max_value_len=limits.max_attribute_length,
            immutable=True,
        )
        self._events.append(Event(name, bounded, timestamp))

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status.status_code is not StatusCode.UNSET:
            self._status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        # The SDK span's own: it builds the exception's attributes and calls add_event.
        SdkSpan.record_exception(cast(Any, self), exception, attributes, timestamp, escaped)

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            return
        self._end_time = end_time if end_time is not None else time_ns()
        self._processor.on_end(self)

    def __repr__(self) -> str:
        return f'LeanSpan(name="{self._name}", context={self._context})'


def _full(count: int, limit: int | None) -> bool:
    return limit is not None and count >= limit


def _over(count: int, limit: int | None) -> bool:
    return limit is not None and count > limit


class LeanTracer(trace.Tracer):
    """The plugin's tracer: spans sampled, identified and limited as the SDK's ``Tracer``
    makes them, handed to ``processor`` when they start and end."""

    def __init__(
        self,
        sampler: Sampler,
        resource: Resource,
        processor: SpanProcessor,
        scope: InstrumentationScope,
        limits: SpanLimits | None = None,
    ) -> None:
        self.sampler = sampler
        self.resource = resource
        self.processor = processor
        self.scope = scope
        self.limits = limits if limits is not None else SpanLimits()
        self.ids = RandomIdGenerator()

    def start_span(
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[trace.Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        links = links or ()
        parent: SpanContext | None = trace.get_current_span(context).get_span_context()
        if parent is None or not parent.is_valid:
            parent = None
            trace_id = self.ids.generate_trace_id()
            random_id = self.ids.is_trace_id_random()
        else:
            trace_id = parent.trace_id
            random_id = parent.trace_flags.random_trace_id
        sampled = self.sampler.should_sample(context, trace_id, name, kind, attributes, links)
        decision = sampled.decision
        flags = TraceFlags.SAMPLED if decision is Decision.RECORD_AND_SAMPLE else TraceFlags.DEFAULT
        if random_id:
            flags |= TraceFlags.RANDOM_TRACE_ID
        span_context = SpanContext(
            trace_id,
            self.ids.generate_span_id(),
            is_remote=False,
            trace_flags=TraceFlags(flags),
            trace_state=sampled.trace_state,
        )
        if decision is Decision.DROP:
            return trace.NonRecordingSpan(span_context)
        span = LeanSpan(
            name,
            span_context,
            parent,
            kind,
            dict(sampled.attributes) if sampled.attributes else {},
            tuple(links),
            self,
            start_time if start_time is not None else time_ns(),
        )
        # Typed for the SDK's own span class; processors use the ReadableSpan view.
        self.processor.on_start(cast(Any, span), parent_context=context)
        return span

    @contextmanager
    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[trace.Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace.Span]:
        span = self.start_span(name, context, kind, attributes, links, start_time)
        with trace.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current
