"""The tracing plugin's own spans (``lean_spans.py``) against the SDK's: the same calls give
the same finished span, with the same limits, sampling and ids rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import (
    ReadableSpan,
    SpanLimits,
    SpanProcessor,
    SynchronousMultiSpanProcessor,
    TracerProvider,
)
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, Sampler
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.span import TraceState

from commerce.adapters.telemetry.lean_spans import LeanSpan, LeanTracer

RESOURCE = Resource.create({"service.name": "commerce"})
SCOPE = InstrumentationScope("commerce", "", "")


def _pair(
    sampler: Sampler = ALWAYS_ON, limits: SpanLimits | None = None
) -> tuple[trace.Tracer, trace.Tracer, InMemorySpanExporter, InMemorySpanExporter]:
    """A lean tracer and an SDK tracer of the same settings, each with its exporter."""
    lean_spans, sdk_spans = InMemorySpanExporter(), InMemorySpanExporter()
    processor = SynchronousMultiSpanProcessor()
    processor.add_span_processor(SimpleSpanProcessor(lean_spans))
    lean = LeanTracer(sampler, RESOURCE, processor, SCOPE, limits)
    provider = TracerProvider(sampler=sampler, resource=RESOURCE, span_limits=limits)
    provider.add_span_processor(SimpleSpanProcessor(sdk_spans))
    return lean, provider.get_tracer("commerce"), lean_spans, sdk_spans


def _view(span: ReadableSpan) -> dict[str, Any]:
    """What an exporter reads of a finished span, ids and times left out (they differ)."""
    assert span.context is not None
    return {
        "name": span.name,
        "kind": span.kind,
        "attributes": dict(span.attributes or {}),
        "dropped_attributes": span.dropped_attributes,
        "events": [(e.name, dict(e.attributes or {}), e.dropped_attributes) for e in span.events],
        "dropped_events": span.dropped_events,
        "links": [(link.context, dict(link.attributes or {})) for link in span.links],
        "dropped_links": span.dropped_links,
        "status": (span.status.status_code, span.status.description),
        "flags": span.context.trace_flags,
        "trace_state": span.context.trace_state,
        "parent": span.parent,
        "remote": span.context.is_remote,
        "resource": span.resource,
        "scope": span.instrumentation_scope,
        "ended": span.end_time is not None and span.end_time >= (span.start_time or 0),
    }


def _same(
    story: Callable[[trace.Tracer], None],
    sampler: Sampler = ALWAYS_ON,
    limits: SpanLimits | None = None,
) -> list[dict[str, Any]]:
    lean, sdk, lean_spans, sdk_spans = _pair(sampler, limits)
    story(lean)
    story(sdk)
    ours = [_view(s) for s in lean_spans.get_finished_spans()]
    theirs = [_view(s) for s in sdk_spans.get_finished_spans()]
    if ours and "scope" in ours[0]:  # the SDK's scope carries an empty attributes mapping
        for view in (*ours, *theirs):
            view["scope"] = view["scope"].name
    assert ours == theirs
    assert all(isinstance(s, LeanSpan) for s in lean_spans.get_finished_spans())
    return ours


def test_a_span_used_through_the_whole_api_ends_as_the_sdks_does() -> None:
    def story(tracer: trace.Tracer) -> None:
        span = tracer.start_span("GET", kind=SpanKind.SERVER, attributes={"a": "x", "n": 1})
        span.set_attribute("f", 1.5)
        span.set_attributes({"list": ["a", "b"], "flags": [True, False], "n": 2})
        span.set_attribute("map", {"a": 1})
        span.set_attribute("mixed", [1, "a"])
        span.set_attribute("", 1)  # no key: dropped and counted
        span.update_name("GET /stores/{store_id}")
        span.add_event("refused", {"exception.type": "NotFound"})
        span.set_status(Status(StatusCode.ERROR, "boom"))
        span.set_status(StatusCode.UNSET)  # ignored
        span.end()
        span.set_attribute("late", 1)  # ignored: the span ended
        span.add_event("late")
        span.update_name("late")
        span.end()  # a second end changes nothing and reports nothing twice

    (view,) = _same(story)
    assert view["name"] == "GET /stores/{store_id}"
    assert view["attributes"] == {
        "a": "x",
        "n": 2,
        "f": 1.5,
        "list": ("a", "b"),
        "flags": (True, False),
        "map": {"a": 1},
        "mixed": (1, "a"),
    }
    assert view["dropped_attributes"] == 1
    assert view["status"] == (StatusCode.ERROR, "boom")


def test_ok_is_final_and_an_exception_is_recorded_as_the_sdk_records_it() -> None:
    def story(tracer: trace.Tracer) -> None:
        span = tracer.start_span("usecase.adjust")
        span.set_status(StatusCode.OK)
        span.set_status(StatusCode.ERROR, "too late")
        try:
            raise ValueError("no")
        except ValueError as error:
            span.record_exception(error, {"extra": 1})
        span.end()

    (view,) = _same(story)
    assert view["status"] == (StatusCode.OK, None)
    ((name, attributes, _),) = view["events"]
    assert name == "exception"
    assert attributes["exception.type"] == "ValueError"
    assert "raise ValueError" in attributes["exception.stacktrace"]


def test_children_share_the_trace_and_name_their_parent() -> None:
    lean, _, exported, _ = _pair()
    root = lean.start_span("root")
    token = otel_context.attach(trace.set_span_in_context(root))
    try:
        child = lean.start_span("child", kind=SpanKind.CLIENT)
        child.end()
    finally:
        otel_context.detach(token)
    root.end()
    finished_child, finished_root = exported.get_finished_spans()
    assert finished_child.parent == root.get_span_context()
    assert finished_child.context is not None
    assert finished_root.context is not None
    assert finished_child.context.trace_id == finished_root.context.trace_id
    assert finished_child.context.span_id != finished_root.context.span_id
    assert finished_root.parent is None
    flags = finished_root.context.trace_flags
    assert flags.sampled
    assert flags.random_trace_id


def test_a_remote_parent_is_continued_with_its_trace_state() -> None:
    remote = SpanContext(
        0x4BF92F3577B34DA6A3CE929D0E0E4736,
        0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "value")]),
    )
    parent = trace.set_span_in_context(NonRecordingSpan(remote))

    def story(tracer: trace.Tracer) -> None:
        tracer.start_span("GET", context=parent, kind=SpanKind.SERVER).end()

    (view,) = _same(story, sampler=ParentBased(ALWAYS_ON))
    assert view["parent"] == remote
    assert view["trace_state"] == TraceState([("vendor", "value")])


@pytest.mark.parametrize("sampled_parent", [False, True])
def test_the_sampler_decides_and_an_unsampled_span_carries_the_trace_on(
    sampled_parent: bool,
) -> None:
    remote = SpanContext(
        0x4BF92F3577B34DA6A3CE929D0E0E4736,
        0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled_parent else TraceFlags.DEFAULT),
    )
    lean, _, exported, _ = _pair(ParentBased(ALWAYS_ON))
    span = lean.start_span("GET", context=trace.set_span_in_context(NonRecordingSpan(remote)))
    span.end()
    assert span.get_span_context().trace_id == remote.trace_id
    assert span.is_recording() is False  # ended, or never recorded
    assert len(exported.get_finished_spans()) == (1 if sampled_parent else 0)
    assert isinstance(span, LeanSpan) is sampled_parent

    off, _, none_exported, _ = _pair(ALWAYS_OFF)
    unsampled = off.start_span("GET")
    assert isinstance(unsampled, NonRecordingSpan)
    assert unsampled.get_span_context().is_valid
    assert not unsampled.get_span_context().trace_flags.sampled
    unsampled.end()
    assert none_exported.get_finished_spans() == ()


def test_limits_drop_and_count_as_the_sdks_do() -> None:
    limits = SpanLimits(
        max_span_attributes=2,
        max_events=1,
        max_links=1,
        max_event_attributes=1,
        max_attribute_length=3,
    )
    other = SpanContext(1, 2, is_remote=False, trace_flags=TraceFlags(1))
    links = [trace.Link(other), trace.Link(SpanContext(3, 4, is_remote=False))]

    def story(tracer: trace.Tracer) -> None:
        span = tracer.start_span("s", attributes={"a": "x"}, links=links)
        span.set_attributes({"b": "long text", "c": "dropped", "a": "replaced"})
        span.add_event("one", {"k": "v", "k2": "dropped"})
        span.add_event("two")
        span.end()

    (view,) = _same(story, limits=limits)
    assert view["attributes"] == {"c": "dro", "a": "rep"}  # the oldest made way
    assert view["dropped_attributes"] == 2
    assert [name for name, _, _ in view["events"]] == ["two"]
    assert view["dropped_events"] == 1
    assert [link for link, _ in view["links"]] == [links[1].context]
    assert view["dropped_links"] == 1


def test_start_as_current_span_makes_it_current_and_ends_it() -> None:
    lean, _, exported, _ = _pair()
    current: list[trace.Span] = []

    def work() -> None:
        with lean.start_as_current_span("work") as span:
            current.append(span)
            current.append(trace.get_current_span())
            raise RuntimeError("failed")

    with pytest.raises(RuntimeError):
        work()
    span, seen = current
    assert seen is span
    assert trace.get_current_span() is not span
    (finished,) = exported.get_finished_spans()
    assert finished.status.status_code is StatusCode.ERROR
    assert [event.name for event in finished.events] == ["exception"]


def test_each_span_reaches_the_processor_once_when_it_starts_and_once_when_it_ends() -> None:
    calls: list[tuple[str, str]] = []

    class Recording(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            calls.append(("start", span.name))

        def on_end(self, span: ReadableSpan) -> None:
            calls.append(("end", span.name))

    every = SynchronousMultiSpanProcessor()
    every.add_span_processor(Recording())
    tracer = LeanTracer(ALWAYS_ON, RESOURCE, every, SCOPE)
    span = tracer.start_span("a")
    assert calls == [("start", "a")]
    span.end()
    span.end()
    assert calls == [("start", "a"), ("end", "a")]


_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),
        st.text(max_size=8),
        st.binary(max_size=4),
        st.builds(object),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(), inner)),
    max_leaves=6,
)
_KEYS = st.sampled_from(["a", "b", "c", "d", ""])


@given(
    start=st.dictionaries(st.sampled_from(["a", "b"]), st.text(max_size=8), max_size=2),
    changes=st.lists(st.tuples(st.booleans(), _KEYS, _VALUES), max_size=6),
    known=st.dictionaries(st.sampled_from(["b", "e"]), st.integers(), max_size=2),
    count=st.one_of(st.none(), st.integers(0, 4)),
    length=st.one_of(st.none(), st.integers(0, 5)),
)
def test_attributes_set_by_the_plugin_and_through_the_api_end_as_the_sdks(
    start: dict[str, str],
    changes: list[tuple[bool, str, Any]],
    known: dict[str, int],
    count: int | None,
    length: int | None,
) -> None:
    limits = SpanLimits(max_span_attributes=count, max_span_attribute_length=length)

    def story(tracer: trace.Tracer) -> None:
        span = tracer.start_span("s", attributes=start)
        for one_by_one, key, value in changes:
            if one_by_one:
                span.set_attribute(key, value)
            else:
                span.set_attributes({key: value})
        # The server span's last attributes (often none): set_known on ours, what it stands
        # for on the SDK's.
        if isinstance(span, LeanSpan):
            span.set_known(known)
        else:
            span.set_attributes(known)
        span.end()

    _same(story, limits=limits)
