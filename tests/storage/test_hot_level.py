"""A hot level queues instead of failing: many tills selling one item at once over real HTTP,
on every backend, get only successes and honest refusals (409), never a 503, and the level
and its ledger come out exact (issue 9, item 1)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from decimal import Decimal

import pytest

from commerce.adapters.auth.none import NoAuthentication
from commerce.core.models import ChangeFilter, LedgerEntry, NewChain, NewItem, NewStore, Reason
from commerce.core.ports import Storage
from commerce.entrypoints.config import Settings
from commerce.entrypoints.http.app import create_app
from tests.backends import BACKENDS, Backend, opened
from tests.storage.live import Answer, Client, serving

TENANT = "hot"
CLIENTS = 16
SALES_EACH = 30
STOCK = 400
SERVER_THREADS = 8
BARRIER_TIMEOUT = 30


def _seed(storage: Storage, quantity: int) -> tuple[int, int]:
    catalogue = storage.catalogue
    catalogue.create_tenant(TENANT, "Hot")
    chain = catalogue.create_chain(TENANT, NewChain(name="Chain"))
    shop = catalogue.create_store(TENANT, NewStore(chain_id=chain.id, name="Shop"))
    item = catalogue.create_item(TENANT, NewItem(sku="HOT", name="Hot", cost=Decimal("1.00")))
    storage.inventory.set_quantity(TENANT, shop.id, item.id, quantity, actor="test")
    return shop.id, item.id


def _ledger(storage: Storage, store_id: int, item_id: int) -> list[LedgerEntry]:
    entries: list[LedgerEntry] = []
    after: int | None = None
    while True:
        page = storage.inventory.list_changes(
            TENANT, store_id, ChangeFilter(item_id=item_id), after=after, limit=500
        )
        entries.extend(page)
        if len(page) < 500:
            return entries
        after = page[-1].id


def _level(storage: Storage, store_id: int, item_id: int) -> int:
    [level] = storage.inventory.list_levels(
        TENANT, store_id, item_ids=[item_id], after=None, limit=1
    )
    return level.quantity


def _in_parallel(
    address: tuple[str, int], clients: int, each: Callable[[Client], list[Answer]]
) -> list[Answer]:
    """Run ``each`` on ``clients`` threads, each with its own connection, all starting at once."""
    barrier = threading.Barrier(clients)
    answers: list[Answer] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def run() -> None:
        client = Client(address)
        try:
            barrier.wait(timeout=BARRIER_TIMEOUT)
            mine = each(client)
            with lock:
                answers.extend(mine)
        except BaseException as error:  # reported below: a thread's failure fails the test
            with lock:
                failures.append(error)
        finally:
            client.close()

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    return answers


DEFAULT_CAP = Settings().tenant_concurrency_for(SERVER_THREADS)
"""The per-tenant cap ``commerce serve`` applies by default: every till is of one tenant, so
the proof holds with it on (its short wait lets quick requests through one after another)."""


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.id)
def test_sixteen_tills_selling_one_item_get_only_sales_and_refusals_and_the_ledger_is_exact(
    backend: Backend,
) -> None:
    with opened(backend) as storage:
        store_id, item_id = _seed(storage, STOCK)
        sale = {"adjustments": [{"item_id": item_id, "delta": -1, "reason": "sold"}]}
        path = f"/stores/{store_id}/inventory/adjustments"

        def sell(client: Client) -> list[Answer]:
            return [client.request("POST", path, sale) for _ in range(SALES_EACH)]

        app = create_app(storage, [NoAuthentication(TENANT)], tenant_concurrency=DEFAULT_CAP)
        with serving(app, threads=SERVER_THREADS) as address:
            answers = _in_parallel(address, CLIENTS, sell)

        statuses = Counter(a.status for a in answers)
        unexpected = [(a.status, a.body) for a in answers if a.status not in (200, 409)][:3]
        assert not unexpected, (statuses, unexpected)
        assert statuses == {200: STOCK, 409: CLIENTS * SALES_EACH - STOCK}
        for answer in answers:
            if answer.status == 409:
                assert answer.body["type"].endswith("insufficient-stock"), answer.body
        assert _level(storage, store_id, item_id) == 0
        ledger = _ledger(storage, store_id, item_id)
        sales = [e for e in ledger if e.reason is Reason.sold]
        assert len(sales) == STOCK
        assert all(e.delta == -1 for e in sales)
        assert sum(e.delta for e in ledger) == 0
        # In id order the entries tell the level's story step by step: 399, 398, ..., 0.
        assert [e.quantity_after for e in sales] == list(range(STOCK - 1, -1, -1))


COUNTERS = 8
COUNTS_EACH = 12


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.id)
def test_counted_sets_racing_on_one_level_each_land_once_or_are_told_the_current_quantity(
    backend: Backend,
) -> None:
    with opened(backend) as storage:
        store_id, item_id = _seed(storage, 0)
        path = f"/stores/{store_id}/inventory/{item_id}"

        def count_up(client: Client) -> list[Answer]:
            # Compare-and-set: each client adds one COUNTS_EACH times, re-reading on a 409.
            answers: list[Answer] = []
            current = 0
            landed = 0
            while landed < COUNTS_EACH:
                answer = client.request(
                    "PUT", path, {"quantity": current + 1, "expected_quantity": current}
                )
                answers.append(answer)
                if answer.status == 200:
                    landed += 1
                    current = answer.body["quantity"]
                elif answer.status == 409:
                    current = answer.body["current_quantity"]
                else:
                    return answers
            return answers

        app = create_app(storage, [NoAuthentication(TENANT)], tenant_concurrency=DEFAULT_CAP)
        with serving(app, threads=SERVER_THREADS) as address:
            answers = _in_parallel(address, COUNTERS, count_up)

        statuses = Counter(a.status for a in answers)
        unexpected = [(a.status, a.body) for a in answers if a.status not in (200, 409)][:3]
        assert not unexpected, (statuses, unexpected)
        total = COUNTERS * COUNTS_EACH
        assert statuses[200] == total
        for answer in answers:
            if answer.status == 409:
                assert isinstance(answer.body["current_quantity"], int), answer.body
        assert _level(storage, store_id, item_id) == total
        counts = [e for e in _ledger(storage, store_id, item_id) if e.reason is Reason.count]
        # The opening count of 0, then one entry per landed count, each one more than before.
        assert [e.quantity_after for e in counts] == list(range(total + 1))
        assert [e.delta for e in counts[1:]] == [1] * total
