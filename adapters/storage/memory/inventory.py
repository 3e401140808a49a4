"""The in-memory inventory port: levels, counted sets, all-or-none batches, the ledger, as-of."""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from itertools import islice

from commerce.adapters.storage.memory.state import MemoryState, page
from commerce.core import rules
from commerce.core.errors import NotFound
from commerce.core.models import (
    Adjustment,
    ChangeFilter,
    InventoryLevel,
    LedgerEntry,
    Reason,
)
from commerce.core.pagination import TimeKey


def _time_order(entry: LedgerEntry) -> tuple[datetime, int]:
    return (entry.created_at, entry.id)


class MemoryInventory:
    """Implements ``core.ports.Inventory`` over a ``MemoryState``; every method holds its lock."""

    def __init__(self, state: MemoryState) -> None:
        self.state = state

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
        s = self.state
        with s.lock:
            if s.store(tenant, store_id) is None:
                return []
            levels = s.store_levels[store_id]
            if item_ids is None:
                return page(levels, after, limit)
            wanted: Iterable[int] = sorted(i for i in set(item_ids) if after is None or i > after)
            found = (levels[i] for i in wanted if i in levels)
            return list(islice(found, limit))

    def list_item_levels(
        self, tenant: str, item_id: int, *, after: int | None, limit: int
    ) -> Sequence[InventoryLevel]:
        s = self.state
        with s.lock:
            if s.item(tenant, item_id) is None:
                return []
            return page(s.item_levels[item_id], after, limit)

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
        s = self.state
        with s.lock:
            self._require_store(tenant, store_id)
            if s.item(tenant, item_id) is None:
                raise NotFound("item", item_id)
            before = s.quantity(store_id, item_id)
            rules.check_expected_quantity(store_id, item_id, before, expected_quantity)
            now = s.clock()
            self._record(
                store_id, item_id, quantity - before, quantity, Reason.count, reference, actor, now
            )
            return s.put_level(store_id, item_id, quantity, now)

    def adjust(
        self, tenant: str, store_id: int, adjustments: Sequence[Adjustment], *, actor: str
    ) -> Sequence[InventoryLevel]:
        s = self.state
        with s.lock:
            self._require_store(tenant, store_id)
            for adjustment in adjustments:
                if s.item(tenant, adjustment.item_id) is None:
                    raise NotFound("item", adjustment.item_id)
            before = {a.item_id: s.quantity(store_id, a.item_id) for a in adjustments}
            # Decided before anything changes: the batch applies whole or not at all.
            quantities = rules.plan_adjustments(adjustments, before)
            now = s.clock()
            for adjustment, after in zip(adjustments, quantities, strict=True):
                self._record(
                    store_id,
                    adjustment.item_id,
                    adjustment.delta,
                    after,
                    adjustment.reason,
                    adjustment.reference,
                    actor,
                    now,
                )
                s.put_level(store_id, adjustment.item_id, after, now)
            levels = s.store_levels[store_id]
            return [levels[i] for i in sorted(before)]

    # -- the ledger ------------------------------------------------------------------
    def list_changes(
        self,
        tenant: str,
        store_id: int,
        where: ChangeFilter,
        *,
        after: int | TimeKey | None,
        limit: int,
    ) -> Sequence[LedgerEntry]:
        if where.by_time != isinstance(after, TimeKey) and after is not None:
            raise TypeError(f"list_changes: {after!r} is not the key of {where!r}'s order")
        s = self.state
        with s.lock:
            if s.store(tenant, store_id) is None:
                return []
            found = (
                e
                for e in s.ledger.get(store_id, [])
                if (where.item_id is None or e.item_id == where.item_id)
                and (where.since is None or e.created_at >= where.since)
                and (where.until is None or e.created_at < where.until)
            )
            if isinstance(after, TimeKey) or where.by_time:
                # In time order. The ledger is kept in id order, which a clock that steps
                # back (or a level stamped ahead of it) does not follow, so it is sorted.
                past = (after.at, after.id) if isinstance(after, TimeKey) else None
                later = (e for e in found if past is None or _time_order(e) > past)
                return heapq.nsmallest(limit, later, key=_time_order)
            after_id = after
            return list(islice((e for e in found if after_id is None or e.id > after_id), limit))

    def list_levels_as_of(
        self,
        tenant: str,
        store_id: int,
        as_of: datetime,
        *,
        item_ids: Collection[int] | None,
        after: int | None,
        limit: int,
    ) -> Sequence[InventoryLevel]:
        s = self.state
        with s.lock:
            if s.store(tenant, store_id) is None:
                return []
            wanted = None if item_ids is None else set(item_ids)
            last: dict[int, LedgerEntry] = {}
            for entry in s.ledger.get(store_id, []):
                if entry.created_at > as_of:
                    continue
                if wanted is not None and entry.item_id not in wanted:
                    continue
                if after is not None and entry.item_id <= after:
                    continue
                seen = last.get(entry.item_id)
                if seen is None or (entry.created_at, entry.id) > (seen.created_at, seen.id):
                    last[entry.item_id] = entry
            return [
                InventoryLevel(
                    store_id=store_id,
                    item_id=item_id,
                    quantity=last[item_id].quantity_after,
                    updated_at=last[item_id].created_at,
                )
                for item_id in sorted(last)[:limit]
            ]

    # -- helpers (called with the lock held) --------------------------------------------
    def _require_store(self, tenant: str, store_id: int) -> None:
        if self.state.store(tenant, store_id) is None:
            raise NotFound("store", store_id)

    def _record(
        self,
        store_id: int,
        item_id: int,
        delta: int,
        quantity_after: int,
        reason: Reason,
        reference: str | None,
        actor: str,
        now: datetime,
    ) -> None:
        entry = LedgerEntry(
            id=self.state.next_id("change"),
            store_id=store_id,
            item_id=item_id,
            delta=delta,
            quantity_after=quantity_after,
            reason=reason,
            reference=reference,
            actor=actor,
            created_at=now,
        )
        self.state.ledger.setdefault(store_id, []).append(entry)
