"""Alembic owns the schema: an upgraded empty database is exactly the models, on every backend."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from adapters.storage.sql import AlembicSchemaManager, SqlOptions, SqlStore, schema
from adapters.storage.sql.engine import create_engine
from adapters.storage.sql.tables import metadata
from core.errors import StorageUnavailable

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


def test_upgrading_an_empty_sqlite_database_yields_exactly_the_models_schema(
    sqlite_url: str,
) -> None:
    manager = AlembicSchemaManager(sqlite_url)
    assert manager.current() is None
    assert manager.upgrade() == manager.head()
    assert _differences(sqlite_url) == []
    assert {"ix_stores_chain_id_id", "ix_inventory_levels_item_id_store_id"} <= _index_names(
        sqlite_url
    )


def test_upgrading_an_empty_postgresql_database_yields_exactly_the_models_schema(
    new_pg_database: Callable[[str], str],
) -> None:
    url = new_pg_database("postgresql+psycopg")
    manager = AlembicSchemaManager(url)
    assert manager.current() is None
    assert manager.upgrade() == manager.head()
    assert _differences(url) == []


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
        }
    finally:
        engine.dispose()
    assert manager.current() == manager.head()


def test_upgrading_twice_changes_nothing(sqlite_url: str) -> None:
    manager = AlembicSchemaManager(sqlite_url)
    first = manager.upgrade()
    assert manager.upgrade() == first == manager.current()


def test_a_store_on_an_empty_database_is_not_ready_and_says_to_run_db_upgrade(
    sqlite_url: str,
) -> None:
    store = SqlStore(create_engine(sqlite_url, SqlOptions()))
    try:
        with pytest.raises(StorageUnavailable, match=r"run `commerce db upgrade`"):
            store.check()
        with pytest.raises(StorageUnavailable, match=r"run `commerce db upgrade`"):
            store.list_tenants()
    finally:
        store.close()


def test_a_store_on_a_schema_that_is_behind_names_both_revisions_and_the_command(
    sqlite_store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    current = schema.migrations().head
    newer = schema.Migrations(head="9999", known=frozenset({current, "9999"}))
    monkeypatch.setattr(schema, "migrations", lambda: newer)
    with pytest.raises(StorageUnavailable) as caught:
        sqlite_store.check()
    assert caught.value.detail == (
        f"database schema is at {current}, this version needs 9999: run `commerce db upgrade`"
    )


def test_a_schema_newer_than_this_version_is_accepted_during_a_rolling_upgrade(
    sqlite_store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    older = schema.Migrations(head="0000", known=frozenset({"0000"}))
    monkeypatch.setattr(schema, "migrations", lambda: older)
    sqlite_store.check()


def test_docs_schema_sql_is_what_the_migrations_generate_for_cockroachdb() -> None:
    generated = AlembicSchemaManager("cockroachdb://root@localhost:26257/commercedb").upgrade_sql()
    assert SCHEMA_SQL.read_text() == generated, (
        "docs/schema.sql is stale: regenerate it with `commerce --database "
        "cockroachdb://root@localhost:26257/commercedb db upgrade --sql > docs/schema.sql`"
    )
