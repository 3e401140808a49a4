"""The request's transaction on SQL (``ambient.py``): every call joins it once, at the level it
began with; a conflict or a hung database inside it dooms it whole, a 503 with nothing
committed, instead of a retry of one statement out of many (issue 9, item 2)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from commerce.adapters.storage.sql import SqlOptions, SqlStorage, sql_storage
from commerce.adapters.storage.sql.engine import create_engine
from commerce.core.errors import StorageUnavailable
from commerce.core.events import LogEvent
from commerce.core.models import Adjustment, NewChain, NewItem, NewStore, Reason
from tests.storage.tcpproxy import TcpProxy

WAIT = 30.0
DEADLINE = 2.0
MARGIN = 4.0
"""Generous on purpose: the machine is small and noisy; the point is seconds, not minutes."""


def _shop(storage: SqlStorage, items: int = 2) -> tuple[int, list[int]]:
    """Tenant ``t``, one store holding 10 of each of ``items`` items."""
    catalogue = storage.catalogue
    catalogue.create_tenant("t", "T")
    chain = catalogue.create_chain("t", NewChain(name="Chain"))
    shop = catalogue.create_store("t", NewStore(chain_id=chain.id, name="Shop"))
    ids = []
    for n in range(items):
        item = catalogue.create_item("t", NewItem(sku=f"S{n}", name="I", cost=Decimal(1)))
        storage.inventory.set_quantity("t", shop.id, item.id, 10, actor="test")
        ids.append(item.id)
    return shop.id, ids


def _sell(storage: SqlStorage, shop: int, item: int) -> None:
    storage.inventory.adjust(
        "t", shop, [Adjustment(item_id=item, delta=-1, reason=Reason.sold)], actor="test"
    )


def _quantities(storage: SqlStorage, shop: int) -> list[int]:
    levels = storage.inventory.list_levels("t", shop, item_ids=None, after=None, limit=10)
    return [level.quantity for level in levels]


def test_every_call_joins_one_read_committed_transaction_on_postgresql(
    pg_storage: SqlStorage,
) -> None:
    def facts(conn: sa.Connection) -> tuple[str, int]:
        level = conn.exec_driver_sql("SHOW transaction_isolation").scalar()
        xid = conn.exec_driver_sql("SELECT txid_current()").scalar()
        return str(level), int(xid or 0)

    transaction = pg_storage.idempotency.begin_transaction()
    try:
        # A plain write (SERIALIZABLE on its own) joins at the transaction's level, and
        # reads and writes share the one transaction.
        written = pg_storage.tx.write(facts)
        locking = pg_storage.tx.write(facts, locks_rows=True)
        read = pg_storage.tx.read(facts)
    finally:
        transaction.rollback()
    assert written == locking == read
    assert written[0] == "read committed"
    assert pg_storage.tx.write(facts)[0] == "serializable", "outside it, as before"


def test_a_transaction_on_sqlite_holds_the_write_lock_until_it_ends(
    sqlite_storage: SqlStorage,
) -> None:
    shop, [item, _] = _shop(sqlite_storage)
    transaction = sqlite_storage.idempotency.begin_transaction()
    _sell(sqlite_storage, shop, item)
    other = threading.Thread(target=_sell, args=(sqlite_storage, shop, item))
    other.start()
    other.join(timeout=0.3)
    assert other.is_alive(), "another writer waits for the transaction"
    assert _quantities(sqlite_storage, shop) == [9, 10], "inside, its own write is seen"
    transaction.commit()
    other.join(timeout=WAIT)
    assert _quantities(sqlite_storage, shop) == [8, 10]


def test_a_deadlock_inside_is_unavailable_at_once_and_commits_nothing_of_that_transaction(
    pg_storage: SqlStorage, caplog: pytest.LogCaptureFixture
) -> None:
    shop, [a, b] = _shop(pg_storage)
    both_sold_one = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def request(name: str, first: int, second: int) -> None:
        transaction = pg_storage.idempotency.begin_transaction()
        try:
            _sell(pg_storage, shop, first)
            both_sold_one.wait(timeout=WAIT)
            try:
                _sell(pg_storage, shop, second)  # one of the two is the deadlock's victim
            except StorageUnavailable as error:
                outcomes[name] = "sell: " + error.detail
                with pytest.raises(StorageUnavailable):
                    _sell(pg_storage, shop, second)  # doomed: nothing more runs
                with pytest.raises(StorageUnavailable):
                    transaction.commit()
                return
            transaction.commit()
            outcomes[name] = "committed"
        finally:
            transaction.rollback()

    caplog.set_level(logging.INFO)
    threads = [
        threading.Thread(target=request, args=("ab", a, b)),
        threading.Thread(target=request, args=("ba", b, a)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=WAIT)
    assert sorted(outcomes.values())[0] == "committed", outcomes
    assert "conflicted" in sorted(outcomes.values())[1], outcomes
    assert _quantities(pg_storage, shop) == [9, 9], "the victim's first sale went with it"
    retried = [
        r for r in caplog.records if getattr(r, "event", None) is LogEvent.TRANSACTION_RETRIED
    ]
    assert retried == [], "no statement was retried inside the transaction"


HUNG = SqlOptions(
    connect_timeout=2, statement_timeout=1, pool_timeout=2, retry_attempts=2, deadline=DEADLINE
)


@pytest.fixture
def proxied(pg_storage: SqlStorage) -> Iterator[tuple[SqlStorage, TcpProxy]]:
    """A storage that reaches ``pg_storage``'s database through a proxy the test can stall."""
    target = make_url(pg_storage.engine.url)
    proxy = TcpProxy((target.host or "127.0.0.1", target.port or 5432))
    proxy.start()
    url = target.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
    storage = sql_storage(create_engine(url, HUNG), HUNG)
    yield storage, proxy
    storage.close()
    proxy.resume()
    proxy.cut()


def test_a_database_that_hangs_inside_is_unavailable_within_the_deadline_and_recovers(
    proxied: tuple[SqlStorage, TcpProxy],
) -> None:
    storage, proxy = proxied
    shop, [item, _] = _shop(storage)
    transaction = storage.idempotency.begin_transaction()
    _sell(storage, shop, item)
    proxy.stall()
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="deadline"):
        _sell(storage, shop, item)
    with pytest.raises(StorageUnavailable, match="deadline"):
        transaction.commit()
    transaction.rollback()
    assert time.monotonic() - started < DEADLINE + MARGIN
    proxy.resume()
    # The cut connection was discarded; the next call gets a fresh one, and nothing of the
    # transaction was committed.
    assert _quantities(storage, shop) == [10, 10]
    again = storage.idempotency.begin_transaction()
    _sell(storage, shop, item)
    again.commit()
    assert _quantities(storage, shop) == [9, 10]
