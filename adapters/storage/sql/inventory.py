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
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy import exc

from commerce.adapters.storage.sql.common import after_key
from commerce.adapters.storage.sql.ledger import SqlLedger
from commerce.adapters.storage.sql.tables import inventory_levels, items, stores
from commerce.core import rules
from commerce.core.errors import ConcurrentChange, NotFound, StorageUnavailable
from commerce.core.models import Adjustment, InventoryLevel, Reason
from commerce.core.validation import MAX_QUANTITY

T = TypeVar("T")

_LEVEL_COLUMNS = (
    inventory_levels.c.store_id,
    inventory_levels.c.item_id,
    inventory_levels.c.quantity,
    inventory_levels.c.updated_at,
)

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
        conditions = [
            inventory_levels.c.store_id == store_id,
            inventory_levels.c.tenant_id == tenant,
            *after_key(inventory_levels.c.item_id, after),
        ]
        if item_ids is not None:
            wanted = sorted(set(item_ids))
            if not wanted:
                return []
            conditions.append(inventory_levels.c.item_id.in_(wanted))
        query = (
            sa.select(*_LEVEL_COLUMNS)
            .where(*conditions)
            .order_by(inventory_levels.c.item_id)
            .limit(limit)
        )
        return [InventoryLevel(*row) for row in self._ctx.all(query)]

    def list_item_levels(
        self, tenant: str, item_id: int, *, after: int | None, limit: int
    ) -> Sequence[InventoryLevel]:
        query = (
            sa.select(*_LEVEL_COLUMNS)
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
        level = inventory_levels.c
        this_level = (
            level.store_id == store_id,
            level.item_id == item_id,
            level.tenant_id == tenant,
        )
        current = sa.select(level.quantity).where(*this_level)
        if not self._ctx.sqlite:
            # The level is read to be compared and to work out the ledger's delta: it stays
            # locked until the write, so nothing can change it in between, whatever the
            # isolation level. (SQLite: the transaction holds the database's write lock.)
            current = current.with_for_update()

        def work(conn: sa.Connection) -> InventoryLevel:
            now = self._ctx.clock()
            for _ in range(_CREATE_ATTEMPTS):
                found = conn.execute(current).first()
                if found is not None:
                    before = int(found.quantity)
                    rules.check_expected_quantity(store_id, item_id, before, expected_quantity)
                    update = (
                        inventory_levels.update()
                        .where(*this_level)
                        .values(
                            quantity=quantity, updated_at=self._ctx.later(level.updated_at, now)
                        )
                        .returning(level.quantity, level.updated_at)
                    )
                    row = conn.execute(update).one()
                    break
                _require_stock_pair(conn, tenant, store_id, item_id)
                before = 0
                rules.check_expected_quantity(store_id, item_id, before, expected_quantity)
                create = (
                    self._ctx.insert(inventory_levels)
                    .values(
                        store_id=store_id,
                        item_id=item_id,
                        tenant_id=tenant,
                        quantity=quantity,
                        updated_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=[level.store_id, level.item_id])
                    .returning(level.quantity, level.updated_at)
                )
                created = conn.execute(create).first()
                if created is not None:
                    row = created
                    break
                # Another writer created the level since it was looked for (and has
                # committed: the insert waited for it). Look again, and lock it this time.
            else:
                raise StorageUnavailable("the level kept changing while it was being counted")
            at = row.updated_at
            self._record(
                conn,
                tenant,
                store_id,
                actor,
                [(item_id, quantity - before, row.quantity, Reason.count, reference, at)],
            )
            return InventoryLevel(store_id, item_id, row.quantity, row.updated_at)

        return self._write_levels(work, tenant, store_id, [item_id])

    def adjust(
        self, tenant: str, store_id: int, adjustments: Sequence[Adjustment], *, actor: str
    ) -> Sequence[InventoryLevel]:
        wanted = sorted({a.item_id for a in adjustments})
        store_query = sa.select(stores.c.id).where(
            stores.c.id == store_id, stores.c.tenant_id == tenant
        )
        item_query = sa.select(items.c.id).where(
            items.c.tenant_id == tenant, items.c.id.in_(wanted)
        )

        def work(conn: sa.Connection) -> list[InventoryLevel]:
            if conn.execute(store_query).first() is None:
                raise NotFound("store", store_id)
            known = set(conn.scalars(item_query))
            for adjustment in adjustments:
                if adjustment.item_id not in known:
                    raise NotFound("item", adjustment.item_id)
            self._lock_levels(conn, tenant, store_id, adjustments)
            now = self._ctx.clock()
            steps: list[tuple[Adjustment, int, datetime]] = []
            for adjustment in adjustments:
                row = conn.execute(self._step(tenant, store_id, adjustment, now)).first()
                if row is None:
                    # Raising rolls back the steps already taken; the rule that refused the
                    # step is asked with the quantities before the batch, worked out from
                    # those read now (it raises InsufficientStock or LevelTooHigh).
                    held = _quantities(conn, tenant, store_id, wanted)
                    rules.plan_adjustments(
                        adjustments, rules.before_batch(adjustments, held, len(steps))
                    )
                    raise ConcurrentChange("inventory level of item", adjustment.item_id)
                steps.append((adjustment, int(row.quantity), row.updated_at))
            self._record(
                conn,
                tenant,
                store_id,
                actor,
                [(a.item_id, a.delta, q, a.reason, a.reference, t) for a, q, t in steps],
            )
            latest = {a.item_id: InventoryLevel(store_id, a.item_id, q, t) for a, q, t in steps}
            return [latest[i] for i in sorted(latest)]

        return self._write_levels(work, tenant, store_id, [a.item_id for a in adjustments])

    def _write_levels(
        self,
        work: Callable[[sa.Connection], T],
        tenant: str,
        store_id: int,
        item_ids: Sequence[int],
    ) -> T:
        """Run a level write that locks what it changes; a store or item deleted meanwhile
        is ``NotFound``.

        At READ COMMITTED a store or item deleted (and committed) after the write checked
        it is no longer there when a new level's foreign keys are checked: an integrity
        error, which is explained here once the write has rolled back.
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
    ) -> None:
        """Lock the batch's levels in item order before any step changes one.

        Steps still apply in the batch's order (the ledger tells them in that order), but
        every lock a batch waits for is taken here, in one order for all batches, so two
        batches over the same items cannot deadlock. Levels the batch adds to that do not
        exist yet are created first (at 0, also in item order, when there are two or more):
        two batches creating the same new levels would otherwise lock them in their own
        orders. A level created here that the batch then fails on rolls back with it.
        SQLite needs none of it: the transaction holds the database's write lock.
        """
        if self._ctx.sqlite:
            return
        level = inventory_levels.c
        wanted = sorted({a.item_id for a in adjustments})
        increased = sorted({a.item_id for a in adjustments if a.delta > 0})
        if len(increased) > 1:
            rows = [
                {
                    "store_id": store_id,
                    "item_id": item_id,
                    "tenant_id": tenant,
                    "quantity": 0,
                    "updated_at": _LONG_AGO,
                }
                for item_id in increased
            ]
            conn.execute(
                self._ctx.insert(inventory_levels)
                .values(rows)
                .on_conflict_do_nothing(index_elements=[level.store_id, level.item_id])
            )
        conn.execute(
            sa.select(level.item_id)
            .where(
                level.store_id == store_id,
                level.tenant_id == tenant,
                level.item_id.in_(wanted),
            )
            .order_by(level.item_id)
            .with_for_update()
        )

    def _step(
        self, tenant: str, store_id: int, adjustment: Adjustment, now: datetime
    ) -> sa.Executable:
        """One adjustment as one conditional statement that returns the level it left.

        A decrease is an UPDATE that only matches while enough is held, so no other
        transaction can slip in between a check and the write. An increase is an upsert,
        which also creates a missing level. No row back means the step was refused.
        """
        level = inventory_levels.c
        if adjustment.delta > 0:
            upsert = self._ctx.insert(inventory_levels).values(
                store_id=store_id,
                item_id=adjustment.item_id,
                tenant_id=tenant,
                quantity=adjustment.delta,
                updated_at=now,
            )
            statement: sa.Executable = upsert.on_conflict_do_update(
                index_elements=[level.store_id, level.item_id],
                set_={
                    "quantity": level.quantity + upsert.excluded.quantity,
                    "updated_at": self._ctx.later(level.updated_at, now),
                },
                where=sa.and_(
                    level.tenant_id == tenant,
                    level.quantity + upsert.excluded.quantity <= MAX_QUANTITY,
                ),
            ).returning(level.quantity, level.updated_at)
            return statement
        return (
            inventory_levels.update()
            .where(
                level.store_id == store_id,
                level.item_id == adjustment.item_id,
                level.tenant_id == tenant,
                level.quantity + adjustment.delta >= 0,
            )
            .values(
                quantity=level.quantity + adjustment.delta,
                updated_at=self._ctx.later(level.updated_at, now),
            )
            .returning(level.quantity, level.updated_at)
        )


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
