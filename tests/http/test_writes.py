"""Creating, changing and deleting chains, stores and items: statuses, bodies, roles, refusals."""

from __future__ import annotations

from typing import Any

import falcon.testing
import pytest

from tests.http.conftest import (
    ADMIN_TOKEN,
    GLOBEX_ADMIN_TOKEN,
    READER_TOKEN,
    WRITER_TOKEN,
    App,
    Seed,
    client_for,
)
from tests.http.test_errors import assert_problem

pytestmark = pytest.mark.http

Client = falcon.testing.TestClient


def created(result: falcon.testing.Result) -> dict[str, Any]:
    """The body of a 201, after checking that its Location reads back the same row."""
    assert result.status_code == 201, result.text
    assert result.headers["Content-Type"] == "application/json"
    assert result.headers["ETag"].startswith('"')
    body: dict[str, Any] = result.json
    return body


# -- happy paths -----------------------------------------------------------------------------------


def test_an_admin_creates_a_chain_and_its_location_reads_it_back(admin: Client) -> None:
    result = admin.simulate_post("/chain", json={"name": "East Foods", "phone": "+1 555 0199"})
    body = created(result)
    assert body["name"] == "East Foods"
    assert body["phone"] == "+1 555 0199"
    assert result.headers["Location"] == f"/chain/{body['id']}"
    again = admin.simulate_get(result.headers["Location"])
    assert again.json == body
    assert again.headers["ETag"] == result.headers["ETag"]


def test_a_chain_created_without_a_phone_has_an_empty_one(admin: Client) -> None:
    assert created(admin.simulate_post("/chain", json={"name": "Plain"}))["phone"] == ""


def test_an_admin_renames_a_chain_and_only_the_fields_sent_change(
    admin: Client, seed: Seed
) -> None:
    chain = seed.chains[0]
    result = admin.simulate_patch(f"/chain/{chain.id}", json={"name": "North Markets"})
    assert result.status_code == 200, result.text
    assert result.json["name"] == "North Markets"
    assert result.json["phone"] == chain.phone
    assert result.json["updated_at"] > result.json["created_at"]
    assert "ETag" in result.headers
    assert admin.simulate_get(f"/chain/{chain.id}").json == result.json


def test_an_admin_deletes_a_chain_without_stores_and_it_is_gone(admin: Client, seed: Seed) -> None:
    empty = seed.chains[2]
    result = admin.simulate_delete(f"/chain/{empty.id}")
    assert result.status_code == 204
    assert result.content == b""
    assert_problem(admin.simulate_get(f"/chain/{empty.id}"), 404, "not-found")


def test_a_writer_opens_a_store_in_a_chain(writer: Client, seed: Seed) -> None:
    chain = seed.chains[1]
    fields = {
        "name": "South Dallas",
        "phone": "+1 555 0142",
        "address": "1 Elm St",
        "postal_code": "75201",
        "city": "Dallas",
        "country": "US",
        "active": False,
    }
    result = writer.simulate_post(f"/chain/{chain.id}/stores", json=fields)
    body = created(result)
    assert {k: body[k] for k in fields} == fields
    assert body["chain_id"] == chain.id
    assert result.headers["Location"] == f"/stores/{body['id']}"
    listed = writer.simulate_get(f"/chain/{chain.id}/stores").json
    assert body in listed


def test_a_store_created_with_only_a_name_gets_the_defaults(writer: Client, seed: Seed) -> None:
    body = created(writer.simulate_post(f"/chain/{seed.chains[0].id}/stores", json={"name": "X"}))
    assert (body["phone"], body["address"], body["country"], body["active"]) == ("", "", "", True)


def test_a_writer_changes_a_store(writer: Client, seed: Seed) -> None:
    store = seed.stores[0]
    result = writer.simulate_patch(
        f"/stores/{store.id}", json={"active": False, "city": "Cambridge", "country": ""}
    )
    assert result.status_code == 200, result.text
    assert (result.json["active"], result.json["city"], result.json["country"]) == (
        False,
        "Cambridge",
        "",
    )
    assert result.json["name"] == store.name


def test_an_admin_deletes_a_store_that_holds_nothing(admin: Client, seed: Seed) -> None:
    store = seed.stores[3]
    item = seed.items[0]
    # Emptied by a count, its zero level goes with it; its history stays.
    emptied = admin.simulate_put(f"/stores/{store.id}/inventory/{item.id}", json={"quantity": 0})
    assert emptied.status_code == 200
    assert admin.simulate_delete(f"/stores/{store.id}").status_code == 204
    assert_problem(admin.simulate_get(f"/stores/{store.id}"), 404, "not-found")


def test_a_writer_adds_an_item_with_an_exact_cost(writer: Client) -> None:
    result = writer.simulate_post("/items", json={"sku": "TEA-1", "name": "Tea", "cost": "4.5"})
    body = created(result)
    assert (body["sku"], body["name"], body["cost"]) == ("TEA-1", "Tea", "4.50")
    assert result.headers["Location"] == f"/items/{body['id']}"


def test_a_writer_changes_an_items_cost_and_sku(writer: Client, seed: Seed) -> None:
    item = seed.items[0]
    result = writer.simulate_patch(f"/items/{item.id}", json={"cost": "13", "sku": "SKU-1b"})
    assert result.status_code == 200, result.text
    assert (result.json["cost"], result.json["sku"], result.json["name"]) == (
        "13.00",
        "SKU-1b",
        item.name,
    )


def test_an_admin_deletes_an_item_no_store_holds(admin: Client) -> None:
    item = created(admin.simulate_post("/items", json={"sku": "GONE", "name": "G", "cost": "1"}))
    assert admin.simulate_delete(f"/items/{item['id']}").status_code == 204
    assert_problem(admin.simulate_get(f"/items/{item['id']}"), 404, "not-found")


# -- 400: the body ---------------------------------------------------------------------------------

BAD_BODIES = [
    ("/chain", {"name": "A", "colour": "red"}, "colour"),
    ("/chain", {"phone": "1"}, "name"),
    ("/chain", {"name": 7}, "name"),
    ("/chain", {"name": ""}, "name"),
    ("/chain", {"name": "   "}, "name"),
    ("/chain", {"name": "A\nB"}, "name"),
    ("/chain", {"name": "x" * 201}, "name"),
    ("/chain", {"name": "A", "phone": "call me"}, "phone"),
    ("/chain/1/stores", {"name": "S", "country": "usa"}, "country"),
    ("/chain/1/stores", {"name": "S", "active": "yes"}, "active"),
    ("/chain/1/stores", {"name": "S", "city": "c" * 101}, "city"),
    ("/chain/1/stores", {"name": "S", "chain_id": 2}, "chain_id"),
    ("/items", {"sku": "A B", "name": "n", "cost": "1"}, "sku"),
    ("/items", {"sku": "-A", "name": "n", "cost": "1"}, "sku"),
    ("/items", {"sku": "A", "name": "n"}, "cost"),
    ("/items", {"sku": "A", "name": "n", "cost": "1", "id": 9}, "id"),
]


@pytest.mark.parametrize(("path", "body", "field"), BAD_BODIES)
def test_a_bad_create_body_is_a_400_naming_the_field(
    admin: Client, path: str, body: dict[str, Any], field: str
) -> None:
    problem = assert_problem(admin.simulate_post(path, json=body), 400, "invalid-input")
    assert problem["field"] == field
    assert problem["detail"].startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("cost", "words"),
    [
        ("12.555", "at most 2 decimal places"),
        ("-1.00", "not be negative"),
        (12.5, "JSON string, not a number"),
        (12, "JSON string, not a number"),
        ("12,50", 'decimal string such as "12.50"'),
        ("1e3", 'decimal string such as "12.50"'),
        ("NaN", "finite"),
        ("10000000000.00", "at most 9999999999.99"),
    ],
)
def test_a_bad_cost_is_a_400_that_says_what_is_wrong_with_it(
    writer: Client, cost: object, words: str
) -> None:
    result = writer.simulate_post("/items", json={"sku": "C-1", "name": "c", "cost": cost})
    problem = assert_problem(result, 400, "invalid-input")
    assert problem["field"] == "cost"
    assert words in problem["detail"]


def test_a_cost_keeps_every_digit_it_was_sent_with(writer: Client) -> None:
    body = created(
        writer.simulate_post("/items", json={"sku": "BIG", "name": "b", "cost": "9999999999.99"})
    )
    assert body["cost"] == "9999999999.99"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"name": None}, "name"),
        ({"phone": None, "name": "A"}, "phone"),
        ({"name": "A", "created_at": "2024-01-01T00:00:00Z"}, "created_at"),
    ],
)
def test_a_patch_needs_a_field_and_refuses_null(
    admin: Client, seed: Seed, body: dict[str, Any], field: str
) -> None:
    result = admin.simulate_patch(f"/chain/{seed.chains[0].id}", json=body)
    assert assert_problem(result, 400, "invalid-input")["field"] == field


def test_an_item_patch_with_a_null_cost_is_refused(writer: Client, seed: Seed) -> None:
    result = writer.simulate_patch(f"/items/{seed.items[0].id}", json={"cost": None})
    problem = assert_problem(result, 400, "invalid-input")
    assert problem["field"] == "cost"
    assert "null" in problem["detail"]


@pytest.mark.parametrize("body", [b"{nope", b"[1, 2]", b'"chain"', b"\xff\xfe"])
def test_a_body_that_is_not_a_json_object_is_a_400(admin: Client, body: bytes) -> None:
    result = admin.simulate_post("/chain", body=body, headers={"Content-Type": "application/json"})
    assert assert_problem(result, 400, "invalid-input")["field"] == "body"


def test_an_empty_body_is_a_400_saying_one_is_required(admin: Client) -> None:
    result = admin.simulate_post("/chain", headers={"Content-Type": "application/json"})
    problem = assert_problem(result, 400, "invalid-input")
    assert problem["field"] == "body"
    assert "required" in problem["detail"]


def test_a_malformed_id_in_the_path_of_a_write_is_a_400(admin: Client) -> None:
    result = admin.simulate_patch("/chain/abc", json={"name": "A"})
    assert assert_problem(result, 400, "invalid-input")["field"] == "chain_id"


# -- 401, 403: roles -------------------------------------------------------------------------------

WRITES = [
    ("POST", "/chain", {"name": "A"}),
    ("PATCH", "/chain/1", {"name": "A"}),
    ("DELETE", "/chain/3", None),
    ("POST", "/chain/1/stores", {"name": "A"}),
    ("PATCH", "/stores/1", {"name": "A"}),
    ("DELETE", "/stores/4", None),
    ("POST", "/items", {"sku": "R", "name": "A", "cost": "1"}),
    ("PATCH", "/items/1", {"name": "A"}),
    ("DELETE", "/items/5", None),
    ("PUT", "/stores/1/inventory/1", {"quantity": 1}),
    ("POST", "/stores/1/inventory/adjustments", {"adjustments": [{"item_id": 1, "delta": 1,
                                                                  "reason": "received"}]}),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_a_reader_writing_anything_is_a_403(
    app: App, method: str, path: str, body: dict[str, Any] | None
) -> None:
    result = client_for(app, READER_TOKEN).simulate_request(method, path, json=body)
    assert_problem(result, 403, "forbidden")


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_writing_without_credentials_is_a_401(
    app: App, method: str, path: str, body: dict[str, Any] | None
) -> None:
    result = client_for(app, None).simulate_request(method, path, json=body)
    assert_problem(result, 401, "unauthorized")
    assert "WWW-Authenticate" in result.headers


ADMIN_ONLY = [
    ("POST", "/chain", {"name": "A"}),
    ("PATCH", "/chain/1", {"name": "A"}),
    ("DELETE", "/chain/3", None),
    ("DELETE", "/stores/4", None),
    ("DELETE", "/items/5", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ONLY)
def test_a_writer_writing_chains_or_deleting_anything_is_a_403(
    app: App, method: str, path: str, body: dict[str, Any] | None
) -> None:
    result = client_for(app, WRITER_TOKEN).simulate_request(method, path, json=body)
    problem = assert_problem(result, 403, "forbidden")
    assert "admin" in problem["detail"]


def test_a_writer_deleting_is_a_403_and_deletes_nothing(writer: Client, seed: Seed) -> None:
    item = seed.items[4]
    assert_problem(writer.simulate_delete(f"/items/{item.id}"), 403, "forbidden")
    assert writer.simulate_get(f"/items/{item.id}").status_code == 200


# -- 404: absent, or another tenant's --------------------------------------------------------------


def test_writes_to_another_tenants_rows_are_404s_and_change_nothing(app: App, seed: Seed) -> None:
    assert seed.globex_chain is not None
    assert seed.globex_store is not None
    assert seed.globex_item is not None
    acme = client_for(app, ADMIN_TOKEN)
    chain, store, item = seed.globex_chain.id, seed.globex_store.id, seed.globex_item.id
    attempts = [
        ("PATCH", f"/chain/{chain}", {"name": "Mine"}),
        ("DELETE", f"/chain/{chain}", None),
        ("POST", f"/chain/{chain}/stores", {"name": "Mine"}),
        ("PATCH", f"/stores/{store}", {"name": "Mine"}),
        ("DELETE", f"/stores/{store}", None),
        ("PATCH", f"/items/{item}", {"name": "Mine"}),
        ("DELETE", f"/items/{item}", None),
        ("PUT", f"/stores/{store}/inventory/{item}", {"quantity": 99}),
        ("POST", f"/stores/{store}/inventory/adjustments",
         {"adjustments": [{"item_id": item, "delta": 5, "reason": "received"}]}),
        ("PUT", f"/stores/{seed.stores[0].id}/inventory/{item}", {"quantity": 1}),
    ]  # fmt: skip
    for method, path, body in attempts:
        assert_problem(acme.simulate_request(method, path, json=body), 404, "not-found")
    globex = client_for(app, GLOBEX_ADMIN_TOKEN)
    assert globex.simulate_get(f"/chain/{chain}").json["name"] == "Globex Mart"
    assert globex.simulate_get(f"/items/{item}").json["name"] == "Gadget"
    assert globex.simulate_get(f"/stores/{store}/inventory/{item}").json["quantity"] == 3


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/chain/999", {"name": "A"}),
        ("DELETE", "/chain/999", None),
        ("POST", "/chain/999/stores", {"name": "A"}),
        ("PATCH", "/stores/999", {"name": "A"}),
        ("DELETE", "/stores/999", None),
        ("PATCH", "/items/999", {"name": "A"}),
        ("DELETE", "/items/999", None),
    ],
)
def test_writes_to_rows_that_do_not_exist_are_404s(
    admin: Client, method: str, path: str, body: dict[str, Any] | None
) -> None:
    assert_problem(admin.simulate_request(method, path, json=body), 404, "not-found")


# -- 409 -------------------------------------------------------------------------------------------


def test_a_duplicate_sku_is_a_409(writer: Client) -> None:
    result = writer.simulate_post("/items", json={"sku": "SKU-1", "name": "Again", "cost": "1"})
    problem = assert_problem(result, 409, "conflict")
    assert "SKU-1" in problem["detail"]


def test_renaming_an_items_sku_to_anothers_is_a_409(writer: Client, seed: Seed) -> None:
    result = writer.simulate_patch(f"/items/{seed.items[0].id}", json={"sku": "SKU-2"})
    assert_problem(result, 409, "conflict")


def test_skus_are_unique_per_tenant_only(app: App) -> None:
    globex = client_for(app, GLOBEX_ADMIN_TOKEN)
    created(globex.simulate_post("/items", json={"sku": "SKU-1", "name": "Theirs", "cost": "1"}))


def test_deleting_a_chain_that_has_stores_is_a_409_and_deletes_nothing(
    admin: Client, seed: Seed
) -> None:
    chain = seed.chains[0]
    assert_problem(admin.simulate_delete(f"/chain/{chain.id}"), 409, "conflict")
    assert admin.simulate_get(f"/chain/{chain.id}").status_code == 200


def test_deleting_an_item_that_is_still_in_stock_is_a_409_naming_the_stores(
    admin: Client, seed: Seed
) -> None:
    item = seed.items[0]
    problem = assert_problem(admin.simulate_delete(f"/items/{item.id}"), 409, "conflict")
    assert problem["store_ids"] == [s.id for s in seed.stores]
    assert admin.simulate_get(f"/items/{item.id}").status_code == 200


def test_deleting_a_store_that_holds_stock_is_a_409(admin: Client, seed: Seed) -> None:
    assert_problem(admin.simulate_delete(f"/stores/{seed.stores[0].id}"), 409, "conflict")
