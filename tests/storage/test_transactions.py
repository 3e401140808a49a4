"""The retry helper against real serialization failures: concurrent SERIALIZABLE transactions."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
import sqlalchemy as sa

from commerce.adapters.storage.sql import SqlOptions, SqlStorage, sql_storage
from commerce.adapters.storage.sql.engine import create_engine, sqlstate
from commerce.adapters.storage.sql.transactions import Transactor
from commerce.core.errors import StorageUnavailable
from commerce.core.models import NewChain, NewItem, NewStore

BARRIER_TIMEOUT = 30


def _counter_table(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL)")
        conn.exec_driver_sql("INSERT INTO counter VALUES (1, 0)")


def _read_then_increment(barrier: threading.Barrier, attempts: list[int]) -> Callable[..., int]:
    """Both callers read before either writes: at SERIALIZABLE one of them must fail (40001).

    Only first attempts meet at the barrier; a retry runs alone, as it would in production.
    """

    def work(conn: sa.Connection) -> int:
        attempts.append(1)
        n = conn.exec_driver_sql("SELECT n FROM counter WHERE id = 1").scalar_one()
        if len(attempts) <= 2:
            barrier.wait(timeout=BARRIER_TIMEOUT)
        conn.exec_driver_sql("UPDATE counter SET n = %(n)s WHERE id = 1", {"n": n + 1})
        return int(n) + 1

    return work


def test_concurrent_serializable_writers_on_postgresql_are_retried_until_both_commit(
    new_pg_database: Callable[[str], str],
) -> None:
    engine = create_engine(new_pg_database("postgresql+psycopg"), SqlOptions())
    _counter_table(engine)
    delays: list[float] = []
    tx = Transactor(engine, SqlOptions(retry_attempts=5), sleep=delays.append)
    barrier = threading.Barrier(2)
    attempts: list[int] = []
    work = _read_then_increment(barrier, attempts)
    with ThreadPoolExecutor(2) as pool:
        results = sorted(f.result() for f in [pool.submit(tx.write, work) for _ in range(2)])
    with engine.connect() as conn:
        final = conn.exec_driver_sql("SELECT n FROM counter").scalar_one()
    engine.dispose()
    # Without the retry one increment would be lost or refused; with it both land, in turn.
    assert results == [1, 2]
    assert final == 2
    assert len(attempts) == 3
    assert len(delays) == 1


def test_a_writer_that_keeps_conflicting_gets_storage_unavailable_with_retry_after(
    new_pg_database: Callable[[str], str],
) -> None:
    engine = create_engine(new_pg_database("postgresql+psycopg"), SqlOptions())
    _counter_table(engine)
    tx = Transactor(engine, SqlOptions(retry_attempts=1), sleep=lambda _: None)
    barrier = threading.Barrier(2)
    work = _read_then_increment(barrier, [])
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(tx.write, work) for _ in range(2)]
        outcomes = [f.exception() for f in futures]
    engine.dispose()
    failures = [e for e in outcomes if e is not None]
    assert len(failures) == 1
    failure = failures[0]
    assert isinstance(failure, StorageUnavailable)
    assert failure.retry_after >= 1
    assert "gave up after 1" in failure.detail
    assert sqlstate(failure.__cause__) == "40001"  # type: ignore[arg-type]


def test_the_cockroachdb_dialect_retries_the_same_failures(
    new_pg_database: Callable[[str], str],
) -> None:
    engine = create_engine(new_pg_database("cockroachdb+psycopg"), SqlOptions())
    _counter_table(engine)
    tx = Transactor(engine, SqlOptions(retry_attempts=5), sleep=lambda _: None)
    attempts: list[int] = []
    work = _read_then_increment(threading.Barrier(2), attempts)
    with ThreadPoolExecutor(2) as pool:
        results = sorted(f.result() for f in [pool.submit(tx.write, work) for _ in range(2)])
    engine.dispose()
    assert results == [1, 2]
    assert len(attempts) == 3


def test_many_concurrent_writes_to_one_level_all_land_through_the_storage(
    pg_storage: SqlStorage,
) -> None:
    storage = sql_storage(pg_storage.engine, SqlOptions(retry_attempts=50), owns_engine=False)
    catalogue, inventory = storage.catalogue, storage.inventory
    catalogue.create_tenant("busy", "Busy")
    chain = catalogue.create_chain("busy", NewChain(name="Chain"))
    shop = catalogue.create_store("busy", NewStore(chain_id=chain.id, name="Shop"))
    item = catalogue.create_item("busy", NewItem(sku="HOT", name="Hot item", cost=Decimal("1.00")))
    quantities = list(range(40))
    with ThreadPoolExecutor(8) as pool:
        written = list(
            pool.map(
                lambda q: inventory.set_quantity("busy", shop.id, item.id, q, actor="test"),
                quantities,
            )
        )
    assert sorted(level.quantity for level in written) == quantities
    [level] = inventory.list_levels("busy", shop.id, item_ids=None, after=None, limit=10)
    assert level.quantity in quantities


def test_backoff_grows_exponentially_up_to_its_ceiling_and_is_jittered(
    sqlite_storage: SqlStorage,
) -> None:
    options = SqlOptions(retry_base_delay=0.01, retry_max_delay=0.05)
    full = Transactor(sqlite_storage.engine, options, jitter=lambda: 1.0)
    assert [full.backoff(n) for n in range(1, 6)] == pytest.approx([0.01, 0.02, 0.04, 0.05, 0.05])
    half = Transactor(sqlite_storage.engine, options, jitter=lambda: 0.5)
    assert half.backoff(3) == pytest.approx(0.02)


def test_concurrent_writers_on_sqlite_queue_for_the_lock_instead_of_failing(
    sqlite_storage: SqlStorage,
) -> None:
    catalogue = sqlite_storage.catalogue
    catalogue.create_tenant("t", "T")
    with ThreadPoolExecutor(8) as pool:
        made = list(
            pool.map(lambda n: catalogue.create_chain("t", NewChain(name=f"C{n}")), range(64))
        )
    assert len({c.id for c in made}) == 64
    assert len(catalogue.list_chains("t", after=None, limit=100)) == 64
