"""The in-memory catalogue port: tenants, and each tenant's chains, stores and items."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sortedcontainers import SortedDict

from commerce.adapters.storage.memory.state import (
    MemoryState,
    current,
    drop_levels,
    page,
    patched,
    stocked,
)
from commerce.core import rules
from commerce.core.errors import NotFound, SkuTaken, TenantExists
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


class MemoryCatalogue:
    """Implements ``core.ports.Catalogue`` over a ``MemoryState``; every method holds its lock."""

    def __init__(self, state: MemoryState) -> None:
        self.state = state

    # -- tenants ---------------------------------------------------------------------
    def create_tenant(self, tenant_id: str, name: str) -> Tenant:
        s = self.state
        with s.lock:
            if tenant_id in s.tenants:
                raise TenantExists(tenant_id)
            tenant = Tenant(id=tenant_id, name=name, created_at=s.clock())
            s.tenants[tenant_id] = tenant
            s.chains[tenant_id] = SortedDict()
            s.items[tenant_id] = SortedDict()
            return tenant

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        with self.state.lock:
            return self.state.tenants.get(tenant_id)

    def list_tenants(self) -> Sequence[Tenant]:
        with self.state.lock:
            return sorted(self.state.tenants.values(), key=lambda t: t.id)

    # -- reads -----------------------------------------------------------------------
    def list_chains(self, tenant: str, *, after: int | None, limit: int) -> Sequence[Chain]:
        with self.state.lock:
            return page(self.state.chains.get(tenant, SortedDict()), after, limit)

    def get_chain(self, tenant: str, chain_id: int) -> Chain | None:
        with self.state.lock:
            return self.state.chain(tenant, chain_id)

    def list_stores(
        self, tenant: str, chain_id: int, *, after: int | None, limit: int
    ) -> Sequence[Store]:
        s = self.state
        with s.lock:
            if s.chain_tenant.get(chain_id) != tenant:
                return []
            return page(s.stores[chain_id], after, limit)

    def get_store(self, tenant: str, store_id: int) -> Store | None:
        with self.state.lock:
            return self.state.store(tenant, store_id)

    def list_items(self, tenant: str, *, after: int | None, limit: int) -> Sequence[Item]:
        with self.state.lock:
            return page(self.state.items.get(tenant, SortedDict()), after, limit)

    def get_item(self, tenant: str, item_id: int) -> Item | None:
        with self.state.lock:
            return self.state.item(tenant, item_id)

    # -- creates ---------------------------------------------------------------------
    def create_chain(self, tenant: str, new: NewChain) -> Chain:
        s = self.state
        with s.lock:
            if tenant not in s.tenants:
                raise NotFound("tenant", tenant)
            now = s.clock()
            chain = Chain(
                id=s.next_id("chain"),
                name=new.name,
                phone=new.phone,
                created_at=now,
                updated_at=now,
            )
            s.chains[tenant][chain.id] = chain
            s.chain_tenant[chain.id] = tenant
            s.stores[chain.id] = SortedDict()
            return chain

    def create_store(self, tenant: str, new: NewStore) -> Store:
        s = self.state
        with s.lock:
            if s.chain(tenant, new.chain_id) is None:
                raise NotFound("chain", new.chain_id)
            now = s.clock()
            store = Store(
                id=s.next_id("store"),
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
            s.stores[new.chain_id][store.id] = store
            s.store_index[store.id] = (tenant, store)
            s.store_levels[store.id] = SortedDict()
            return store

    def create_item(self, tenant: str, new: NewItem) -> Item:
        s = self.state
        with s.lock:
            if tenant not in s.tenants:
                raise NotFound("tenant", tenant)
            if (tenant, new.sku) in s.skus:
                raise SkuTaken(new.sku)
            now = s.clock()
            item = Item(
                id=s.next_id("item"),
                sku=new.sku,
                name=new.name,
                cost=new.cost,
                created_at=now,
                updated_at=now,
            )
            s.items[tenant][item.id] = item
            s.skus[(tenant, new.sku)] = item.id
            s.item_levels[item.id] = SortedDict()
            return item

    # -- updates and deletes ---------------------------------------------------------
    def update_chain(
        self,
        tenant: str,
        chain_id: int,
        patch: ChainPatch,
        *,
        expected_updated_at: datetime | None = None,
    ) -> Chain:
        s = self.state
        with s.lock:
            chain = current(s.chain(tenant, chain_id), "chain", chain_id, expected_updated_at)
            chain = patched(chain, patch, rules.later(s.clock(), chain.updated_at))
            s.chains[tenant][chain_id] = chain
            return chain

    def delete_chain(
        self, tenant: str, chain_id: int, *, expected_updated_at: datetime | None = None
    ) -> None:
        s = self.state
        with s.lock:
            current(s.chain(tenant, chain_id), "chain", chain_id, expected_updated_at)
            refused = rules.chain_delete_guard(chain_id, len(s.stores[chain_id]))
            if refused is not None:
                raise refused
            del s.chains[tenant][chain_id]
            del s.chain_tenant[chain_id]
            del s.stores[chain_id]

    def update_store(
        self,
        tenant: str,
        store_id: int,
        patch: StorePatch,
        *,
        expected_updated_at: datetime | None = None,
    ) -> Store:
        s = self.state
        with s.lock:
            store = current(s.store(tenant, store_id), "store", store_id, expected_updated_at)
            store = patched(store, patch, rules.later(s.clock(), store.updated_at))
            s.stores[store.chain_id][store_id] = store
            s.store_index[store_id] = (tenant, store)
            return store

    def delete_store(
        self, tenant: str, store_id: int, *, expected_updated_at: datetime | None = None
    ) -> None:
        s = self.state
        with s.lock:
            store = current(s.store(tenant, store_id), "store", store_id, expected_updated_at)
            items = stocked(s.store_levels[store_id])
            refused = rules.store_delete_guard(store_id, len(items), items)
            if refused is not None:
                raise refused
            # Its levels (all zero) go with it; its ledger entries stay, as history.
            drop_levels(s.store_levels, s.item_levels, store_id)
            del s.stores[store.chain_id][store_id]
            del s.store_index[store_id]

    def update_item(
        self,
        tenant: str,
        item_id: int,
        patch: ItemPatch,
        *,
        expected_updated_at: datetime | None = None,
    ) -> Item:
        s = self.state
        with s.lock:
            item = current(s.item(tenant, item_id), "item", item_id, expected_updated_at)
            if patch.sku is not None and patch.sku != item.sku:
                if (tenant, patch.sku) in s.skus:
                    raise SkuTaken(patch.sku)
                del s.skus[(tenant, item.sku)]
                s.skus[(tenant, patch.sku)] = item_id
            item = patched(item, patch, rules.later(s.clock(), item.updated_at))
            s.items[tenant][item_id] = item
            return item

    def delete_item(
        self, tenant: str, item_id: int, *, expected_updated_at: datetime | None = None
    ) -> None:
        s = self.state
        with s.lock:
            item = current(s.item(tenant, item_id), "item", item_id, expected_updated_at)
            stores = stocked(s.item_levels[item_id])
            refused = rules.item_delete_guard(item_id, len(stores), stores)
            if refused is not None:
                raise refused
            drop_levels(s.item_levels, s.store_levels, item_id)
            del s.items[tenant][item_id]
            del s.skus[(tenant, item.sku)]
