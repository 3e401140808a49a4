"""What the SQL storage adds to the contract: its ids, exact money, and the checks SQL needs."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from decimal import Decimal

import pytest
import sqlalchemy as sa

from commerce.adapters.storage.sql import SqlStorage, sql_storage
from commerce.adapters.storage.sql.ids import EPOCH_MS, MAX_ID, IdGenerator
from commerce.core import usecases
from commerce.core.errors import InvalidInput
from commerce.core.models import NewChain, NewItem


def test_ids_are_exact_in_javascript_and_increase_within_a_process() -> None:
    ids = IdGenerator()
    made = [ids.next() for _ in range(5000)]
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    assert all(0 < i <= MAX_ID for i in made)


def test_ids_never_go_back_when_the_clock_does() -> None:
    times: Iterator[int] = iter([EPOCH_MS + 10_000, EPOCH_MS + 5_000, EPOCH_MS + 5_000])
    ids = IdGenerator(clock_ms=lambda: next(times), random_start=lambda _: 7)
    first, second, third = ids.next(), ids.next(), ids.next()
    assert first < second < third


def test_a_taken_id_is_replaced_by_a_fresh_one(sqlite_storage: SqlStorage) -> None:
    sqlite_storage.catalogue.create_tenant("t", "T")
    taken = sqlite_storage.catalogue.create_chain("t", NewChain(name="First")).id
    fresh = itertools.chain([taken], itertools.count(taken + 1))
    ids = IdGenerator()
    ids.take = lambda count: [next(fresh) for _ in range(count)]  # type: ignore[method-assign]
    clashing = sql_storage(sqlite_storage.engine, owns_engine=False, ids=ids)
    second = clashing.catalogue.create_chain("t", NewChain(name="Second"))
    assert second.id == taken + 1


def test_money_is_stored_as_exact_cents_on_sqlite(sqlite_storage: SqlStorage) -> None:
    sqlite_storage.catalogue.create_tenant("t", "T")
    item = sqlite_storage.catalogue.create_item(
        "t", NewItem(sku="A", name="A", cost=Decimal("0.10"))
    )
    with sqlite_storage.engine.connect() as conn:
        raw = conn.exec_driver_sql("SELECT cost FROM items WHERE id = ?", (item.id,)).scalar()
    assert raw == 10
    assert str(item.cost) == "0.10"


@pytest.mark.parametrize("cost", ["1.005", "NaN", "Infinity", "10000000000.00"])
def test_a_cost_that_numeric_12_2_cannot_hold_exactly_is_refused(
    sqlite_storage: SqlStorage, cost: str
) -> None:
    # Refused by the use case, the only way in, before the storage sees it.
    catalogue = sqlite_storage.catalogue
    catalogue.create_tenant("t", "T")
    with pytest.raises(InvalidInput) as caught:
        usecases.create_item(catalogue, "t", NewItem(sku="A", name="A", cost=Decimal(cost)))
    assert caught.value.field == "cost"


def test_text_with_a_nul_character_is_refused_naming_the_field(
    sqlite_storage: SqlStorage,
) -> None:
    catalogue = sqlite_storage.catalogue
    catalogue.create_tenant("t", "T")
    with pytest.raises(InvalidInput) as caught:
        usecases.create_chain(catalogue, "t", NewChain(name="bad\x00name"))
    assert caught.value.field == "name"


def test_a_negative_quantity_never_reaches_the_database(sqlite_storage: SqlStorage) -> None:
    with pytest.raises(InvalidInput) as caught:
        usecases.set_quantity(sqlite_storage.inventory, "t", 1, 1, -1, actor="test")
    assert caught.value.field == "quantity"


def test_the_database_itself_refuses_a_negative_quantity(sqlite_storage: SqlStorage) -> None:
    with (
        sqlite_storage.engine.connect() as conn,
        pytest.raises(sa.exc.IntegrityError, match="quantity_not_negative"),
    ):
        conn.exec_driver_sql(
            "INSERT INTO inventory_levels VALUES (1, 1, 't', -1, '2025-01-01 00:00:00')"
        )


def test_sqlite_runs_with_foreign_keys_and_write_ahead_logging(
    sqlite_storage: SqlStorage,
) -> None:
    with sqlite_storage.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


@pytest.mark.parametrize(
    ("tenant", "sku", "cents", "constraint"),
    [
        ("", "A", 100, "ck_tenants_id_length"),
        ("t" * 64, "A", 100, "ck_tenants_id_length"),
        ("t", "", 100, "ck_items_sku_not_empty"),
        ("t", "A", -1, "ck_items_cost_not_negative"),
    ],
)
def test_the_database_itself_refuses_what_validation_refuses(
    sqlite_storage: SqlStorage, tenant: str, sku: str, cents: int, constraint: str
) -> None:
    """The CHECK constraints are the safety net under the use cases' validation."""
    with (
        sqlite_storage.engine.connect() as conn,
        pytest.raises(sa.exc.IntegrityError, match=constraint),
    ):
        _insert_item(conn, tenant, sku, cents)


def _insert_item(conn: sa.Connection, tenant: str, sku: str, cents: int) -> None:
    at = "2025-01-01 00:00:00"
    conn.exec_driver_sql("INSERT INTO tenants VALUES (?, 'T', ?)", (tenant, at))
    conn.exec_driver_sql(
        "INSERT INTO items (id, tenant_id, sku, name, cost, created_at, updated_at)"
        " VALUES (1, ?, ?, 'N', ?, ?, ?)",
        (tenant, sku, cents, at, at),
    )
