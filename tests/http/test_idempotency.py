"""Idempotency-Key: a retry replays the first response and applies nothing again."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import falcon.testing
import pytest

from commerce.adapters.storage.memory import memory_storage
from commerce.core import usecases
from commerce.core.errors import IdempotencyInProgress, StorageUnavailable
from commerce.core.models import StoredResponse
from commerce.core.ports import Storage
from commerce.entrypoints.http.app import create_app
from tests.http.conftest import (
    ADMIN_TOKEN,
    GLOBEX_ADMIN_TOKEN,
    PRINCIPALS,
    App,
    Seed,
    TokenAuthenticator,
    client_for,
)
from tests.http.test_errors import assert_problem

pytestmark = pytest.mark.http

Client = falcon.testing.TestClient


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


def history(client: Client, store_id: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = client.simulate_get(
        f"/stores/{store_id}/inventory/changes", params={"limit": 1000}
    ).json
    return rows


def test_a_retried_adjustment_replays_the_response_and_applies_once(
    writer: Client, seed: Seed
) -> None:
    store = seed.stores[0].id
    before = len(history(writer, store))
    body = {"adjustments": [{"item_id": seed.items[0].id, "delta": -4, "reason": "sold"}]}
    url = f"/stores/{store}/inventory/adjustments"
    first = writer.simulate_post(url, json=body, headers=keyed("sale-0001"))
    again = writer.simulate_post(url, json=body, headers=keyed("sale-0001"))
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["X-Request-ID"] != first.headers["X-Request-ID"]
    assert len(history(writer, store)) == before + 1
    level = writer.simulate_get(f"/stores/{store}/inventory/{seed.items[0].id}").json
    assert level["quantity"] == 6


def test_a_retried_create_replays_201_location_and_etag_and_creates_one_row(
    admin: Client,
) -> None:
    body = {"name": "Once Only"}
    first = admin.simulate_post("/chain", json=body, headers=keyed("chain-1"))
    again = admin.simulate_post("/chain", json=body, headers=keyed("chain-1"))
    assert (again.status_code, again.headers["Location"], again.headers["ETag"]) == (
        201,
        first.headers["Location"],
        first.headers["ETag"],
    )
    assert again.headers["Content-Type"] == "application/json"
    assert again.json == first.json
    names = [c["name"] for c in admin.simulate_get("/chain").json]
    assert names.count("Once Only") == 1


def test_a_retried_put_and_delete_replay_their_responses(admin: Client, seed: Seed) -> None:
    url = f"/stores/{seed.stores[0].id}/inventory/{seed.items[0].id}"
    first = admin.simulate_put(url, json={"quantity": 8}, headers=keyed("count-1"))
    admin.simulate_put(url, json={"quantity": 9})
    again = admin.simulate_put(url, json={"quantity": 8}, headers=keyed("count-1"))
    assert again.json == first.json
    assert admin.simulate_get(url).json["quantity"] == 9, "the replay set nothing"

    chain = f"/chain/{seed.chains[2].id}"
    assert admin.simulate_delete(chain, headers=keyed("drop-1")).status_code == 204
    replayed = admin.simulate_delete(chain, headers=keyed("drop-1"))
    assert replayed.status_code == 204
    assert replayed.headers["Idempotent-Replayed"] == "true"


def test_a_refusal_is_kept_and_replayed_too(writer: Client, seed: Seed) -> None:
    body = {"sku": "SKU-1", "name": "Dup", "cost": "1"}
    first = writer.simulate_post("/items", json=body, headers=keyed("dup"))
    assert_problem(first, 409, "conflict")
    again = writer.simulate_post("/items", json=body, headers=keyed("dup"))
    assert (again.status_code, again.content) == (409, first.content)
    assert again.headers["Content-Type"] == "application/problem+json"


def test_the_same_key_with_another_body_is_a_422_and_applies_nothing(
    writer: Client, seed: Seed
) -> None:
    store = seed.stores[0].id
    url = f"/stores/{store}/inventory/adjustments"
    line = {"item_id": seed.items[0].id, "delta": -1, "reason": "sold"}
    writer.simulate_post(url, json={"adjustments": [line]}, headers=keyed("k"))
    before = len(history(writer, store))
    other = {"adjustments": [{**line, "delta": -2}]}
    assert_problem(
        writer.simulate_post(url, json=other, headers=keyed("k")), 422, "idempotency-key-reused"
    )
    assert len(history(writer, store)) == before


def test_the_same_key_on_another_path_is_a_422(admin: Client, seed: Seed) -> None:
    admin.simulate_patch(f"/chain/{seed.chains[0].id}", json={"name": "A"}, headers=keyed("k"))
    result = admin.simulate_patch(
        f"/chain/{seed.chains[1].id}", json={"name": "A"}, headers=keyed("k")
    )
    assert_problem(result, 422, "idempotency-key-reused")


def test_keys_are_scoped_to_the_tenant(app: App) -> None:
    acme, globex = client_for(app, ADMIN_TOKEN), client_for(app, GLOBEX_ADMIN_TOKEN)
    mine = acme.simulate_post("/chain", json={"name": "Shared Key"}, headers=keyed("same"))
    theirs = globex.simulate_post("/chain", json={"name": "Shared Key"}, headers=keyed("same"))
    assert mine.status_code == theirs.status_code == 201
    assert "Idempotent-Replayed" not in theirs.headers
    assert [c["name"] for c in globex.simulate_get("/chain").json] == [
        "Globex Mart",
        "Shared Key",
    ]


def test_requests_without_a_key_are_applied_each_time(admin: Client) -> None:
    for _ in range(2):
        assert admin.simulate_post("/chain", json={"name": "Twice"}).status_code == 201
    assert [c["name"] for c in admin.simulate_get("/chain").json].count("Twice") == 2


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "caf\u00e9"])
def test_a_malformed_key_is_a_400_naming_the_header(admin: Client, key: str) -> None:
    result = admin.simulate_post(
        "/chain", json={"name": "A"}, headers={"Idempotency-Key": key.encode().decode("latin-1")}
    )
    assert assert_problem(result, 400, "invalid-input")["field"] == "Idempotency-Key"


def test_a_key_of_255_visible_characters_is_accepted(admin: Client) -> None:
    key = "".join(chr(33 + n % 94) for n in range(255))
    assert admin.simulate_post("/chain", json={"name": "A"}, headers=keyed(key)).status_code == 201


def test_a_key_on_a_read_is_ignored(client: Client) -> None:
    result = client.simulate_get("/chain", headers=keyed("has space"))
    assert result.status_code == 200


def acme_storage(clock: Any = None) -> Storage:
    """Fresh memory storage holding the tenant ``acme`` only."""
    storage = memory_storage(clock=clock)
    usecases.create_tenant(storage.catalogue, "acme", "Acme")
    return storage


class Wrapped:
    """A port that passes every call on to ``inner``, but for the methods a subclass overrides."""

    def __init__(self, inner: object) -> None:
        self.inner: Any = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Busy(Wrapped):
    """Idempotency records that say another request holds every key."""

    def claim_idempotency_key(
        self, tenant: str, key: str, fingerprint: str, *, stale_after: timedelta
    ) -> StoredResponse | None:
        raise IdempotencyInProgress()


def test_a_retry_while_the_first_runs_is_a_409_with_retry_after(seed: Seed) -> None:
    storage = acme_storage()
    storage = dataclasses.replace(storage, idempotency=Busy(storage.idempotency))
    client = client_for(create_app(storage, [TokenAuthenticator(PRINCIPALS)]), ADMIN_TOKEN)
    result = client.simulate_post("/chain", json={"name": "A"}, headers=keyed("k"))
    assert_problem(result, 409, "conflict")
    assert result.headers["Retry-After"] == "1"
    assert client.simulate_get("/chain").json == [], "nothing was applied"


class FailingWrites(Wrapped):
    """A catalogue that goes down for writes, to see what becomes of a held key."""

    down = True

    def create_chain(self, tenant: str, new: Any) -> Any:
        if self.down:
            raise StorageUnavailable("the database is restarting")
        return self.inner.create_chain(tenant, new)


def test_a_failed_request_releases_its_key_so_the_retry_runs(seed: Seed) -> None:
    storage = acme_storage()
    catalogue = FailingWrites(storage.catalogue)
    storage = dataclasses.replace(storage, catalogue=catalogue)
    client = client_for(create_app(storage, [TokenAuthenticator(PRINCIPALS)]), ADMIN_TOKEN)
    failed = client.simulate_post("/chain", json={"name": "A"}, headers=keyed("k"))
    assert_problem(failed, 503, "storage-unavailable")
    catalogue.down = False
    retried = client.simulate_post("/chain", json={"name": "A"}, headers=keyed("k"))
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried.headers


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_keys_are_kept_for_the_ttl_and_then_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    app = create_app(
        acme_storage(clock),
        [TokenAuthenticator(PRINCIPALS)],
        idempotency_ttl=timedelta(hours=48),
        clock=clock,
    )
    client = client_for(app, ADMIN_TOKEN)
    # Purges run at most once a minute; let every request be due for one.
    monkeypatch.setattr("commerce.entrypoints.http.idempotency.PURGE_EVERY", 0.0)
    client.simulate_post("/chain", json={"name": "A"}, headers=keyed("k"))

    clock.now += timedelta(hours=47)
    replay = client.simulate_post("/chain", json={"name": "A"}, headers=keyed("k"))
    assert replay.headers.get("Idempotent-Replayed") == "true"

    clock.now += timedelta(hours=2)
    client.simulate_post("/chain", json={"name": "B"}, headers=keyed("other"))
    fresh = client.simulate_post("/chain", json={"name": "A"}, headers=keyed("k"))
    assert fresh.status_code == 201
    assert "Idempotent-Replayed" not in fresh.headers


def test_a_ttl_below_a_day_counts_as_a_day(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    app = create_app(
        acme_storage(clock),
        [TokenAuthenticator(PRINCIPALS)],
        idempotency_ttl=timedelta(hours=1),
        clock=clock,
    )
    client = client_for(app, ADMIN_TOKEN)
    monkeypatch.setattr("commerce.entrypoints.http.idempotency.PURGE_EVERY", 0.0)
    client.simulate_post("/chain", json={"name": "A"}, headers=keyed("k"))
    clock.now += timedelta(hours=23)
    replay = client.simulate_post("/chain", json={"name": "A"}, headers=keyed("k"))
    assert replay.headers.get("Idempotent-Replayed") == "true"


class Unpurgeable(Wrapped):
    def purge_idempotency_keys(self, older_than: datetime) -> int:
        raise StorageUnavailable("no")


def test_a_failing_purge_does_not_fail_the_request() -> None:
    storage = acme_storage()
    storage = dataclasses.replace(storage, idempotency=Unpurgeable(storage.idempotency))
    client = client_for(create_app(storage, [TokenAuthenticator(PRINCIPALS)]), ADMIN_TOKEN)
    assert client.simulate_post("/chain", json={"name": "A"}, headers=keyed("k")).status_code == 201


def test_reads_never_touch_the_idempotency_records(app: App, seed: Seed) -> None:
    calls: list[str] = []

    def spy(*args: object, **kwargs: object) -> None:
        calls.append("claim")

    seed.storage.idempotency.claim_idempotency_key = spy  # type: ignore[method-assign]
    client = client_for(app, ADMIN_TOKEN)
    client.simulate_get("/chain", headers=keyed("k"))
    client.simulate_get(f"/chain/{seed.chains[0].id}", headers=keyed("k"))
    assert calls == []
