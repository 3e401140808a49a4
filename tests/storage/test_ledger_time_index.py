"""Migration 0005: the ledger's index by time, added (and taken away) without touching the data."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from alembic import command

from commerce.adapters.storage.sql import AlembicSchemaManager, SqlOptions, schema, sql_storage
from commerce.adapters.storage.sql.engine import create_engine
from commerce.core.models import Adjustment, ChangeFilter, NewChain, NewItem, NewStore, Reason

INDEX = "ix_inventory_changes_store_id_created_at_id"


def _downgrade(url: str, revision: str) -> None:
    engine = create_engine(url, SqlOptions())
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "cockroachdb":
                conn.execution_options(isolation_level="AUTOCOMMIT")
            config = schema._config()
            config.attributes["connection"] = conn
            command.downgrade(config, revision)
            if conn.in_transaction():
                conn.commit()
    finally:
        engine.dispose()


def _ledger_indexes(url: str) -> set[str]:
    engine = create_engine(url, SqlOptions())
    try:
        return {str(ix["name"]) for ix in sa.inspect(engine).get_indexes("inventory_changes")}
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql+psycopg", "cockroachdb+psycopg"])
def url(
    request: pytest.FixtureRequest, sqlite_url: str, new_pg_database: Callable[[str], str]
) -> str:
    kind: str = request.param
    return sqlite_url if kind == "sqlite" else new_pg_database(kind)


def test_0005_adds_the_index_by_time_and_goes_down_and_up_keeping_the_ledger(url: str) -> None:
    manager = AlembicSchemaManager(url)
    manager.upgrade()
    _downgrade(url, "0004")
    assert INDEX not in _ledger_indexes(url)
    storage = sql_storage(create_engine(url, SqlOptions()))
    try:
        catalogue, inventory = storage.catalogue, storage.inventory
        catalogue.create_tenant("t", "T")
        chain = catalogue.create_chain("t", NewChain(name="C"))
        shop = catalogue.create_store("t", NewStore(chain_id=chain.id, name="S")).id
        item = catalogue.create_item("t", NewItem(sku="A", name="A", cost=Decimal("1.00"))).id
        inventory.set_quantity("t", shop, item, 7, actor="previous release")
        inventory.adjust("t", shop, [Adjustment(item, -2, Reason.sold)], actor="previous release")
        before = inventory.list_changes("t", shop, ChangeFilter(), after=None, limit=10)
        assert manager.upgrade() == manager.head() == "0005"
        assert INDEX in _ledger_indexes(url)
        assert manager.upgrade() == "0005"  # again: nothing to do
        assert inventory.list_changes("t", shop, ChangeFilter(), after=None, limit=10) == before
        since = ChangeFilter(since=before[0].created_at - timedelta(seconds=1))
        assert inventory.list_changes("t", shop, since, after=None, limit=10) == before
    finally:
        storage.close()


def test_a_concurrent_build_cut_off_half_way_is_built_again_on_postgresql(
    new_pg_database: Callable[[str], str],
) -> None:
    """CREATE INDEX CONCURRENTLY that fails leaves an invalid index of that name behind,
    which IF NOT EXISTS alone would keep: the migration drops it and builds it again."""
    url = new_pg_database("postgresql+psycopg")
    manager = AlembicSchemaManager(url)
    manager.upgrade()
    engine = create_engine(url, SqlOptions())
    valid = sa.text(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = CAST(:name AS regclass)"
    ).bindparams(name=INDEX)
    try:
        with engine.begin() as conn:
            assert conn.execute(valid).scalar() is True
            # As an interrupted build leaves it (the server's superuser may mark it so).
            conn.execute(
                sa.text(
                    "UPDATE pg_index SET indisvalid = false"
                    " WHERE indexrelid = CAST(:name AS regclass)"
                ).bindparams(name=INDEX)
            )
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0004'")
        assert manager.upgrade() == "0005"
        with engine.connect() as conn:
            assert conn.execute(valid).scalar() is True
    finally:
        engine.dispose()
