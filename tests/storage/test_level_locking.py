"""Why hot levels may run at READ COMMITTED, shown on the server rather than argued: a write
that waited for a level's lock decides on the level as the other writer left it; batches over
the same items in opposite orders never deadlock; and the isolation level is the one the
server really gives (CockroachDB's READ COMMITTED is a cluster setting)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from commerce.adapters.storage.sql import AlembicSchemaManager, SqlOptions, SqlStorage, sql_storage
from commerce.adapters.storage.sql import transactions as transactions_module
from commerce.adapters.storage.sql.engine import create_engine
from commerce.adapters.storage.sql.transactions import Transactor
from commerce.core.errors import InsufficientStock, NotFound
from commerce.core.models import Adjustment, InventoryLevel, NewChain, NewItem, NewStore, Reason

SERVERS = ["postgresql+psycopg", "cockroachdb+psycopg"]
WAIT = 30


@pytest.fixture(params=SERVERS)
def server_storage(
    request: pytest.FixtureRequest, new_pg_database: Callable[[str], str]
) -> Iterator[SqlStorage]:
    url = new_pg_database(request.param)
    AlembicSchemaManager(url).upgrade()
    storage = sql_storage(create_engine(url, SqlOptions()))
    yield storage
    storage.close()


def _shop(storage: SqlStorage, items: int = 1) -> tuple[int, list[int]]:
    catalogue = storage.catalogue
    if catalogue.get_tenant("t") is None:
        catalogue.create_tenant("t", "T")
    chain = catalogue.create_chain("t", NewChain(name="Chain"))
    shop = catalogue.create_store("t", NewStore(chain_id=chain.id, name="Shop")).id
    made = [
        catalogue.create_item("t", NewItem(sku=f"S{shop}-{n}", name="I", cost=Decimal(1))).id
        for n in range(items)
    ]
    return shop, made


def _holding_the_level(
    storage: SqlStorage, shop: int, item: int, quantity: int
) -> tuple[sa.Connection, Any]:
    """Another transaction that has changed the level to ``quantity`` and not yet committed."""
    conn = storage.engine.connect()
    transaction = conn.begin()
    conn.execute(
        sa.text("UPDATE inventory_levels SET quantity = :q WHERE store_id = :s AND item_id = :i"),
        {"q": quantity, "s": shop, "i": item},
    )
    return conn, transaction


def _sell_one_in_the_background(
    storage: SqlStorage, shop: int, item: int
) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def sell() -> None:
        try:
            outcome.append(
                storage.inventory.adjust("t", shop, [Adjustment(item, -1, Reason.sold)], actor="a")
            )
        except Exception as error:  # the outcome is the assertion
            outcome.append(error)

    thread = threading.Thread(target=sell)
    thread.start()
    return thread, outcome


def test_a_sale_waiting_for_the_lock_is_refused_when_the_other_writer_took_the_last_unit(
    server_storage: SqlStorage,
) -> None:
    shop, [item] = _shop(server_storage)
    server_storage.inventory.set_quantity("t", shop, item, 1, actor="setup")
    conn, transaction = _holding_the_level(server_storage, shop, item, 0)
    try:
        thread, outcome = _sell_one_in_the_background(server_storage, shop, item)
        time.sleep(0.5)
        assert thread.is_alive(), outcome  # queued on the row lock, neither failed nor done
        transaction.commit()
    finally:
        conn.close()
    thread.join(WAIT)
    # Decided on the row as the other writer left it (0), not as it was when it began (1).
    [refusal] = outcome
    assert isinstance(refusal, InsufficientStock), refusal
    assert refusal.shortages[0]["quantity"] == 0
    [level] = server_storage.inventory.list_levels("t", shop, item_ids=[item], after=None, limit=1)
    assert level.quantity == 0


def test_a_sale_waiting_for_the_lock_succeeds_on_what_the_other_writer_brought_in(
    server_storage: SqlStorage,
) -> None:
    shop, [item] = _shop(server_storage)
    server_storage.inventory.set_quantity("t", shop, item, 0, actor="setup")
    conn, transaction = _holding_the_level(server_storage, shop, item, 5)
    try:
        thread, outcome = _sell_one_in_the_background(server_storage, shop, item)
        time.sleep(0.5)
        assert thread.is_alive(), outcome
        transaction.commit()
    finally:
        conn.close()
    thread.join(WAIT)
    [levels] = outcome
    assert levels == [InventoryLevel(shop, item, 4, levels[0].updated_at)]  # type: ignore[index]


def test_a_count_waiting_for_the_lock_compares_with_what_the_other_writer_left(
    server_storage: SqlStorage,
) -> None:
    shop, [item] = _shop(server_storage)
    server_storage.inventory.set_quantity("t", shop, item, 3, actor="setup")
    conn, transaction = _holding_the_level(server_storage, shop, item, 7)
    outcome: list[object] = []

    def count() -> None:
        try:
            outcome.append(
                server_storage.inventory.set_quantity(
                    "t", shop, item, 10, actor="a", expected_quantity=7
                )
            )
        except Exception as error:  # the outcome is the assertion
            outcome.append(error)

    try:
        thread = threading.Thread(target=count)
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive(), outcome
        transaction.commit()
    finally:
        conn.close()
    thread.join(WAIT)
    [level] = outcome
    assert isinstance(level, InventoryLevel), level
    assert level.quantity == 10


def test_batches_over_the_same_items_in_opposite_orders_never_deadlock(
    server_storage: SqlStorage,
) -> None:
    retries: list[float] = []
    counting = Transactor(server_storage.engine, SqlOptions(), sleep=retries.append)
    storage = sql_storage(server_storage.engine, SqlOptions(), owns_engine=False, tx=counting)
    rounds = 15
    shop, made = _shop(storage, items=2 * rounds + 2)
    a, b = made[:2]
    for item in (a, b):
        storage.inventory.set_quantity("t", shop, item, 10_000, actor="setup")
    # Each round also receives two items the store has never held, so that both batches
    # create the same two new levels: the creation is ordered too.
    fresh = [(made[2 + 2 * n], made[3 + 2 * n]) for n in range(rounds)]
    barrier = threading.Barrier(2)

    def run(reverse: bool) -> None:
        for x, y in fresh:
            sales = [Adjustment(a, -1, Reason.sold), Adjustment(b, -1, Reason.sold)]
            receipts = [Adjustment(x, 1, Reason.received), Adjustment(y, 1, Reason.received)]
            for batch in (sales, receipts):
                barrier.wait(timeout=WAIT)
                storage.inventory.adjust("t", shop, batch[::-1] if reverse else batch, actor="a")

    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(run, False), pool.submit(run, True)]:
            future.result()
    # A deadlock (40P01) would have been retried, and counted here.
    assert retries == []
    levels = storage.inventory.list_levels("t", shop, item_ids=None, after=None, limit=100)
    quantities = {level.item_id: level.quantity for level in levels}
    assert quantities[a] == quantities[b] == 10_000 - 2 * rounds
    assert all(quantities[x] == quantities[y] == 2 for x, y in fresh)


def test_level_writes_run_at_read_committed_and_other_writes_at_serializable(
    server_storage: SqlStorage,
) -> None:
    def level(conn: sa.Connection) -> str:
        return str(conn.exec_driver_sql("SHOW transaction_isolation").scalar())

    tx = server_storage.tx
    assert tx.write(level, locks_rows=True) == "read committed"
    assert tx.write(level) == "serializable"
    assert tx.locking_isolation == "READ COMMITTED"


def test_without_read_committed_cockroachdb_level_writes_stay_serializable(
    new_pg_database: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A CockroachDB cluster without sql.txn.read_committed_isolation.enabled runs a
    # transaction that asks for READ COMMITTED at SERIALIZABLE; the first connection finds
    # that out. The PostgreSQL server here always grants it, so the answer is played.
    asked: list[str] = []

    def cluster_without_it(conn: sa.Connection) -> bool:
        asked.append(conn.engine.dialect.name)
        return False

    monkeypatch.setattr(transactions_module, "read_committed_available", cluster_without_it)
    url = new_pg_database("cockroachdb+psycopg")
    AlembicSchemaManager(url).upgrade()
    engine = create_engine(url, SqlOptions())
    try:
        tx = Transactor(engine, SqlOptions())
        assert tx.read(lambda conn: 1) == 1
        assert asked == ["cockroachdb"]
        isolation = tx.write(
            lambda conn: str(conn.exec_driver_sql("SHOW transaction_isolation").scalar()),
            locks_rows=True,
        )
        assert isolation == "serializable"
        assert tx.locking_isolation == "SERIALIZABLE"
        tx.read(lambda conn: 1)
        assert asked == ["cockroachdb"]  # asked once, at the first connection
    finally:
        engine.dispose()


@pytest.mark.parametrize("write", ["adjust", "count"])
def test_an_item_deleted_while_its_first_level_is_written_is_not_found(
    server_storage: SqlStorage, write: str
) -> None:
    shop, [item] = _shop(server_storage)
    deleted: list[bool] = []

    def delete_the_item_first(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        # Between the write's checks and its insert, another request deletes the item (it
        # holds no stock, so that is allowed) and commits.
        if statement.startswith("INSERT INTO inventory_levels") and not deleted:
            deleted.append(True)
            with server_storage.engine.begin() as other:
                other.execute(sa.text("DELETE FROM items WHERE id = :i"), {"i": item})

    def first_level() -> object:
        if write == "adjust":
            return server_storage.inventory.adjust(
                "t", shop, [Adjustment(item, 2, Reason.received)], actor="a"
            )
        return server_storage.inventory.set_quantity("t", shop, item, 2, actor="a")

    sa.event.listen(server_storage.engine, "before_cursor_execute", delete_the_item_first)
    try:
        with pytest.raises(NotFound) as caught:
            first_level()
    finally:
        sa.event.remove(server_storage.engine, "before_cursor_execute", delete_the_item_first)
    assert deleted
    assert (caught.value.resource, caught.value.key) == ("item", item)
