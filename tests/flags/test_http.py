"""The two capabilities behind flags, over HTTP: point-in-time reads and counted sets, on for
one tenant and off for another, the refusal's problem, its event and its metric."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import falcon.testing
import pytest
from prometheus_client.parser import text_string_to_metric_families

from commerce.adapters.flags.client import OpenFeatureFlags
from commerce.adapters.storage.memory import memory_storage
from commerce.adapters.telemetry.metrics import MetricsConfig, instrumentation
from commerce.core.events import LogEvent
from commerce.core.flags import Flags
from commerce.entrypoints.http.app import create_app
from commerce.entrypoints.http.openapi import openapi_document
from commerce.plugins import Instrumentation
from tests.flags.conftest import Write
from tests.http.conftest import (
    ADMIN_TOKEN,
    GLOBEX_ADMIN_TOKEN,
    GLOBEX_TOKEN,
    PRINCIPALS,
    READER_TOKEN,
    WRITER_TOKEN,
    App,
    Seed,
    TickingClock,
    TokenAuthenticator,
    client_for,
    seed_storage,
)

pytestmark = pytest.mark.http

MakeFlags = Callable[..., OpenFeatureFlags]
AS_OF = "2030-01-01T00:00:00Z"
FEATURE_DISABLED = "https://commerce.example/problems/feature-disabled"

ACME_ONLY = """\
    flags:
      as-of-reads:
        default: off
        tenants:
          allow: [acme]
      counted-sets:
        tenants:
          deny: [acme]
    """


@pytest.fixture
def seed() -> Iterator[Seed]:
    storage = memory_storage(clock=TickingClock())
    yield seed_storage(storage)
    storage.close()


@pytest.fixture
def metrics() -> Iterator[Instrumentation]:
    made = instrumentation(MetricsConfig())
    yield made
    assert made.close is not None
    made.close()


def _app(seed: Seed, flags: Flags, *instrumentations: Instrumentation) -> App:
    return create_app(
        seed.storage,
        [TokenAuthenticator(PRINCIPALS)],
        flags=flags,
        instrumentations=instrumentations,
    )


@pytest.fixture
def app(seed: Seed, make_flags: MakeFlags, write: Write, metrics: Instrumentation) -> App:
    return _app(seed, make_flags(flags_file=str(write(ACME_ONLY))), metrics)


def _as_of(client: falcon.testing.TestClient, store_id: int) -> falcon.testing.Result:
    return client.simulate_get(f"/stores/{store_id}/inventory", params={"as_of": AS_OF})


def test_as_of_reads_answer_the_tenant_the_flag_is_on_for(app: App, seed: Seed) -> None:
    result = _as_of(client_for(app, READER_TOKEN), seed.stores[0].id)
    assert result.status_code == 200, result.text
    assert [lv["quantity"] for lv in result.json] == [10, 20, 30, 40, 50]


def test_as_of_reads_are_a_404_that_names_the_flag_where_it_is_off(app: App, seed: Seed) -> None:
    assert seed.globex_store is not None
    result = _as_of(client_for(app, GLOBEX_TOKEN), seed.globex_store.id)
    assert result.status_code == 404
    assert result.headers["Content-Type"] == "application/problem+json"
    assert result.json == {
        "type": FEATURE_DISABLED,
        "title": "Feature Disabled",
        "status": 404,
        "detail": "the feature 'as-of-reads' is not enabled for this tenant",
        "flag": "as-of-reads",
    }


def test_the_refusal_says_the_same_for_any_store_so_it_reveals_nothing(
    app: App, seed: Seed
) -> None:
    globex = client_for(app, GLOBEX_TOKEN)
    assert seed.globex_store is not None
    own, acmes, absent = (
        _as_of(globex, store_id) for store_id in (seed.globex_store.id, seed.stores[0].id, 999999)
    )
    assert own.json == acmes.json == absent.json


def test_reads_without_as_of_are_not_behind_the_flag(app: App, seed: Seed) -> None:
    assert seed.globex_store is not None
    result = client_for(app, GLOBEX_TOKEN).simulate_get(f"/stores/{seed.globex_store.id}/inventory")
    assert result.status_code == 200
    assert [lv["quantity"] for lv in result.json] == [3]


def test_a_counted_set_is_refused_where_the_flag_is_off_and_changes_nothing(
    app: App, seed: Seed
) -> None:
    writer = client_for(app, WRITER_TOKEN)
    store, item = seed.stores[0].id, seed.items[0].id
    path = f"/stores/{store}/inventory/{item}"
    result = writer.simulate_put(path, json={"quantity": 99})
    assert result.status_code == 404
    assert result.json["type"] == FEATURE_DISABLED
    assert result.json["flag"] == "counted-sets"
    # With If-Match, still the 404: a feature that is off comes before any precondition.
    stale = writer.simulate_put(path, json={"quantity": 99}, headers={"If-Match": '"stale"'})
    assert (stale.status_code, stale.json["flag"]) == (404, "counted-sets")
    assert writer.simulate_get(path).json["quantity"] == 10
    # Adjustments, another way to change a level, are not behind this flag.
    adjusted = writer.simulate_post(
        f"/stores/{store}/inventory/adjustments",
        json={"adjustments": [{"item_id": item, "delta": 1, "reason": "received"}]},
    )
    assert adjusted.status_code == 200, adjusted.text


def test_a_counted_set_works_where_the_flag_is_on(app: App, seed: Seed) -> None:
    assert seed.globex_store is not None
    assert seed.globex_item is not None
    path = f"/stores/{seed.globex_store.id}/inventory/{seed.globex_item.id}"
    result = client_for(app, GLOBEX_ADMIN_TOKEN).simulate_put(path, json={"quantity": 8})
    assert (result.status_code, result.json["quantity"]) == (200, 8)


def test_a_role_rule_turns_a_feature_on_for_one_role_of_a_tenant(
    seed: Seed, make_flags: MakeFlags, write: Write
) -> None:
    path = write(
        """\
        flags:
          as-of-reads:
            default: off
            roles:
              allow: [admin]
        """
    )
    app = _app(seed, make_flags(flags_file=str(path)))
    store = seed.stores[0].id
    assert _as_of(client_for(app, ADMIN_TOKEN), store).status_code == 200
    assert _as_of(client_for(app, READER_TOKEN), store).status_code == 404


def test_the_environment_switches_a_feature_off_for_everyone(
    seed: Seed, make_flags: MakeFlags
) -> None:
    app = _app(seed, make_flags(flag_as_of_reads="off"))
    assert _as_of(client_for(app, ADMIN_TOKEN), seed.stores[0].id).status_code == 404


def test_an_app_without_flags_keeps_every_feature_on(seed: Seed) -> None:
    app = create_app(seed.storage, [TokenAuthenticator(PRINCIPALS)])
    assert seed.globex_store is not None
    assert _as_of(client_for(app, GLOBEX_TOKEN), seed.globex_store.id).status_code == 200


def test_each_refusal_is_an_event_and_each_evaluation_a_metric_label(
    app: App, seed: Seed, caplog: pytest.LogCaptureFixture
) -> None:
    assert seed.globex_store is not None
    acme, globex = client_for(app, READER_TOKEN), client_for(app, GLOBEX_TOKEN)
    with caplog.at_level(logging.INFO, logger="commerce"):
        assert _as_of(acme, seed.stores[0].id).status_code == 200
        assert _as_of(acme, seed.stores[1].id).status_code == 200
        assert _as_of(globex, seed.globex_store.id).status_code == 404
    disabled = [r for r in caplog.records if getattr(r, "event", None) is LogEvent.FEATURE_DISABLED]
    assert [(r.flag, r.rule, r.levelno) for r in disabled] == [  # type: ignore[attr-defined]
        ("as-of-reads", "default", logging.INFO)
    ]
    scraped = client_for(app, None).simulate_get("/metrics", headers={"Authorization": ""})
    counts = {
        (sample.labels["flag"], sample.labels["result"]): sample.value
        for family in text_string_to_metric_families(scraped.text)
        if family.name == "commerce_flag_evaluations"
        for sample in family.samples
        if sample.name == "commerce_flag_evaluations_total"
    }
    assert counts == {("as-of-reads", "on"): 2.0, ("as-of-reads", "off"): 1.0}


def test_the_openapi_document_names_the_problem_on_the_operations_behind_flags() -> None:
    document = openapi_document()
    operations = {
        op["operationId"]: op for path in document["paths"].values() for op in path.values()
    }
    flagged = "#/components/responses/NotFoundOrFeatureDisabled"
    for operation_id, flag in (("listStoreInventory", "as-of-reads"), ("setLevel", "counted-sets")):
        assert operations[operation_id]["responses"]["404"] == {"$ref": flagged}
        assert f"feature flag `{flag}`" in operations[operation_id]["description"]
    assert operations["getLevel"]["responses"]["404"]["$ref"].endswith("/NotFound")
    response = document["components"]["responses"]["NotFoundOrFeatureDisabled"]
    schema = response["content"]["application/problem+json"]["schema"]
    assert {"$ref": "#/components/schemas/FeatureDisabledProblem"} in schema["anyOf"]
    problem = document["components"]["schemas"]["FeatureDisabledProblem"]
    assert problem["properties"]["type"] == {"enum": [FEATURE_DISABLED]}
    assert "flag" in problem["required"]
