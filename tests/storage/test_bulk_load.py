"""The SQL bulk loader: one transaction with the indexes (and PostgreSQL's foreign keys) made
again after the rows when the tables are empty, one per batch otherwise, and the ledger
accounting for every level either way."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal

import pytest
import sqlalchemy as sa

from commerce.adapters.storage.memory import memory_storage
from commerce.adapters.storage.sql import (
    AlembicSchemaManager,
    SqlBulkLoader,
    SqlOptions,
    SqlStorage,
    sql_storage,
)
from commerce.adapters.storage.sql.engine import create_engine
from commerce.core import seeding
from commerce.core.models import NewChain, NewItem, NewStore
from commerce.core.seeding import MAX_QUANTITY, SeedPlan, seed_generated

PLAN = SeedPlan(chains=1, stores_per_chain=3, items=7, seed=5, batch=4)


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[SqlStorage]:
    """A migrated, empty database of its own (PostgreSQL's skipped if there is no server)."""
    if request.param == "sqlite":
        url = sqlite_url
    else:
        new_pg_database: Callable[[str], str] = request.getfixturevalue("new_pg_database")
        url = new_pg_database("postgresql+psycopg")
    AlembicSchemaManager(url).upgrade()
    made = sql_storage(create_engine(url, SqlOptions()))
    yield made
    made.close()


def _schema(conn: sa.Connection) -> set[str]:
    """The two tables' indexes and constraints, as the database describes them."""
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql(
            "SELECT name || ': ' || coalesce(sql, '') FROM sqlite_master"
            " WHERE tbl_name IN ('inventory_levels', 'inventory_changes')"
        )
        return {str(r) for r in rows.scalars()}
    indexes = conn.exec_driver_sql(
        "SELECT indexname || ': ' || indexdef FROM pg_indexes"
        " WHERE tablename IN ('inventory_levels', 'inventory_changes')"
    ).scalars()
    constraints = conn.exec_driver_sql(
        "SELECT conname || ': ' || pg_get_constraintdef(oid) || ' ' || convalidated::text"
        " FROM pg_constraint"
        " WHERE conrelid IN ('inventory_levels'::regclass, 'inventory_changes'::regclass)"
    ).scalars()
    return {str(r) for r in [*indexes, *constraints]}


def _unbalanced(conn: sa.Connection) -> int:
    """Levels whose ledger entries do not sum to them, or that have none."""
    return int(
        conn.exec_driver_sql(
            "SELECT count(*) FROM inventory_levels l LEFT JOIN ("
            "  SELECT store_id, item_id, sum(delta) AS total FROM inventory_changes"
            "  GROUP BY store_id, item_id) c"
            " ON c.store_id = l.store_id AND c.item_id = l.item_id"
            " WHERE c.total IS NULL OR c.total <> l.quantity"
        ).scalar_one()
    )


def _count(conn: sa.Connection, table: str) -> int:
    return int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one())  # noqa: S608


class _Watching(SqlBulkLoader):
    """Notes, at each batch of levels, whether the load is the one-transaction kind."""

    def __init__(self, storage: SqlStorage) -> None:
        super().__init__(storage)
        self.seen: list[bool] = []

    def add_levels(self, tenant: str, rows: Sequence[tuple[int, int, int]]) -> int:
        added = super().add_levels(tenant, rows)
        self.seen.append(self.rebuilding)
        return added


def test_a_load_into_empty_tables_makes_every_index_again_and_balances_the_ledger(
    storage: SqlStorage,
) -> None:
    with storage.engine.connect() as conn:
        before = _schema(conn)
    loader = _Watching(storage)
    counts = seed_generated(storage.catalogue, storage.inventory, "t", PLAN, loader=loader)
    assert counts.levels == 21
    assert loader.seen == [True] * 6  # 21 levels in batches of 4: one transaction for all
    assert not loader.rebuilding  # closed: committed
    with storage.engine.connect() as conn:
        assert _schema(conn) == before
        assert _count(conn, "inventory_levels") == _count(conn, "inventory_changes") == 21
        assert _unbalanced(conn) == 0

    # The tables have rows now: a second load goes in a transaction per batch.
    again = _Watching(storage)
    seed_generated(storage.catalogue, storage.inventory, "t", PLAN, loader=again)
    assert again.seen == [False] * 6
    with storage.engine.connect() as conn:
        assert _schema(conn) == before
        assert _count(conn, "inventory_levels") == 42
        assert _unbalanced(conn) == 0


def test_a_failed_load_into_empty_tables_leaves_them_empty_with_their_indexes(
    storage: SqlStorage,
) -> None:
    with storage.engine.connect() as conn:
        before = _schema(conn)
    seeding.ensure_tenant(storage.catalogue, "t")
    loader = SqlBulkLoader(storage)
    [chain] = loader.add_chains("t", [NewChain(name="c")])
    [shop] = loader.add_stores("t", [NewStore(chain_id=chain, name="s")])
    [item] = loader.add_items("t", [NewItem(sku="S", name="n", cost=Decimal("1.00"))])
    loader.add_levels("t", [(shop, item, 3)])

    def no_such_item() -> None:
        loader.add_levels("t", [(shop, item + 1, 3)])
        loader.close()  # PostgreSQL checks the foreign keys here, as it adds them back

    with pytest.raises(sa.exc.IntegrityError):
        no_such_item()
    loader.close()
    with storage.engine.connect() as conn:
        assert _schema(conn) == before
        assert _count(conn, "inventory_levels") == _count(conn, "inventory_changes") == 0


def test_sqlite_gets_its_page_cache_back_after_a_load(sqlite_url: str) -> None:
    AlembicSchemaManager(sqlite_url).upgrade()
    made = sql_storage(create_engine(sqlite_url, SqlOptions()))
    try:
        with made.engine.connect() as conn:
            cache = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
        loader = SqlBulkLoader(made)
        seed_generated(made.catalogue, made.inventory, "t", PLAN, loader=loader)
        with made.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == cache
    finally:
        made.close()


def test_generated_quantities_are_what_randint_would_draw() -> None:
    """The seeder draws its quantities inline; a seed still gives the quantities it gave."""
    loaded: list[tuple[int, int, int]] = []

    class Recording(seeding.UseCaseLoader):
        def add_levels(self, tenant: str, rows: Sequence[tuple[int, int, int]]) -> int:
            loaded.extend(rows)
            return len(rows)

    memory = memory_storage()
    plan = SeedPlan(chains=1, stores_per_chain=4, items=50, seed=11, batch=64)
    loader = Recording(memory.catalogue, memory.inventory)
    seed_generated(memory.catalogue, memory.inventory, "t", plan, loader=loader)
    rng = random.Random(plan.seed)
    for _ in range(plan.items):
        rng.randint(50, 50_000)  # the items' costs come first
    assert [q for _, _, q in loaded] == [rng.randint(0, MAX_QUANTITY) for _ in range(200)]
