"""``SqlInventory``: the ``Inventory`` port on SQLAlchemy Core: levels, counted sets and
all-or-none adjustments, each written with its ledger entries in one transaction.

The history half (listing the ledger, levels as of a moment, appending) is ``SqlLedger``.
The decisions are ``core.rules``'; what stays here is the atomic statements.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

import sqlalchemy as sa

from commerce.adapters.storage.sql.common import after_key
from commerce.adapters.storage.sql.ledger import SqlLedger
from commerce.adapters.storage.sql.tables import inventory_levels, items, stores
from commerce.core import rules
from commerce.core.errors import InsufficientStock, NotFound
from commerce.core.models import Adjustment, InventoryLevel, Reason

_LEVEL_COLUMNS = (
    inventory_levels.c.store_id,
    inventory_levels.c.item_id,
    inventory_levels.c.quantity,
    inventory_levels.c.updated_at,
)


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
        current = sa.select(level.quantity).where(
            level.store_id == store_id, level.item_id == item_id, level.tenant_id == tenant
        )

        def work(conn: sa.Connection) -> InventoryLevel:
            # Reading first is safe here: the transaction is SERIALIZABLE (or holds SQLite's
            # write lock), so a concurrent change of the level makes one of the two retry.
            found = conn.execute(current).first()
            if found is None:
                _require_stock_pair(conn, tenant, store_id, item_id)
            before = 0 if found is None else int(found.quantity)
            rules.check_expected_quantity(store_id, item_id, before, expected_quantity)
            now = self._ctx.clock()
            upsert = self._ctx.insert(inventory_levels).values(
                store_id=store_id,
                item_id=item_id,
                tenant_id=tenant,
                quantity=quantity,
                updated_at=now,
            )
            upsert = upsert.on_conflict_do_update(
                index_elements=[level.store_id, level.item_id],
                set_={
                    "quantity": upsert.excluded.quantity,
                    "updated_at": self._ctx.later(level.updated_at, now),
                },
                where=level.tenant_id == tenant,
            ).returning(level.quantity, level.updated_at)
            row = conn.execute(upsert).one()
            at = row.updated_at
            self._record(
                conn,
                tenant,
                store_id,
                actor,
                [(item_id, quantity - before, row.quantity, Reason.count, reference, at)],
            )
            return InventoryLevel(store_id, item_id, row.quantity, row.updated_at)

        return self._write_minting(work)

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
            now = self._ctx.clock()
            steps: list[tuple[Adjustment, int, datetime]] = []
            for adjustment in adjustments:
                row = conn.execute(self._step(tenant, store_id, adjustment, now)).first()
                if row is None:
                    # Raising rolls back the steps already taken; the report needs the
                    # quantities before the batch, worked out from those read now.
                    held = _quantities(conn, tenant, store_id, wanted)
                    before = rules.before_batch(adjustments, held, len(steps))
                    raise InsufficientStock(rules.shortages(adjustments, before))
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

        return self._write_minting(work)

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
                where=level.tenant_id == tenant,
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


def _require_stock_pair(conn: sa.Connection, tenant: str, store_id: int, item_id: int) -> None:
    store_query = sa.select(stores.c.id).where(
        stores.c.id == store_id, stores.c.tenant_id == tenant
    )
    if conn.execute(store_query).first() is None:
        raise NotFound("store", store_id)
    item_query = sa.select(items.c.id).where(items.c.id == item_id, items.c.tenant_id == tenant)
    if conn.execute(item_query).first() is None:
        raise NotFound("item", item_id)
