"""What every SQL port shares: one ``SqlContext`` (engine, transaction helper, clock, ids) and
the statement helpers they build their queries with."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.dialects import postgresql, sqlite

from commerce.adapters.storage.sql.ambient import joined
from commerce.adapters.storage.sql.driver_reads import (
    DriverStatement,
    fetch_all,
    fetch_pooled,
    fetch_pooled_server,
    listened,
    prepare,
)
from commerce.adapters.storage.sql.engine import SQLITE_LATER, SqlOptions
from commerce.adapters.storage.sql.ids import IdGenerator
from commerce.adapters.storage.sql.tables import UtcDateTime, tenants
from commerce.adapters.storage.sql.transactions import Transactor
from commerce.core.errors import CommerceError, StorageUnavailable

ID_ATTEMPTS = 5
"""How often a create is retried when a freshly minted id is already taken (another replica)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


class SqlContext:
    """The state the ports of one ``SqlStorage`` share: they differ only in their queries."""

    def __init__(
        self,
        engine: sa.Engine,
        options: SqlOptions,
        tx: Transactor,
        clock: Callable[[], datetime],
        ids: IdGenerator,
    ) -> None:
        self.engine = engine
        self.options = options
        self.tx = tx
        self.clock = clock
        self.ids = ids
        self.sqlite = engine.dialect.name == "sqlite"
        # ``INSERT … ON CONFLICT`` is dialect-specific in SQLAlchemy; both dialects say it alike.
        self.insert: Callable[..., Any] = sqlite.insert if self.sqlite else postgresql.insert
        self._prepared: dict[sa.Select[Any], DriverStatement | None] = {}

    def all(
        self, query: sa.Select[Any], params: dict[str, Any] | None = None
    ) -> Sequence[sa.Row[Any]]:
        return self.tx.read(lambda conn: conn.execute(query, params).all())

    def all_built(self, query: sa.Select[Any], params: dict[str, Any]) -> Sequence[tuple[Any, ...]]:
        """``all`` for a statement built once (``level_statements.py``), run on the driver's
        cursor (``driver_reads.py``); the statements are compiled once per storage."""
        try:
            prepared = self._prepared[query]
        except KeyError:
            prepared = self._prepared[query] = prepare(query, self.engine.dialect)
        if prepared is None:
            return [tuple(row) for row in self.all(query, params)]
        engine = self.engine
        if self.sqlite and joined(engine) is None and not listened(engine):
            # No isolation level to set and no deadline on SQLite: the pool's connection
            # alone. Should the driver fail, the usual way below runs the read again and
            # gives the failure its meaning (a read changes nothing, so twice is safe).
            with contextlib.suppress(engine.dialect.loaded_dbapi.Error, exc.SQLAlchemyError):
                return fetch_pooled(engine, prepared, params)
        elif self.tx.reads_pooled and not listened(engine):
            dialect = engine.dialect
            return self.tx.read_pooled(
                lambda pooled: fetch_pooled_server(pooled, dialect, prepared, params)
            )
        return self.tx.read(lambda conn: fetch_all(conn, prepared, params))

    def first(self, query: sa.Select[Any]) -> sa.Row[Any] | None:
        return self.tx.read(lambda conn: conn.execute(query).first())

    def later(self, column: sa.ColumnElement[datetime], now: datetime) -> sa.ColumnElement[Any]:
        """SQL for ``rules.later(now, column)``: ``max(now, column + 1µs)``, computed by the
        statement that writes the row, so a concurrent writer cannot slip in between."""
        stamp = sa.literal(now, UtcDateTime())
        if self.sqlite:
            return sa.Function(SQLITE_LATER, column, stamp, type_=UtcDateTime())
        tick = sa.literal_column("INTERVAL '1 microsecond'", sa.Interval())
        return sa.func.greatest(stamp, column + tick, type_=UtcDateTime())

    def insert_with_new_id(
        self,
        table: sa.Table,
        values: dict[str, Any],
        explain: Callable[[sa.Connection], CommerceError | None],
    ) -> int:
        """Insert a row under a fresh id; ``explain`` turns an integrity error into core's terms.

        An integrity error that ``explain`` cannot account for is a taken id (another replica
        minted the same one), so the row is tried again under a new id; if the id is free,
        a ``CHECK`` refused the row, and that error is the caller's bug to see.
        """
        for _ in range(ID_ATTEMPTS):
            row_id = self.ids.next()
            try:
                self.tx.write(partial(execute, table.insert().values(id=row_id, **values)))
            except exc.IntegrityError:
                problem = self.tx.read(explain)
                if problem is not None:
                    raise problem from None
                if not self.tx.read(partial(_id_taken, table, row_id)):
                    raise
                continue
            return row_id
        raise no_free_id(table)


def no_free_id(table: sa.Table) -> StorageUnavailable:
    """What a write says when every id it minted was taken: replicas are minting too fast."""
    return StorageUnavailable(f"could not find a free id in {table.name} after {ID_ATTEMPTS} tries")


def _id_taken(table: sa.Table, row_id: int, conn: sa.Connection) -> bool:
    return conn.execute(sa.select(table.c.id).where(table.c.id == row_id)).first() is not None


def execute(statement: sa.Executable, conn: sa.Connection) -> None:
    conn.execute(statement)


def after_key(column: sa.ColumnElement[int], key: int | None) -> list[sa.ColumnElement[bool]]:
    """The keyset condition of a page: rows whose key is past the cursor's."""
    return [] if key is None else [column > key]


def version(table: sa.Table, expected: datetime | None) -> list[sa.ColumnElement[bool]]:
    """The ``If-Match`` condition, put in the write's own ``WHERE``."""
    return [] if expected is None else [table.c.updated_at == expected]


def tenant_exists(conn: sa.Connection, tenant: str) -> bool:
    return conn.execute(sa.select(tenants.c.id).where(tenants.c.id == tenant)).first() is not None
