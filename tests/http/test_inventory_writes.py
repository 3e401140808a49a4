"""Setting and adjusting levels, the change history, and levels as they were at a past moment."""

from __future__ import annotations

from typing import Any

import falcon.testing
import pytest

from commerce.core.validation import MAX_ADJUSTMENTS, MAX_QUANTITY
from tests.http.conftest import Seed, walk
from tests.http.test_errors import assert_problem

pytestmark = pytest.mark.http

Client = falcon.testing.TestClient


def level_url(seed: Seed, store: int = 0, item: int = 0) -> str:
    return f"/stores/{seed.stores[store].id}/inventory/{seed.items[item].id}"


def adjust(client: Client, store_id: int, *lines: dict[str, Any]) -> falcon.testing.Result:
    return client.simulate_post(
        f"/stores/{store_id}/inventory/adjustments", json={"adjustments": list(lines)}
    )


def changes(client: Client, store_id: int, **params: object) -> list[dict[str, Any]]:
    result = client.simulate_get(f"/stores/{store_id}/inventory/changes", params=params)
    assert result.status_code == 200, result.text
    rows: list[dict[str, Any]] = result.json
    return rows


# -- GET one level ---------------------------------------------------------------------------------


def test_one_level_reads_with_its_etag(client: Client, seed: Seed) -> None:
    result = client.simulate_get(level_url(seed, 0, 1))
    assert result.status_code == 200
    assert result.json["quantity"] == 20
    assert result.json["store_id"] == seed.stores[0].id
    assert result.headers["ETag"].startswith('"')


def test_a_level_the_store_does_not_hold_is_a_404(client: Client, seed: Seed) -> None:
    assert_problem(client.simulate_get(level_url(seed, 1, 3)), 404, "not-found")


# -- PUT: a count ----------------------------------------------------------------------------------


def test_a_put_sets_the_level_and_the_history_records_the_difference(
    writer: Client, seed: Seed
) -> None:
    store = seed.stores[0].id
    result = writer.simulate_put(
        level_url(seed, 0, 0), json={"quantity": 4, "reference": "count 2024-05"}
    )
    assert result.status_code == 200, result.text
    assert result.json["quantity"] == 4
    assert "ETag" in result.headers
    last = changes(writer, store, item_id=seed.items[0].id)[-1]
    assert (last["delta"], last["quantity_after"], last["reason"]) == (-6, 4, "count")
    assert (last["reference"], last["actor"]) == ("count 2024-05", "walter")


def test_a_put_creates_a_level_the_store_did_not_hold(writer: Client, seed: Seed) -> None:
    url = level_url(seed, 1, 3)
    assert writer.simulate_put(url, json={"quantity": 12}).json["quantity"] == 12
    assert writer.simulate_get(url).json["quantity"] == 12


def test_a_put_with_the_expected_quantity_applies(writer: Client, seed: Seed) -> None:
    result = writer.simulate_put(level_url(seed), json={"quantity": 11, "expected_quantity": 10})
    assert result.status_code == 200, result.text


def test_a_put_expecting_another_quantity_is_a_409_with_the_current_one(
    writer: Client, seed: Seed
) -> None:
    url = level_url(seed)
    result = writer.simulate_put(url, json={"quantity": 11, "expected_quantity": 9})
    problem = assert_problem(result, 409, "conflict")
    assert problem["current_quantity"] == 10
    assert writer.simulate_get(url).json["quantity"] == 10


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"quantity": -1}, "quantity"),
        ({"quantity": MAX_QUANTITY + 1}, "quantity"),
        ({"quantity": "3"}, "quantity"),
        ({"quantity": 2.5}, "quantity"),
        ({"quantity": True}, "quantity"),
        ({}, "quantity"),
        ({"quantity": 1, "expected_quantity": None}, "expected_quantity"),
        ({"quantity": 1, "delta": 1}, "delta"),
        ({"quantity": 1, "reference": "r" * 201}, "reference"),
    ],
)
def test_a_bad_put_body_is_a_400_naming_the_field(
    writer: Client, seed: Seed, body: dict[str, Any], field: str
) -> None:
    result = writer.simulate_put(level_url(seed), json=body)
    assert assert_problem(result, 400, "invalid-input")["field"] == field


def test_a_quantity_written_as_a_whole_float_is_that_integer(writer: Client, seed: Seed) -> None:
    # JSON has one number type: 7.0 is the integer 7 to JSON Schema and to many clients.
    result = writer.simulate_put(
        level_url(seed), body=b'{"quantity": 7.0}', headers={"Content-Type": "application/json"}
    )
    assert result.status_code == 200, result.text
    assert result.json["quantity"] == 7


# -- POST adjustments ------------------------------------------------------------------------------


def test_a_batch_of_adjustments_applies_in_order_and_answers_the_levels(
    writer: Client, seed: Seed
) -> None:
    store = seed.stores[0].id
    first, second = seed.items[0].id, seed.items[1].id
    result = adjust(
        writer,
        store,
        {"item_id": second, "delta": 5, "reason": "received", "reference": "DN-1"},
        {"item_id": first, "delta": -3, "reason": "sold"},
        {"item_id": first, "delta": -7, "reason": "damaged"},
    )
    assert result.status_code == 200, result.text
    assert [(lv["item_id"], lv["quantity"]) for lv in result.json] == [(first, 0), (second, 25)]
    history = changes(writer, store)[-3:]
    assert [(e["item_id"], e["delta"], e["quantity_after"], e["reason"]) for e in history] == [
        (second, 5, 25, "received"),
        (first, -3, 7, "sold"),
        (first, -7, 0, "damaged"),
    ]
    assert history[0]["reference"] == "DN-1"
    assert {e["actor"] for e in history} == {"walter"}


def test_a_batch_that_goes_below_zero_is_a_409_naming_the_items_and_changes_nothing(
    writer: Client, seed: Seed
) -> None:
    store = seed.stores[0].id
    before_levels = writer.simulate_get(f"/stores/{store}/inventory").json
    before_history = changes(writer, store)
    result = adjust(
        writer,
        store,
        {"item_id": seed.items[1].id, "delta": 100, "reason": "received"},
        {"item_id": seed.items[0].id, "delta": -11, "reason": "sold"},
        {"item_id": seed.items[2].id, "delta": -31, "reason": "lost"},
    )
    problem = assert_problem(result, 409, "insufficient-stock")
    assert problem["items"] == [
        {"item_id": seed.items[0].id, "quantity": 10, "delta": -11},
        {"item_id": seed.items[2].id, "quantity": 30, "delta": -31},
    ]
    assert writer.simulate_get(f"/stores/{store}/inventory").json == before_levels
    assert changes(writer, store) == before_history


def test_an_adjustment_of_an_item_of_another_tenant_is_a_404_and_changes_nothing(
    writer: Client, seed: Seed
) -> None:
    assert seed.globex_item is not None
    store = seed.stores[0].id
    result = adjust(
        writer,
        store,
        {"item_id": seed.items[0].id, "delta": 1, "reason": "received"},
        {"item_id": seed.globex_item.id, "delta": 1, "reason": "received"},
    )
    assert_problem(result, 404, "not-found")
    assert writer.simulate_get(level_url(seed)).json["quantity"] == 10


@pytest.mark.parametrize(
    ("lines", "field"),
    [
        ([], "adjustments"),
        ([{"item_id": 1, "delta": 1}], "adjustments[0].reason"),
        ([{"item_id": 1, "delta": 1, "reason": "stolen"}], "adjustments[0].reason"),
        ([{"item_id": 1, "delta": 0, "reason": "sold"}], "adjustments[0].delta"),
        ([{"item_id": 1, "delta": "1", "reason": "sold"}], "adjustments[0].delta"),
        (
            [{"item_id": 1, "delta": 1, "reason": "sold"}, {"item_id": 0, "delta": 1,
                                                           "reason": "sold"}],
            "adjustments[1].item_id",
        ),
        ([{"item_id": 1, "delta": 1, "reason": "sold", "note": "x"}], "adjustments[0].note"),
        ([{"item_id": 1, "delta": 1, "reason": "sold", "reference": "a\tb"}],
         "adjustments[0].reference"),
        ([{"item_id": 1, "delta": -MAX_QUANTITY - 1, "reason": "sold"}], "adjustments[0].delta"),
    ],
)  # fmt: skip
def test_a_bad_adjustment_is_a_400_naming_it_by_its_index(
    writer: Client, seed: Seed, lines: list[dict[str, Any]], field: str
) -> None:
    result = adjust(writer, seed.stores[0].id, *lines)
    assert assert_problem(result, 400, "invalid-input")["field"] == field


def test_every_reason_is_accepted(writer: Client, seed: Seed) -> None:
    reasons = ["received", "sold", "returned", "damaged", "lost", "count", "transfer_in",
               "transfer_out", "correction"]  # fmt: skip
    lines = [{"item_id": seed.items[2].id, "delta": 1, "reason": r} for r in reasons]
    assert adjust(writer, seed.stores[0].id, *lines).json[0]["quantity"] == 30 + len(reasons)


def test_a_batch_longer_than_the_limit_is_a_400(writer: Client, seed: Seed) -> None:
    line = {"item_id": seed.items[0].id, "delta": 1, "reason": "received"}
    result = adjust(writer, seed.stores[0].id, *[line] * (MAX_ADJUSTMENTS + 1))
    assert assert_problem(result, 400, "invalid-input")["field"] == "adjustments"


# -- the change history ----------------------------------------------------------------------------


def test_the_history_lists_every_change_with_who_and_when(client: Client, seed: Seed) -> None:
    store = seed.stores[0]
    rows = changes(client, store.id)
    assert [(e["item_id"], e["delta"], e["quantity_after"]) for e in rows] == [
        (item.id, n * 10, n * 10) for n, item in enumerate(seed.items, start=1)
    ]
    assert set(rows[0]) == {
        "id",
        "store_id",
        "item_id",
        "delta",
        "quantity_after",
        "reason",
        "reference",
        "actor",
        "created_at",
    }
    assert rows[0]["created_at"].endswith("Z")


def test_the_history_pages_with_link_and_keeps_its_filters(writer: Client, seed: Seed) -> None:
    store = seed.stores[0].id
    item = seed.items[0].id
    for delta in (1, 2, 3):
        adjust(writer, store, {"item_id": item, "delta": delta, "reason": "received"})
    rows, urls = walk(writer, f"/stores/{store}/inventory/changes?item_id={item}&limit=2")
    assert [e["delta"] for e in rows] == [10, 1, 2, 3]
    assert len(urls) == 2
    assert f"item_id={item}" in urls[1]


def test_the_history_filters_by_time_range_since_inclusive_until_exclusive(
    writer: Client, seed: Seed
) -> None:
    store = seed.stores[0].id
    rows = changes(writer, store)
    second, fourth = rows[1]["created_at"], rows[3]["created_at"]
    window = changes(writer, store, since=second, until=fourth)
    assert [e["id"] for e in window] == [rows[1]["id"], rows[2]["id"]]
    assert [e["id"] for e in changes(writer, store, since=fourth)] == [e["id"] for e in rows[3:]]


def test_the_history_keeps_the_time_range_in_its_link(client: Client, seed: Seed) -> None:
    store = seed.stores[0].id
    since = changes(client, store)[0]["created_at"]
    result = client.simulate_get(
        f"/stores/{store}/inventory/changes", params={"since": since, "limit": 1}
    )
    assert f"since={since}" in result.headers["Link"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"item_id": "x"}, "item_id"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2024-05-01"}, "since"),
        ({"until": "2024-05-01T09:00:00"}, "until"),
        ({"since": "2024-05-02T00:00:00Z", "until": "2024-05-01T00:00:00Z"}, "until"),
        ({"limit": "0"}, "limit"),
        ({"cursor": "nope"}, "cursor"),
    ],
)
def test_a_bad_history_query_is_a_400_naming_it(
    client: Client, seed: Seed, params: dict[str, str], field: str
) -> None:
    result = client.simulate_get(f"/stores/{seed.stores[0].id}/inventory/changes", params=params)
    assert assert_problem(result, 400, "invalid-input")["field"] == field


def test_another_tenants_history_is_a_404(client: Client, seed: Seed) -> None:
    assert seed.globex_store is not None
    result = client.simulate_get(f"/stores/{seed.globex_store.id}/inventory/changes")
    assert_problem(result, 404, "not-found")


# -- as_of -----------------------------------------------------------------------------------------


def test_as_of_answers_the_levels_as_they_were_then(writer: Client, seed: Seed) -> None:
    store = seed.stores[0].id
    then = writer.simulate_get(f"/stores/{store}/inventory").json
    moment = max(lv["updated_at"] for lv in then)
    writer.simulate_put(level_url(seed, 0, 0), json={"quantity": 99})
    adjust(writer, store, {"item_id": seed.items[1].id, "delta": -5, "reason": "sold"})

    past = writer.simulate_get(f"/stores/{store}/inventory", params={"as_of": moment})
    assert past.status_code == 200, past.text
    assert [(lv["item_id"], lv["quantity"]) for lv in past.json] == [
        (lv["item_id"], lv["quantity"]) for lv in then
    ]
    now = writer.simulate_get(f"/stores/{store}/inventory").json
    assert [lv["quantity"] for lv in now][:2] == [99, 15]


def test_as_of_before_any_change_is_empty(client: Client, seed: Seed) -> None:
    result = client.simulate_get(
        f"/stores/{seed.stores[0].id}/inventory", params={"as_of": "2000-01-01T00:00:00Z"}
    )
    assert result.json == []


def test_as_of_combines_with_items_and_pages(writer: Client, seed: Seed) -> None:
    store = seed.stores[0].id
    moment = changes(writer, store)[-1]["created_at"]
    writer.simulate_put(level_url(seed, 0, 2), json={"quantity": 1})
    wanted = f"{seed.items[2].id},{seed.items[4].id},{seed.items[0].id}"
    rows, urls = walk(writer, f"/stores/{store}/inventory?as_of={moment}&items={wanted}&limit=2")
    assert [(lv["item_id"], lv["quantity"]) for lv in rows] == [
        (seed.items[0].id, 10),
        (seed.items[2].id, 30),
        (seed.items[4].id, 50),
    ]
    assert f"as_of={moment}" in urls[1]


def test_as_of_takes_offsets_and_lower_case_letters(client: Client, seed: Seed) -> None:
    store = seed.stores[0].id
    utc = client.simulate_get(
        f"/stores/{store}/inventory", params={"as_of": "2024-05-01T09:00:30Z"}
    ).json
    offset = client.simulate_get(
        f"/stores/{store}/inventory", params={"as_of": "2024-05-01t11:00:30+02:00"}
    ).json
    assert utc == offset


@pytest.mark.parametrize("as_of", ["now", "2024-05-01", "2024-05-01T09:00:00", "1714554000"])
def test_a_malformed_as_of_is_a_400(client: Client, seed: Seed, as_of: str) -> None:
    result = client.simulate_get(f"/stores/{seed.stores[0].id}/inventory", params={"as_of": as_of})
    assert assert_problem(result, 400, "invalid-input")["field"] == "as_of"
