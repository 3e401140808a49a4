"""Bulk loading for seeding: many rows per statement, COPY on PostgreSQL, never a row at a time.

Every level loaded comes with its ledger entry (reason ``count``, as if counted on arrival),
written in the same transaction, so that seeded data keeps the ledger's promises: a level's
entries sum to it, and levels as of any moment after the load are the loaded ones.

Into a database whose levels and ledger tables are both empty, on SQLite and PostgreSQL, all
of a load's levels go in one transaction that drops the two tables' non-unique secondary
indexes first and builds them again before it commits (``_Rebuild``): sorting a million keys
once costs a fraction of keeping four indexes in order row by row. No reader ever sees the
tables without them: SQLite's readers keep their snapshot from before the load, PostgreSQL's
wait for the commit (``DROP INDEX`` locks the table). Elsewhere each batch is a transaction.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa

from commerce.adapters.storage.sql.engine import translate
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

T = TypeVar("T")

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

SQLITE_LOAD_CACHE_KIB = 256 * 1024
"""SQLite's page cache on the connection of a one-transaction load, while it loads (it is
put back after): the tables' newest pages and the index builds' sorts stay in memory."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SqlBulkLoader:
    """Loads batches into a ``SqlStorage``'s database: one transaction per batch, or one for
    all the levels of a load into empty tables (see the module's docstring), which ``close``
    commits.

    The database's constraints still hold (a batch that breaks one is refused whole, and in
    the one-transaction load every level with it); the checks the use cases make row by row
    for a request's sake are not repeated here.
    """

    def __init__(
        self,
        storage: SqlStorage,
        *,
        clock: Callable[[], datetime] = _utcnow,
        ids: IdGenerator = default_ids,
    ) -> None:
        self._engine = storage.engine
        self._tx = storage.tx
        self._clock = clock
        self._ids = ids
        name = storage.engine.dialect.name
        # COPY is PostgreSQL's fastest path in; CockroachDB advises multi-row INSERTs instead.
        self._copy = name == "postgresql"
        self._sqlite = name == "sqlite"
        # Schema changes inside the loading transaction: SQLite and PostgreSQL only, as
        # CockroachDB runs them apart from a transaction's writes.
        self._may_rebuild = self._copy or self._sqlite
        self._rebuild: _Rebuild | None = None
        self._started = False

    @property
    def rebuilding(self) -> bool:
        """Whether this load's levels go in one transaction with the indexes built after."""
        return self._rebuild is not None

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
        if values:
            # A list of parameter sets: executemany, which SQLAlchemy sends as multi-row
            # INSERTs on PostgreSQL and CockroachDB and as one prepared statement on SQLite.
            self._tx.write(lambda conn: conn.execute(table.insert(), values))
        return ids

    def add_levels(self, tenant: str, rows: Sequence[tuple[int, int, int]]) -> int:
        if not rows:
            return 0
        if not self._started:
            self._started = True
            if self._may_rebuild:
                self._rebuild = _Rebuild.begin_if_empty(self._engine, self._sqlite)
        now = self._clock()
        change_ids = self._ids.take(len(rows))
        write: Callable[[sa.Connection], int]
        if self._copy:
            write = lambda conn: _copy_levels(conn, tenant, rows, change_ids, now)  # noqa: E731
        elif self._sqlite:
            write = lambda conn: _executemany_levels(conn, tenant, rows, change_ids, now)  # noqa: E731
        else:
            write = lambda conn: _insert_levels(conn, tenant, rows, change_ids, now)  # noqa: E731
        if self._rebuild is not None:
            return self._rebuild.run(write)
        return self._tx.write(write)

    def close(self) -> None:
        """Commit the one-transaction load, if there is one, then refresh the statistics."""
        rebuild, self._rebuild, self._started = self._rebuild, None, False
        if rebuild is not None:
            rebuild.finish()
        if self._copy:
            # Fresh statistics, so the planner sees a million rows rather than an empty table
            # and picks the ordered index scans (autovacuum would get there, minutes later).
            tables = (chains, stores, items, inventory_levels, inventory_changes)
            names = ", ".join(t.name for t in tables)
            self._tx.write(lambda conn: conn.exec_driver_sql(f"ANALYZE {names}"))


class _Rebuild:
    """The one transaction of a load into empty levels and ledger tables, on a connection of
    its own: what costs most per row is dropped at the start and made again, from the
    database's own definitions, by ``finish``, which then commits.

    That is the two tables' non-unique secondary indexes, and on PostgreSQL the levels'
    foreign keys too (a trigger per row that locks the store's and the item's rows; adding
    the constraint back checks every row in one join). Primary keys, unique indexes and
    checks stay, so those hold as rows arrive; a row that breaks a foreign key fails the
    ``finish``, and the whole load is rolled back. The transaction holds SQLite's write
    lock, or PostgreSQL's exclusive locks on the two tables (and writers of stores and items
    wait on the foreign keys' check), until it ends: a load into a new database.
    """

    def __init__(self, conn: sa.Connection, redo: list[str], cache: int) -> None:
        self._conn = conn
        self._redo = redo
        self._cache = cache

    @classmethod
    def begin_if_empty(cls, engine: sa.Engine, sqlite: bool) -> _Rebuild | None:
        with _translated():
            return cls._begin_if_empty(engine, sqlite)

    @classmethod
    def _begin_if_empty(cls, engine: sa.Engine, sqlite: bool) -> _Rebuild | None:
        conn = engine.connect()
        try:
            if sqlite:
                conn.execution_options(commerce_write=True)  # BEGIN IMMEDIATE (engine.py)
            conn.begin()
            empty = not conn.exec_driver_sql(
                "SELECT EXISTS (SELECT 1 FROM inventory_levels)"
                " OR EXISTS (SELECT 1 FROM inventory_changes)"
            ).scalar_one()
            if not empty:
                conn.rollback()
                conn.close()
                return None
            tables = [inventory_levels.name, inventory_changes.name]
            undo_redo = _sqlite_indexes(conn, tables) if sqlite else _pg_undo_redo(conn, tables)
            cache = 0
            if sqlite:
                cache = int(conn.exec_driver_sql("PRAGMA cache_size").scalar_one())
                conn.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_LOAD_CACHE_KIB}")
            else:
                # Building an index over a million rows may take longer than a request may.
                conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
            for undo, _ in undo_redo:
                conn.exec_driver_sql(undo)
        except BaseException:
            conn.close()  # rolls back, and the pool resets the connection
            raise
        return cls(conn, [redo for _, redo in reversed(undo_redo)], cache)

    def run(self, work: Callable[[sa.Connection], T]) -> T:
        """``work`` in the transaction; if it fails, the whole load is rolled back."""
        try:
            with _translated():
                return work(self._conn)
        except BaseException:
            self._end(commit=False)
            raise

    def finish(self) -> None:
        """Make the indexes and constraints again and commit (or roll everything back)."""
        if self._conn.closed:
            return
        with _translated():
            try:
                for redo in self._redo:
                    self._conn.exec_driver_sql(redo)
            except BaseException:
                self._end(commit=False)
                raise
            self._end(commit=True)

    def _end(self, *, commit: bool) -> None:
        conn = self._conn
        if conn.closed:
            return
        try:
            if commit:
                conn.commit()
            else:
                conn.rollback()
        finally:
            if self._cache:
                # On the driver's connection, outside any transaction: through SQLAlchemy
                # the PRAGMA would begin one.
                driver = conn.connection.driver_connection
                with contextlib.suppress(Exception):
                    driver.execute(f"PRAGMA cache_size = {self._cache}")  # type: ignore[union-attr]
            conn.close()


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """A database error that means the database is unavailable becomes ``StorageUnavailable``,
    as in a transaction of the ``Transactor``'s; integrity errors are left as they are."""
    try:
        yield
    except (sa.exc.DBAPIError, sa.exc.TimeoutError) as error:
        unavailable = translate(error)
        if unavailable is not None:
            raise unavailable from error
        raise


def _sqlite_indexes(conn: sa.Connection, tables: Sequence[str]) -> list[tuple[str, str]]:
    """``DROP INDEX`` and ``CREATE INDEX`` of the tables' non-unique indexes that CREATE
    INDEX made (origin ``c``: no primary key, no UNIQUE constraint)."""
    found: list[tuple[str, str]] = []
    for table in tables:
        for row in conn.exec_driver_sql(f'PRAGMA index_list("{table}")').mappings():
            if row["origin"] == "c" and not row["unique"]:
                sql = conn.exec_driver_sql(
                    "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?",
                    (row["name"],),
                ).scalar_one()
                found.append((f'DROP INDEX "{row["name"]}"', str(sql)))
    return found


def _pg_undo_redo(conn: sa.Connection, tables: Sequence[str]) -> list[tuple[str, str]]:
    """Drop and make again: the tables' foreign keys, then their indexes that are not
    unique and back no constraint (made again in the opposite order)."""
    found: list[tuple[str, str]] = []
    keys = conn.exec_driver_sql(
        "SELECT t.relname, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c"
        " JOIN pg_class t ON t.oid = c.conrelid"
        " WHERE c.contype = 'f' AND t.relname = ANY(%(tables)s)"
        " AND t.relnamespace = current_schema()::regnamespace"
        " ORDER BY t.relname, c.conname",
        {"tables": tables},
    ).all()
    for table, name, definition in keys:
        found.append(
            (
                f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"',
                f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}',
            )
        )
    indexes = conn.exec_driver_sql(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x"
        " JOIN pg_class i ON i.oid = x.indexrelid"
        " JOIN pg_class t ON t.oid = x.indrelid"
        " WHERE t.relname = ANY(%(tables)s) AND t.relnamespace = current_schema()::regnamespace"
        " AND NOT x.indisunique AND NOT x.indisprimary"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)"
        " ORDER BY t.relname, i.relname",
        {"tables": tables},
    ).all()
    for name, definition in indexes:
        found.append((f'DROP INDEX "{name}"', str(definition)))
    return found


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
    """SQLite's fast path: one prepared statement per table, run over plain tuples built in
    the statement's column order.

    The time is converted to the text SQLite stores once, by the column type's own bind
    processor for the dialect, not by the driver's adapter once per row.
    """
    dialect = conn.dialect
    column = inventory_levels.c.updated_at.type
    convert = column.dialect_impl(dialect).bind_processor(dialect)
    at = convert(now) if convert is not None else now
    level_sql = _insert_sql(inventory_levels, LEVEL_COLUMNS, dialect)
    change_sql = _insert_sql(inventory_changes, CHANGE_COLUMNS, dialect)
    conn.exec_driver_sql(level_sql, [(s, i, tenant, q, at) for s, i, q in rows])
    conn.exec_driver_sql(
        change_sql,
        [
            (s, c, tenant, i, q, q, REASON, ACTOR, at)
            for c, (s, i, q) in zip(change_ids, rows, strict=True)
        ],
    )
    return len(rows)


def _insert_sql(table: sa.Table, columns: Sequence[str], dialect: sa.Dialect) -> str:
    compiled = table.insert().compile(dialect=dialect, column_keys=list(columns))
    # The tuples above are built in ``columns``' order, which must be the statement's.
    assert tuple(compiled.positiontup or ()) == tuple(columns)
    return str(compiled)


def _insert_levels(
    conn: sa.Connection,
    tenant: str,
    rows: Sequence[tuple[int, int, int]],
    change_ids: Sequence[int],
    now: datetime,
) -> int:
    """CockroachDB's path: executemany, which SQLAlchemy sends as multi-row INSERTs."""
    levels: list[dict[str, Any]] = [
        {"store_id": s, "item_id": i, "tenant_id": tenant, "quantity": q, "updated_at": now}
        for s, i, q in rows
    ]
    changes: list[dict[str, Any]] = [
        {
            "store_id": s,
            "id": c,
            "tenant_id": tenant,
            "item_id": i,
            "delta": q,
            "quantity_after": q,
            "reason": REASON,
            "reference": None,
            "actor": ACTOR,
            "created_at": now,
        }
        for c, (s, i, q) in zip(change_ids, rows, strict=True)
    ]
    conn.execute(inventory_levels.insert(), levels)
    conn.execute(inventory_changes.insert(), changes)
    return len(rows)
