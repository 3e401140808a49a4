"""``SqlStore``: the ``CommerceStore`` port on SQLAlchemy Core (SQLite, PostgreSQL, CockroachDB)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.dialects import postgresql, sqlite

from adapters.storage.sql import schema
from adapters.storage.sql.engine import UPGRADE_HINT, SqlOptions, display
from adapters.storage.sql.ids import IdGenerator, default_ids
from adapters.storage.sql.tables import (
    MAX_MONEY,
    MONEY_SCALE,
    chains,
    inventory_levels,
    items,
    stores,
    tenants,
)
from adapters.storage.sql.transactions import Transactor
from core.errors import Conflict, InvalidInput, NotFound, StorageUnavailable
from core.models import (
    Chain,
    InventoryLevel,
    Item,
    NewChain,
    NewItem,
    NewStore,
    Store,
    Tenant,
)

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
        dialect = engine.dialect.name
        self._insert: Callable[..., Any] = (
            sqlite.insert if dialect == "sqlite" else postgresql.insert
        )

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

    def set_quantity(
        self, tenant: str, store_id: int, item_id: int, quantity: int
    ) -> InventoryLevel:
        if not 0 <= quantity <= MAX_QUANTITY:
            raise InvalidInput("quantity", f"must be an integer from 0 to {MAX_QUANTITY}")
        level = InventoryLevel(
            store_id=store_id, item_id=item_id, quantity=quantity, updated_at=self._clock()
        )
        statement = self._insert(inventory_levels).values(
            store_id=store_id,
            item_id=item_id,
            tenant_id=tenant,
            quantity=quantity,
            updated_at=level.updated_at,
        )
        statement = statement.on_conflict_do_update(
            index_elements=[inventory_levels.c.store_id, inventory_levels.c.item_id],
            set_={
                "quantity": statement.excluded.quantity,
                "updated_at": statement.excluded.updated_at,
            },
            # The row found must be the tenant's: a store id of another tenant never matches.
            where=inventory_levels.c.tenant_id == tenant,
        ).execution_options(preserve_rowcount=True)
        try:
            # The foreign keys on (tenant, store) and (tenant, item) are the ownership check,
            # so the usual case is one statement; only a failure pays for finding out why.
            written = self.tx.write(lambda conn: conn.execute(statement).rowcount)
        except exc.IntegrityError:
            raise self._missing_store_or_item(tenant, store_id, item_id) from None
        if written != 1:
            # The pair exists but is another tenant's: the WHERE above left it alone.
            raise self._missing_store_or_item(tenant, store_id, item_id)
        return level

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

    def _missing_store_or_item(self, tenant: str, store_id: int, item_id: int) -> Exception:
        store_query = sa.select(stores.c.id).where(
            stores.c.id == store_id, stores.c.tenant_id == tenant
        )
        item_query = sa.select(items.c.id).where(items.c.id == item_id, items.c.tenant_id == tenant)

        def explain(conn: sa.Connection) -> Exception:
            if conn.execute(store_query).first() is None:
                return NotFound("store", store_id)
            if conn.execute(item_query).first() is None:
                return NotFound("item", item_id)
            return Conflict(f"the level of item {item_id} at store {store_id} changed; try again")

        return self.tx.read(explain)
