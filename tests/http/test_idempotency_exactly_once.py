"""Exactly once over HTTP, on every backend: a keyed write whose response cannot be kept is
undone with it (503), so the retry applies it once and later retries replay it; keyed requests
racing each other apply once (issue 9, item 2)."""

from __future__ import annotations

import dataclasses
import http.client
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from commerce.core.errors import StorageUnavailable
from commerce.core.models import ChangeFilter, NewChain, NewItem, NewStore, Reason, StoredResponse
from commerce.core.ports import IdempotencyRecords, Storage, Transaction
from commerce.entrypoints.http.app import create_app
from tests.backends import BACKENDS, Backend, opened
from tests.http.conftest import ACME, PRINCIPALS, WRITER_TOKEN, TokenAuthenticator, client_for
from tests.http.test_errors import assert_problem
from tests.storage.live import serving

pytestmark = pytest.mark.http

WAIT = 60.0
"""Seconds a thread may take before the test calls it stuck (never reached when right)."""
SERVER_THREADS = 8


@dataclass(frozen=True)
class Shop:
    store_id: int
    item_id: int

    @property
    def adjustments(self) -> str:
        return f"/stores/{self.store_id}/inventory/adjustments"

    def sale(self, delta: int = -4) -> dict[str, Any]:
        return {"adjustments": [{"item_id": self.item_id, "delta": delta, "reason": "sold"}]}


def _stock(storage: Storage, quantity: int) -> Shop:
    catalogue = storage.catalogue
    catalogue.create_tenant(ACME, "Acme")
    chain = catalogue.create_chain(ACME, NewChain(name="Chain"))
    shop = catalogue.create_store(ACME, NewStore(chain_id=chain.id, name="Shop"))
    item = catalogue.create_item(ACME, NewItem(sku="SKU-1", name="Item", cost=Decimal("1.00")))
    storage.inventory.set_quantity(ACME, shop.id, item.id, quantity, actor="test")
    return Shop(shop.id, item.id)


def _level_and_sales(storage: Storage, shop: Shop) -> tuple[int, list[int]]:
    """The level's quantity, and the deltas of its ledger's sales in order."""
    [level] = storage.inventory.list_levels(
        ACME, shop.store_id, item_ids=[shop.item_id], after=None, limit=1
    )
    entries = storage.inventory.list_changes(
        ACME, shop.store_id, ChangeFilter(item_id=shop.item_id), after=None, limit=1000
    )
    return level.quantity, [e.delta for e in entries if e.reason is Reason.sold]


# -- the faults: a wrapper of the idempotency records, failing where the record is kept ------


class Faulty:
    """Idempotency records that pass every call on, but fail at one point while ``failing``.

    ``where``: ``complete`` (keeping the response fails, after the write), ``commit`` (the
    commit fails before anything is committed), or ``ack`` (the commit succeeds and its
    acknowledgement is lost: the client is told 503 although all of it was committed).
    """

    def __init__(self, inner: IdempotencyRecords, where: str) -> None:
        self.inner = inner
        self.where = where
        self.failing = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def complete_idempotency_key(self, tenant: str, key: str, response: StoredResponse) -> None:
        if self.failing and self.where == "complete":
            raise StorageUnavailable("the database went away while the response was kept")
        self.inner.complete_idempotency_key(tenant, key, response)

    def begin_transaction(self) -> Transaction:
        return FaultyTransaction(self.inner.begin_transaction(), self)


class FaultyTransaction:
    def __init__(self, inner: Transaction, faults: Faulty) -> None:
        self.inner = inner
        self.faults = faults

    def commit(self) -> None:
        if self.faults.failing and self.faults.where == "commit":
            raise StorageUnavailable("the connection dropped before the commit")
        self.inner.commit()
        if self.faults.failing and self.faults.where == "ack":
            raise StorageUnavailable("the connection dropped after the commit")

    def rollback(self) -> None:
        self.inner.rollback()


@pytest.mark.parametrize("where", ["complete", "commit", "ack"])
@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.id)
def test_a_sale_whose_response_cannot_be_kept_is_503_and_its_retry_applies_it_once(
    backend: Backend, where: str
) -> None:
    with opened(backend) as storage:
        shop = _stock(storage, 10)
        faults = Faulty(storage.idempotency, where)
        app = create_app(
            dataclasses.replace(storage, idempotency=faults), [TokenAuthenticator(PRINCIPALS)]
        )
        client = client_for(app, WRITER_TOKEN)
        key = {"Idempotency-Key": "sale-0001"}

        failed = client.simulate_post(shop.adjustments, json=shop.sale(), headers=key)
        assert_problem(failed, 503, "storage-unavailable")
        assert failed.headers["Retry-After"] == "1"
        assert "Location" not in failed.headers
        assert "ETag" not in failed.headers
        if where == "ack":
            # Committed, though the client was told otherwise: its retry must replay.
            assert _level_and_sales(storage, shop) == (6, [-4])
        else:
            assert _level_and_sales(storage, shop) == (10, []), "the sale was undone with it"

        faults.failing = False
        retried = client.simulate_post(shop.adjustments, json=shop.sale(), headers=key)
        assert retried.status_code == 200
        assert retried.json[0]["quantity"] == 6
        assert ("Idempotent-Replayed" in retried.headers) is (where == "ack")

        for _ in range(2):
            again = client.simulate_post(shop.adjustments, json=shop.sale(), headers=key)
            assert again.status_code == 200
            assert again.headers["Idempotent-Replayed"] == "true"
            assert again.content == retried.content
        assert _level_and_sales(storage, shop) == (6, [-4]), "applied exactly once"


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.id)
def test_a_keyed_write_that_fails_with_a_500_is_undone_and_its_key_left_free(
    backend: Backend,
) -> None:
    with opened(backend) as storage:
        shop = _stock(storage, 10)

        class Broken:
            """An inventory whose adjustment writes, then fails as a bug would."""

            def __init__(self, inner: Any) -> None:
                self.inner = inner
                self.broken = True

            def __getattr__(self, name: str) -> Any:
                return getattr(self.inner, name)

            def adjust(self, *args: Any, **kwargs: Any) -> Any:
                levels = self.inner.adjust(*args, **kwargs)
                if self.broken:
                    raise RuntimeError("a bug after the write")
                return levels

        inventory = Broken(storage.inventory)
        app = create_app(
            dataclasses.replace(storage, inventory=inventory), [TokenAuthenticator(PRINCIPALS)]
        )
        client = client_for(app, WRITER_TOKEN)
        key = {"Idempotency-Key": "sale-0002"}
        assert_problem(
            client.simulate_post(shop.adjustments, json=shop.sale(), headers=key),
            500,
            "internal-error",
        )
        assert _level_and_sales(storage, shop) == (10, [])
        inventory.broken = False
        retried = client.simulate_post(shop.adjustments, json=shop.sale(), headers=key)
        assert retried.status_code == 200
        assert "Idempotent-Replayed" not in retried.headers
        assert _level_and_sales(storage, shop) == (6, [-4])


# -- racing requests over real sockets ---------------------------------------------------------


def _post(address: tuple[str, int], path: str, body: Any, key: str) -> tuple[int, bool, Any]:
    """(status, replayed, body) of one POST on a connection of its own."""
    conn = http.client.HTTPConnection(*address, timeout=WAIT)
    try:
        conn.request(
            "POST",
            path,
            body=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {WRITER_TOKEN}",
                "Idempotency-Key": key,
            },
        )
        response = conn.getresponse()
        raw = response.read()
        replayed = response.getheader("Idempotent-Replayed") == "true"
        return response.status, replayed, json.loads(raw) if raw else None
    finally:
        conn.close()


def _together(count: int, each: Callable[[int], Any]) -> list[Any]:
    """``each(n)`` for n in range(count), on as many threads, all let go at once."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    failures: list[BaseException] = []

    def run(n: int) -> None:
        try:
            barrier.wait(timeout=WAIT)
            results[n] = each(n)
        except BaseException as error:  # reported below: a thread's failure fails the test
            failures.append(error)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=WAIT)
    assert not failures, failures
    return results


@contextmanager
def _served(storage: Storage) -> Iterator[tuple[str, int]]:
    app = create_app(storage, [TokenAuthenticator(PRINCIPALS)])
    with serving(app, threads=SERVER_THREADS) as address:
        yield address


ROUNDS = 8
DUPLICATES = 6


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.id)
def test_requests_racing_with_one_key_apply_once_and_the_others_replay_it(
    backend: Backend,
) -> None:
    with opened(backend) as storage:
        shop = _stock(storage, 100)
        outcomes: Counter[str] = Counter()
        with _served(storage) as address:
            for n in range(ROUNDS):
                answers = _together(
                    DUPLICATES,
                    lambda _, n=n: _post(address, shop.adjustments, shop.sale(-1), f"race-{n}"),
                )
                unexpected = [a for a in answers if a[0] not in (200, 409)]
                assert not unexpected, unexpected
                applied = [a for a in answers if a[0] == 200 and not a[1]]
                assert len(applied) == 1, answers
                for status, replayed, body in answers:
                    outcomes["applied" if not replayed else "replayed"] += status == 200
                    outcomes["in progress"] += status == 409
                    if status == 200:
                        assert body == applied[0][2], "a replay is the first response"
        assert _level_and_sales(storage, shop) == (100 - ROUNDS, [-1] * ROUNDS)
        assert outcomes["applied"] == ROUNDS


CLIENTS = 8
SALES_EACH = 10


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.id)
def test_keyed_sales_of_one_hot_item_each_sent_twice_apply_once_and_never_fail(
    backend: Backend,
) -> None:
    """Tills that send every sale with a key, and send it again as if the answer was lost:
    keyed requests queue on the level like the others, and every second send replays."""
    stock = CLIENTS * SALES_EACH
    with opened(backend) as storage:
        shop = _stock(storage, stock)

        def till(n: int) -> list[tuple[int, bool, Any]]:
            answers = []
            for sale in range(SALES_EACH):
                key = f"till-{n}-sale-{sale}"
                for _ in range(2):
                    answers.append(_post(address, shop.adjustments, shop.sale(-1), key))
            return answers

        with _served(storage) as address:
            answers = [a for mine in _together(CLIENTS, till) for a in mine]

        assert Counter((status, replayed) for status, replayed, _ in answers) == {
            (200, False): stock,
            (200, True): stock,
        }
        quantity, sales = _level_and_sales(storage, shop)
        assert (quantity, sales) == (0, [-1] * stock)
