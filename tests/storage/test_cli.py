"""``commerce db`` and ``commerce seed`` on SQL URLs, and the one-line refusals around them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from commerce.adapters.storage.sql import SqlBulkLoader, open_sql_storage
from commerce.adapters.storage.sql.schema import migrations
from commerce.entrypoints.bootstrap import bootstrap
from commerce.entrypoints.cli import main
from commerce.entrypoints.config import Settings


@pytest.fixture(autouse=True)
def _no_ambient_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMMERCE_DATABASE_URL", raising=False)


def _count(url: str, table: str) -> int:
    engine = sa.create_engine(make_url(url).set(drivername=_driver(url)))
    try:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one())  # noqa: S608
    finally:
        engine.dispose()


def _driver(url: str) -> str:
    name = make_url(url).drivername
    return {"postgresql": "postgresql+psycopg", "cockroachdb": "cockroachdb+psycopg"}.get(
        name, name
    )


def test_db_upgrade_then_current_reports_the_head(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    head = migrations().head
    assert main(["--database", sqlite_url, "db", "current"]) == 0
    assert capsys.readouterr().out.startswith("none: the database is empty")
    assert main(["--database", sqlite_url, "db", "upgrade"]) == 0
    assert capsys.readouterr().out == f"{head} (head): upgraded from an empty database\n"
    assert main(["--database", sqlite_url, "db", "upgrade"]) == 0
    assert capsys.readouterr().out == f"{head} (head): already up to date\n"
    assert main(["--database", sqlite_url, "db", "current"]) == 0
    assert capsys.readouterr().out == f"{head} (head)\n"


def test_db_upgrade_sql_prints_the_schema_and_touches_nothing(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--database", sqlite_url, "db", "upgrade", "--sql"]) == 0
    out = capsys.readouterr().out
    assert "CREATE TABLE IF NOT EXISTS inventory_levels" in out
    assert "WITHOUT ROWID" in out
    main(["--database", sqlite_url, "db", "current"])
    assert capsys.readouterr().out.startswith("none:")


def test_db_on_memory_says_there_is_nothing_to_migrate(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--database", "memory://", "db", "upgrade"]) == 0
    assert capsys.readouterr().out == "memory:// keeps no schema: nothing to migrate\n"


def test_serve_refuses_a_schema_that_is_behind_with_one_line_naming_the_command(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--database", sqlite_url, "serve", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "`commerce db upgrade`" in err


def test_bad_credentials_are_one_line_and_exit_status_2(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = make_url(pg_url).set(username="no_such_role").render_as_string(False)
    assert main(["--database", url, "db", "current"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no_such_role" in err


def test_seed_generates_every_level_in_bulk_on_sqlite(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["--database", sqlite_url, "db", "upgrade"])
    args = ["--chains", "2", "--stores-per-chain", "3", "--items", "7", "--batch", "4"]
    assert main(["--database", sqlite_url, "seed", "--tenant", "acme", *args]) == 0
    assert "2 chains, 6 stores, 7 items, 42 levels" in capsys.readouterr().out
    # A second run adds a second catalogue rather than tripping over its own SKUs.
    assert main(["--database", sqlite_url, "seed", "--tenant", "acme", *args]) == 0
    assert _count(sqlite_url, "inventory_levels") == 84
    assert _count(sqlite_url, "items") == 14
    _assert_the_ledger_accounts_for_every_level(sqlite_url)


@pytest.mark.parametrize("driver", ["postgresql+psycopg", "cockroachdb+psycopg"])
def test_seed_bulk_loads_on_the_postgresql_server_with_either_dialect(
    new_pg_database: Callable[[str], str], driver: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = new_pg_database(driver)
    main(["--database", url, "db", "upgrade"])
    args = ["--chains", "1", "--stores-per-chain", "4", "--items", "25", "--batch", "30"]
    assert main(["--database", url, "seed", "--tenant", "acme", *args]) == 0
    assert "100 levels" in capsys.readouterr().out
    assert _count(url, "inventory_levels") == 100
    storage = open_sql_storage(url)
    try:
        [chain] = storage.catalogue.list_chains("acme", after=None, limit=5)
        stores = storage.catalogue.list_stores("acme", chain.id, after=None, limit=10)
        levels = storage.inventory.list_levels(
            "acme", stores[0].id, item_ids=None, after=None, limit=100
        )
        assert len(levels) == 25
        assert all(0 <= lv.quantity <= 500 for lv in levels)
    finally:
        storage.close()
    _assert_the_ledger_accounts_for_every_level(url)


def _assert_the_ledger_accounts_for_every_level(url: str) -> None:
    """One ``count`` entry per seeded level, equal to it; as-of now gives the levels back."""
    assert _count(url, "inventory_changes") == _count(url, "inventory_levels")
    engine = sa.create_engine(make_url(url).set(drivername=_driver(url)))
    try:
        with engine.connect() as conn:
            unmatched = conn.exec_driver_sql(
                "SELECT count(*) FROM inventory_levels l LEFT JOIN inventory_changes c"
                " ON c.store_id = l.store_id AND c.item_id = l.item_id"
                " AND c.quantity_after = l.quantity AND c.delta = l.quantity"
                " AND c.reason = 'count' AND c.actor = 'seed' AND c.created_at = l.updated_at"
                " WHERE c.id IS NULL"
            ).scalar_one()
    finally:
        engine.dispose()
    assert unmatched == 0
    storage = open_sql_storage(url)
    try:
        [chain, *_] = storage.catalogue.list_chains("acme", after=None, limit=5)
        [shop, *_] = storage.catalogue.list_stores("acme", chain.id, after=None, limit=10)
        inventory = storage.inventory
        levels = inventory.list_levels("acme", shop.id, item_ids=None, after=None, limit=1000)
        as_of = inventory.list_levels_as_of(
            "acme", shop.id, datetime.now(UTC), item_ids=None, after=None, limit=1000
        )
        assert as_of == levels
    finally:
        storage.close()


def test_seed_demo_loads_once(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--database", sqlite_url, "db", "upgrade"])
    assert main(["--database", sqlite_url, "seed", "--demo"]) == 0
    assert "loaded the demo into tenant demo" in capsys.readouterr().out
    assert main(["--database", sqlite_url, "seed", "--demo"]) == 0
    assert "was not loaded again" in capsys.readouterr().out


def test_seed_refuses_half_given_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--database", "memory://", "seed", "--tenant", "t", "--chains", "2"]) == 2
    assert "go together" in capsys.readouterr().err


def test_sql_storage_comes_with_a_bulk_loader_through_its_backend(sqlite_url: str) -> None:
    runtime = bootstrap(Settings(database_url=sqlite_url))
    try:
        loader = runtime.bulk_loader()
        assert isinstance(loader, SqlBulkLoader)
    finally:
        runtime.close()


@pytest.mark.parametrize(
    "url", ["sqlite:///x.db", "postgresql://h/db", "postgres://h/db", "cockroachdb://h/db"]
)
def test_every_sql_scheme_is_the_sql_backends_with_its_schema_manager(url: str) -> None:
    backend = bootstrap(Settings(database_url=url)).registry.backend_for(url)
    assert backend.name == "sql"
    assert backend.schema_manager is not None
