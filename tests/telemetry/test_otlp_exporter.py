"""The OTLP exporter's own encoder: the same request as the OTLP package's encoder, byte for
byte, and every span of a burst of requests reaches the collector."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from commerce.adapters.auth.none import NoAuthentication
from commerce.adapters.storage.memory import memory_storage
from commerce.adapters.telemetry import tracing
from commerce.adapters.telemetry.otlp import EncodingBatchSpanProcessor, OTLPSpanExporter
from commerce.adapters.telemetry.otlp_encoding import EncodedSpan, SpanEncoder
from commerce.adapters.telemetry.tracing_config import TracingConfig
from commerce.entrypoints.http.app import create_app
from tests.http.conftest import (
    PRINCIPALS,
    WRITER_TOKEN,
    TickingClock,
    TokenAuthenticator,
    client_for,
    seed_storage,
)

pytestmark = pytest.mark.http

REMOTE = SpanContext(
    0x4BF92F3577B34DA6A3CE929D0E0E4736,
    0x00F067AA0BA902B7,
    is_remote=True,
    trace_flags=TraceFlags(TraceFlags.SAMPLED),
    trace_state=TraceState([("vendor", "v1"), ("other", "x")]),
)


def assert_same_request(spans: Sequence[ReadableSpan], encoded: bytes) -> None:
    """``encoded`` decodes to what the package's encoder makes of ``spans``, and is the same
    bytes as its serialization."""
    expected = encode_spans(spans)
    assert ExportTraceServiceRequest.FromString(encoded) == expected
    assert encoded == expected.SerializePartialToString()


def made_by_hand() -> list[ReadableSpan]:
    """Spans with every kind of value, events, links, statuses, a remote parent with a trace
    state, two resources (one with a schema), two scopes (one with version, attributes and
    schema)."""
    spans = InMemorySpanExporter()
    providers = [
        TracerProvider(resource=Resource.create({"service.name": "a", "n": 3}, "https://s/1")),
        TracerProvider(resource=Resource.create({"service.name": "b"})),
    ]
    for provider in providers:
        provider.add_span_processor(SimpleSpanProcessor(spans))
    scoped = providers[0].get_tracer("commerce", "1.2", "https://x", {"scope.attr": "y"})
    plain = providers[0].get_tracer("other")
    other = providers[1].get_tracer("commerce")

    values: dict[str, Any] = {
        "text": "é ✓",
        "empty": "",
        "negative": -5,
        "zero": 0,
        "big": 2**62,
        "min": -(2**63),
        "true": True,
        "false": False,
        "float": 1.5,
        "float zero": 0.0,
        "negative zero": -0.0,
        "strings": ("a", "b"),
        "ints": [1, 2, 0],
        "bools": [True, False],
        "floats": [0.5],
        "no items": (),
    }
    server = scoped.start_span(
        "GET /stores/{store_id}",
        context=set_span_in_context(NonRecordingSpan(REMOTE)),
        kind=SpanKind.SERVER,
        attributes=values,
    )
    child = plain.start_span(
        "inventory.adjust",
        context=set_span_in_context(server),
        kind=SpanKind.CLIENT,
        links=[Link(REMOTE, {"link.attr": 1}), Link(server.get_span_context())],
    )
    child.add_event("refused", {"exception.type": "InsufficientStock"})
    child.add_event("bare")
    child.set_status(Status(StatusCode.ERROR, "boom"))
    child.end()
    for kind in (SpanKind.INTERNAL, SpanKind.PRODUCER, SpanKind.CONSUMER):
        done = scoped.start_span(f"{kind.name}", kind=kind)
        done.set_status(Status(StatusCode.OK))
        done.end()
    failed = other.start_span("elsewhere")
    failed.set_status(Status(StatusCode.ERROR))
    failed.end()
    server.end()
    return list(spans.get_finished_spans())


def test_spans_made_by_hand_are_encoded_as_the_package_encodes_them() -> None:
    spans = made_by_hand()
    encoder = SpanEncoder()
    assert_same_request(spans, encoder.encode(spans))
    # Again, from what the encoder kept of the resources and scopes, and in another order.
    assert_same_request(spans[::-1], encoder.encode(spans[::-1]))
    # Encoded when they ended, or a mix of both: the same request.
    assert_same_request(spans, encoder.encode([EncodedSpan(span) for span in spans]))
    mixed = [EncodedSpan(span) if i % 2 else span for i, span in enumerate(spans)]
    assert_same_request(spans, encoder.encode(mixed))
    assert encoder.encode([]) == b""


def test_a_value_protobuf_cannot_hold_is_left_out_as_the_package_does() -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    span = provider.get_tracer("t").start_span("s", attributes={"ok": 1, "huge": 2**64})
    span.end()
    finished = spans.get_finished_spans()
    assert_same_request(finished, SpanEncoder().encode(finished))
    assert "huge" not in str(ExportTraceServiceRequest.FromString(SpanEncoder().encode(finished)))


def test_the_spans_of_the_services_requests_are_encoded_as_the_package_encodes_them() -> None:
    storage = memory_storage(clock=TickingClock())
    seed = seed_storage(storage)
    spans = InMemorySpanExporter()
    traced = tracing.instrumentation(TracingConfig(), processors=[SimpleSpanProcessor(spans)])
    app = create_app(storage, [TokenAuthenticator(PRINCIPALS)], instrumentations=[traced])
    client = client_for(app, WRITER_TOKEN)
    store, item = seed.stores[0], seed.items[0]
    client.simulate_get(f"/stores/{store.id}/inventory", headers={"traceparent": REMOTE_HEADER})
    refused = client.simulate_post(
        f"/stores/{store.id}/inventory/adjustments",
        json={"adjustments": [{"item_id": item.id, "delta": -100_000, "reason": "sold"}]},
        headers={"Idempotency-Key": "k-1"},
    )
    assert refused.status_code == 409
    client.simulate_get("/nowhere")
    finished = spans.get_finished_spans()
    assert len(finished) > 6
    assert_same_request(finished, SpanEncoder().encode(finished))
    assert traced.close is not None
    traced.close()


REMOTE_HEADER = f"00-{REMOTE.trace_id:032x}-{REMOTE.span_id:016x}-01"


# -- the exporter, through HTTP --------------------------------------------------------------
class Collector:
    """An OTLP/HTTP endpoint in a thread: keeps each request's body, answers 200."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        bodies = self.bodies

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                bodies.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def span_ids(self) -> list[int]:
        found = []
        for body in self.bodies:
            for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    found.extend(int.from_bytes(s.span_id, "big") for s in scope_spans.spans)
        return found

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    running = Collector()
    yield running
    running.close()


def test_the_otlp_exporter_is_the_services_with_a_processor_that_encodes(
    monkeypatch: pytest.MonkeyPatch, collector: Collector
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", collector.url)
    [exporter] = TracingConfig(exporters=("otlp",)).make_exporters()
    assert isinstance(exporter, OTLPSpanExporter)
    assert exporter.fast
    processor = tracing.batch_processor(exporter)
    assert isinstance(processor, EncodingBatchSpanProcessor)
    assert processor.encodes
    processor.shutdown()
    # In front of any other exporter, the SDK's processor, unchanged.
    assert type(tracing.batch_processor(InMemorySpanExporter())) is BatchSpanProcessor


@pytest.mark.parametrize("encoded_at_the_end", [True, False])
def test_a_burst_of_requests_loses_no_span(collector: Collector, encoded_at_the_end: bool) -> None:
    """2,400 requests from 8 threads (7,200 spans, over three times the queue's 2,048): the
    collector receives every span the service made, once."""
    storage = memory_storage()
    storage.catalogue.create_tenant("bench", "Bench")
    made = InMemorySpanExporter()
    exporter = OTLPSpanExporter(endpoint=collector.url)
    processor = tracing.batch_processor(exporter)
    assert isinstance(processor, EncodingBatchSpanProcessor)
    processor.encodes = encoded_at_the_end
    traced = tracing.instrumentation(
        TracingConfig(), processors=[processor, SimpleSpanProcessor(made)]
    )
    app = create_app(storage, [NoAuthentication("bench")], instrumentations=[traced])

    def requests(count: int) -> None:
        client = client_for(app, None)
        for _ in range(count):
            assert client.simulate_get("/stores/1").status_code == 404

    with ThreadPoolExecutor(8) as pool:
        for done in [pool.submit(requests, 300) for _ in range(8)]:
            done.result()
    assert traced.close is not None
    traced.close()  # flushes the queue

    made_ids = [span.context.span_id for span in made.get_finished_spans()]
    assert len(made_ids) >= 3 * 2400
    received = collector.span_ids()
    assert len(received) == len(made_ids)
    assert set(received) == set(made_ids)
