"""The API over SQL storage: every read route answers after `db upgrade`, and a database that is
down is a 503 problem with Retry-After, never a 500."""

from __future__ import annotations

from decimal import Decimal

import pytest
from falcon import testing
from sqlalchemy.engine import make_url

from commerce.adapters.auth.none import NoAuthentication
from commerce.adapters.storage.sql import SqlOptions, SqlStorage, sql_storage
from commerce.adapters.storage.sql.engine import create_engine
from commerce.core.models import NewChain, NewItem, NewStore
from commerce.entrypoints.http.app import create_app


def _client(storage: SqlStorage, tenant: str = "t") -> testing.TestClient:
    return testing.TestClient(create_app(storage, [NoAuthentication(tenant)]))


def test_every_read_route_answers_over_postgresql(pg_storage: SqlStorage) -> None:
    catalogue = pg_storage.catalogue
    catalogue.create_tenant("t", "T")
    chain = catalogue.create_chain("t", NewChain(name="Chain"))
    shop = catalogue.create_store("t", NewStore(chain_id=chain.id, name="Shop"))
    item = catalogue.create_item("t", NewItem(sku="A", name="A", cost=Decimal("12.50")))
    pg_storage.inventory.set_quantity("t", shop.id, item.id, 4, actor="test")
    client = _client(pg_storage)
    for path in (
        "/chain",
        f"/chain/{chain.id}",
        f"/chain/{chain.id}/stores",
        f"/stores/{shop.id}",
        f"/stores/{shop.id}/inventory",
        f"/stores/{shop.id}/inventory?items={item.id},{item.id + 1}",
        "/items",
        f"/items/{item.id}",
        f"/items/{item.id}/inventory",
    ):
        route, _, query = path.partition("?")
        result = client.simulate_get(route, query_string=query)
        assert result.status_code == 200, (path, result.text)
    got = client.simulate_get(f"/items/{item.id}").json
    assert got["cost"] == "12.50"
    assert got["id"] == item.id < 2**53
    assert client.simulate_get("/readyz").status_code == 200


def test_a_database_that_is_down_is_a_503_problem_with_retry_after(pg_url: str) -> None:
    options = SqlOptions(connect_timeout=2, retry_attempts=1)
    url = make_url(pg_url).set(port=1).render_as_string(False)
    storage = sql_storage(create_engine(url, options), options)
    try:
        client = _client(storage)
        for path in ("/chain", "/readyz"):
            result = client.simulate_get(path)
            assert result.status_code == 503, result.text
            assert result.headers["content-type"] == "application/problem+json"
            assert int(result.headers["retry-after"]) >= 1
            assert result.json["status"] == 503
        assert result.json["reason"] == "storage_unreachable"
    finally:
        storage.close()


def test_a_schema_that_is_behind_makes_readiness_fail(sqlite_url: str) -> None:
    storage = sql_storage(create_engine(sqlite_url, SqlOptions()))
    try:
        result = _client(storage).simulate_get("/readyz")
        assert result.status_code == 503
        assert "commerce db upgrade" in result.json["detail"]
        assert result.json["reason"] == "schema_behind"
    finally:
        storage.close()


@pytest.fixture(autouse=True)
def _quiet_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("CRITICAL")
