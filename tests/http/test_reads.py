"""Every read route answers with the tenant's real data, shaped as the API promises."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import falcon.testing
import pytest

from commerce.core import usecases
from commerce.core.models import NewItem
from tests.http.conftest import ACME, GLOBEX_TOKEN, App, Seed, client_for

pytestmark = pytest.mark.http


def _z(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def test_chain_lists_the_callers_chains_in_id_order(
    client: falcon.testing.TestClient, seed: Seed
) -> None:
    result = client.simulate_get("/chain")
    assert result.status_code == 200
    assert result.headers["Content-Type"] == "application/json"
    assert [c["id"] for c in result.json] == [c.id for c in seed.chains]
    assert "Link" not in result.headers


def test_one_chain_has_the_seeds_columns_in_snake_case(
    client: falcon.testing.TestClient, seed: Seed
) -> None:
    chain = seed.chains[0]
    result = client.simulate_get(f"/chain/{chain.id}")
    assert result.status_code == 200
    assert result.json == {
        "id": chain.id,
        "name": "North Foods",
        "phone": "+1 555 0100",
        "created_at": _z(chain.created_at),
        "updated_at": _z(chain.updated_at),
    }


def test_a_chains_stores_are_listed_with_their_address_fields(
    client: falcon.testing.TestClient, seed: Seed
) -> None:
    north = seed.chains[0]
    result = client.simulate_get(f"/chain/{north.id}/stores")
    assert result.status_code == 200
    assert [s["city"] for s in result.json] == ["Boston", "Salem", "Lowell"]
    assert set(result.json[0]) == {
        "id",
        "chain_id",
        "name",
        "phone",
        "address",
        "postal_code",
        "city",
        "country",
        "active",
        "created_at",
        "updated_at",
    }
    assert all(s["chain_id"] == north.id for s in result.json)


def test_a_chain_without_stores_lists_an_empty_array(
    client: falcon.testing.TestClient, seed: Seed
) -> None:
    result = client.simulate_get(f"/chain/{seed.chains[2].id}/stores")
    assert result.status_code == 200
    assert result.json == []


def test_one_store_is_returned_by_id(client: falcon.testing.TestClient, seed: Seed) -> None:
    store = seed.stores[3]
    result = client.simulate_get(f"/stores/{store.id}")
    assert result.status_code == 200
    assert result.json["id"] == store.id
    assert result.json["name"] == "South Foods Austin"
    assert result.json["active"] is True
    assert result.json["country"] == "US"


def test_a_stores_inventory_lists_its_levels_by_item(
    client: falcon.testing.TestClient, seed: Seed
) -> None:
    store = seed.stores[0]
    result = client.simulate_get(f"/stores/{store.id}/inventory")
    assert result.status_code == 200
    assert [(lv["item_id"], lv["quantity"]) for lv in result.json] == [
        (item.id, n * 10) for n, item in enumerate(seed.items, start=1)
    ]
    assert set(result.json[0]) == {"store_id", "item_id", "quantity", "updated_at"}


def test_a_stores_inventory_filtered_by_items_leaves_out_items_without_a_level(
    client: falcon.testing.TestClient, seed: Seed
) -> None:
    other_store = seed.stores[1]  # holds only the first item
    first, second = seed.items[0].id, seed.items[1].id
    result = client.simulate_get(
        f"/stores/{other_store.id}/inventory", params={"items": f"{second},{first}"}
    )
    assert result.status_code == 200
    assert [lv["item_id"] for lv in result.json] == [first]


def test_the_items_filter_accepts_spaces_and_duplicates(
    client: falcon.testing.TestClient, seed: Seed
) -> None:
    store = seed.stores[0]
    ids = [seed.items[2].id, seed.items[0].id]
    result = client.simulate_get(
        f"/stores/{store.id}/inventory", params={"items": f"{ids[0]}, {ids[1]},{ids[0]}"}
    )
    assert result.status_code == 200
    assert [lv["item_id"] for lv in result.json] == sorted(ids)


def test_the_items_filter_accepts_a_thousand_ids(
    client: falcon.testing.TestClient, seed: Seed
) -> None:
    store = seed.stores[0]
    ids = ",".join(str(n) for n in range(1, 1001))
    result = client.simulate_get(f"/stores/{store.id}/inventory", params={"items": ids})
    assert result.status_code == 200
    assert len(result.json) == len(seed.items)


def test_items_lists_the_catalogue_with_cost_as_a_decimal_string(
    client: falcon.testing.TestClient, seed: Seed
) -> None:
    result = client.simulate_get("/items")
    assert result.status_code == 200
    assert [i["sku"] for i in result.json] == [f"SKU-{n}" for n in range(1, 6)]
    assert [i["cost"] for i in result.json] == ["12.50", "0.99", "3.00", "100.10", "7.25"]
    assert Decimal(result.json[3]["cost"]) == Decimal("100.10")


def test_one_item_is_returned_by_id(client: falcon.testing.TestClient, seed: Seed) -> None:
    item = seed.items[0]
    result = client.simulate_get(f"/items/{item.id}")
    assert result.status_code == 200
    assert result.json == {
        "id": item.id,
        "sku": "SKU-1",
        "name": "Item 1",
        "cost": "12.50",
        "created_at": _z(item.created_at),
        "updated_at": _z(item.updated_at),
    }


def test_an_items_inventory_lists_its_levels_across_the_tenants_stores(
    client: falcon.testing.TestClient, seed: Seed
) -> None:
    item = seed.items[0]
    result = client.simulate_get(f"/items/{item.id}/inventory")
    assert result.status_code == 200
    assert [lv["store_id"] for lv in result.json] == [s.id for s in seed.stores]
    assert [lv["quantity"] for lv in result.json] == [10, 7, 7, 7]


def test_an_item_with_no_levels_lists_an_empty_array(
    client: falcon.testing.TestClient, seed: Seed
) -> None:
    # Every seeded item has a level at the first store; a fresh item has none.
    fresh = usecases.create_item(
        seed.storage.catalogue, ACME, NewItem("SKU-new", "New", Decimal("1"))
    )
    result = client.simulate_get(f"/items/{fresh.id}/inventory")
    assert result.status_code == 200
    assert result.json == []


def test_another_tenant_sees_only_its_own_data(app: App, seed: Seed) -> None:
    globex = client_for(app, GLOBEX_TOKEN)
    assert [c["name"] for c in globex.simulate_get("/chain").json] == ["Globex Mart"]
    assert [i["sku"] for i in globex.simulate_get("/items").json] == ["G-1"]


def test_unknown_query_parameters_are_ignored(
    client: falcon.testing.TestClient, seed: Seed
) -> None:
    plain = client.simulate_get("/chain")
    extra = client.simulate_get("/chain", params={"sort": "name", "fields": "id"})
    assert extra.status_code == 200
    assert extra.json == plain.json


def test_healthz_is_public_and_ok(anonymous: falcon.testing.TestClient) -> None:
    result = anonymous.simulate_get("/healthz")
    assert result.status_code == 200
    assert result.json == {"status": "ok"}


def test_readyz_is_public_and_ok_when_the_store_answers(
    anonymous: falcon.testing.TestClient,
) -> None:
    result = anonymous.simulate_get("/readyz")
    assert result.status_code == 200
    assert result.json == {"status": "ok"}


def test_openapi_json_is_public(anonymous: falcon.testing.TestClient) -> None:
    result = anonymous.simulate_get("/openapi.json")
    assert result.status_code == 200
    assert result.headers["Content-Type"] == "application/json"
    assert result.json["openapi"] == "3.1.0"
