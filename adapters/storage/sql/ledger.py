"""The change ledger on SQL: appending entries, listing them, and levels as of a moment.

``SqlLedger`` is the half of the ``Inventory`` port that is about history; ``SqlInventory``
inherits it, so that the port stays one object while each module stays small.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa

from commerce.adapters.storage.sql.common import ID_ATTEMPTS, SqlContext, after_key, no_free_id
from commerce.adapters.storage.sql.tables import inventory_changes, stores
from commerce.core.models import ChangeFilter, InventoryLevel, LedgerEntry, Reason
from commerce.core.pagination import TimeKey

T = TypeVar("T")

Change = tuple[int, int, int, Reason, str | None, datetime]
"""An entry to append: ``(item_id, delta, quantity_after, reason, reference, at)``."""

_CHANGE_COLUMNS = (
    inventory_changes.c.id,
    inventory_changes.c.store_id,
    inventory_changes.c.item_id,
    inventory_changes.c.delta,
    inventory_changes.c.quantity_after,
    inventory_changes.c.reason,
    inventory_changes.c.reference,
    inventory_changes.c.actor,
    inventory_changes.c.created_at,
)


class IdTaken(Exception):
    """A ledger id minted here was already used at that store (by another replica)."""


class SqlLedger:
    def __init__(self, ctx: SqlContext) -> None:
        self._ctx = ctx

    # -- reads -----------------------------------------------------------------------
    def list_changes(
        self,
        tenant: str,
        store_id: int,
        where: ChangeFilter,
        *,
        after: int | TimeKey | None,
        limit: int,
    ) -> Sequence[LedgerEntry]:
        if where.by_time:
            if after is not None and not isinstance(after, TimeKey):
                raise TypeError(f"list_changes: {after!r} is not the key of {where!r}'s order")
            return self._changes_by_time(tenant, store_id, where, after, limit)
        if isinstance(after, TimeKey):
            raise TypeError(f"list_changes: {after!r} is not the key of {where!r}'s order")
        change = inventory_changes.c
        conditions = [
            change.store_id == store_id,
            change.tenant_id == tenant,
            _store_exists(tenant, store_id),
            *after_key(change.id, after),
        ]
        if where.item_id is not None:
            conditions.append(change.item_id == where.item_id)
            if after is None:
                # Ids are positive, so this bound changes no answer. Without it, SQLite's
                # planner (no statistics) walks the store's whole history on the primary key
                # instead of seeking (store_id, item_id, id).
                conditions.append(change.id > 0)
        query = sa.select(*_CHANGE_COLUMNS).where(*conditions).order_by(change.id).limit(limit)
        return [_entry(row) for row in self._ctx.all(query)]

    def _changes_by_time(
        self, tenant: str, store_id: int, where: ChangeFilter, after: TimeKey | None, limit: int
    ) -> Sequence[LedgerEntry]:
        """``changes?since=&until=``, in ``(created_at, id)`` order: one range of the index
        ``(store_id, created_at, id)``, or with an item ``(store_id, item_id, created_at,
        id)``, from ``since`` (or the cursor) to ``until``, so no entry outside is read.

        Ordered by ``id`` instead, both planners walk the primary key from the store's first
        entry and filter on the time; an index on the time alone does not change that.
        """
        change = inventory_changes.c
        conditions = [
            change.store_id == store_id,
            change.tenant_id == tenant,
            _store_exists(tenant, store_id),
        ]
        since = where.since
        if after is not None:
            since = after.at if since is None else max(since, after.at)
            # (created_at, id) > (after.at, after.id), spelt out: the index range starts at
            # after.at on every planner, and only that microsecond's entries are filtered.
            conditions.append(sa.or_(change.created_at > after.at, change.id > after.id))
        if since is not None:
            conditions.append(change.created_at >= since)
        if where.item_id is not None:
            conditions.append(change.item_id == where.item_id)
        if where.until is not None:
            conditions.append(change.created_at < where.until)
        query = (
            sa.select(*_CHANGE_COLUMNS)
            .where(*conditions)
            .order_by(change.created_at, change.id)
            .limit(limit)
        )
        return [_entry(row) for row in self._ctx.all(query)]

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
        if limit < 1:
            return []
        if item_ids is None:
            candidates = _items_with_history(store_id, as_of, after, limit)
        else:
            wanted = sorted(i for i in set(item_ids) if after is None or i > after)
            if not wanted:
                return []
            candidates = (
                sa.values(sa.column("item_id", sa.BigInteger()), name="wanted")
                .data([(i,) for i in wanted])
                .cte("wanted")
            )
        last = inventory_changes.alias("last")
        # Per candidate, one backward seek on (store_id, item_id, created_at, id).
        newest = (
            sa.select(last.c.id, last.c.item_id, last.c.quantity_after, last.c.created_at)
            .where(
                last.c.store_id == store_id,
                last.c.item_id == candidates.c.item_id,
                last.c.created_at <= as_of,
            )
            .order_by(last.c.created_at.desc(), last.c.id.desc())
            .limit(1)
        )
        if self._ctx.sqlite:
            # No LATERAL in SQLite: the newest entry's id, then its row by primary key.
            # SQLite always nests these loops, one seek each per candidate.
            change = inventory_changes.c
            picked = sa.select(change.item_id, change.quantity_after, change.created_at).join_from(
                candidates,
                inventory_changes,
                sa.and_(
                    change.store_id == store_id,
                    change.id == newest.with_only_columns(last.c.id).scalar_subquery(),
                ),
            )
            query = (
                picked.where(change.tenant_id == tenant, _store_exists(tenant, store_id))
                .order_by(change.item_id)
                .limit(limit)
            )
        else:
            # LATERAL keeps PostgreSQL from hashing the store's whole history for the join.
            entry = newest.where(last.c.tenant_id == tenant).lateral("entry")
            query = (
                sa.select(entry.c.item_id, entry.c.quantity_after, entry.c.created_at)
                .select_from(candidates.join(entry, sa.true()))
                .where(_store_exists(tenant, store_id))
                .order_by(entry.c.item_id)
                .limit(limit)
            )
        return [InventoryLevel(store_id, *row) for row in self._ctx.all(query)]

    # -- appending -------------------------------------------------------------------
    def _record(
        self,
        conn: sa.Connection,
        tenant: str,
        store_id: int,
        actor: str,
        changes: Sequence[Change],
    ) -> None:
        """Append one ledger entry per change, in the caller's transaction: one statement.

        Called after the levels are written, while their row locks are held: a later
        change of the same level mints its ids later, so a level's entries in id order are
        its changes in commit order (within a process; across replicas, by time).
        """
        ids = self._ctx.ids.take(len(changes))
        params: dict[str, Any] = {"store_id": store_id, "tenant_id": tenant, "actor": actor}
        for n, (change_id, (item_id, delta, quantity_after, reason, reference, at)) in enumerate(
            zip(ids, changes, strict=True)
        ):
            params[f"id_{n}"] = change_id
            params[f"item_id_{n}"] = item_id
            params[f"delta_{n}"] = delta
            params[f"quantity_after_{n}"] = quantity_after
            params[f"reason_{n}"] = reason.value
            params[f"reference_{n}"] = reference
            params[f"created_at_{n}"] = at
        # A row left out is an id another replica took: the whole transaction runs again.
        if conn.execute(_append_entries(len(changes)), params).rowcount != len(changes):
            raise IdTaken

    def _write_minting(self, work: Callable[[sa.Connection], T], *, locks_rows: bool = False) -> T:
        """``tx.write(work)``, run again with fresh ids if a ledger id was already taken."""
        for _ in range(ID_ATTEMPTS):
            try:
                return self._ctx.tx.write(work, locks_rows=locks_rows)
            except IdTaken:
                continue
        raise no_free_id(inventory_changes)


_SHARED_BY_BATCH = ("store_id", "tenant_id", "actor")
"""The entry columns every entry of one append has in common: one parameter each."""


@functools.lru_cache(maxsize=64)
def _append_entries(count: int) -> sa.TextClause:
    """``INSERT INTO inventory_changes … VALUES (…), … ON CONFLICT (store_id, id) DO NOTHING``
    for ``count`` entries, built once per count.

    Text rather than the dialects' ``insert().on_conflict_do_nothing()``: in SQLAlchemy 2.0
    those have no cache key, so they would be compiled again at every execution (see
    docs/performance.md, "Writes"). The statement is the same on SQLite, PostgreSQL and
    CockroachDB; each parameter is bound with its column's type.
    """
    columns = [column.name for column in inventory_changes.columns]
    rows = ", ".join(
        "(" + ", ".join(_entry_param(name, n) for name in columns) + ")" for n in range(count)
    )
    names = ", ".join(columns)
    # S608: the names come from the table's metadata; every value is a bound parameter.
    insert = f"INSERT INTO {inventory_changes.name} ({names}) VALUES {rows}"  # noqa: S608
    statement = sa.text(f"{insert} ON CONFLICT (store_id, id) DO NOTHING")
    return statement.bindparams(
        *(
            sa.bindparam(_entry_param(name, n)[1:], type_=inventory_changes.c[name].type)
            for name in columns
            for n in range(count)
            if name not in _SHARED_BY_BATCH or n == 0
        )
    )


def _entry_param(column: str, n: int) -> str:
    return f":{column}" if column in _SHARED_BY_BATCH else f":{column}_{n}"


def _items_with_history(store_id: int, as_of: datetime, after: int | None, limit: int) -> sa.CTE:
    """The first ``limit`` items after ``after`` with an entry at the store by ``as_of``.

    A recursive walk that seeks the next item id on (store_id, item_id, created_at, id)
    once per item (a loose index scan): it never reads an item's whole history, and it
    stops after ``limit`` items, however long the store's ledger.
    """
    change = inventory_changes.c

    def next_item(*floor: sa.ColumnElement[bool]) -> sa.ScalarSelect[Any]:
        # ORDER BY … LIMIT 1 rather than min(): the one-row seek is then the plan,
        # not a choice the planner may make.
        return (
            sa.select(change.item_id)
            .where(change.store_id == store_id, change.created_at <= as_of, *floor)
            .order_by(change.item_id)
            .limit(1)
            .scalar_subquery()
        )

    one = sa.literal_column("1", sa.Integer())
    walk = sa.select(
        next_item(*after_key(change.item_id, after)).label("item_id"), one.label("n")
    ).cte("walk", recursive=True)
    step = sa.select(next_item(change.item_id > walk.c.item_id), walk.c.n + one).where(
        walk.c.item_id.is_not(None), walk.c.n < limit
    )
    return walk.union_all(step)


def _store_exists(tenant: str, store_id: int) -> sa.Exists:
    """The store is the tenant's and still there: a deleted store's kept history is not listed."""
    return sa.exists().where(stores.c.id == store_id, stores.c.tenant_id == tenant)


def _entry(row: sa.Row[Any]) -> LedgerEntry:
    return LedgerEntry(
        id=row.id,
        store_id=row.store_id,
        item_id=row.item_id,
        delta=row.delta,
        quantity_after=row.quantity_after,
        reason=Reason(row.reason),
        reference=row.reference,
        actor=row.actor,
        created_at=row.created_at,
    )
