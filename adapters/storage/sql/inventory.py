"""``SqlInventory``: the ``Inventory`` port on SQLAlchemy Core: levels, counted sets and
all-or-none adjustments, each written with its ledger entries in one transaction.

The history half (listing the ledger, levels as of a moment, appending) is ``SqlLedger``.
The decisions are ``core.rules``'; what stays here is the atomic statements.

Level writes lock what they change, so they are right at READ COMMITTED and run there on
the servers (``Transactor.write(…, locks_rows=True)``): writers of one hot level wait for
each other's row lock instead of failing with serialization errors. docs/storage.md, "Hot
levels", says why each statement is safe at that level.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc

from commerce.adapters.storage.sql.common import after_key
from commerce.adapters.storage.sql.ledger import Change, SqlLedger
from commerce.adapters.storage.sql.level_statements import (
    CREATE_ZERO_LEVEL,
    ITEM_PARAMS,
    LEVEL_COLUMNS,
    bucket,
    count_statements,
    levels_query,
    lock_query,
    step_statements,
)
from commerce.adapters.storage.sql.tables import inventory_levels, items, stores
from commerce.core import rules
from commerce.core.errors import CommerceError, ConcurrentChange, NotFound, StorageUnavailable
from commerce.core.models import Adjustment, InventoryLevel, Reason

T = TypeVar("T")

_LONG_AGO = datetime(1970, 1, 1, tzinfo=UTC)
"""``updated_at`` of a level created only to be locked: the step that follows stamps it with
its own time, as ``later(_LONG_AGO, now)`` is ``now``."""

_CREATE_ATTEMPTS = 3
"""How often a counted set looks again for a level that another writer created meanwhile."""


class SqlInventory(SqlLedger):
    # -- reads -----------------------------------------------------------------------
    def list_levels(
        self,
        tenant: str,
        store_id: int,
        *,
        item_ids: Collection[int] | None,
        after: int | None,
        limit: int,
    ) -> Sequence[InventoryLevel]:
        params: dict[str, object] = {"store_id": store_id, "tenant": tenant, "limit": limit}
        if after is not None:
            params["after"] = after
        if item_ids is None:
            query = levels_query(after is not None, 0)
        else:
            wanted = sorted(set(item_ids))
            if not wanted:
                return []
            size = bucket(len(wanted))
            if size > len(ITEM_PARAMS):  # more than any request may name: one statement
                query = levels_query(after is not None, -1)
                params["items"] = wanted
            else:
                # Padded with the last id to the bucket's size: a few statement shapes, each
                # compiled once, instead of one per length of the list.
                padded = wanted + wanted[-1:] * (size - len(wanted))
                params.update(zip(ITEM_PARAMS[:size], padded, strict=True))
                query = levels_query(after is not None, size)
                return [InventoryLevel(*row) for row in self._ctx.all_built(query, params)]
        return [InventoryLevel(*row) for row in self._ctx.all(query, params)]

    def list_item_levels(
        self, tenant: str, item_id: int, *, after: int | None, limit: int
    ) -> Sequence[InventoryLevel]:
        query = (
            sa.select(*LEVEL_COLUMNS)
            .where(
                inventory_levels.c.item_id == item_id,
                inventory_levels.c.tenant_id == tenant,
                *after_key(inventory_levels.c.store_id, after),
            )
            .order_by(inventory_levels.c.store_id)
            .limit(limit)
        )
        return [InventoryLevel(*row) for row in self._ctx.all(query)]

    # -- writes ----------------------------------------------------------------------
    def set_quantity(
        self,
        tenant: str,
        store_id: int,
        item_id: int,
        quantity: int,
        *,
        actor: str,
        expected_quantity: int | None = None,
        reference: str | None = None,
    ) -> InventoryLevel:
        current, update, create = count_statements(self._ctx.sqlite)
        key = {"p_store": store_id, "p_item": item_id, "p_tenant": tenant}

        def work(conn: sa.Connection) -> InventoryLevel:
            values = {**key, "p_quantity": quantity, "p_now": self._ctx.clock()}
            for _ in range(_CREATE_ATTEMPTS):
                found = conn.execute(current, key).first()
                if found is not None:
                    before = int(found[0])
                    rules.check_expected_quantity(store_id, item_id, before, expected_quantity)
                    row = conn.execute(update, values).one()
                    break
                _require_stock_pair(conn, tenant, store_id, item_id)
                before = 0
                rules.check_expected_quantity(store_id, item_id, before, expected_quantity)
                created = conn.execute(create, values).first()
                if created is not None:
                    row = created
                    break
                # Another writer created the level since it was looked for (and has
                # committed: the insert waited for it). Look again, and lock it this time.
            else:
                raise StorageUnavailable("the level kept changing while it was being counted")
            after, at = int(row[0]), row[1]
            self._record(
                conn,
                tenant,
                store_id,
                actor,
                [(item_id, quantity - before, after, Reason.count, reference, at)],
            )
            return InventoryLevel(store_id, item_id, after, at)

        return self._write_levels(work, tenant, store_id, [item_id])

    def adjust(
        self, tenant: str, store_id: int, adjustments: Sequence[Adjustment], *, actor: str
    ) -> Sequence[InventoryLevel]:
        statements = step_statements(self._ctx.sqlite)
        key = {"p_store": store_id, "p_tenant": tenant}

        def work(conn: sa.Connection) -> list[InventoryLevel]:
            locked = self._lock_levels(conn, tenant, store_id, adjustments)
            now = self._ctx.clock()
            steps: list[Change] = []
            for adjustment in adjustments:
                delta = adjustment.delta
                params = {**key, "p_now": now, "p_item": adjustment.item_id, "p_delta": delta}
                row = _step(conn, statements, params)
                if row is None and not locked:
                    # A refused step locks nothing, and at READ COMMITTED each statement
                    # sees what has committed since: lock the level and try once more, so
                    # that a refusal is explained with the quantity that refused it.
                    self._lock(conn, tenant, store_id, [adjustment.item_id])
                    locked = True
                    row = _step(conn, statements, params)
                if row is None:
                    # Raising rolls back the steps already taken.
                    raise _refusal(conn, tenant, store_id, adjustments, len(steps))
                steps.append(
                    (
                        adjustment.item_id,
                        delta,
                        row[0],
                        adjustment.reason,
                        adjustment.reference,
                        row[1],
                    )
                )
            self._record(conn, tenant, store_id, actor, steps)
            latest = {
                step[0]: InventoryLevel(store_id, step[0], step[2], step[5]) for step in steps
            }
            return [latest[i] for i in sorted(latest)]

        return self._write_levels(work, tenant, store_id, [a.item_id for a in adjustments])

    def _write_levels(
        self,
        work: Callable[[sa.Connection], T],
        tenant: str,
        store_id: int,
        item_ids: Sequence[int],
    ) -> T:
        """Run a level write that locks what it changes; a store or item that is not the
        tenant's is ``NotFound``.

        A level is only ever created for the tenant's store and item: the foreign keys
        refuse any other (and, at READ COMMITTED, a store or item deleted and committed
        after the write began). That integrity error is explained here, once the write has
        rolled back.
        """
        try:
            return self._write_minting(work, locks_rows=True)
        except exc.IntegrityError:
            missing = self._ctx.tx.read(
                lambda conn: _missing_stock_pair(conn, tenant, store_id, item_ids)
            )
            if missing is not None:
                raise missing from None
            raise

    def _lock_levels(
        self, conn: sa.Connection, tenant: str, store_id: int, adjustments: Sequence[Adjustment]
    ) -> bool:
        """Lock the batch's levels in item order before any step changes one; whether
        they are locked (or need not be) now.

        Steps still apply in the batch's order (the ledger tells them in that order), but
        every lock a batch waits for is taken here, in one order for all batches, so two
        batches over the same items cannot deadlock. Levels the batch adds to that do not
        exist yet are created first (at 0, also in item order, when there are two or more):
        two batches creating the same new levels would otherwise lock them in their own
        orders. A level created here that the batch then fails on rolls back with it.

        A batch of one item is not locked up front: its first step locks the one level it
        changes (a transaction that holds one level lock and waits for no other closes no
        cycle), which saves a round trip on the busiest write. SQLite needs no locks: the
        transaction holds the database's write lock.
        """
        if self._ctx.sqlite:
            return True
        wanted = sorted({a.item_id for a in adjustments})
        if len(wanted) < 2:
            return False
        increased = sorted({a.item_id for a in adjustments if a.delta > 0})
        if len(increased) > 1:
            conn.execute(
                CREATE_ZERO_LEVEL,
                [
                    {"store_id": store_id, "item_id": i, "tenant_id": tenant, "at": _LONG_AGO}
                    for i in increased
                ],
            )
        self._lock(conn, tenant, store_id, wanted)
        return True

    @staticmethod
    def _lock(conn: sa.Connection, tenant: str, store_id: int, wanted: list[int]) -> None:
        """``SELECT … FOR UPDATE`` of the store's levels of ``wanted`` (sorted) item ids."""
        size = bucket(len(wanted))
        params: dict[str, object] = {"p_store": store_id, "p_tenant": tenant}
        padded = wanted + wanted[-1:] * (size - len(wanted))
        params.update(zip(ITEM_PARAMS[:size], padded, strict=True))
        conn.execute(lock_query(size), params)


def _step(
    conn: sa.Connection,
    statements: tuple[sa.Executable, sa.Executable, sa.Executable],
    params: dict[str, Any],
) -> sa.Row[Any] | None:
    """Run one adjustment's step (``step_statements``): the level it left, or ``None``."""
    decrease, increase, upsert = statements
    if params["p_delta"] < 0:
        return conn.execute(decrease, params).first()
    row = conn.execute(increase, params).first()
    if row is None:
        # No level yet (or one too high to add to): the upsert creates it, or refuses again.
        row = conn.execute(upsert, params).first()
    return row


def _refusal(
    conn: sa.Connection,
    tenant: str,
    store_id: int,
    adjustments: Sequence[Adjustment],
    applied: int,
) -> CommerceError:
    """Why step number ``applied`` of the batch matched no level: the store or an item is
    not the tenant's (``NotFound``, the store first, then the items in the batch's order),
    or else the rule that refuses the step, asked with the quantities before the batch,
    worked out from those read now (``InsufficientStock`` or ``LevelTooHigh``)."""
    missing = _missing_stock_pair(conn, tenant, store_id, [a.item_id for a in adjustments])
    if missing is not None:
        return missing
    held = _quantities(conn, tenant, store_id, sorted({a.item_id for a in adjustments}))
    try:
        rules.plan_adjustments(adjustments, rules.before_batch(adjustments, held, applied))
    except CommerceError as refused:
        return refused
    return ConcurrentChange("inventory level of item", adjustments[applied].item_id)


def _quantities(
    conn: sa.Connection, tenant: str, store_id: int, item_ids: Sequence[int]
) -> dict[int, int]:
    """The store's quantities of these items as this transaction sees them (missing: none)."""
    level = inventory_levels.c
    rows = conn.execute(
        sa.select(level.item_id, level.quantity).where(
            level.store_id == store_id, level.tenant_id == tenant, level.item_id.in_(item_ids)
        )
    )
    return {int(item_id): int(quantity) for item_id, quantity in rows}


def _missing_stock_pair(
    conn: sa.Connection, tenant: str, store_id: int, item_ids: Sequence[int]
) -> NotFound | None:
    """``NotFound`` for the store, or else the first of the items, that is not the tenant's."""
    store_query = sa.select(stores.c.id).where(
        stores.c.id == store_id, stores.c.tenant_id == tenant
    )
    if conn.execute(store_query).first() is None:
        return NotFound("store", store_id)
    item_query = sa.select(items.c.id).where(
        items.c.tenant_id == tenant, items.c.id.in_(sorted(set(item_ids)))
    )
    known = set(conn.scalars(item_query))
    for item_id in item_ids:
        if item_id not in known:
            return NotFound("item", item_id)
    return None


def _require_stock_pair(conn: sa.Connection, tenant: str, store_id: int, item_id: int) -> None:
    problem = _missing_stock_pair(conn, tenant, store_id, [item_id])
    if problem is not None:
        raise problem
