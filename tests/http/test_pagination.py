"""Lists are paginated by limit and an opaque cursor, the next page announced in a Link header."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import falcon.testing
import pytest

from commerce.core import usecases
from commerce.core.models import NewChain
from commerce.core.pagination import encode_cursor
from commerce.core.usecases import CHAINS, ITEMS
from tests.http.conftest import ACME, Seed, next_link, walk

pytestmark = pytest.mark.http


def test_walking_chain_one_by_one_returns_every_chain_once(
    client: falcon.testing.TestClient, seed: Seed
) -> None:
    rows, urls = walk(client, "/chain?limit=1")
    assert [r["id"] for r in rows] == [c.id for c in seed.chains]
    assert len(urls) == 3


def test_the_next_link_is_a_relative_url_that_keeps_the_limit(
    client: falcon.testing.TestClient,
) -> None:
    target = next_link(client.simulate_get("/chain", params={"limit": "2"}))
    assert target is not None
    url = urlsplit(target)
    assert (url.scheme, url.netloc, url.path) == ("", "", "/chain")
    query = parse_qs(url.query)
    assert query["limit"] == ["2"]
    assert len(query["cursor"]) == 1


def test_the_last_page_has_no_link(client: falcon.testing.TestClient) -> None:
    result = client.simulate_get("/chain", params={"limit": "3"})
    assert len(result.json) == 3
    assert "Link" not in result.headers


def test_unknown_query_parameters_are_not_carried_into_the_link(
    client: falcon.testing.TestClient,
) -> None:
    target = next_link(client.simulate_get("/chain", params={"limit": "1", "token": "s3cret"}))
    assert target is not None
    assert "s3cret" not in target


@pytest.mark.parametrize("limit", ["1", "2", "3", "100"])
def test_walking_a_chains_stores_returns_every_store(
    client: falcon.testing.TestClient, seed: Seed, limit: str
) -> None:
    north = seed.chains[0]
    rows, _ = walk(client, f"/chain/{north.id}/stores?limit={limit}")
    assert [r["id"] for r in rows] == [s.id for s in seed.stores if s.chain_id == north.id]


@pytest.mark.parametrize("limit", ["1", "2", "4"])
def test_walking_items_returns_the_whole_catalogue(
    client: falcon.testing.TestClient, seed: Seed, limit: str
) -> None:
    rows, _ = walk(client, f"/items?limit={limit}")
    assert [r["id"] for r in rows] == [i.id for i in seed.items]


def test_walking_a_stores_inventory_returns_every_level(
    client: falcon.testing.TestClient, seed: Seed
) -> None:
    store = seed.stores[0]
    rows, urls = walk(client, f"/stores/{store.id}/inventory?limit=2")
    assert [r["item_id"] for r in rows] == [i.id for i in seed.items]
    assert len(urls) == 3


def test_the_link_of_a_filtered_inventory_keeps_the_items_filter(
    client: falcon.testing.TestClient, seed: Seed
) -> None:
    store = seed.stores[0]
    wanted = [seed.items[4].id, seed.items[0].id, seed.items[2].id]
    url = f"/stores/{store.id}/inventory?items={','.join(map(str, wanted))}&limit=1"
    rows, urls = walk(client, url)
    assert [r["item_id"] for r in rows] == sorted(wanted)
    for followed in urls[1:]:
        query = parse_qs(urlsplit(followed).query)
        assert query["items"] == [",".join(map(str, sorted(wanted)))]
        assert query["limit"] == ["1"]


def test_walking_an_items_inventory_returns_every_store_holding_it(
    client: falcon.testing.TestClient, seed: Seed
) -> None:
    item = seed.items[0]
    rows, _ = walk(client, f"/items/{item.id}/inventory?limit=3")
    assert [r["store_id"] for r in rows] == [s.id for s in seed.stores]


def test_the_default_page_size_is_100(client: falcon.testing.TestClient, seed: Seed) -> None:
    for n in range(120):
        usecases.create_chain(seed.storage.catalogue, ACME, NewChain(f"Chain {n}"))
    result = client.simulate_get("/chain")
    assert len(result.json) == 100
    assert next_link(result) is not None


def test_a_limit_of_1000_is_accepted(client: falcon.testing.TestClient) -> None:
    assert client.simulate_get("/chain", params={"limit": "1000"}).status_code == 200


def test_an_empty_limit_or_cursor_means_the_default(client: falcon.testing.TestClient) -> None:
    result = client.simulate_get("/chain?limit=&cursor=")
    assert result.status_code == 200
    assert len(result.json) == 3


def test_a_cursor_from_another_list_is_a_400_naming_cursor(
    client: falcon.testing.TestClient,
) -> None:
    result = client.simulate_get("/chain", params={"cursor": encode_cursor(ITEMS, 1)})
    assert result.status_code == 400
    assert result.json["field"] == "cursor"


def test_a_cursor_this_list_issued_is_accepted_on_its_own(
    client: falcon.testing.TestClient, seed: Seed
) -> None:
    result = client.simulate_get(
        "/chain", params={"cursor": encode_cursor(CHAINS, seed.chains[0].id)}
    )
    assert [c["id"] for c in result.json] == [c.id for c in seed.chains[1:]]


def _moment(entry: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(entry["created_at"]))


@pytest.mark.parametrize("bound", ["since", "until"])
@pytest.mark.parametrize("limit", ["1", "2", "100"])
def test_the_history_in_a_time_range_pages_in_time_order_and_keeps_the_range(
    writer: falcon.testing.TestClient, seed: Seed, limit: str, bound: str
) -> None:
    store = seed.stores[0].id
    items = [i.id for i in seed.items[:3]]
    lines = [{"item_id": i, "delta": 1, "reason": "received"} for i in items + items]
    for _ in range(2):  # each batch's entries share a moment: ties go by id
        path = f"/stores/{store}/inventory/adjustments"
        assert writer.simulate_post(path, json={"adjustments": lines}).status_code == 200
    everything, _ = walk(writer, f"/stores/{store}/inventory/changes?limit=1000")
    moment = everything[-3]
    if bound == "since":
        matching = [e for e in everything if _moment(e) >= _moment(moment)]
    else:
        matching = [e for e in everything if _moment(e) < _moment(moment)]
    expected = sorted(matching, key=lambda e: (_moment(e), e["id"]))
    assert expected
    url = f"/stores/{store}/inventory/changes?{bound}={moment['created_at']}&limit={limit}"
    rows, urls = walk(writer, url)
    assert rows == expected
    for followed in urls[1:]:
        query = parse_qs(urlsplit(followed).query)
        assert query[bound] == [moment["created_at"]]
        assert query["limit"] == [limit]


def test_the_history_refuses_a_cursor_of_the_other_order_naming_cursor(
    client: falcon.testing.TestClient, seed: Seed
) -> None:
    path = f"/stores/{seed.stores[0].id}/inventory/changes"
    since = "2024-05-01T00:00:00Z"
    timed = next_link(client.simulate_get(path, params={"since": since, "limit": "1"}))
    by_id = next_link(client.simulate_get(path, params={"limit": "1"}))
    assert timed is not None
    assert by_id is not None
    timed_cursor = parse_qs(urlsplit(timed).query)["cursor"][0]
    id_cursor = parse_qs(urlsplit(by_id).query)["cursor"][0]
    for params in ({"cursor": timed_cursor}, {"since": since, "cursor": id_cursor}):
        result = client.simulate_get(path, params=params)
        assert result.status_code == 400, params
        assert result.json["field"] == "cursor"
    assert (
        client.simulate_get(path, params={"since": since, "cursor": timed_cursor}).status_code
        == 200
    )
