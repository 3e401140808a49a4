"""``SqlStorage``: the bundle of the SQL ports, which share one engine and one ``Transactor``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from commerce.adapters.storage.sql import schema
from commerce.adapters.storage.sql.api_keys import SqlApiKeys
from commerce.adapters.storage.sql.catalogue import SqlCatalogue
from commerce.adapters.storage.sql.common import SqlContext, utcnow
from commerce.adapters.storage.sql.engine import UPGRADE_HINT, SqlOptions, display
from commerce.adapters.storage.sql.idempotency import SqlIdempotencyRecords
from commerce.adapters.storage.sql.ids import IdGenerator, default_ids
from commerce.adapters.storage.sql.inventory import SqlInventory
from commerce.adapters.storage.sql.transactions import Transactor
from commerce.core.errors import SchemaBehind
from commerce.core.ports import Storage


@dataclass(frozen=True, eq=False, kw_only=True, repr=False)
class SqlStorage(Storage):
    """The SQL ports, plus what the bulk loader and SQL-specific tests need: the engine
    and the transaction helper every port runs through."""

    engine: sa.Engine
    tx: Transactor

    def __repr__(self) -> str:
        return f"SqlStorage({self.name})"


def sql_storage(
    engine: sa.Engine,
    options: SqlOptions | None = None,
    *,
    clock: Callable[[], datetime] = utcnow,
    ids: IdGenerator = default_ids,
    owns_engine: bool = True,
    tx: Transactor | None = None,
) -> SqlStorage:
    """The ports on ``engine``; ``close()`` disposes of the engine only if ``owns_engine``.

    ``tx`` replaces the transaction helper built from ``options`` (tests pass one that
    counts its retries or fails on purpose).
    """
    options = options or SqlOptions()
    tx = tx or Transactor(engine, options)
    ctx = SqlContext(engine, options, tx, clock, ids)

    def check() -> None:
        """Connectivity, then the schema: at head (or newer, during a rolling upgrade)."""
        current = tx.read(schema.read_revision)
        migrations = schema.migrations()
        if current is None:
            raise SchemaBehind(
                f"the database has no schema yet, this version needs {migrations.head}: "
                f"{UPGRADE_HINT}"
            )
        if current != migrations.head and current in migrations.known:
            raise SchemaBehind(
                f"database schema is at {current}, this version needs {migrations.head}: "
                f"{UPGRADE_HINT}"
            )

    def close() -> None:
        if owns_engine:
            engine.dispose()

    def stats() -> dict[str, float]:
        return pool_stats(engine.pool)

    return SqlStorage(
        catalogue=SqlCatalogue(ctx),
        inventory=SqlInventory(ctx),
        idempotency=SqlIdempotencyRecords(ctx),
        api_keys=SqlApiKeys(ctx),
        check=check,
        close=close,
        name=display(engine.url),
        stats=stats,
        engine=engine,
        tx=tx,
    )


def pool_stats(pool: sa.pool.Pool) -> dict[str, float]:
    """A queue pool's gauges for metrics (``Storage.stats``): its ``size``, the connections
    ``checked_out`` and ``checked_in``, and the ``overflow`` opened beyond its size; ``{}`` for
    a pool that keeps no such counts (SQLite in memory's one connection). Never raises."""
    if not isinstance(pool, sa.pool.QueuePool):
        return {}
    try:
        return {
            "size": float(pool.size()),
            "checked_out": float(pool.checkedout()),
            "checked_in": float(pool.checkedin()),
            "overflow": float(max(pool.overflow(), 0)),
        }
    except Exception:  # a pool mid-dispose; the gauges wait for the next scrape
        return {}
