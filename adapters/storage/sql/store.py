"""``SqlStore``: the ``CommerceStore`` port on SQLAlchemy Core (SQLite, PostgreSQL, CockroachDB)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.dialects import postgresql, sqlite

from commerce.adapters.storage.sql import schema
from commerce.adapters.storage.sql.engine import SQLITE_LATER, UPGRADE_HINT, SqlOptions, display
from commerce.adapters.storage.sql.ids import IdGenerator, default_ids
from commerce.adapters.storage.sql.tables import (
    MAX_MONEY,
    MONEY_SCALE,
    UtcDateTime,
    api_keys,
    chains,
    idempotency_keys,
    inventory_changes,
    inventory_levels,
    items,
    stores,
    tenants,
)
from commerce.adapters.storage.sql.transactions import Transactor
from commerce.core.apikeys import ApiKey
from commerce.core.auth import Role
from commerce.core.errors import (
    Conflict,
    IdempotencyMismatch,
    InsufficientStock,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    StorageUnavailable,
)
from commerce.core.models import (
    Adjustment,
    Chain,
    ChainPatch,
    ChangeFilter,
    InventoryLevel,
    Item,
    ItemPatch,
    LedgerEntry,
    NewChain,
    NewItem,
    NewStore,
    Reason,
    Store,
    StoredResponse,
    StorePatch,
    Tenant,
)

T = TypeVar("T")

MAX_QUANTITY = 2**53 - 1
"""Quantities stay exact for JavaScript clients too."""

ID_ATTEMPTS = 5
"""How often a create is retried when a freshly minted id is already taken (another replica)."""

_CHAIN_COLUMNS = (
    chains.c.id,
    chains.c.name,
    chains.c.phone,
    chains.c.created_at,
    chains.c.updated_at,
)
_STORE_COLUMNS = (
    stores.c.id,
    stores.c.chain_id,
    stores.c.name,
    stores.c.phone,
    stores.c.address,
    stores.c.postal_code,
    stores.c.city,
    stores.c.country,
    stores.c.active,
    stores.c.created_at,
    stores.c.updated_at,
)
_ITEM_COLUMNS = (
    items.c.id,
    items.c.sku,
    items.c.name,
    items.c.cost,
    items.c.created_at,
    items.c.updated_at,
)
_LEVEL_COLUMNS = (
    inventory_levels.c.store_id,
    inventory_levels.c.item_id,
    inventory_levels.c.quantity,
    inventory_levels.c.updated_at,
)
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

_API_KEY_COLUMNS = (
    api_keys.c.id,
    api_keys.c.tenant_id,
    api_keys.c.prefix,
    api_keys.c.role,
    api_keys.c.created_at,
    api_keys.c.revoked_at,
    api_keys.c.last_used_at,
)

CLAIMED, COMPLETED = "claimed", "completed"


class _IdTaken(Exception):
    """A ledger id minted here was already used at that store (by another replica)."""


def _execute(statement: sa.Executable, conn: sa.Connection) -> None:
    conn.execute(statement)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _text(field: str, value: str) -> str:
    # PostgreSQL cannot store NUL in text; refusing it everywhere keeps the backends alike.
    if "\x00" in value:
        raise InvalidInput(field, "must not contain NUL characters")
    return value


def _money(field: str, value: Decimal) -> Decimal:
    try:
        exact = value.quantize(Decimal(1).scaleb(-MONEY_SCALE))
    except InvalidOperation:
        raise InvalidInput(field, "must be a finite amount") from None
    if exact != value or not value.is_finite():
        raise InvalidInput(field, f"must have at most {MONEY_SCALE} decimal places")
    if abs(exact) > MAX_MONEY:
        raise InvalidInput(field, f"must be at most {MAX_MONEY}")
    return exact


def _after(column: sa.ColumnElement[int], after: int | None) -> list[sa.ColumnElement[bool]]:
    return [] if after is None else [column > after]


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


def _api_key(row: sa.Row[Any]) -> ApiKey:
    return ApiKey(
        id=row.id,
        tenant=row.tenant_id,
        prefix=row.prefix,
        role=Role[row.role],
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def _shortages(
    adjustments: Sequence[Adjustment], before: Mapping[int, int]
) -> list[dict[str, int]]:
    """Every item that some step of the batch would take below zero, as ``InsufficientStock``
    reports it: the quantity before the batch and the batch's total delta for the item."""
    running = dict(before)
    totals: dict[int, int] = {}
    short: set[int] = set()
    for adjustment in adjustments:
        item_id = adjustment.item_id
        totals[item_id] = totals.get(item_id, 0) + adjustment.delta
        if item_id in short:
            continue
        if running.get(item_id, 0) + adjustment.delta < 0:
            short.add(item_id)
        else:
            running[item_id] = running.get(item_id, 0) + adjustment.delta
    return [{"item_id": i, "quantity": before.get(i, 0), "delta": totals[i]} for i in sorted(short)]


class SqlStore:
    """One engine, one transaction helper, and a query per port method.

    Every list is a keyset query (``key > :after ORDER BY key LIMIT :n``) on an index whose
    leading columns are the filter, so a page costs the same on the first page and the last.
    """

    def __init__(
        self,
        engine: sa.Engine,
        options: SqlOptions | None = None,
        *,
        clock: Callable[[], datetime] = _utcnow,
        ids: IdGenerator = default_ids,
        owns_engine: bool = True,
    ) -> None:
        self.engine = engine
        self.options = options or SqlOptions()
        self.tx = Transactor(engine, self.options)
        self._clock = clock
        self._ids = ids
        self._owns_engine = owns_engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._insert: Callable[..., Any] = sqlite.insert if self._sqlite else postgresql.insert

    def __repr__(self) -> str:
        return f"SqlStore({display(self.engine.url)})"

    # -- lifecycle -------------------------------------------------------------------
    def check(self) -> None:
        """Connectivity, then the schema: at head (or newer, during a rolling upgrade)."""
        current = self.tx.read(schema.read_revision)
        migrations = schema.migrations()
        if current is None:
            raise StorageUnavailable(
                f"the database has no schema yet, this version needs {migrations.head}: "
                f"{UPGRADE_HINT}"
            )
        if current != migrations.head and current in migrations.known:
            raise StorageUnavailable(
                f"database schema is at {current}, this version needs {migrations.head}: "
                f"{UPGRADE_HINT}"
            )

    def close(self) -> None:
        if self._owns_engine:
            self.engine.dispose()

    # -- tenants ---------------------------------------------------------------------
    def create_tenant(self, tenant_id: str, name: str) -> Tenant:
        tenant = Tenant(id=tenant_id, name=_text("name", name), created_at=self._clock())
        try:
            self.tx.write(
                lambda conn: conn.execute(
                    tenants.insert().values(
                        id=tenant.id, name=tenant.name, created_at=tenant.created_at
                    )
                )
            )
        except exc.IntegrityError:
            raise Conflict(f"tenant {tenant_id} already exists") from None
        return tenant

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        query = sa.select(tenants.c.id, tenants.c.name, tenants.c.created_at).where(
            tenants.c.id == tenant_id
        )
        row = self.tx.read(lambda conn: conn.execute(query).first())
        return Tenant(*row) if row is not None else None

    def list_tenants(self) -> Sequence[Tenant]:
        query = sa.select(tenants.c.id, tenants.c.name, tenants.c.created_at).order_by(tenants.c.id)
        rows = self.tx.read(lambda conn: conn.execute(query).all())
        return [Tenant(*row) for row in rows]

    # -- reads -----------------------------------------------------------------------
    def list_chains(self, tenant: str, *, after: int | None, limit: int) -> Sequence[Chain]:
        query = (
            sa.select(*_CHAIN_COLUMNS)
            .where(chains.c.tenant_id == tenant, *_after(chains.c.id, after))
            .order_by(chains.c.id)
            .limit(limit)
        )
        return [Chain(*row) for row in self._all(query)]

    def get_chain(self, tenant: str, chain_id: int) -> Chain | None:
        query = sa.select(*_CHAIN_COLUMNS).where(
            chains.c.id == chain_id, chains.c.tenant_id == tenant
        )
        row = self._first(query)
        return Chain(*row) if row is not None else None

    def list_stores(
        self, tenant: str, chain_id: int, *, after: int | None, limit: int
    ) -> Sequence[Store]:
        query = (
            sa.select(*_STORE_COLUMNS)
            .where(
                stores.c.chain_id == chain_id,
                stores.c.tenant_id == tenant,
                *_after(stores.c.id, after),
            )
            .order_by(stores.c.id)
            .limit(limit)
        )
        return [Store(*row) for row in self._all(query)]

    def get_store(self, tenant: str, store_id: int) -> Store | None:
        query = sa.select(*_STORE_COLUMNS).where(
            stores.c.id == store_id, stores.c.tenant_id == tenant
        )
        row = self._first(query)
        return Store(*row) if row is not None else None

    def list_items(self, tenant: str, *, after: int | None, limit: int) -> Sequence[Item]:
        query = (
            sa.select(*_ITEM_COLUMNS)
            .where(items.c.tenant_id == tenant, *_after(items.c.id, after))
            .order_by(items.c.id)
            .limit(limit)
        )
        return [Item(*row) for row in self._all(query)]

    def get_item(self, tenant: str, item_id: int) -> Item | None:
        query = sa.select(*_ITEM_COLUMNS).where(items.c.id == item_id, items.c.tenant_id == tenant)
        row = self._first(query)
        return Item(*row) if row is not None else None

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
            *_after(inventory_levels.c.item_id, after),
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
        return [InventoryLevel(*row) for row in self._all(query)]

    def list_item_levels(
        self, tenant: str, item_id: int, *, after: int | None, limit: int
    ) -> Sequence[InventoryLevel]:
        query = (
            sa.select(*_LEVEL_COLUMNS)
            .where(
                inventory_levels.c.item_id == item_id,
                inventory_levels.c.tenant_id == tenant,
                *_after(inventory_levels.c.store_id, after),
            )
            .order_by(inventory_levels.c.store_id)
            .limit(limit)
        )
        return [InventoryLevel(*row) for row in self._all(query)]

    # -- writes ----------------------------------------------------------------------
    def create_chain(self, tenant: str, new: NewChain) -> Chain:
        now = self._clock()
        values = {
            "tenant_id": tenant,
            "name": _text("name", new.name),
            "phone": _text("phone", new.phone),
            "created_at": now,
            "updated_at": now,
        }

        def explain(conn: sa.Connection) -> Exception | None:
            return None if self._tenant_exists(conn, tenant) else NotFound("tenant", tenant)

        chain_id = self._insert_with_new_id(chains, values, explain)
        return Chain(id=chain_id, name=new.name, phone=new.phone, created_at=now, updated_at=now)

    def create_store(self, tenant: str, new: NewStore) -> Store:
        now = self._clock()
        values = {
            "tenant_id": tenant,
            "chain_id": new.chain_id,
            "name": _text("name", new.name),
            "phone": _text("phone", new.phone),
            "address": _text("address", new.address),
            "postal_code": _text("postal_code", new.postal_code),
            "city": _text("city", new.city),
            "country": _text("country", new.country),
            "active": new.active,
            "created_at": now,
            "updated_at": now,
        }
        chain_query = sa.select(chains.c.id).where(
            chains.c.id == new.chain_id, chains.c.tenant_id == tenant
        )

        def explain(conn: sa.Connection) -> Exception | None:
            found = conn.execute(chain_query).first() is not None
            return None if found else NotFound("chain", new.chain_id)

        store_id = self._insert_with_new_id(stores, values, explain)
        return Store(
            id=store_id,
            chain_id=new.chain_id,
            name=new.name,
            phone=new.phone,
            address=new.address,
            postal_code=new.postal_code,
            city=new.city,
            country=new.country,
            active=new.active,
            created_at=now,
            updated_at=now,
        )

    def create_item(self, tenant: str, new: NewItem) -> Item:
        now = self._clock()
        cost = _money("cost", new.cost)
        values = {
            "tenant_id": tenant,
            "sku": _text("sku", new.sku),
            "name": _text("name", new.name),
            "cost": cost,
            "created_at": now,
            "updated_at": now,
        }
        sku_query = sa.select(items.c.id).where(items.c.tenant_id == tenant, items.c.sku == new.sku)

        def explain(conn: sa.Connection) -> Exception | None:
            if not self._tenant_exists(conn, tenant):
                return NotFound("tenant", tenant)
            if conn.execute(sku_query).first() is not None:
                return Conflict(f"an item with sku {new.sku!r} already exists")
            return None

        item_id = self._insert_with_new_id(items, values, explain)
        return Item(
            id=item_id, sku=new.sku, name=new.name, cost=cost, created_at=now, updated_at=now
        )

    def update_chain(
        self,
        tenant: str,
        chain_id: int,
        patch: ChainPatch,
        *,
        expected_updated_at: datetime | None = None,
    ) -> Chain:
        row = self._update(
            chains, _CHAIN_COLUMNS, "chain", tenant, chain_id, patch, expected_updated_at
        )
        return Chain(*row)

    def delete_chain(
        self, tenant: str, chain_id: int, *, expected_updated_at: datetime | None = None
    ) -> None:
        def conflict(conn: sa.Connection) -> Exception:
            return Conflict(f"chain {chain_id} still has stores; delete or move them first")

        self._delete(
            chains,
            "chain",
            tenant,
            chain_id,
            expected_updated_at,
            guard=~sa.exists().where(stores.c.chain_id == chain_id),
            conflict=conflict,
        )

    def update_store(
        self,
        tenant: str,
        store_id: int,
        patch: StorePatch,
        *,
        expected_updated_at: datetime | None = None,
    ) -> Store:
        row = self._update(
            stores, _STORE_COLUMNS, "store", tenant, store_id, patch, expected_updated_at
        )
        return Store(*row)

    def delete_store(
        self, tenant: str, store_id: int, *, expected_updated_at: datetime | None = None
    ) -> None:
        level = inventory_levels.c
        stocked = [level.store_id == store_id, level.quantity > 0]

        def conflict(conn: sa.Connection) -> Exception:
            count, first = self._stocked(conn, stocked, level.item_id)
            return Conflict(
                f"store {store_id} still holds stock of {count} item(s)", item_ids=first
            )

        self._delete(
            stores,
            "store",
            tenant,
            store_id,
            expected_updated_at,
            # The zero levels go first (they refer to the store); if the store then cannot
            # go, raising rolls them back with it.
            dependents=inventory_levels.delete().where(
                level.store_id == store_id, level.tenant_id == tenant, level.quantity == 0
            ),
            guard=~sa.exists().where(*stocked),
            conflict=conflict,
        )

    def update_item(
        self,
        tenant: str,
        item_id: int,
        patch: ItemPatch,
        *,
        expected_updated_at: datetime | None = None,
    ) -> Item:
        try:
            row = self._update(
                items, _ITEM_COLUMNS, "item", tenant, item_id, patch, expected_updated_at
            )
        except exc.IntegrityError:
            # The only constraint an item's update can break is the unique (tenant_id, sku).
            raise Conflict(f"an item with sku {patch.sku!r} already exists") from None
        return Item(*row)

    def delete_item(
        self, tenant: str, item_id: int, *, expected_updated_at: datetime | None = None
    ) -> None:
        level = inventory_levels.c
        stocked = [level.item_id == item_id, level.quantity > 0]

        def conflict(conn: sa.Connection) -> Exception:
            count, first = self._stocked(conn, stocked, level.store_id)
            return Conflict(
                f"item {item_id} is still in stock at {count} store(s)", store_ids=first
            )

        self._delete(
            items,
            "item",
            tenant,
            item_id,
            expected_updated_at,
            dependents=inventory_levels.delete().where(
                level.item_id == item_id, level.tenant_id == tenant, level.quantity == 0
            ),
            guard=~sa.exists().where(*stocked),
            conflict=conflict,
        )

    # -- inventory -------------------------------------------------------------------
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
        if not 0 <= quantity <= MAX_QUANTITY:
            raise InvalidInput("quantity", f"must be an integer from 0 to {MAX_QUANTITY}")
        _text("actor", actor)
        if reference is not None:
            _text("reference", reference)
        level = inventory_levels.c
        current = sa.select(level.quantity).where(
            level.store_id == store_id, level.item_id == item_id, level.tenant_id == tenant
        )

        def work(conn: sa.Connection) -> InventoryLevel:
            # Reading first is safe here: the transaction is SERIALIZABLE (or holds SQLite's
            # write lock), so a concurrent change of the level makes one of the two retry.
            found = conn.execute(current).first()
            if found is None:
                self._require_stock_pair(conn, tenant, store_id, item_id)
            before = 0 if found is None else int(found.quantity)
            if expected_quantity is not None and expected_quantity != before:
                raise Conflict(
                    f"item {item_id} at store {store_id} holds {before}, not {expected_quantity}",
                    current_quantity=before,
                )
            now = self._clock()
            upsert = self._insert(inventory_levels).values(
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
                    "updated_at": self._later(level.updated_at, now),
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
        _text("actor", actor)
        for n, adjustment in enumerate(adjustments):
            if adjustment.reference is not None:
                _text(f"adjustments[{n}].reference", adjustment.reference)
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
            now = self._clock()
            steps: list[tuple[Adjustment, int, datetime]] = []
            for adjustment in adjustments:
                row = conn.execute(self._step(tenant, store_id, adjustment, now)).first()
                if row is None:
                    # Raising rolls back the steps already taken; the report needs the
                    # quantities before the batch, read in this same transaction.
                    raise InsufficientStock(
                        self._shortages(conn, tenant, store_id, adjustments, steps)
                    )
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

    def list_changes(
        self,
        tenant: str,
        store_id: int,
        where: ChangeFilter,
        *,
        after: int | None,
        limit: int,
    ) -> Sequence[LedgerEntry]:
        change = inventory_changes.c
        conditions = [
            change.store_id == store_id,
            change.tenant_id == tenant,
            _store_exists(tenant, store_id),
            *_after(change.id, after),
        ]
        if where.item_id is not None:
            conditions.append(change.item_id == where.item_id)
            if after is None:
                # Ids are positive, so this bound changes no answer. Without it, SQLite's
                # planner (no statistics) walks the store's whole history on the primary key
                # instead of seeking (store_id, item_id, id).
                conditions.append(change.id > 0)
        if where.since is not None:
            conditions.append(change.created_at >= where.since)
        if where.until is not None:
            conditions.append(change.created_at < where.until)
        query = sa.select(*_CHANGE_COLUMNS).where(*conditions).order_by(change.id).limit(limit)
        return [_entry(row) for row in self._all(query)]

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
            candidates = self._items_with_history(store_id, as_of, after, limit)
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
        if self._sqlite:
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
        return [InventoryLevel(store_id, *row) for row in self._all(query)]

    # -- idempotency keys --------------------------------------------------------------
    def claim_idempotency_key(
        self, tenant: str, key: str, fingerprint: str, *, stale_after: timedelta
    ) -> StoredResponse | None:
        _text("idempotency_key", key)
        k = idempotency_keys.c
        this_key = (k.tenant_id == tenant, k.key == key)
        held = sa.select(
            k.fingerprint,
            k.state,
            k.response_status,
            k.response_headers,
            k.response_body,
            k.claimed_at,
        ).where(*this_key)

        def work(conn: sa.Connection) -> StoredResponse | None:
            now = self._clock()
            # Insert-or-nothing first: of two replicas claiming the same new key at once,
            # exactly one inserts; the other reads the winner's row below.
            claim = (
                self._insert(idempotency_keys)
                .values(
                    tenant_id=tenant,
                    key=key,
                    fingerprint=fingerprint,
                    state=CLAIMED,
                    claimed_at=now,
                )
                .on_conflict_do_nothing(index_elements=[k.tenant_id, k.key])
                .returning(k.key)
            )
            if conn.execute(claim).first() is not None:
                return None
            row = conn.execute(held).first()
            if row is None:
                raise Conflict("a request with this Idempotency-Key is finishing; try again")
            if row.fingerprint != fingerprint:
                raise IdempotencyMismatch(
                    "this Idempotency-Key was already used for a different request"
                )
            if row.state == COMPLETED:
                return _stored_response(row)
            if now - row.claimed_at < stale_after:
                raise Conflict("a request with this Idempotency-Key is still in progress")
            # The holder is presumed dead. Take over only the very claim seen above, so that
            # of two replicas taking over at once only one wins.
            take_over = (
                idempotency_keys.update()
                .where(*this_key, k.state == CLAIMED, k.claimed_at == row.claimed_at)
                .values(claimed_at=now)
            )
            if conn.execute(take_over).rowcount != 1:
                raise Conflict("a request with this Idempotency-Key is still in progress")
            return None

        return self.tx.write(work)

    def complete_idempotency_key(self, tenant: str, key: str, response: StoredResponse) -> None:
        k = idempotency_keys.c
        statement = (
            idempotency_keys.update()
            .where(k.tenant_id == tenant, k.key == key)
            .values(
                state=COMPLETED,
                response_status=response.status,
                response_headers=json.dumps([list(pair) for pair in response.headers]),
                response_body=response.body,
            )
        )
        self.tx.write(partial(_execute, statement))

    def release_idempotency_key(self, tenant: str, key: str) -> None:
        k = idempotency_keys.c
        statement = idempotency_keys.delete().where(
            k.tenant_id == tenant, k.key == key, k.state == CLAIMED
        )
        self.tx.write(partial(_execute, statement))

    def purge_idempotency_keys(self, older_than: datetime) -> int:
        statement = idempotency_keys.delete().where(idempotency_keys.c.claimed_at < older_than)
        return int(self.tx.write(lambda conn: conn.execute(statement).rowcount))

    # -- API keys --------------------------------------------------------------------
    def create_api_key(self, tenant: str, role: Role, prefix: str, secret_hash: str) -> ApiKey:
        now = self._clock()
        values = {
            "tenant_id": tenant,
            "prefix": _text("prefix", prefix),
            "secret_hash": secret_hash,
            "role": role.name,
            "created_at": now,
        }
        prefix_query = sa.select(api_keys.c.id).where(api_keys.c.prefix == prefix)

        def explain(conn: sa.Connection) -> Exception | None:
            if not self._tenant_exists(conn, tenant):
                return NotFound("tenant", tenant)
            if conn.execute(prefix_query).first() is not None:
                return Conflict("an API key with this prefix already exists")
            return None

        key_id = self._insert_with_new_id(api_keys, values, explain)
        return ApiKey(id=key_id, tenant=tenant, prefix=prefix, role=role, created_at=now)

    def list_api_keys(self, tenant: str) -> Sequence[ApiKey]:
        query = (
            sa.select(*_API_KEY_COLUMNS)
            .where(api_keys.c.tenant_id == tenant)
            .order_by(api_keys.c.id)
        )
        return [_api_key(row) for row in self._all(query)]

    def revoke_api_key(self, key_id: int) -> ApiKey:
        now = self._clock()
        revoke = (
            api_keys.update()
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        query = sa.select(*_API_KEY_COLUMNS).where(api_keys.c.id == key_id)

        def work(conn: sa.Connection) -> sa.Row[Any] | None:
            conn.execute(revoke)
            return conn.execute(query).first()

        row = self.tx.write(work)
        if row is None:
            raise NotFound("API key", key_id)
        return _api_key(row)

    def find_api_key(self, prefix: str) -> tuple[ApiKey, str] | None:
        query = sa.select(*_API_KEY_COLUMNS, api_keys.c.secret_hash).where(
            api_keys.c.prefix == prefix
        )
        row = self._first(query)
        return None if row is None else (_api_key(row), row.secret_hash)

    def touch_api_key(self, key_id: int, at: datetime) -> None:
        last = api_keys.c.last_used_at
        statement = (
            api_keys.update()
            .where(api_keys.c.id == key_id, sa.or_(last.is_(None), last < at))
            .values(last_used_at=at)
        )
        self.tx.write(partial(_execute, statement))

    def _later(self, column: sa.ColumnElement[datetime], now: datetime) -> sa.ColumnElement[Any]:
        """SQL for ``max(now, column + 1µs)``: a row's time moves strictly forward.

        ``updated_at`` doubles as a row's version and as the time of its ledger entry, so it
        must never repeat or go back, whatever the clocks of the replicas do.
        """
        stamp = sa.literal(now, UtcDateTime())
        if self._sqlite:
            return sa.Function(SQLITE_LATER, column, stamp, type_=UtcDateTime())
        tick = sa.literal_column("INTERVAL '1 microsecond'", sa.Interval())
        return sa.func.greatest(stamp, column + tick, type_=UtcDateTime())

    def _update(
        self,
        table: sa.Table,
        columns: Sequence[sa.ColumnElement[Any]],
        kind: str,
        tenant: str,
        row_id: int,
        patch: ChainPatch | StorePatch | ItemPatch,
        expected: datetime | None,
    ) -> sa.Row[Any]:
        values = _patch_values(patch)

        def work(conn: sa.Connection) -> sa.Row[Any]:
            # The version check is part of the UPDATE itself, so nothing can change the row
            # between checking and writing.
            statement = (
                table.update()
                .where(
                    table.c.id == row_id, table.c.tenant_id == tenant, *_version(table, expected)
                )
                .values(**values, updated_at=self._later(table.c.updated_at, self._clock()))
                .returning(*columns)
            )
            row = conn.execute(statement).first()
            if row is None:
                raise _refusal(conn, table, kind, tenant, row_id, expected)
            return row

        return self.tx.write(work)

    def _delete(
        self,
        table: sa.Table,
        kind: str,
        tenant: str,
        row_id: int,
        expected: datetime | None,
        *,
        guard: sa.ColumnElement[bool],
        conflict: Callable[[sa.Connection], Exception],
        dependents: sa.Delete | None = None,
    ) -> None:
        statement = table.delete().where(
            table.c.id == row_id, table.c.tenant_id == tenant, *_version(table, expected), guard
        )

        def work(conn: sa.Connection) -> None:
            if dependents is not None:
                conn.execute(dependents)
            if conn.execute(statement).rowcount != 1:
                raise _refusal(conn, table, kind, tenant, row_id, expected, conflict)

        self.tx.write(work)

    @staticmethod
    def _stocked(
        conn: sa.Connection, stocked: Sequence[sa.ColumnElement[bool]], key: sa.Column[int]
    ) -> tuple[int, list[int]]:
        """How many levels are above zero, and the keys of the first hundred, for a Conflict."""
        count = conn.execute(
            sa.select(sa.func.count()).select_from(inventory_levels).where(*stocked)
        ).scalar_one()
        first = conn.scalars(sa.select(key).where(*stocked).order_by(key).limit(100)).all()
        return int(count), list(first)

    def _require_stock_pair(
        self, conn: sa.Connection, tenant: str, store_id: int, item_id: int
    ) -> None:
        store_query = sa.select(stores.c.id).where(
            stores.c.id == store_id, stores.c.tenant_id == tenant
        )
        if conn.execute(store_query).first() is None:
            raise NotFound("store", store_id)
        item_query = sa.select(items.c.id).where(items.c.id == item_id, items.c.tenant_id == tenant)
        if conn.execute(item_query).first() is None:
            raise NotFound("item", item_id)

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
            upsert = self._insert(inventory_levels).values(
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
                    "updated_at": self._later(level.updated_at, now),
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
                updated_at=self._later(level.updated_at, now),
            )
            .returning(level.quantity, level.updated_at)
        )

    @staticmethod
    def _shortages(
        conn: sa.Connection,
        tenant: str,
        store_id: int,
        adjustments: Sequence[Adjustment],
        applied: Sequence[tuple[Adjustment, int, datetime]],
    ) -> list[dict[str, int]]:
        level = inventory_levels.c
        wanted = {a.item_id for a in adjustments}
        rows = conn.execute(
            sa.select(level.item_id, level.quantity).where(
                level.store_id == store_id, level.tenant_id == tenant, level.item_id.in_(wanted)
            )
        )
        before = {int(item_id): int(quantity) for item_id, quantity in rows}
        for adjustment, _, _ in applied:
            before[adjustment.item_id] -= adjustment.delta
        return _shortages(adjustments, before)

    def _record(
        self,
        conn: sa.Connection,
        tenant: str,
        store_id: int,
        actor: str,
        changes: Sequence[tuple[int, int, int, Reason, str | None, datetime]],
    ) -> None:
        """Append ledger entries ``(item_id, delta, quantity_after, reason, reference, at)``.

        Called after the levels are written, while their row locks are held: a later
        change of the same level mints its ids later, so a level's entries in id order are
        its changes in commit order (within a process; across replicas, by time).
        """
        ids = self._ids.take(len(changes))
        rows = [
            {
                "store_id": store_id,
                "id": change_id,
                "tenant_id": tenant,
                "item_id": item_id,
                "delta": delta,
                "quantity_after": quantity_after,
                "reason": reason.value,
                "reference": reference,
                "actor": actor,
                "created_at": at,
            }
            for change_id, (item_id, delta, quantity_after, reason, reference, at) in zip(
                ids, changes, strict=True
            )
        ]
        statement = (
            self._insert(inventory_changes)
            .values(rows)
            .on_conflict_do_nothing(
                index_elements=[inventory_changes.c.store_id, inventory_changes.c.id]
            )
            .returning(inventory_changes.c.id)
        )
        if len(conn.execute(statement).all()) != len(rows):
            raise _IdTaken

    def _write_minting(self, work: Callable[[sa.Connection], T]) -> T:
        """``tx.write(work)``, run again with fresh ids if a ledger id was already taken."""
        for _ in range(ID_ATTEMPTS):
            try:
                return self.tx.write(work)
            except _IdTaken:
                continue
        raise StorageUnavailable(
            f"could not find a free id in {inventory_changes.name} after {ID_ATTEMPTS} tries"
        )

    @staticmethod
    def _items_with_history(
        store_id: int, as_of: datetime, after: int | None, limit: int
    ) -> sa.CTE:
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
            next_item(*_after(change.item_id, after)).label("item_id"), one.label("n")
        ).cte("walk", recursive=True)
        step = sa.select(next_item(change.item_id > walk.c.item_id), walk.c.n + one).where(
            walk.c.item_id.is_not(None), walk.c.n < limit
        )
        return walk.union_all(step)

    # -- helpers ---------------------------------------------------------------------
    def _all(self, query: sa.Select[Any]) -> Sequence[sa.Row[Any]]:
        return self.tx.read(lambda conn: conn.execute(query).all())

    def _first(self, query: sa.Select[Any]) -> sa.Row[Any] | None:
        return self.tx.read(lambda conn: conn.execute(query).first())

    @staticmethod
    def _tenant_exists(conn: sa.Connection, tenant: str) -> bool:
        return (
            conn.execute(sa.select(tenants.c.id).where(tenants.c.id == tenant)).first() is not None
        )

    def _insert_with_new_id(
        self,
        table: sa.Table,
        values: dict[str, Any],
        explain: Callable[[sa.Connection], Exception | None],
    ) -> int:
        """Insert a row under a fresh id; ``explain`` turns an integrity error into core's terms.

        An integrity error that ``explain`` cannot account for is a taken id (another replica
        minted the same one), so the row is tried again under a new id.
        """
        for _ in range(ID_ATTEMPTS):
            row_id = self._ids.next()
            try:
                self.tx.write(partial(_execute, table.insert().values(id=row_id, **values)))
            except exc.IntegrityError:
                problem = self.tx.read(explain)
                if problem is not None:
                    raise problem from None
                continue
            return row_id
        raise StorageUnavailable(
            f"could not find a free id in {table.name} after {ID_ATTEMPTS} tries"
        )


def _store_exists(tenant: str, store_id: int) -> sa.Exists:
    """The store is the tenant's and still there: a deleted store's kept history is not listed."""
    return sa.exists().where(stores.c.id == store_id, stores.c.tenant_id == tenant)


def _version(table: sa.Table, expected: datetime | None) -> list[sa.ColumnElement[bool]]:
    return [] if expected is None else [table.c.updated_at == expected]


def _patch_values(patch: ChainPatch | StorePatch | ItemPatch) -> dict[str, Any]:
    """The patch's non-``None`` fields, checked as the create methods check them."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(patch):
        value = getattr(patch, field.name)
        if isinstance(value, str):
            value = _text(field.name, value)
        elif isinstance(value, Decimal):
            value = _money(field.name, value)
        if value is not None:
            values[field.name] = value
    return values


def _refusal(
    conn: sa.Connection,
    table: sa.Table,
    kind: str,
    tenant: str,
    row_id: int,
    expected: datetime | None,
    conflict: Callable[[sa.Connection], Exception] | None = None,
) -> Exception:
    """Why a conditional UPDATE or DELETE matched no row, read in the same transaction."""
    found = conn.execute(
        sa.select(table.c.updated_at).where(table.c.id == row_id, table.c.tenant_id == tenant)
    ).first()
    if found is None:
        return NotFound(kind, row_id)
    if expected is not None and found.updated_at != expected:
        return PreconditionFailed(f"{kind} {row_id} has changed since the version you named")
    if conflict is not None:
        return conflict(conn)
    return Conflict(f"{kind} {row_id} changed meanwhile; try again")


def _stored_response(row: sa.Row[Any]) -> StoredResponse:
    headers = json.loads(row.response_headers or "[]")
    return StoredResponse(
        status=int(row.response_status),
        headers=tuple((str(name), str(value)) for name, value in headers),
        body=bytes(row.response_body or b""),
    )
