"""What SQL adds to the ledger's contract: contention, clocks, id clashes, races on claims."""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from commerce.adapters.storage.sql import AlembicSchemaManager, SqlOptions, SqlStorage, sql_storage
from commerce.adapters.storage.sql.engine import create_engine, sqlite_later
from commerce.adapters.storage.sql.ids import IdGenerator
from commerce.adapters.storage.sql.transactions import Transactor
from commerce.core.errors import Conflict, InsufficientStock
from commerce.core.models import (
    Adjustment,
    ChainPatch,
    ChangeFilter,
    LedgerEntry,
    NewChain,
    NewItem,
    NewStore,
    Reason,
    StoredResponse,
)
from commerce.core.ports import IdempotencyRecords, Storage

THREADS = 8
ADJUSTMENTS_PER_THREAD = 25
PATIENT = SqlOptions(retry_attempts=200, retry_base_delay=0.001, retry_max_delay=0.02)
"""Enough attempts that contention is always waited out: every outcome is a real answer."""


def _migrated(url: str) -> SqlStorage:
    AlembicSchemaManager(url).upgrade()
    return sql_storage(create_engine(url, PATIENT), PATIENT)


@pytest.fixture(params=["sqlite", "postgresql+psycopg", "cockroachdb+psycopg"])
def storage(
    request: pytest.FixtureRequest, sqlite_url: str, new_pg_database: Callable[[str], str]
) -> Iterator[SqlStorage]:
    """Migrated storage on each SQL backend: SQLite and both dialects on the PostgreSQL server."""
    kind: str = request.param
    opened = _migrated(sqlite_url if kind == "sqlite" else new_pg_database(kind))
    yield opened
    opened.close()


def _sharing(storage: SqlStorage, **kwargs: Any) -> SqlStorage:
    """Another replica on the same database: its own clock, ids or transaction helper."""
    return sql_storage(storage.engine, PATIENT, owns_engine=False, **kwargs)


def _shop_and_item(storage: Storage, tenant: str = "t") -> tuple[int, int]:
    catalogue = storage.catalogue
    catalogue.create_tenant(tenant, tenant.upper())
    chain = catalogue.create_chain(tenant, NewChain(name="Chain"))
    shop = catalogue.create_store(tenant, NewStore(chain_id=chain.id, name="Shop")).id
    item = catalogue.create_item(tenant, NewItem(sku="HOT", name="Hot", cost=Decimal("1.00"))).id
    return shop, item


def _ledger(storage: Storage, tenant: str, shop: int) -> list[LedgerEntry]:
    changes = storage.inventory.list_changes
    return list(changes(tenant, shop, ChangeFilter(), after=None, limit=100_000))


def test_eight_threads_adjusting_one_level_queue_until_each_gets_a_real_answer(
    storage: SqlStorage,
) -> None:
    retries: list[float] = []

    # The same helper, counting its retries: level writes lock the row and run at READ
    # COMMITTED on the servers, so they queue on the row lock (on SQLite, for the write
    # lock) instead of failing with serialization failures (40001) and running again.
    def counted_sleep(seconds: float) -> None:
        retries.append(seconds)
        threading.Event().wait(seconds)

    storage = _sharing(storage, tx=Transactor(storage.engine, PATIENT, sleep=counted_sleep))
    shop, hot = _shop_and_item(storage)
    initial = 30
    storage.inventory.set_quantity("t", shop, hot, initial, actor="setup")
    accepted: list[int] = []
    refused: list[int] = []
    seen: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        start.wait(timeout=30)
        for _ in range(ADJUSTMENTS_PER_THREAD):
            delta = rng.choice([-4, -3, -1, 1, 2])
            try:
                (level,) = storage.inventory.adjust(
                    "t", shop, [Adjustment(hot, delta, Reason.sold)], actor=f"till-{seed}"
                )
            except InsufficientStock as short:
                with lock:
                    refused.append(delta)
                    seen.append(short.shortages[0]["quantity"])
                continue
            with lock:
                accepted.append(delta)
                seen.append(level.quantity)

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(worker, range(THREADS)))

    # No StorageUnavailable escaped: every adjustment was applied or refused for stock.
    assert len(accepted) + len(refused) == THREADS * ADJUSTMENTS_PER_THREAD
    assert all(delta < 0 for delta in refused)
    [level] = storage.inventory.list_levels("t", shop, item_ids=None, after=None, limit=5)
    assert level.quantity == initial + sum(accepted)
    assert min(seen) >= 0
    ledger = _ledger(storage, "t", shop)
    assert len(ledger) == 1 + len(accepted)
    assert sum(e.delta for e in ledger) == level.quantity
    assert all(e.quantity_after >= 0 for e in ledger)
    # In id order, each entry starts where the one before it left the level.
    for previous, entry in itertools.pairwise(ledger):
        assert entry.quantity_after == previous.quantity_after + entry.delta
        assert entry.created_at > previous.created_at
    assert ledger[-1].created_at == level.updated_at
    assert retries == []


def test_the_database_refuses_a_ledger_entry_below_zero(storage: SqlStorage) -> None:
    with storage.engine.connect() as conn, pytest.raises(sa.exc.IntegrityError):
        conn.execute(
            sa.text(
                "INSERT INTO inventory_changes (store_id, id, tenant_id, item_id, delta,"
                " quantity_after, reason, actor, created_at)"
                " VALUES (1, 1, 't', 1, -1, -1, 'sold', 'x', :at)"
            ),
            {"at": datetime(2026, 1, 1, tzinfo=UTC)},
        )


def test_times_move_strictly_forward_even_when_the_clock_stands_still(
    storage: SqlStorage,
) -> None:
    frozen = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    still = _sharing(storage, clock=lambda: frozen)
    shop, item = _shop_and_item(still)
    chain = still.catalogue.create_chain("t", NewChain(name="Chain"))
    first = still.catalogue.update_chain("t", chain.id, ChainPatch(name="One"))
    second = still.catalogue.update_chain("t", chain.id, ChainPatch(name="Two"))
    assert chain.updated_at < first.updated_at < second.updated_at
    assert second.updated_at - chain.updated_at == timedelta(microseconds=2)

    counted = still.inventory.set_quantity("t", shop, item, 5, actor="a")
    recounted = still.inventory.set_quantity("t", shop, item, 9, actor="a")
    [sold] = still.inventory.adjust("t", shop, [Adjustment(item, -2, Reason.sold)], actor="a")
    assert counted.updated_at < recounted.updated_at < sold.updated_at
    entries = _ledger(still, "t", shop)
    assert [e.created_at for e in entries] == [
        counted.updated_at,
        recounted.updated_at,
        sold.updated_at,
    ]
    # So every entry is a distinct moment, and as-of answers each one exactly.
    for entry in entries:
        [then] = still.inventory.list_levels_as_of(
            "t", shop, entry.created_at, item_ids=None, after=None, limit=10
        )
        assert then.quantity == entry.quantity_after


def test_a_clock_that_steps_back_never_makes_the_ledger_go_back(storage: SqlStorage) -> None:
    times = iter(
        datetime(2026, 3, 1, 12, 0, tzinfo=UTC) - timedelta(seconds=n) for n in range(1000)
    )
    backwards = _sharing(storage, clock=lambda: next(times))
    shop, item = _shop_and_item(backwards)
    for quantity in (3, 1, 4, 1, 5):
        backwards.inventory.set_quantity("t", shop, item, quantity, actor="a")
    entries = _ledger(backwards, "t", shop)
    assert [e.quantity_after for e in entries] == [3, 1, 4, 1, 5]
    assert [e.created_at for e in entries] == sorted({e.created_at for e in entries})
    [now] = backwards.inventory.list_levels_as_of(
        "t", shop, entries[-1].created_at, item_ids=None, after=None, limit=10
    )
    assert now.quantity == 5


def test_a_ledger_id_already_taken_at_the_store_is_replaced_by_a_fresh_one(
    storage: SqlStorage,
) -> None:
    shop, item = _shop_and_item(storage)
    storage.inventory.set_quantity("t", shop, item, 1, actor="a")
    [taken] = _ledger(storage, "t", shop)
    # Another replica minted the same id in the same millisecond: the first try clashes.
    offered = iter([[taken.id], [taken.id + 1]])
    ids = IdGenerator()
    ids.take = lambda count: next(offered)  # type: ignore[method-assign]
    clashing = _sharing(storage, ids=ids)
    clashing.inventory.adjust("t", shop, [Adjustment(item, 2, Reason.received)], actor="b")
    entries = _ledger(storage, "t", shop)
    assert [(e.id, e.delta, e.quantity_after) for e in entries] == [
        (taken.id, 1, 1),
        (taken.id + 1, 2, 3),
    ]


def test_a_deleted_stores_history_stays_in_the_database_but_is_not_listed(
    storage: SqlStorage,
) -> None:
    shop, item = _shop_and_item(storage)
    storage.inventory.set_quantity("t", shop, item, 4, actor="a")
    storage.inventory.adjust("t", shop, [Adjustment(item, -4, Reason.sold)], actor="a")
    storage.catalogue.delete_store("t", shop)
    storage.catalogue.delete_item("t", item)
    with storage.engine.connect() as conn:
        kept = conn.execute(
            sa.text("SELECT count(*) FROM inventory_changes WHERE store_id = :s"), {"s": shop}
        ).scalar_one()
    assert kept == 2
    assert _ledger(storage, "t", shop) == []


def test_a_stored_response_comes_back_byte_for_byte(storage: SqlStorage) -> None:
    storage.catalogue.create_tenant("t", "T")
    records = storage.idempotency
    response = StoredResponse(
        status=201,
        headers=(("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("X-Note", "café ✓")),
        body=bytes(range(256)) + b"\x00{}",
    )
    hour = timedelta(hours=1)
    assert records.claim_idempotency_key("t", "k", "fp", stale_after=hour) is None
    records.complete_idempotency_key("t", "k", response)
    assert records.claim_idempotency_key("t", "k", "fp", stale_after=hour) == response


@pytest.mark.parametrize("stale", [False, True], ids=["new key", "stale claim"])
def test_of_many_replicas_claiming_one_key_at_once_exactly_one_wins(
    storage: SqlStorage, stale: bool
) -> None:
    storage.catalogue.create_tenant("t", "T")
    if stale:
        # Claimed an hour ago by a replica that died before completing it.
        long_ago = datetime.now(UTC) - timedelta(hours=1)
        dead = _sharing(storage, clock=lambda: long_ago).idempotency
        assert dead.claim_idempotency_key("t", "k", "fp", stale_after=timedelta(0)) is None
    replicas = [_sharing(storage).idempotency for _ in range(THREADS)]
    start = threading.Barrier(THREADS)

    def claim(replica: IdempotencyRecords) -> str:
        start.wait(timeout=30)
        try:
            won = replica.claim_idempotency_key("t", "k", "fp", stale_after=timedelta(minutes=5))
        except Conflict:
            return "in progress"
        return "won" if won is None else "replayed"

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = sorted(pool.map(claim, replicas))
    assert outcomes == ["in progress"] * (THREADS - 1) + ["won"]


def test_purging_uses_the_claim_time_and_leaves_younger_keys(storage: SqlStorage) -> None:
    storage.catalogue.create_tenant("t", "T")
    base = datetime(2026, 5, 1, tzinfo=UTC)
    for hours in (1, 2, 3):
        at = base + timedelta(hours=hours)
        claimer = _sharing(storage, clock=lambda at=at: at).idempotency
        claimer.claim_idempotency_key("t", f"k{hours}", "fp", stale_after=timedelta(0))
    assert storage.idempotency.purge_idempotency_keys(base + timedelta(hours=2, minutes=30)) == 2
    with storage.engine.connect() as conn:
        left = conn.execute(sa.text("SELECT key FROM idempotency_keys")).scalars().all()
    assert left == ["k3"]


def test_sqlite_later_is_now_or_one_microsecond_after_the_previous_time() -> None:
    assert sqlite_later(None, "2026-01-01 00:00:00.000000") == "2026-01-01 00:00:00.000000"
    assert (
        sqlite_later("2025-12-31 23:59:59.999999", "2026-01-01 00:00:00.500000")
        == "2026-01-01 00:00:00.500000"
    )
    assert (
        sqlite_later("2026-01-01 23:59:59.999999", "2026-01-01 00:00:00.000000")
        == "2026-01-02 00:00:00.000000"
    )


def test_retries_of_an_adjustment_never_append_twice(
    new_pg_database: Callable[[str], str],
) -> None:
    storage = _migrated(new_pg_database("postgresql+psycopg"))
    try:
        shop, item = _shop_and_item(storage)
        storage.inventory.set_quantity("t", shop, item, 0, actor="setup")
        failures = iter([True, True, False])

        class Flaky(Transactor):
            """Fails the first two commits with a serialization failure, as a busy server does."""

            def write(self, work, *, locks_rows=False):  # type: ignore[no-untyped-def]
                def failing(conn: sa.Connection) -> object:
                    result = work(conn)
                    if next(failures):
                        conn.exec_driver_sql(
                            "DO $$ BEGIN RAISE EXCEPTION 'busy' USING ERRCODE = '40001'; END $$"
                        )
                    return result

                return super().write(failing, locks_rows=locks_rows)

        flaky = Flaky(storage.engine, replace(PATIENT, retry_attempts=5), sleep=lambda _: None)
        _sharing(storage, tx=flaky).inventory.adjust(
            "t", shop, [Adjustment(item, 3, Reason.received)], actor="a"
        )
        assert [(e.delta, e.quantity_after) for e in _ledger(storage, "t", shop)] == [
            (0, 0),
            (3, 3),
        ]
    finally:
        storage.close()
