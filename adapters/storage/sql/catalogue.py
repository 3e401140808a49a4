"""``SqlCatalogue``: the ``Catalogue`` port (tenants, chains, stores, items) on SQLAlchemy Core.

Every list is a keyset query (``key > :after ORDER BY key LIMIT :n``) on an index whose
leading columns are the filter, so a page costs the same on the first page and the last.
Every update and delete is one conditional statement; when it matches nothing, a read in
the same transaction tells ``core.rules.refusal`` what it found, and the rule says why.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc

from commerce.adapters.storage.sql.common import SqlContext, after_key, tenant_exists, version
from commerce.adapters.storage.sql.tables import chains, inventory_levels, items, stores, tenants
from commerce.core import rules
from commerce.core.errors import CommerceError, NotFound, SkuTaken, TenantExists
from commerce.core.models import (
    Chain,
    ChainPatch,
    Item,
    ItemPatch,
    NewChain,
    NewItem,
    NewStore,
    Store,
    StorePatch,
    Tenant,
)

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
_TENANT_COLUMNS = (tenants.c.id, tenants.c.name, tenants.c.created_at)

Guard = Callable[[sa.Connection], CommerceError | None]
"""Asks the delete rule, in the refused delete's transaction, what stands in the way."""


class SqlCatalogue:
    def __init__(self, ctx: SqlContext) -> None:
        self._ctx = ctx

    # -- tenants ---------------------------------------------------------------------
    def create_tenant(self, tenant_id: str, name: str) -> Tenant:
        tenant = Tenant(id=tenant_id, name=name, created_at=self._ctx.clock())
        statement = tenants.insert().values(
            id=tenant.id, name=tenant.name, created_at=tenant.created_at
        )
        try:
            self._ctx.tx.write(lambda conn: conn.execute(statement))
        except exc.IntegrityError:
            raise TenantExists(tenant_id) from None
        return tenant

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        row = self._ctx.first(sa.select(*_TENANT_COLUMNS).where(tenants.c.id == tenant_id))
        return Tenant(*row) if row is not None else None

    def list_tenants(self) -> Sequence[Tenant]:
        rows = self._ctx.all(sa.select(*_TENANT_COLUMNS).order_by(tenants.c.id))
        return [Tenant(*row) for row in rows]

    # -- reads -----------------------------------------------------------------------
    def list_chains(self, tenant: str, *, after: int | None, limit: int) -> Sequence[Chain]:
        query = (
            sa.select(*_CHAIN_COLUMNS)
            .where(chains.c.tenant_id == tenant, *after_key(chains.c.id, after))
            .order_by(chains.c.id)
            .limit(limit)
        )
        return [Chain(*row) for row in self._ctx.all(query)]

    def get_chain(self, tenant: str, chain_id: int) -> Chain | None:
        query = sa.select(*_CHAIN_COLUMNS).where(
            chains.c.id == chain_id, chains.c.tenant_id == tenant
        )
        row = self._ctx.first(query)
        return Chain(*row) if row is not None else None

    def list_stores(
        self, tenant: str, chain_id: int, *, after: int | None, limit: int
    ) -> Sequence[Store]:
        query = (
            sa.select(*_STORE_COLUMNS)
            .where(
                stores.c.chain_id == chain_id,
                stores.c.tenant_id == tenant,
                *after_key(stores.c.id, after),
            )
            .order_by(stores.c.id)
            .limit(limit)
        )
        return [Store(*row) for row in self._ctx.all(query)]

    def get_store(self, tenant: str, store_id: int) -> Store | None:
        query = sa.select(*_STORE_COLUMNS).where(
            stores.c.id == store_id, stores.c.tenant_id == tenant
        )
        row = self._ctx.first(query)
        return Store(*row) if row is not None else None

    def list_items(self, tenant: str, *, after: int | None, limit: int) -> Sequence[Item]:
        query = (
            sa.select(*_ITEM_COLUMNS)
            .where(items.c.tenant_id == tenant, *after_key(items.c.id, after))
            .order_by(items.c.id)
            .limit(limit)
        )
        return [Item(*row) for row in self._ctx.all(query)]

    def get_item(self, tenant: str, item_id: int) -> Item | None:
        query = sa.select(*_ITEM_COLUMNS).where(items.c.id == item_id, items.c.tenant_id == tenant)
        row = self._ctx.first(query)
        return Item(*row) if row is not None else None

    # -- creates ---------------------------------------------------------------------
    def create_chain(self, tenant: str, new: NewChain) -> Chain:
        now = self._ctx.clock()
        values = {**dataclasses.asdict(new), "tenant_id": tenant}

        def explain(conn: sa.Connection) -> CommerceError | None:
            return None if tenant_exists(conn, tenant) else NotFound("tenant", tenant)

        chain_id = self._ctx.insert_with_new_id(chains, _stamped(values, now), explain)
        return Chain(id=chain_id, name=new.name, phone=new.phone, created_at=now, updated_at=now)

    def create_store(self, tenant: str, new: NewStore) -> Store:
        now = self._ctx.clock()
        values = {**dataclasses.asdict(new), "tenant_id": tenant}
        chain_query = sa.select(chains.c.id).where(
            chains.c.id == new.chain_id, chains.c.tenant_id == tenant
        )

        def explain(conn: sa.Connection) -> CommerceError | None:
            found = conn.execute(chain_query).first() is not None
            return None if found else NotFound("chain", new.chain_id)

        store_id = self._ctx.insert_with_new_id(stores, _stamped(values, now), explain)
        return Store(id=store_id, **dataclasses.asdict(new), created_at=now, updated_at=now)

    def create_item(self, tenant: str, new: NewItem) -> Item:
        now = self._ctx.clock()
        values = {**dataclasses.asdict(new), "tenant_id": tenant}

        def explain(conn: sa.Connection) -> CommerceError | None:
            if not tenant_exists(conn, tenant):
                return NotFound("tenant", tenant)
            return self._sku_taken(conn, tenant, new.sku, None)

        item_id = self._ctx.insert_with_new_id(items, _stamped(values, now), explain)
        return Item(id=item_id, **dataclasses.asdict(new), created_at=now, updated_at=now)

    # -- updates and deletes ---------------------------------------------------------
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
        has_stores = sa.exists().where(stores.c.chain_id == chain_id)

        def guard(conn: sa.Connection) -> CommerceError | None:
            count = (
                sa.select(sa.func.count()).select_from(stores).where(stores.c.chain_id == chain_id)
            )
            return rules.chain_delete_guard(chain_id, int(conn.execute(count).scalar_one()))

        self._delete(chains, "chain", tenant, chain_id, expected_updated_at, ~has_stores, guard)

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

        def guard(conn: sa.Connection) -> CommerceError | None:
            return rules.store_delete_guard(store_id, *_stocked(conn, stocked, level.item_id))

        self._delete(
            stores,
            "store",
            tenant,
            store_id,
            expected_updated_at,
            ~sa.exists().where(*stocked),
            guard,
            # The zero levels go first (they refer to the store); if the store then cannot
            # go, raising rolls them back with it.
            dependents=inventory_levels.delete().where(
                level.store_id == store_id, level.tenant_id == tenant, level.quantity == 0
            ),
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
            # The unique (tenant_id, sku) refused it, unless a CHECK did (a bug: let it show).
            problem = None
            if patch.sku is not None:
                sku = patch.sku
                problem = self._ctx.tx.read(
                    lambda conn: self._sku_taken(conn, tenant, sku, item_id)
                )
            if problem is None:
                raise
            raise problem from None
        return Item(*row)

    def delete_item(
        self, tenant: str, item_id: int, *, expected_updated_at: datetime | None = None
    ) -> None:
        level = inventory_levels.c
        stocked = [level.item_id == item_id, level.quantity > 0]

        def guard(conn: sa.Connection) -> CommerceError | None:
            return rules.item_delete_guard(item_id, *_stocked(conn, stocked, level.store_id))

        self._delete(
            items,
            "item",
            tenant,
            item_id,
            expected_updated_at,
            ~sa.exists().where(*stocked),
            guard,
            dependents=inventory_levels.delete().where(
                level.item_id == item_id, level.tenant_id == tenant, level.quantity == 0
            ),
        )

    # -- helpers ---------------------------------------------------------------------
    @staticmethod
    def _sku_taken(
        conn: sa.Connection, tenant: str, sku: str, item_id: int | None
    ) -> SkuTaken | None:
        """``SkuTaken`` if another item of the tenant than ``item_id`` has ``sku``."""
        query = sa.select(items.c.id).where(items.c.tenant_id == tenant, items.c.sku == sku)
        if item_id is not None:
            query = query.where(items.c.id != item_id)
        return SkuTaken(sku) if conn.execute(query).first() is not None else None

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
        values = {k: v for k, v in dataclasses.asdict(patch).items() if v is not None}

        def work(conn: sa.Connection) -> sa.Row[Any]:
            # The version check is part of the UPDATE itself, so nothing can change the row
            # between checking and writing.
            statement = (
                table.update()
                .where(table.c.id == row_id, table.c.tenant_id == tenant, *version(table, expected))
                .values(**values, updated_at=self._ctx.later(table.c.updated_at, self._ctx.clock()))
                .returning(*columns)
            )
            row = conn.execute(statement).first()
            if row is None:
                found = _updated_at(conn, table, tenant, row_id)
                raise rules.refusal(kind, row_id, found, expected)
            return row

        return self._ctx.tx.write(work)

    def _delete(
        self,
        table: sa.Table,
        kind: str,
        tenant: str,
        row_id: int,
        expected: datetime | None,
        condition: sa.ColumnElement[bool],
        guard: Guard,
        *,
        dependents: sa.Delete | None = None,
    ) -> None:
        """One DELETE with the guard's ``condition`` in its ``WHERE``: what protects the
        dependants is checked by the statement that deletes, not by a read before it."""
        statement = table.delete().where(
            table.c.id == row_id, table.c.tenant_id == tenant, *version(table, expected), condition
        )

        def work(conn: sa.Connection) -> None:
            if dependents is not None:
                conn.execute(dependents)
            if conn.execute(statement).rowcount != 1:
                found = _updated_at(conn, table, tenant, row_id)
                refused = guard(conn) if found is not None else None
                raise rules.refusal(kind, row_id, found, expected, refused)

        try:
            self._ctx.tx.write(work)
        except exc.IntegrityError:
            # At READ COMMITTED (a request's transaction under an Idempotency-Key) a
            # dependant committed after the guard was checked makes the DELETE itself fail
            # on its foreign key: the same refusal, explained once the write rolled back.
            def explain(conn: sa.Connection) -> Exception:
                found = _updated_at(conn, table, tenant, row_id)
                refused = guard(conn) if found is not None else None
                return rules.refusal(kind, row_id, found, expected, refused)

            raise self._ctx.tx.read(explain) from None


def _stamped(values: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {**values, "created_at": now, "updated_at": now}


def _updated_at(conn: sa.Connection, table: sa.Table, tenant: str, row_id: int) -> datetime | None:
    """The row's version as this transaction sees it; ``None``: not the tenant's, or gone."""
    query = sa.select(table.c.updated_at).where(table.c.id == row_id, table.c.tenant_id == tenant)
    found: datetime | None = conn.execute(query).scalar_one_or_none()
    return found


def _stocked(
    conn: sa.Connection, stocked: Sequence[sa.ColumnElement[bool]], key: sa.Column[int]
) -> tuple[int, list[int]]:
    """How many levels are above zero, and the keys of the first few, for the delete rule."""
    count = conn.execute(
        sa.select(sa.func.count()).select_from(inventory_levels).where(*stocked)
    ).scalar_one()
    first = conn.scalars(
        sa.select(key).where(*stocked).order_by(key).limit(rules.GUARD_SAMPLE)
    ).all()
    return int(count), list(first)
