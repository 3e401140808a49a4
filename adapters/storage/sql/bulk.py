"""Bulk loading for seeding: many rows per statement, COPY on PostgreSQL, never a row at a time.

Every level loaded comes with its ledger entry (reason ``count``, as if counted on arrival),
written in the same transaction, so that seeded data keeps the ledger's promises: a level's
entries sum to it, and levels as of any moment after the load are the loaded ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from commerce.adapters.storage.sql.ids import IdGenerator, default_ids
from commerce.adapters.storage.sql.storage import SqlStorage
from commerce.adapters.storage.sql.tables import (
    chains,
    inventory_changes,
    inventory_levels,
    items,
    stores,
)
from commerce.core.models import NewChain, NewItem, NewStore, Reason

LEVEL_COLUMNS = ("store_id", "item_id", "tenant_id", "quantity", "updated_at")
CHANGE_COLUMNS = (
    "store_id",
    "id",
    "tenant_id",
    "item_id",
    "delta",
    "quantity_after",
    "reason",
    "actor",
    "created_at",
)
ACTOR = "seed"
"""Who the ledger says made the seeded levels."""
REASON = Reason.count.value


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SqlBulkLoader:
    """Loads batches into a ``SqlStorage``'s database, one transaction per batch.

    The database's constraints still hold (a batch that breaks one is refused whole); the
    checks the use cases make row by row for a request's sake are not repeated here.
    """

    def __init__(
        self,
        storage: SqlStorage,
        *,
        clock: Callable[[], datetime] = _utcnow,
        ids: IdGenerator = default_ids,
    ) -> None:
        self._tx = storage.tx
        self._clock = clock
        self._ids = ids
        # COPY is PostgreSQL's fastest path in; CockroachDB advises multi-row INSERTs instead.
        self._copy = storage.engine.dialect.name == "postgresql"
        self._sqlite = storage.engine.dialect.name == "sqlite"

    def add_chains(self, tenant: str, rows: Sequence[NewChain]) -> list[int]:
        return self._add(chains, tenant, rows)

    def add_stores(self, tenant: str, rows: Sequence[NewStore]) -> list[int]:
        return self._add(stores, tenant, rows)

    def add_items(self, tenant: str, rows: Sequence[NewItem]) -> list[int]:
        return self._add(items, tenant, rows)

    def _add(
        self, table: sa.Table, tenant: str, rows: Sequence[NewChain | NewStore | NewItem]
    ) -> list[int]:
        """One insert of catalogue rows: the new-row type's fields are the table's columns."""
        now = self._clock()
        ids = self._ids.take(len(rows))
        values = [
            {
                "id": i,
                "tenant_id": tenant,
                **dataclasses.asdict(r),
                "created_at": now,
                "updated_at": now,
            }
            for i, r in zip(ids, rows, strict=True)
        ]
        self._insert(table, values)
        return ids

    def add_levels(self, tenant: str, rows: Sequence[tuple[int, int, int]]) -> int:
        if not rows:
            return 0
        now = self._clock()
        change_ids = self._ids.take(len(rows))
        if self._copy:
            return self._tx.write(lambda conn: _copy_levels(conn, tenant, rows, change_ids, now))
        if self._sqlite:
            return self._tx.write(
                lambda conn: _executemany_levels(conn, tenant, rows, change_ids, now)
            )
        levels = [
            {
                "store_id": store_id,
                "item_id": item_id,
                "tenant_id": tenant,
                "quantity": quantity,
                "updated_at": now,
            }
            for store_id, item_id, quantity in rows
        ]
        changes = [
            {
                "store_id": store_id,
                "id": change_id,
                "tenant_id": tenant,
                "item_id": item_id,
                "delta": quantity,
                "quantity_after": quantity,
                "reason": REASON,
                "reference": None,
                "actor": ACTOR,
                "created_at": now,
            }
            for change_id, (store_id, item_id, quantity) in zip(change_ids, rows, strict=True)
        ]

        def write(conn: sa.Connection) -> int:
            conn.execute(inventory_levels.insert(), levels)
            conn.execute(inventory_changes.insert(), changes)
            return len(rows)

        return self._tx.write(write)

    def close(self) -> None:
        if self._copy:
            # Fresh statistics, so the planner sees a million rows rather than an empty table
            # and picks the ordered index scans (autovacuum would get there, minutes later).
            tables = (chains, stores, items, inventory_levels, inventory_changes)
            names = ", ".join(t.name for t in tables)
            self._tx.write(lambda conn: conn.exec_driver_sql(f"ANALYZE {names}"))

    def _insert(self, table: sa.Table, values: list[dict[str, Any]]) -> None:
        if values:
            # A list of parameter sets: executemany, which SQLAlchemy sends as multi-row
            # INSERTs on PostgreSQL and CockroachDB and as one prepared statement on SQLite.
            self._tx.write(lambda conn: conn.execute(table.insert(), values))


def _copy_levels(
    conn: sa.Connection,
    tenant: str,
    rows: Sequence[tuple[int, int, int]],
    change_ids: Sequence[int],
    now: datetime,
) -> int:
    driver = conn.connection.driver_connection
    assert driver is not None
    # COPY's text format, written as one block per table: formatting the lines with plain
    # string operations costs a fraction of a write_row call per row. Nothing here needs
    # escaping: ids, quantities, a tenant id (letters, digits, - and _) and fixed words.
    at = now.isoformat()
    levels = "".join(f"{s}\t{i}\t{tenant}\t{q}\t{at}\n" for s, i, q in rows)
    changes = "".join(
        f"{s}\t{c}\t{tenant}\t{i}\t{q}\t{q}\t{REASON}\t{ACTOR}\t{at}\n"
        for c, (s, i, q) in zip(change_ids, rows, strict=True)
    )
    with driver.cursor() as cursor:
        for table, columns, block in (
            (inventory_levels, LEVEL_COLUMNS, levels),
            (inventory_changes, CHANGE_COLUMNS, changes),
        ):
            with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
                copy.write(block)
    return len(rows)


def _executemany_levels(
    conn: sa.Connection,
    tenant: str,
    rows: Sequence[tuple[int, int, int]],
    change_ids: Sequence[int],
    now: datetime,
) -> int:
    """SQLite's fast path: one prepared statement per table, run over plain tuples.

    The time is converted once, by the column type's own bind processor (the text SQLite
    stores), instead of SQLAlchemy processing two million parameter dictionaries.
    """
    convert = inventory_levels.c.updated_at.type.bind_processor(conn.dialect)
    at = convert(now) if convert is not None else now
    for table, columns, values in (
        (
            inventory_levels,
            LEVEL_COLUMNS,
            ({"store_id": s, "item_id": i, "quantity": q} for s, i, q in rows),
        ),
        (
            inventory_changes,
            CHANGE_COLUMNS,
            (
                {"store_id": s, "id": c, "item_id": i, "delta": q, "quantity_after": q}
                for c, (s, i, q) in zip(change_ids, rows, strict=True)
            ),
        ),
    ):
        fixed: dict[str, object] = {"tenant_id": tenant, "reason": REASON, "actor": ACTOR}
        fixed["updated_at" if table is inventory_levels else "created_at"] = at
        compiled = table.insert().compile(dialect=conn.dialect, column_keys=list(columns))
        order = compiled.positiontup or []
        conn.exec_driver_sql(
            str(compiled), [tuple({**fixed, **v}[name] for name in order) for v in values]
        )
    return len(rows)
