"""The Prometheus metrics plugin: ``/metrics``, request and storage metrics, counted events,
the token and port settings, pool gauges and multiprocess aggregation."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import falcon.testing
import pluggy
import pytest
from prometheus_client.parser import text_string_to_metric_families

from commerce.adapters.storage.sql import AlembicSchemaManager, SqlOptions, sql_storage
from commerce.adapters.storage.sql.engine import create_engine
from commerce.adapters.telemetry import metrics as metrics_plugin
from commerce.adapters.telemetry.metrics import MetricsConfig, instrumentation
from commerce.core import events
from commerce.core.errors import Misconfigured
from commerce.core.events import LogEvent, event_log
from commerce.entrypoints.http.app import create_app
from commerce.entrypoints.http.ratelimit import RatePolicy, TokenBuckets
from commerce.plugins import PROJECT, Instrumentation, hookspecs
from tests.backends import postgres_required, postgres_url, with_driver
from tests.http.conftest import (
    ADMIN_TOKEN,
    PRINCIPALS,
    WRITER_TOKEN,
    App,
    Seed,
    TokenAuthenticator,
    client_for,
    seed_storage,
)

SECRET = "s3cret-metrics-token-0123456789"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def seed() -> Seed:
    from commerce.adapters.storage.memory import memory_storage

    return seed_storage(memory_storage())


@pytest.fixture
def closing() -> Iterator[list[Instrumentation]]:
    """Instrumentations made by a test, closed after it (listeners off, servers stopped)."""
    made: list[Instrumentation] = []
    yield made
    for made_one in made:
        assert made_one.close is not None
        made_one.close()


def _make(closing: list[Instrumentation], config: MetricsConfig | None = None) -> Instrumentation:
    made = instrumentation(config or MetricsConfig())
    closing.append(made)
    return made


def _app(seed: Seed, made: Instrumentation, **kwargs: object) -> App:
    return create_app(
        seed.storage, [TokenAuthenticator(PRINCIPALS)], instrumentations=[made], **kwargs
    )


def _scrape(client: falcon.testing.TestClient, token: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {"Authorization": ""}
    result = client.simulate_get("/metrics", headers=headers)
    assert result.status_code == 200, result.text
    return _parse(result.text)


def _parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: Samples, metric: str, /, **labels: str) -> float:
    return samples.get((metric, frozenset(labels.items())), 0.0)


def test_a_request_moves_its_count_and_histogram_labelled_by_route_template(
    seed: Seed, closing: list[Instrumentation]
) -> None:
    client = client_for(_app(seed, _make(closing)))
    chain_id = seed.chains[0].id
    assert client.simulate_get(f"/chain/{chain_id}").status_code == 200
    assert client.simulate_get(f"/chain/{chain_id}").status_code == 200
    assert client.simulate_get("/chain/999999").status_code == 404
    assert client.simulate_get("/no/such/route").status_code == 404

    samples = _scrape(client)
    labels = {"method": "GET", "route": "/chain/{chain_id}"}
    assert _value(samples, "commerce_http_requests_total", **labels, status="200") == 2
    assert _value(samples, "commerce_http_requests_total", **labels, status="404") == 1
    assert (
        _value(samples, "commerce_http_request_duration_seconds_count", **labels, status="200") == 2
    )
    assert (
        _value(
            samples,
            "commerce_http_request_duration_seconds_bucket",
            **labels,
            status="200",
            le="+Inf",
        )
        == 2
    )
    assert _value(samples, "commerce_http_request_duration_seconds_sum", **labels, status="200")
    # No raw path is ever a label: an unrouted request is "unmatched".
    assert _value(
        samples, "commerce_http_requests_total", method="GET", route="unmatched", status="404"
    )
    assert not any(f"/chain/{chain_id}" in dict(labels).values() for _, labels in samples)
    assert samples[("commerce_http_requests_in_flight", frozenset())] == 0


def test_storage_calls_are_timed_by_port_and_method(
    seed: Seed, closing: list[Instrumentation]
) -> None:
    client = client_for(_app(seed, _make(closing)), WRITER_TOKEN)
    store, item = seed.stores[0].id, seed.items[0].id
    result = client.simulate_post(
        f"/stores/{store}/inventory/adjustments",
        json={"adjustments": [{"item_id": item, "delta": 1, "reason": "received"}]},
    )
    assert result.status_code == 200, result.text
    samples = _scrape(client)
    timed = {
        dict(labels)["method"]
        for name, labels in samples
        if name == "commerce_storage_call_duration_seconds_count"
        and dict(labels)["port"] == "inventory"
    }
    assert "adjust" in timed
    assert (
        _value(
            samples,
            "commerce_storage_call_duration_seconds_count",
            port="inventory",
            method="adjust",
        )
        == 1
    )


def test_events_are_counted_adjustments_refusals_retries_rate_limits(
    seed: Seed, closing: list[Instrumentation]
) -> None:
    buckets = TokenBuckets(RatePolicy(limit=1, period=3600, burst=1))
    app = _app(seed, _make(closing), rate_limiter=buckets)
    writer = client_for(app, WRITER_TOKEN)
    store, item = seed.stores[0].id, seed.items[0].id
    url = f"/stores/{store}/inventory/adjustments"
    applied = writer.simulate_post(
        url, json={"adjustments": [{"item_id": item, "delta": -1, "reason": "sold"}]}
    )
    assert applied.status_code == 200, applied.text
    # The writer's tenant has spent its one token: the next request is a 429.
    assert writer.simulate_get("/chain").status_code == 429
    assert client_for(app, None).simulate_get("/chain").status_code == 401
    assert client_for(app, "no-such-token").simulate_get("/chain").status_code == 401
    event_log("commerce.test")(LogEvent.TRANSACTION_RETRIED, "retried", attempt=1, delay=0.01)

    admin = client_for(_app(seed, closing[0]), ADMIN_TOKEN)
    refused = admin.simulate_post(
        url, json={"adjustments": [{"item_id": item, "delta": -10_000, "reason": "sold"}]}
    )
    assert refused.status_code == 409, refused.text

    samples = _scrape(admin)
    assert _value(samples, "commerce_inventory_adjustments_total", outcome="applied") == 1
    assert (
        _value(samples, "commerce_inventory_adjustments_total", outcome="insufficient_stock") == 1
    )
    assert _value(samples, "commerce_rate_limited_total") == 1
    assert _value(samples, "commerce_auth_refusals_total", reason="no_credentials") == 1
    assert _value(samples, "commerce_auth_refusals_total", reason="rejected") == 1
    assert _value(samples, "commerce_transaction_retries_total") == 1
    assert (
        _value(samples, "commerce_log_events_total", event="CM6001", name="INVENTORY_ADJUSTED") == 1
    )


def test_probes_and_metrics_are_not_counted_unless_asked(
    seed: Seed, closing: list[Instrumentation]
) -> None:
    quiet = client_for(_app(seed, _make(closing)))
    loud = client_for(_app(seed, _make(closing, MetricsConfig(probes=True))))
    for client in (quiet, loud):
        for path in ("/healthz", "/readyz", "/metrics"):
            assert client.simulate_get(path).status_code == 200
    counted = {
        dict(labels)["route"]
        for name, labels in _scrape(quiet)
        if name == "commerce_http_requests_total"
    }
    assert not counted & {"/healthz", "/readyz", "/metrics"}
    counted = {
        dict(labels)["route"]
        for name, labels in _scrape(loud)
        if name == "commerce_http_requests_total"
    }
    assert {"/healthz", "/readyz", "/metrics"} <= counted


def test_metrics_need_no_api_credentials_without_a_token(
    seed: Seed, closing: list[Instrumentation]
) -> None:
    client = client_for(_app(seed, _make(closing)), None)
    result = client.simulate_get("/metrics")
    assert result.status_code == 200
    assert result.headers["content-type"].startswith("text/plain; version=")
    assert "commerce_http_requests_in_flight" in result.text
    assert client.simulate_head("/metrics").status_code == 200


def test_the_token_is_required_compared_and_never_logged(
    seed: Seed, closing: list[Instrumentation], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = client_for(_app(seed, _make(closing, MetricsConfig(token=SECRET))), None)
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {SECRET}"},
        {"Authorization": f"Bearer {SECRET}x"},
        # An API credential is not the metrics token.
        {"Authorization": f"Bearer {ADMIN_TOKEN}"},
    ):
        result = client.simulate_get("/metrics", headers=headers)
        assert result.status_code == 401, headers
        assert result.headers["www-authenticate"].startswith("Bearer")
        assert "commerce_" not in result.text
    samples = _scrape(client, SECRET)
    assert _value(samples, "commerce_auth_refusals_total", reason="metrics_token") == 5
    assert SECRET not in caplog.text
    assert SECRET not in repr(MetricsConfig(token=SECRET))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)  # noqa: S310 - a local http URL
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.mark.parametrize("token", [None, SECRET])
def test_a_metrics_port_serves_them_apart_from_the_api(
    seed: Seed, closing: list[Instrumentation], token: str | None
) -> None:
    port = _free_port()
    made = _make(closing, MetricsConfig(port=port, addr="127.0.0.1", token=token))
    client = client_for(_app(seed, made))
    assert client.simulate_get("/chain").status_code == 200
    assert client.simulate_get("/metrics").status_code == 404  # not on the API's port
    url = f"http://127.0.0.1:{port}/metrics"
    if token is not None:
        assert _get(url)[0] == 401
        assert _get(url, "wrong")[0] == 401
    status, text = _get(url, token)
    assert status == 200
    assert _value(
        _parse(text), "commerce_http_requests_total", method="GET", route="/chain", status="200"
    )


def test_settings_switch_it_on_by_default_off_and_check_values() -> None:
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(metrics_plugin)
    [[made]] = pm.hook.commerce_instrumentations(settings={})
    try:
        assert made.name == "metrics"
        assert [template for template, _ in made.routes] == ["/metrics"]
        assert made.wrap_storage is not None
    finally:
        assert made.close is not None
        made.close()
    assert made.close is not None
    assert pm.hook.commerce_instrumentations(settings={"metrics": "off"}) == [[]]
    config = MetricsConfig.from_settings(
        {"metrics_token": f" {SECRET} ", "metrics_port": "9464"}, environ={}
    )
    assert (config.token, config.port, config.multiproc_dir) == (SECRET, 9464, None)
    for bad in ({"metrics_port": "http"}, {"metrics_port": "70000"}, {"metrics": "maybe"}):
        with pytest.raises(Misconfigured):
            MetricsConfig.from_settings(bad, environ={})
    env = {"PROMETHEUS_MULTIPROC_DIR": "/run/commerce-metrics"}
    assert MetricsConfig.from_settings({}, environ=env).multiproc_dir == "/run/commerce-metrics"


def test_closing_stops_counting_events(closing: list[Instrumentation]) -> None:
    made = _make(closing)
    assert len(events.listeners) >= 1
    before = list(events.listeners)
    assert made.close is not None
    made.close()
    assert len(events.listeners) == len(before) - 1


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_pool_gauges_come_from_the_sql_engine(
    backend: str, closing: list[Instrumentation], tmp_path: Path
) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/commerce.db"
        AlembicSchemaManager(url).upgrade()
    else:
        url = with_driver(postgres_url(), "postgresql+psycopg")
    options = SqlOptions(pool_size=3)
    storage = sql_storage(create_engine(url, options))
    try:
        if backend != "sqlite":
            try:
                storage.engine.connect().close()
            except Exception as error:  # the suite's rule: skip here, fail under CI
                reason = f"PostgreSQL cannot be reached: {str(error).splitlines()[0]}"
                if postgres_required():
                    pytest.fail(reason, pytrace=False)
                pytest.skip(reason)
        assert storage.stats is not None
        made = _make(closing)
        assert made.wrap_storage is not None
        wrapped = made.wrap_storage(storage)
        assert wrapped.stats is storage.stats
        [resource] = [resource for _, resource in made.routes]
        metrics_app = falcon.App()
        metrics_app.add_route("/metrics", resource)
        client = falcon.testing.TestClient(metrics_app)
        with storage.engine.connect():
            held = _scrape(client)
        freed = _scrape(client)
    finally:
        storage.close()
    # PostgreSQL's pool is COMMERCE_DB_POOL_SIZE; a SQLite file keeps SQLAlchemy's default.
    assert _value(held, "commerce_storage_pool", stat="size") == (5 if backend == "sqlite" else 3)
    assert _value(held, "commerce_storage_pool", stat="checked_out") == 1
    assert _value(freed, "commerce_storage_pool", stat="checked_out") == 0
    assert _value(freed, "commerce_storage_pool", stat="checked_in") >= 1
    assert _value(freed, "commerce_storage_pool", stat="overflow") == 0


_WORKER = textwrap.dedent(
    """
    import sys
    import falcon.testing
    from commerce.adapters.storage.memory import memory_storage
    from commerce.adapters.telemetry.metrics import MetricsConfig, instrumentation
    from commerce.entrypoints.http.app import create_app
    from tests.http.conftest import PRINCIPALS, TokenAuthenticator, client_for, seed_storage

    made = instrumentation(MetricsConfig.from_settings({}))
    app = create_app(
        seed_storage(memory_storage()).storage,
        [TokenAuthenticator(PRINCIPALS)],
        instrumentations=[made],
    )
    client = client_for(app)
    for _ in range(int(sys.argv[1])):
        assert client.simulate_get("/chain").status_code == 200
    if sys.argv[2] == "scrape":
        sys.stdout.write(client.simulate_get("/metrics").text)
    made.close()
    """
)


def test_multiprocess_mode_adds_up_every_process(tmp_path: Path) -> None:
    """Two worker processes share PROMETHEUS_MULTIPROC_DIR; a third one's /metrics sums them."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    root = Path(__file__).resolve().parents[2]

    def run(requests: int, mode: str) -> str:
        done = subprocess.run(  # noqa: S603 - our own interpreter and script
            [sys.executable, "-c", _WORKER, str(requests), mode],
            env=env,
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    run(2, "quiet")
    run(3, "quiet")
    samples = _parse(run(1, "scrape"))
    assert (
        _value(samples, "commerce_http_requests_total", method="GET", route="/chain", status="200")
        == 6
    )
    assert (
        _value(
            samples,
            "commerce_http_request_duration_seconds_count",
            method="GET",
            route="/chain",
            status="200",
        )
        == 6
    )
    assert any(name.startswith("commerce_storage_call_duration_seconds") for name, _ in samples)
