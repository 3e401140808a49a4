"""``memory://``: a thread-safe in-process store, for trying out and as the reference in tests."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from itertools import islice
from typing import TypeVar

from sortedcontainers import SortedDict

from core.errors import Conflict, NotFound
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
from plugins import hookimpl

V = TypeVar("V")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _page(rows: SortedDict, after: int | None, limit: int) -> list[V]:
    keys = rows.irange(minimum=after, inclusive=(False, True)) if after is not None else rows
    return [rows[k] for k in islice(keys, limit)]


class MemoryStore:
    """All data in dicts behind one lock; every method holds it for its whole run.

    Rows are immutable dataclasses, so what a caller gets back can never be changed under it.
    """

    def __init__(self, clock: Callable[[], datetime] = _utcnow) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._ids = {kind: itertools.count(1) for kind in ("chain", "store", "item")}
        self._tenants: dict[str, Tenant] = {}
        self._chains: dict[str, SortedDict] = {}  # tenant -> chain id -> Chain
        self._chain_tenant: dict[int, str] = {}
        self._stores: dict[int, SortedDict] = {}  # chain id -> store id -> Store
        self._store_index: dict[int, tuple[str, Store]] = {}  # store id -> (tenant, store)
        self._items: dict[str, SortedDict] = {}  # tenant -> item id -> Item
        self._skus: dict[tuple[str, str], int] = {}
        self._store_levels: dict[int, SortedDict] = {}  # store id -> item id -> level
        self._item_levels: dict[int, SortedDict] = {}  # item id -> store id -> level

    # -- lifecycle -------------------------------------------------------------------
    def check(self) -> None:
        return None

    def close(self) -> None:
        return None

    # -- tenants ---------------------------------------------------------------------
    def create_tenant(self, tenant_id: str, name: str) -> Tenant:
        with self._lock:
            if tenant_id in self._tenants:
                raise Conflict(f"tenant {tenant_id} already exists")
            tenant = Tenant(id=tenant_id, name=name, created_at=self._clock())
            self._tenants[tenant_id] = tenant
            self._chains[tenant_id] = SortedDict()
            self._items[tenant_id] = SortedDict()
            return tenant

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        with self._lock:
            return self._tenants.get(tenant_id)

    def list_tenants(self) -> Sequence[Tenant]:
        with self._lock:
            return sorted(self._tenants.values(), key=lambda t: t.id)

    # -- reads -----------------------------------------------------------------------
    def list_chains(self, tenant: str, *, after: int | None, limit: int) -> Sequence[Chain]:
        with self._lock:
            return _page(self._chains.get(tenant, SortedDict()), after, limit)

    def get_chain(self, tenant: str, chain_id: int) -> Chain | None:
        with self._lock:
            chains = self._chains.get(tenant)
            return chains.get(chain_id) if chains is not None else None

    def list_stores(
        self, tenant: str, chain_id: int, *, after: int | None, limit: int
    ) -> Sequence[Store]:
        with self._lock:
            if self._chain_tenant.get(chain_id) != tenant:
                return []
            return _page(self._stores[chain_id], after, limit)

    def get_store(self, tenant: str, store_id: int) -> Store | None:
        with self._lock:
            found = self._store_index.get(store_id)
            return found[1] if found is not None and found[0] == tenant else None

    def list_items(self, tenant: str, *, after: int | None, limit: int) -> Sequence[Item]:
        with self._lock:
            return _page(self._items.get(tenant, SortedDict()), after, limit)

    def get_item(self, tenant: str, item_id: int) -> Item | None:
        with self._lock:
            items = self._items.get(tenant)
            return items.get(item_id) if items is not None else None

    def list_levels(
        self,
        tenant: str,
        store_id: int,
        *,
        item_ids: Collection[int] | None,
        after: int | None,
        limit: int,
    ) -> Sequence[InventoryLevel]:
        with self._lock:
            if self.get_store(tenant, store_id) is None:
                return []
            levels = self._store_levels[store_id]
            if item_ids is None:
                return _page(levels, after, limit)
            wanted: Iterable[int] = sorted(i for i in set(item_ids) if after is None or i > after)
            found = (levels[i] for i in wanted if i in levels)
            return list(islice(found, limit))

    def list_item_levels(
        self, tenant: str, item_id: int, *, after: int | None, limit: int
    ) -> Sequence[InventoryLevel]:
        with self._lock:
            if self.get_item(tenant, item_id) is None:
                return []
            return _page(self._item_levels[item_id], after, limit)

    # -- writes ----------------------------------------------------------------------
    def create_chain(self, tenant: str, new: NewChain) -> Chain:
        with self._lock:
            if tenant not in self._tenants:
                raise NotFound("tenant", tenant)
            now = self._clock()
            chain = Chain(
                id=next(self._ids["chain"]),
                name=new.name,
                phone=new.phone,
                created_at=now,
                updated_at=now,
            )
            self._chains[tenant][chain.id] = chain
            self._chain_tenant[chain.id] = tenant
            self._stores[chain.id] = SortedDict()
            return chain

    def create_store(self, tenant: str, new: NewStore) -> Store:
        with self._lock:
            if self.get_chain(tenant, new.chain_id) is None:
                raise NotFound("chain", new.chain_id)
            now = self._clock()
            store = Store(
                id=next(self._ids["store"]),
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
            self._stores[new.chain_id][store.id] = store
            self._store_index[store.id] = (tenant, store)
            self._store_levels[store.id] = SortedDict()
            return store

    def create_item(self, tenant: str, new: NewItem) -> Item:
        with self._lock:
            if tenant not in self._tenants:
                raise NotFound("tenant", tenant)
            if (tenant, new.sku) in self._skus:
                raise Conflict(f"an item with sku {new.sku!r} already exists")
            now = self._clock()
            item = Item(
                id=next(self._ids["item"]),
                sku=new.sku,
                name=new.name,
                cost=new.cost,
                created_at=now,
                updated_at=now,
            )
            self._items[tenant][item.id] = item
            self._skus[(tenant, new.sku)] = item.id
            self._item_levels[item.id] = SortedDict()
            return item

    def set_quantity(
        self, tenant: str, store_id: int, item_id: int, quantity: int
    ) -> InventoryLevel:
        with self._lock:
            if self.get_store(tenant, store_id) is None:
                raise NotFound("store", store_id)
            if self.get_item(tenant, item_id) is None:
                raise NotFound("item", item_id)
            level = InventoryLevel(
                store_id=store_id, item_id=item_id, quantity=quantity, updated_at=self._clock()
            )
            self._store_levels[store_id][item_id] = level
            self._item_levels[item_id][store_id] = level
            return level


@hookimpl
def commerce_open_store(url: str, settings: Mapping[str, str]) -> MemoryStore | None:
    if url.split(":", 1)[0] != "memory":
        return None
    return MemoryStore()


@hookimpl
def commerce_storage_schemes() -> list[str]:
    return ["memory"]
