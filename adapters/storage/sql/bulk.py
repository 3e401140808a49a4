"""Bulk loading for seeding: many rows per statement, COPY on PostgreSQL, never a row at a time."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from adapters.storage.sql.ids import IdGenerator, default_ids
from adapters.storage.sql.store import SqlStore
from adapters.storage.sql.tables import chains, inventory_levels, items, stores
from core.models import NewChain, NewItem, NewStore

LEVEL_COLUMNS = ("store_id", "item_id", "tenant_id", "quantity", "updated_at")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SqlBulkLoader:
    """Loads batches into a ``SqlStore``'s database, one transaction per batch.

    The database's constraints still hold (a batch that breaks one is refused whole); the
    checks the store makes row by row for a request's sake are not repeated here.
    """

    def __init__(
        self,
        store: SqlStore,
        *,
        clock: Callable[[], datetime] = _utcnow,
        ids: IdGenerator = default_ids,
    ) -> None:
        self._store = store
        self._clock = clock
        self._ids = ids
        # COPY is PostgreSQL's fastest path in; CockroachDB advises multi-row INSERTs instead.
        self._copy = store.engine.dialect.name == "postgresql"

    def add_chains(self, tenant: str, rows: Sequence[NewChain]) -> list[int]:
        now = self._clock()
        ids = self._ids.take(len(rows))
        values = [
            {
                "id": i,
                "tenant_id": tenant,
                "name": r.name,
                "phone": r.phone,
                "created_at": now,
                "updated_at": now,
            }
            for i, r in zip(ids, rows, strict=True)
        ]
        self._insert(chains, values)
        return ids

    def add_stores(self, tenant: str, rows: Sequence[NewStore]) -> list[int]:
        now = self._clock()
        ids = self._ids.take(len(rows))
        values = [
            {
                "id": i,
                "tenant_id": tenant,
                "chain_id": r.chain_id,
                "name": r.name,
                "phone": r.phone,
                "address": r.address,
                "postal_code": r.postal_code,
                "city": r.city,
                "country": r.country,
                "active": r.active,
                "created_at": now,
                "updated_at": now,
            }
            for i, r in zip(ids, rows, strict=True)
        ]
        self._insert(stores, values)
        return ids

    def add_items(self, tenant: str, rows: Sequence[NewItem]) -> list[int]:
        now = self._clock()
        ids = self._ids.take(len(rows))
        values = [
            {
                "id": i,
                "tenant_id": tenant,
                "sku": r.sku,
                "name": r.name,
                "cost": r.cost,
                "created_at": now,
                "updated_at": now,
            }
            for i, r in zip(ids, rows, strict=True)
        ]
        self._insert(items, values)
        return ids

    def add_levels(self, tenant: str, rows: Sequence[tuple[int, int, int]]) -> int:
        if not rows:
            return 0
        now = self._clock()
        if self._copy:
            return self._store.tx.write(lambda conn: _copy_levels(conn, tenant, rows, now))
        values = [
            {
                "store_id": store_id,
                "item_id": item_id,
                "tenant_id": tenant,
                "quantity": quantity,
                "updated_at": now,
            }
            for store_id, item_id, quantity in rows
        ]
        self._insert(inventory_levels, values)
        return len(rows)

    def close(self) -> None:
        if self._copy:
            # Fresh statistics, so the planner sees a million rows rather than an empty table
            # and picks the ordered index scans (autovacuum would get there, minutes later).
            names = ", ".join(t.name for t in (chains, stores, items, inventory_levels))
            self._store.tx.write(lambda conn: conn.exec_driver_sql(f"ANALYZE {names}"))

    def _insert(self, table: sa.Table, values: list[dict[str, Any]]) -> None:
        if values:
            # A list of parameter sets: executemany, which SQLAlchemy sends as multi-row
            # INSERTs on PostgreSQL and CockroachDB and as one prepared statement on SQLite.
            self._store.tx.write(lambda conn: conn.execute(table.insert(), values))


def _copy_levels(
    conn: sa.Connection, tenant: str, rows: Sequence[tuple[int, int, int]], now: datetime
) -> int:
    driver = conn.connection.driver_connection
    assert driver is not None
    columns = ", ".join(LEVEL_COLUMNS)
    with (
        driver.cursor() as cursor,
        cursor.copy(f"COPY {inventory_levels.name} ({columns}) FROM STDIN") as copy,
    ):
        for store_id, item_id, quantity in rows:
            copy.write_row((store_id, item_id, tenant, quantity, now))
    return len(rows)
