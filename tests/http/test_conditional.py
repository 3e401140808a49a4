"""ETags on single resources, 304 for If-None-Match, 412 for an If-Match that no longer holds."""

from __future__ import annotations

import dataclasses
from typing import Any

import falcon.testing
import pytest

from commerce.entrypoints.http.app import create_app
from commerce.entrypoints.http.conditional import etag_of
from tests.http.conftest import PRINCIPALS, WRITER_TOKEN, Seed, TokenAuthenticator, client_for
from tests.http.test_errors import assert_problem

pytestmark = pytest.mark.http

Client = falcon.testing.TestClient


def single_urls(seed: Seed) -> list[str]:
    return [
        f"/chain/{seed.chains[0].id}",
        f"/stores/{seed.stores[0].id}",
        f"/items/{seed.items[0].id}",
        f"/stores/{seed.stores[0].id}/inventory/{seed.items[0].id}",
    ]


def test_single_resources_carry_a_strong_etag_of_their_body(client: Client, seed: Seed) -> None:
    for url in single_urls(seed):
        result = client.simulate_get(url)
        etag = result.headers["ETag"]
        assert etag == etag_of(result.content), url
        assert etag.startswith('"'), url
        assert client.simulate_get(url).headers["ETag"] == etag, "stable between reads"


def test_lists_carry_no_etag(client: Client, seed: Seed) -> None:
    assert "ETag" not in client.simulate_get("/chain").headers


def test_if_none_match_with_the_current_etag_is_a_304_without_a_body(
    client: Client, seed: Seed
) -> None:
    for url in single_urls(seed):
        etag = client.simulate_get(url).headers["ETag"]
        result = client.simulate_get(url, headers={"If-None-Match": etag})
        assert result.status_code == 304, url
        assert result.content == b""
        assert result.headers["ETag"] == etag


@pytest.mark.parametrize("header", ['"other", {etag}', "W/{etag}", "*"])
def test_if_none_match_takes_lists_weak_tags_and_a_star(
    client: Client, seed: Seed, header: str
) -> None:
    url = f"/items/{seed.items[0].id}"
    etag = client.simulate_get(url).headers["ETag"]
    result = client.simulate_get(url, headers={"If-None-Match": header.format(etag=etag)})
    assert result.status_code == 304


def test_if_none_match_with_an_old_etag_answers_the_new_body(
    client: Client, writer: Client, seed: Seed
) -> None:
    url = f"/items/{seed.items[0].id}"
    old = client.simulate_get(url).headers["ETag"]
    writer.simulate_patch(url, json={"name": "Renamed"})
    result = client.simulate_get(url, headers={"If-None-Match": old})
    assert result.status_code == 200
    assert result.json["name"] == "Renamed"
    assert result.headers["ETag"] != old


def test_a_write_answers_the_etag_a_later_get_sends(writer: Client, seed: Seed) -> None:
    url = f"/stores/{seed.stores[0].id}"
    changed = writer.simulate_patch(url, json={"city": "Quincy"})
    assert writer.simulate_get(url).headers["ETag"] == changed.headers["ETag"]


def test_if_match_with_the_current_etag_lets_a_patch_through(writer: Client, seed: Seed) -> None:
    url = f"/items/{seed.items[0].id}"
    etag = writer.simulate_get(url).headers["ETag"]
    result = writer.simulate_patch(url, json={"name": "Mine"}, headers={"If-Match": etag})
    assert result.status_code == 200, result.text


@pytest.mark.parametrize("kind", ["chain", "store", "item"])
def test_if_match_with_a_stale_etag_is_a_412_and_changes_nothing(
    admin: Client, seed: Seed, kind: str
) -> None:
    url = {
        "chain": f"/chain/{seed.chains[0].id}",
        "store": f"/stores/{seed.stores[0].id}",
        "item": f"/items/{seed.items[0].id}",
    }[kind]
    stale = admin.simulate_get(url).headers["ETag"]
    admin.simulate_patch(url, json={"name": "First"})
    result = admin.simulate_patch(url, json={"name": "Second"}, headers={"If-Match": stale})
    assert_problem(result, 412, "precondition-failed")
    assert admin.simulate_get(url).json["name"] == "First"


def test_if_match_on_delete_with_a_stale_etag_is_a_412_and_deletes_nothing(
    admin: Client, seed: Seed
) -> None:
    url = f"/chain/{seed.chains[2].id}"
    stale = admin.simulate_get(url).headers["ETag"]
    admin.simulate_patch(url, json={"phone": "+1 555 0000"})
    assert_problem(
        admin.simulate_delete(url, headers={"If-Match": stale}), 412, "precondition-failed"
    )
    assert admin.simulate_get(url).status_code == 200
    fresh = admin.simulate_get(url).headers["ETag"]
    assert admin.simulate_delete(url, headers={"If-Match": fresh}).status_code == 204


@pytest.mark.parametrize("header", ["W/{etag}", '"nope"', "{etag}x"])
def test_if_match_compares_strongly_and_exactly(writer: Client, seed: Seed, header: str) -> None:
    url = f"/items/{seed.items[0].id}"
    etag = writer.simulate_get(url).headers["ETag"]
    result = writer.simulate_patch(
        url, json={"name": "X"}, headers={"If-Match": header.format(etag=etag)}
    )
    assert_problem(result, 412, "precondition-failed")


def test_if_match_star_lets_a_write_to_an_existing_resource_through(
    writer: Client, seed: Seed
) -> None:
    result = writer.simulate_patch(
        f"/items/{seed.items[0].id}", json={"name": "X"}, headers={"If-Match": "*"}
    )
    assert result.status_code == 200


def test_if_match_on_a_resource_that_does_not_exist_is_still_a_404(writer: Client) -> None:
    result = writer.simulate_patch("/items/999", json={"name": "X"}, headers={"If-Match": "*"})
    assert_problem(result, 404, "not-found")


def test_a_put_with_if_match_sets_the_level_only_if_it_is_unchanged(
    writer: Client, seed: Seed
) -> None:
    url = f"/stores/{seed.stores[0].id}/inventory/{seed.items[0].id}"
    etag = writer.simulate_get(url).headers["ETag"]
    first = writer.simulate_put(url, json={"quantity": 3}, headers={"If-Match": etag})
    assert first.status_code == 200
    second = writer.simulate_put(url, json={"quantity": 4}, headers={"If-Match": etag})
    assert_problem(second, 412, "precondition-failed")
    assert writer.simulate_get(url).json["quantity"] == 3


def test_if_match_star_on_a_level_the_store_does_not_hold_is_a_412(
    writer: Client, seed: Seed
) -> None:
    url = f"/stores/{seed.stores[1].id}/inventory/{seed.items[3].id}"
    result = writer.simulate_put(url, json={"quantity": 1}, headers={"If-Match": "*"})
    assert_problem(result, 412, "precondition-failed")
    assert_problem(writer.simulate_get(url), 404, "not-found")


def test_if_match_on_a_level_of_an_unknown_item_is_a_404(writer: Client, seed: Seed) -> None:
    url = f"/stores/{seed.stores[1].id}/inventory/999"
    result = writer.simulate_put(url, json={"quantity": 1}, headers={"If-Match": "*"})
    assert_problem(result, 404, "not-found")


def test_an_expected_quantity_in_the_body_wins_over_if_match(writer: Client, seed: Seed) -> None:
    url = f"/stores/{seed.stores[0].id}/inventory/{seed.items[0].id}"
    etag = writer.simulate_get(url).headers["ETag"]
    result = writer.simulate_put(
        url, json={"quantity": 5, "expected_quantity": 9}, headers={"If-Match": etag}
    )
    assert assert_problem(result, 409, "conflict")["current_quantity"] == 10


class RivalCountFirst:
    """Inventory where another count (to 99) lands just before each of ours: the race that
    ``If-Match`` cannot see, as it was checked before, and that storage must catch."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def set_quantity(self, tenant: str, store_id: int, item_id: int, *args: Any, **kw: Any) -> Any:
        self.inner.set_quantity(tenant, store_id, item_id, 99, actor="rival")
        return self.inner.set_quantity(tenant, store_id, item_id, *args, **kw)


def test_a_count_overtaken_after_its_if_match_held_is_a_412_with_the_current_quantity(
    seed: Seed,
) -> None:
    storage = dataclasses.replace(seed.storage, inventory=RivalCountFirst(seed.storage.inventory))
    writer = client_for(create_app(storage, [TokenAuthenticator(PRINCIPALS)]), WRITER_TOKEN)
    store, item = seed.stores[0].id, seed.items[0].id
    url = f"/stores/{store}/inventory/{item}"
    etag = writer.simulate_get(url).headers["ETag"]
    result = writer.simulate_put(url, json={"quantity": 5}, headers={"If-Match": etag})
    problem = assert_problem(result, 412, "precondition-failed")
    assert problem["current_quantity"] == 99
    assert problem["detail"] == (
        f"the level of item {item} at store {store} has changed since the version If-Match names"
    )
    assert writer.simulate_get(url).json["quantity"] == 99
