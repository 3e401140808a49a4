"""Alembic owns the schema: an upgraded empty database is exactly the models, on every backend."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from commerce.adapters.storage.sql import (
    AlembicSchemaManager,
    SqlOptions,
    SqlStorage,
    schema,
    sql_storage,
)
from commerce.adapters.storage.sql.engine import create_engine
from commerce.adapters.storage.sql.tables import metadata
from commerce.core.errors import StorageUnavailable
from commerce.core.models import Adjustment, ChangeFilter, NewChain, NewItem, NewStore, Reason

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_SQL = ROOT / "docs" / "schema.sql"


def _differences(url: str) -> list[object]:
    engine = create_engine(url, SqlOptions())
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            diff: list[object] = compare_metadata(context, metadata)
            return diff
    finally:
        engine.dispose()


def _index_names(url: str) -> set[str]:
    engine = create_engine(url, SqlOptions())
    try:
        inspector = sa.inspect(engine)
        return {
            str(ix["name"])
            for table in inspector.get_table_names()
            for ix in inspector.get_indexes(table)
        }
    finally:
        engine.dispose()


def _check_constraints(url: str) -> set[tuple[str, str]]:
    """(table, name) of every CHECK constraint, which Alembic's comparison does not look at."""
    engine = create_engine(url, SqlOptions())
    try:
        inspector = sa.inspect(engine)
        return {
            (table, str(check["name"]))
            for table in inspector.get_table_names()
            for check in inspector.get_check_constraints(table)
        }
    finally:
        engine.dispose()


MODEL_CHECKS = {
    (table.name, str(constraint.name))
    for table in metadata.tables.values()
    for constraint in table.constraints
    if isinstance(constraint, sa.CheckConstraint)
}


def test_upgrading_an_empty_sqlite_database_yields_exactly_the_models_schema(
    sqlite_url: str,
) -> None:
    manager = AlembicSchemaManager(sqlite_url)
    assert manager.current() is None
    assert manager.upgrade() == manager.head()
    assert _differences(sqlite_url) == []
    assert {
        "ix_stores_chain_id_id",
        "ix_inventory_levels_item_id_store_id",
        "ix_inventory_changes_store_id_item_id_id",
        "ix_inventory_changes_store_id_item_id_created_at_id",
        "ix_idempotency_keys_claimed_at",
        "ix_api_keys_tenant_id_id",
    } <= _index_names(sqlite_url)
    assert _check_constraints(sqlite_url) == MODEL_CHECKS


def test_upgrading_an_empty_postgresql_database_yields_exactly_the_models_schema(
    new_pg_database: Callable[[str], str],
) -> None:
    url = new_pg_database("postgresql+psycopg")
    manager = AlembicSchemaManager(url)
    assert manager.current() is None
    assert manager.upgrade() == manager.head()
    assert _differences(url) == []
    assert _check_constraints(url) == MODEL_CHECKS


def test_the_cockroachdb_dialect_migrates_up_down_and_up_again(
    new_pg_database: Callable[[str], str],
) -> None:
    url = new_pg_database("cockroachdb+psycopg")
    manager = AlembicSchemaManager(url)
    assert manager.upgrade() == manager.head()
    engine = create_engine(url, SqlOptions())
    try:
        assert set(sa.inspect(engine).get_table_names()) >= {
            "tenants",
            "chains",
            "stores",
            "items",
            "inventory_levels",
            "inventory_changes",
            "idempotency_keys",
            "api_keys",
        }
    finally:
        engine.dispose()
    assert manager.current() == manager.head()
    _downgrade(url, "0001")
    assert manager.current() == "0001"
    assert manager.upgrade() == manager.head()


def _migrate(url: str, revision: str, step: Callable[[Config, str], None]) -> None:
    engine = create_engine(url, SqlOptions())
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "cockroachdb":
                conn.execution_options(isolation_level="AUTOCOMMIT")
            config = schema._config()
            config.attributes["connection"] = conn
            step(config, revision)
            if conn.in_transaction():
                conn.commit()
    finally:
        engine.dispose()


def _downgrade(url: str, revision: str) -> None:
    _migrate(url, revision, command.downgrade)


def _upgrade(url: str, revision: str) -> None:
    """Up to ``revision`` only, not the head."""
    _migrate(url, revision, command.upgrade)


def test_the_ledger_migration_goes_down_and_up_again_keeping_the_levels(sqlite_url: str) -> None:
    manager = AlembicSchemaManager(sqlite_url)
    manager.upgrade()
    storage = sql_storage(create_engine(sqlite_url, SqlOptions()))
    catalogue, inventory = storage.catalogue, storage.inventory
    try:
        catalogue.create_tenant("t", "T")
        chain = catalogue.create_chain("t", NewChain(name="C"))
        shop = catalogue.create_store("t", NewStore(chain_id=chain.id, name="S"))
        item = catalogue.create_item("t", NewItem(sku="A", name="A", cost=Decimal("1.00")))
        inventory.set_quantity("t", shop.id, item.id, 7, actor="test")
        _downgrade(sqlite_url, "0001")
        assert manager.current() == "0001"
        engine = create_engine(sqlite_url, SqlOptions())
        try:
            tables = set(sa.inspect(engine).get_table_names())
        finally:
            engine.dispose()
        assert not tables & {"inventory_changes", "idempotency_keys"}
        manager.upgrade()
        [level] = inventory.list_levels("t", shop.id, item_ids=None, after=None, limit=5)
        assert level.quantity == 7
        # The level that was there before the ledger gets an opening entry, so the ledger
        # sums to it and as-of answers for it; changes after that go on from it.
        [opening] = inventory.list_changes("t", shop.id, ChangeFilter(), after=None, limit=5)
        assert (opening.delta, opening.quantity_after, opening.reason, opening.actor) == (
            7,
            7,
            Reason.count,
            "migration",
        )
        assert opening.created_at == level.updated_at
        inventory.adjust("t", shop.id, [Adjustment(item.id, -2, Reason.sold)], actor="test")
        entries = inventory.list_changes("t", shop.id, ChangeFilter(), after=None, limit=5)
        assert [(e.delta, e.quantity_after) for e in entries] == [(7, 7), (-2, 5)]
    finally:
        storage.close()


def test_the_check_constraints_migration_keeps_the_data_the_indexes_and_clustered_tables(
    sqlite_url: str,
) -> None:
    """SQLite rebuilds a table to add a constraint: nothing else of it may change."""
    manager = AlembicSchemaManager(sqlite_url)
    manager.upgrade()
    _downgrade(sqlite_url, "0003")
    storage = sql_storage(create_engine(sqlite_url, SqlOptions()))
    try:
        catalogue, inventory = storage.catalogue, storage.inventory
        catalogue.create_tenant("t", "T")
        chain = catalogue.create_chain("t", NewChain(name="C"))
        shop = catalogue.create_store("t", NewStore(chain_id=chain.id, name="S"))
        item = catalogue.create_item("t", NewItem(sku="A", name="A", cost=Decimal("2.50")))
        inventory.set_quantity("t", shop.id, item.id, 7, actor="test")
        inventory.adjust("t", shop.id, [Adjustment(item.id, -3, Reason.sold)], actor="test")
        before = inventory.list_changes("t", shop.id, ChangeFilter(), after=None, limit=5)
        indexes = _index_names(sqlite_url)
        _upgrade(sqlite_url, "0004")
        assert manager.current() == "0004"
        assert catalogue.get_item("t", item.id) == item
        assert inventory.list_changes("t", shop.id, ChangeFilter(), after=None, limit=5) == before
        assert _index_names(sqlite_url) == indexes
        with storage.engine.connect() as conn:
            clustered = conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE sql LIKE '%WITHOUT ROWID%'"
            ).scalars()
            assert set(clustered) == {"inventory_levels", "inventory_changes"}
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
    finally:
        storage.close()


def test_an_upgrade_cut_off_after_some_constraints_is_finished_by_running_it_again(
    new_pg_database: Callable[[str], str],
) -> None:
    """On CockroachDB every statement commits alone, so 0004 may stop half-way."""
    url = new_pg_database("cockroachdb+psycopg")
    manager = AlembicSchemaManager(url)
    manager.upgrade()
    engine = create_engine(url, SqlOptions())
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE items DROP CONSTRAINT ck_items_sku_not_empty")
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0003'")
    finally:
        engine.dispose()
    assert manager.upgrade() == manager.head()


def test_upgrading_twice_changes_nothing(sqlite_url: str) -> None:
    manager = AlembicSchemaManager(sqlite_url)
    first = manager.upgrade()
    assert manager.upgrade() == first == manager.current()


def test_storage_on_an_empty_database_is_not_ready_and_says_to_run_db_upgrade(
    sqlite_url: str,
) -> None:
    storage = sql_storage(create_engine(sqlite_url, SqlOptions()))
    try:
        with pytest.raises(StorageUnavailable, match=r"run `commerce db upgrade`"):
            storage.check()
        with pytest.raises(StorageUnavailable, match=r"run `commerce db upgrade`"):
            storage.catalogue.list_tenants()
    finally:
        storage.close()


def test_storage_on_a_schema_that_is_behind_names_both_revisions_and_the_command(
    sqlite_storage: SqlStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    current = schema.migrations().head
    newer = schema.Migrations(head="9999", known=frozenset({current, "9999"}))
    monkeypatch.setattr(schema, "migrations", lambda: newer)
    with pytest.raises(StorageUnavailable) as caught:
        sqlite_storage.check()
    assert caught.value.detail == (
        f"database schema is at {current}, this version needs 9999: run `commerce db upgrade`"
    )


def test_a_schema_newer_than_this_version_is_accepted_during_a_rolling_upgrade(
    sqlite_storage: SqlStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    older = schema.Migrations(head="0000", known=frozenset({"0000"}))
    monkeypatch.setattr(schema, "migrations", lambda: older)
    sqlite_storage.check()


def test_upgrading_a_schema_a_newer_release_migrated_does_nothing_and_says_so(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from commerce.entrypoints.cli import main

    manager = AlembicSchemaManager(sqlite_url)
    manager.upgrade()
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:  # as a newer release would leave it
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_future'"))
    engine.dispose()
    # A rollback runs the older release's upgrade step again: not an error, and no change.
    assert manager.upgrade() == "9999_future"
    assert manager.current() == "9999_future"
    assert main(["--database", sqlite_url, "db", "upgrade"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("9999_future: the database is at a newer revision")
    assert "nothing to do" in out


def test_docs_schema_sql_is_what_the_migrations_generate_for_cockroachdb() -> None:
    generated = AlembicSchemaManager("cockroachdb://root@localhost:26257/commercedb").upgrade_sql()
    assert SCHEMA_SQL.read_text() == generated, (
        "docs/schema.sql is stale: regenerate it with `commerce --database "
        "cockroachdb://root@localhost:26257/commercedb db upgrade --sql > docs/schema.sql`"
    )
