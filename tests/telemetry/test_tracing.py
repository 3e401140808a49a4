"""The tracing plugin: a server span per request in the caller's trace, storage spans under it,
and the trace and span ids on every log line of the request."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator
from decimal import Decimal
from types import ModuleType

import falcon
import falcon.testing
import pluggy
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from commerce.adapters.auth.none import NoAuthentication
from commerce.adapters.storage.memory import memory_storage
from commerce.adapters.storage.sql import SqlStorage
from commerce.adapters.telemetry import tracing
from commerce.adapters.telemetry.tracing import TracingConfig, db_system, log_ids
from commerce.core import context
from commerce.core.errors import Misconfigured
from commerce.core.models import NewChain, NewItem, NewStore
from commerce.core.ports import Storage
from commerce.entrypoints.http.app import create_app
from commerce.entrypoints.logs import EventJsonFormatter
from commerce.plugins import Instrumentation, hookspecs
from tests.http.conftest import (
    PRINCIPALS,
    WRITER_TOKEN,
    Seed,
    TickingClock,
    TokenAuthenticator,
    client_for,
    seed_storage,
)
from tests.storage import conftest as sql_fixtures

pytestmark = pytest.mark.http

# The PostgreSQL fixtures of tests/storage (a migrated database of the test's own).
pg_url = sql_fixtures.pg_url
new_pg_database = sql_fixtures.new_pg_database
pg_storage = sql_fixtures.pg_storage

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
ON = TracingConfig(exporters=("console",))

App = falcon.App[falcon.Request, falcon.Response]


@pytest.fixture
def seed() -> Iterator[Seed]:
    storage = memory_storage(clock=TickingClock())
    yield seed_storage(storage)
    storage.close()


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def traced_app(
    seed: Seed, exporter: InMemorySpanExporter, config: TracingConfig = ON
) -> tuple[App, Instrumentation]:
    traced = tracing.instrumentation(config, processors=[SimpleSpanProcessor(exporter)])
    app = create_app(seed.storage, [TokenAuthenticator(PRINCIPALS)], instrumentations=[traced])
    return app, traced


@pytest.fixture
def app(seed: Seed, exporter: InMemorySpanExporter) -> Iterator[App]:
    app, traced = traced_app(seed, exporter)
    yield app
    assert traced.close is not None
    traced.close()


class Lines(logging.Handler):
    """Keeps each record as the service's JSON formatter writes it, formatted when logged."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(EventJsonFormatter())
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def lines() -> Iterator[list[dict[str, object]]]:
    handler = Lines()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler.lines
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def hex_trace(span: ReadableSpan) -> str:
    return f"{span.context.trace_id:032x}"


def hex_span(span_id: int) -> str:
    return f"{span_id:016x}"


def server_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    servers = [span for span in exporter.get_finished_spans() if span.kind == SpanKind.SERVER]
    assert len(servers) == 1, [span.name for span in exporter.get_finished_spans()]
    return servers[0]


def children(exporter: InMemorySpanExporter, parent: ReadableSpan) -> list[ReadableSpan]:
    return [
        span
        for span in exporter.get_finished_spans()
        if span.parent is not None and span.parent.span_id == parent.context.span_id
    ]


def descendants(exporter: InMemorySpanExporter, parent: ReadableSpan) -> list[ReadableSpan]:
    found = children(exporter, parent)
    for child in list(found):
        found.extend(descendants(exporter, child))
    return found


# -- the span tree ---------------------------------------------------------------------------
def test_a_traceparent_continues_the_callers_trace_with_storage_spans_under_the_request(
    app: App, seed: Seed, exporter: InMemorySpanExporter
) -> None:
    store = seed.stores[0]
    result = client_for(app).simulate_get(
        f"/stores/{store.id}/inventory", headers={"traceparent": TRACEPARENT}
    )
    assert result.status_code == 200

    server = server_span(exporter)
    assert server.name == "GET /stores/{store_id}/inventory"
    assert hex_trace(server) == TRACE_ID
    assert server.parent is not None
    assert hex_span(server.parent.span_id) == PARENT_ID
    assert server.parent.is_remote
    attributes = server.attributes or {}
    assert attributes["http.route"] == "/stores/{store_id}/inventory"
    assert attributes["http.request.method"] == "GET"
    assert attributes["http.response.status_code"] == 200
    assert attributes["commerce.request_id"] == result.headers["X-Request-ID"]

    # The request's use case is a span under it, and the storage calls are under that.
    usecases = [span for span in children(exporter, server) if span.name.startswith("usecase.")]
    assert [span.name for span in usecases] == ["usecase.list_store_inventory"]
    assert usecases[0].kind == SpanKind.INTERNAL
    storage = children(exporter, usecases[0])
    assert storage, "no storage span under the use case"
    assert {span.kind for span in storage} == {SpanKind.CLIENT}
    assert "inventory.list_levels" in {span.name for span in storage}
    assert {hex_trace(span) for span in storage} == {TRACE_ID}
    listed = next(span for span in storage if span.name == "inventory.list_levels")
    assert (listed.attributes or {})["commerce.tenant"] == "acme"
    assert (listed.attributes or {})["db.operation.name"] == "list_levels"
    assert "db.system" not in (listed.attributes or {})  # the memory backend is no database
    # Every span of the request is in the tree: none is orphaned or in another trace.
    assert len(exporter.get_finished_spans()) == 2 + len(storage)


def test_without_a_traceparent_the_request_starts_a_trace_of_its_own(
    app: App, seed: Seed, exporter: InMemorySpanExporter
) -> None:
    client_for(app).simulate_get(f"/stores/{seed.stores[0].id}")
    server = server_span(exporter)
    assert server.parent is None
    assert server.name == "GET /stores/{store_id}"
    assert hex_trace(server) != TRACE_ID
    assert children(exporter, server)


def test_a_write_traces_its_storage_calls_and_a_refusal_is_not_an_error(
    app: App, seed: Seed, exporter: InMemorySpanExporter
) -> None:
    store, item = seed.stores[0], seed.items[0]
    result = client_for(app, WRITER_TOKEN).simulate_post(
        f"/stores/{store.id}/inventory/adjustments",
        json={"adjustments": [{"item_id": item.id, "delta": -100_000, "reason": "sold"}]},
        headers={"traceparent": TRACEPARENT},
    )
    assert result.status_code == 409, result.text
    server = server_span(exporter)
    assert server.name == "POST /stores/{store_id}/inventory/adjustments"
    assert server.status.status_code == StatusCode.UNSET  # a 4xx is the caller's, not ours
    (usecase,) = [s for s in children(exporter, server) if s.name == "usecase.adjust_inventory"]
    # Refused for stock: an answer, recorded on the use case's span, not an error.
    assert usecase.status.status_code == StatusCode.UNSET
    assert [event.name for event in usecase.events] == ["refused"]
    adjust = [span for span in children(exporter, usecase) if span.name == "inventory.adjust"]
    assert len(adjust) == 1
    assert adjust[0].status.status_code == StatusCode.UNSET
    assert [event.name for event in adjust[0].events] == ["refused"]


def test_an_unmatched_path_is_named_by_its_method_only(
    app: App, exporter: InMemorySpanExporter
) -> None:
    assert client_for(app).simulate_get("/no/such/thing").status_code == 404
    server = server_span(exporter)
    assert server.name == "GET"
    assert "http.route" not in (server.attributes or {})


def test_an_unsampled_caller_is_not_recorded(app: App, exporter: InMemorySpanExporter) -> None:
    # parentbased_always_on (the default) follows the caller's sampled flag.
    client_for(app).simulate_get(
        "/chains", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-00"}
    )
    assert exporter.get_finished_spans() == ()


def test_the_probes_are_not_traced_unless_asked(seed: Seed, exporter: InMemorySpanExporter) -> None:
    app, traced = traced_app(seed, exporter)
    for path in ("/healthz", "/readyz", "/metrics"):
        client_for(app).simulate_get(path, headers={"traceparent": TRACEPARENT})
    assert exporter.get_finished_spans() == ()
    assert traced.close is not None
    traced.close()

    exporter = InMemorySpanExporter()  # closing the first shut its exporter down
    app, traced = traced_app(seed, exporter, TracingConfig(exporters=("console",), probes=True))
    client_for(app).simulate_get("/healthz")
    assert server_span(exporter).name == "GET /healthz"
    assert traced.close is not None
    traced.close()


def test_storage_calls_outside_a_request_open_no_span(
    seed: Seed, exporter: InMemorySpanExporter
) -> None:
    traced = tracing.instrumentation(ON, processors=[SimpleSpanProcessor(exporter)])
    assert traced.wrap_storage is not None
    storage = traced.wrap_storage(seed.storage)
    assert storage.catalogue.get_tenant("acme") is not None
    assert exporter.get_finished_spans() == ()


def test_over_postgresql_the_storage_spans_name_the_database(
    pg_storage: SqlStorage, exporter: InMemorySpanExporter
) -> None:
    catalogue = pg_storage.catalogue
    catalogue.create_tenant("t", "T")
    chain = catalogue.create_chain("t", NewChain(name="Chain"))
    shop = catalogue.create_store("t", NewStore(chain_id=chain.id, name="Shop"))
    item = catalogue.create_item("t", NewItem(sku="A", name="A", cost=Decimal("1.00")))
    traced = tracing.instrumentation(ON, processors=[SimpleSpanProcessor(exporter)])
    app = create_app(pg_storage, [NoAuthentication("t")], instrumentations=[traced])
    # With an Idempotency-Key the request runs in one transaction opened through the wrapper.
    result = falcon.testing.TestClient(app).simulate_post(
        f"/stores/{shop.id}/inventory/adjustments",
        json={"adjustments": [{"item_id": item.id, "delta": 5, "reason": "received"}]},
        headers={"traceparent": TRACEPARENT, "Idempotency-Key": "k-1"},
    )
    assert result.status_code == 200, result.text
    server = server_span(exporter)
    storage = [s for s in descendants(exporter, server) if not s.name.startswith("usecase.")]
    names = {span.name for span in storage}
    assert {"idempotency.begin_transaction", "inventory.adjust"} <= names, names
    assert {(span.attributes or {}).get("db.system") for span in storage} == {"postgresql"}
    assert {hex_trace(span) for span in storage} == {TRACE_ID}
    level = falcon.testing.TestClient(app).simulate_get(f"/stores/{shop.id}/inventory/{item.id}")
    assert level.json["quantity"] == 5
    assert traced.close is not None
    traced.close()


# -- the log lines ---------------------------------------------------------------------------
def test_every_log_line_of_a_traced_request_carries_its_trace_and_request_ids(
    app: App, seed: Seed, exporter: InMemorySpanExporter, lines: list[dict[str, object]]
) -> None:
    store, item = seed.stores[0], seed.items[0]
    result = client_for(app, WRITER_TOKEN).simulate_post(
        f"/stores/{store.id}/inventory/adjustments",
        json={"adjustments": [{"item_id": item.id, "delta": 1, "reason": "received"}]},
        headers={"traceparent": TRACEPARENT, "X-Request-ID": "req-42"},
    )
    assert result.status_code == 200, result.text
    server = server_span(exporter)
    ours = [line for line in lines if line.get("request_id") == "req-42"]
    assert len(ours) >= 2, lines  # the adjustment's event and the request line at least
    assert {line["event"] for line in ours} >= {"REQUEST_COMPLETED"}
    # Each line carries the span current when it was written: the request's, or one under
    # it (the use case's, for the adjustment's event).
    tree = [server, *descendants(exporter, server)]
    for line in ours:
        assert line["trace_id"] == TRACE_ID, line
        assert line["span_id"] in {hex_span(s.context.span_id) for s in tree}, line
    usecase_lines = [line for line in ours if line["event"] == "INVENTORY_ADJUSTED"]
    (usecase,) = [s for s in tree if s.name == "usecase.adjust_inventory"]
    assert [line["span_id"] for line in usecase_lines] == [hex_span(usecase.context.span_id)]
    # After the request no span is current: later lines carry no trace id.
    assert log_ids() == {}
    assert "trace_id" not in context.current()


# -- switching it on -------------------------------------------------------------------------
def test_it_is_off_unless_an_exporter_is_named() -> None:
    assert not TracingConfig.from_settings({}, environ={}).enabled
    assert not TracingConfig.from_settings({}, environ={"OTEL_TRACES_EXPORTER": "none"}).enabled
    disabled = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}
    assert not TracingConfig.from_settings({}, environ=disabled).enabled


def test_the_standard_variables_configure_it() -> None:
    config = TracingConfig.from_settings(
        {"trace_probes": "on"},
        environ={
            "OTEL_TRACES_EXPORTER": "otlp, console",
            "OTEL_SERVICE_NAME": "inventory-eu",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
        },
    )
    assert config == TracingConfig(
        exporters=("otlp", "console"),
        sampler="parentbased_traceidratio",
        sampler_arg=0.25,
        service_name="inventory-eu",
        probes=True,
    )
    assert "TraceIdRatioBased{0.25}" in config.make_sampler().get_description()
    assert [type(e).__name__ for e in config.make_exporters()] == [
        "OTLPSpanExporter",
        "ConsoleSpanExporter",
    ]


@pytest.mark.parametrize(
    ("variables", "names"),
    [
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER"),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "sometimes"}, "SAMPLER"),
        (
            {
                "OTEL_TRACES_EXPORTER": "console",
                "OTEL_TRACES_SAMPLER": "traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "2",
            },
            "OTEL_TRACES_SAMPLER_ARG",
        ),
    ],
)
def test_a_misspelt_variable_stops_the_start(variables: dict[str, str], names: str) -> None:
    with pytest.raises(Misconfigured, match=names):
        TracingConfig.from_settings({}, environ=variables)


def test_the_plugin_answers_through_the_plugin_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    module: ModuleType = tracing
    pm.register(module, name="telemetry-tracing")

    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    assert pm.hook.commerce_instrumentations(settings={}) == [[]]

    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    [[traced]] = pm.hook.commerce_instrumentations(settings={})
    assert traced.name == "tracing"
    assert traced.middleware
    assert traced.wrap_storage is not None
    assert traced.close is not None
    traced.close()


@pytest.mark.parametrize(
    ("name", "system"),
    [
        ("postgresql+psycopg://postgres@127.0.0.1:5432/x", "postgresql"),
        ("cockroachdb://root@db:26257/x", "cockroachdb"),
        ("sqlite:///tmp/x.db", "sqlite"),
        ("memory", None),
    ],
)
def test_db_system_is_named_where_known(seed: Seed, name: str, system: str | None) -> None:
    storage: Storage = dataclasses.replace(seed.storage, name=name)
    assert db_system(storage) == system
