"""``memory://``: a thread-safe in-process store, for trying out and as the reference in tests."""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, TypeVar

from sortedcontainers import SortedDict

from commerce.core.apikeys import ApiKey
from commerce.core.auth import Role
from commerce.core.errors import (
    Conflict,
    IdempotencyMismatch,
    InsufficientStock,
    NotFound,
    PreconditionFailed,
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
from commerce.plugins import hookimpl

V = TypeVar("V")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _page(rows: SortedDict, after: int | None, limit: int) -> list[V]:
    keys = rows.irange(minimum=after, inclusive=(False, True)) if after is not None else rows
    return [rows[k] for k in islice(keys, limit)]


_TICK = timedelta(microseconds=1)


def _patched(row: V, patch: Any, updated_at: datetime) -> V:
    changes = {
        f.name: getattr(patch, f.name)
        for f in dataclasses.fields(patch)
        if getattr(patch, f.name) is not None
    }
    return dataclasses.replace(row, **changes, updated_at=updated_at)  # type: ignore[type-var]


@dataclass
class _Claim:
    fingerprint: str
    claimed_at: datetime
    response: StoredResponse | None = None


class MemoryStore:
    """All data in dicts behind one lock; every method holds it for its whole run.

    Rows are immutable dataclasses, so what a caller gets back can never be changed under it.
    """

    def __init__(self, clock: Callable[[], datetime] = _utcnow) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._ids = {
            kind: itertools.count(1) for kind in ("chain", "store", "item", "change", "api_key")
        }
        self._tenants: dict[str, Tenant] = {}
        self._chains: dict[str, SortedDict] = {}  # tenant -> chain id -> Chain
        self._chain_tenant: dict[int, str] = {}
        self._stores: dict[int, SortedDict] = {}  # chain id -> store id -> Store
        self._store_index: dict[int, tuple[str, Store]] = {}  # store id -> (tenant, store)
        self._items: dict[str, SortedDict] = {}  # tenant -> item id -> Item
        self._skus: dict[tuple[str, str], int] = {}
        self._store_levels: dict[int, SortedDict] = {}  # store id -> item id -> level
        self._item_levels: dict[int, SortedDict] = {}  # item id -> store id -> level
        self._ledger: dict[int, list[LedgerEntry]] = {}  # store id -> entries in id order
        self._claims: dict[tuple[str, str], _Claim] = {}  # (tenant, key) -> claim
        self._api_keys: dict[int, tuple[ApiKey, str]] = {}  # key id -> (key, secret digest)
        self._api_key_prefixes: dict[str, int] = {}  # prefix -> key id

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

    def update_chain(
        self,
        tenant: str,
        chain_id: int,
        patch: ChainPatch,
        *,
        expected_updated_at: datetime | None = None,
    ) -> Chain:
        with self._lock:
            chain = self._current(
                self.get_chain(tenant, chain_id), "chain", chain_id, expected_updated_at
            )
            chain = _patched(chain, patch, self._later(chain.updated_at))
            self._chains[tenant][chain_id] = chain
            return chain

    def delete_chain(
        self, tenant: str, chain_id: int, *, expected_updated_at: datetime | None = None
    ) -> None:
        with self._lock:
            self._current(self.get_chain(tenant, chain_id), "chain", chain_id, expected_updated_at)
            if self._stores[chain_id]:
                raise Conflict(f"chain {chain_id} still has stores; delete or move them first")
            del self._chains[tenant][chain_id]
            del self._chain_tenant[chain_id]
            del self._stores[chain_id]

    def update_store(
        self,
        tenant: str,
        store_id: int,
        patch: StorePatch,
        *,
        expected_updated_at: datetime | None = None,
    ) -> Store:
        with self._lock:
            store = self._current(
                self.get_store(tenant, store_id), "store", store_id, expected_updated_at
            )
            store = _patched(store, patch, self._later(store.updated_at))
            self._stores[store.chain_id][store_id] = store
            self._store_index[store_id] = (tenant, store)
            return store

    def delete_store(
        self, tenant: str, store_id: int, *, expected_updated_at: datetime | None = None
    ) -> None:
        with self._lock:
            store = self._current(
                self.get_store(tenant, store_id), "store", store_id, expected_updated_at
            )
            levels = self._store_levels[store_id]
            stocked = [lv.item_id for lv in levels.values() if lv.quantity > 0]
            if stocked:
                raise Conflict(
                    f"store {store_id} still holds stock of {len(stocked)} item(s)",
                    item_ids=stocked[:100],
                )
            for item_id in levels:
                del self._item_levels[item_id][store_id]
            del self._store_levels[store_id]
            del self._stores[store.chain_id][store_id]
            del self._store_index[store_id]

    def update_item(
        self,
        tenant: str,
        item_id: int,
        patch: ItemPatch,
        *,
        expected_updated_at: datetime | None = None,
    ) -> Item:
        with self._lock:
            item = self._current(
                self.get_item(tenant, item_id), "item", item_id, expected_updated_at
            )
            if patch.sku is not None and patch.sku != item.sku:
                if (tenant, patch.sku) in self._skus:
                    raise Conflict(f"an item with sku {patch.sku!r} already exists")
                del self._skus[(tenant, item.sku)]
                self._skus[(tenant, patch.sku)] = item_id
            item = _patched(item, patch, self._later(item.updated_at))
            self._items[tenant][item_id] = item
            return item

    def delete_item(
        self, tenant: str, item_id: int, *, expected_updated_at: datetime | None = None
    ) -> None:
        with self._lock:
            item = self._current(
                self.get_item(tenant, item_id), "item", item_id, expected_updated_at
            )
            levels = self._item_levels[item_id]
            stocked = [lv.store_id for lv in levels.values() if lv.quantity > 0]
            if stocked:
                raise Conflict(
                    f"item {item_id} is still in stock at {len(stocked)} store(s)",
                    store_ids=stocked[:100],
                )
            for store_id in levels:
                del self._store_levels[store_id][item_id]
            del self._item_levels[item_id]
            del self._items[tenant][item_id]
            del self._skus[(tenant, item.sku)]

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
        with self._lock:
            self._require_stock_pair(tenant, store_id, item_id)
            before = self._quantity(store_id, item_id)
            if expected_quantity is not None and expected_quantity != before:
                raise Conflict(
                    f"item {item_id} at store {store_id} holds {before}, not {expected_quantity}",
                    current_quantity=before,
                )
            now = self._clock()
            self._record(
                store_id, item_id, quantity - before, quantity, Reason.count, reference, actor, now
            )
            return self._put_level(store_id, item_id, quantity, now)

    def adjust(
        self, tenant: str, store_id: int, adjustments: Sequence[Adjustment], *, actor: str
    ) -> Sequence[InventoryLevel]:
        with self._lock:
            if self.get_store(tenant, store_id) is None:
                raise NotFound("store", store_id)
            for adjustment in adjustments:
                if self.get_item(tenant, adjustment.item_id) is None:
                    raise NotFound("item", adjustment.item_id)
            # Dry run first: nothing changes unless every step of the batch stays >= 0.
            before: dict[int, int] = {}
            running: dict[int, int] = {}
            totals: dict[int, int] = {}
            short: set[int] = set()
            for adjustment in adjustments:
                item_id = adjustment.item_id
                if item_id not in running:
                    before[item_id] = running[item_id] = self._quantity(store_id, item_id)
                    totals[item_id] = 0
                totals[item_id] += adjustment.delta
                if item_id in short:
                    continue
                if running[item_id] + adjustment.delta < 0:
                    short.add(item_id)
                else:
                    running[item_id] += adjustment.delta
            if short:
                raise InsufficientStock(
                    [
                        {"item_id": i, "quantity": before[i], "delta": totals[i]}
                        for i in sorted(short)
                    ]
                )
            now = self._clock()
            for adjustment in adjustments:
                item_id = adjustment.item_id
                after = self._quantity(store_id, item_id) + adjustment.delta
                self._record(
                    store_id,
                    item_id,
                    adjustment.delta,
                    after,
                    adjustment.reason,
                    adjustment.reference,
                    actor,
                    now,
                )
                self._put_level(store_id, item_id, after, now)
            levels = self._store_levels[store_id]
            return [levels[i] for i in sorted(running)]

    def list_changes(
        self,
        tenant: str,
        store_id: int,
        where: ChangeFilter,
        *,
        after: int | None,
        limit: int,
    ) -> Sequence[LedgerEntry]:
        with self._lock:
            if self.get_store(tenant, store_id) is None:
                return []
            found = (
                e
                for e in self._ledger.get(store_id, [])
                if (after is None or e.id > after)
                and (where.item_id is None or e.item_id == where.item_id)
                and (where.since is None or e.created_at >= where.since)
                and (where.until is None or e.created_at < where.until)
            )
            return list(islice(found, limit))

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
        with self._lock:
            if self.get_store(tenant, store_id) is None:
                return []
            wanted = None if item_ids is None else set(item_ids)
            last: dict[int, LedgerEntry] = {}
            for entry in self._ledger.get(store_id, []):
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

    # -- idempotency keys --------------------------------------------------------------
    def claim_idempotency_key(
        self, tenant: str, key: str, fingerprint: str, *, stale_after: timedelta
    ) -> StoredResponse | None:
        with self._lock:
            now = self._clock()
            claim = self._claims.get((tenant, key))
            if claim is None:
                self._claims[(tenant, key)] = _Claim(fingerprint=fingerprint, claimed_at=now)
                return None
            if claim.fingerprint != fingerprint:
                raise IdempotencyMismatch(
                    "this Idempotency-Key was already used for a different request"
                )
            if claim.response is not None:
                return claim.response
            if now - claim.claimed_at < stale_after:
                raise Conflict("a request with this Idempotency-Key is still in progress")
            claim.claimed_at = now
            return None

    def complete_idempotency_key(self, tenant: str, key: str, response: StoredResponse) -> None:
        with self._lock:
            claim = self._claims.get((tenant, key))
            if claim is not None:
                claim.response = response

    def release_idempotency_key(self, tenant: str, key: str) -> None:
        with self._lock:
            claim = self._claims.get((tenant, key))
            if claim is not None and claim.response is None:
                del self._claims[(tenant, key)]

    def purge_idempotency_keys(self, older_than: datetime) -> int:
        with self._lock:
            old = [k for k, c in self._claims.items() if c.claimed_at < older_than]
            for k in old:
                del self._claims[k]
            return len(old)

    # -- API keys --------------------------------------------------------------------
    def create_api_key(self, tenant: str, role: Role, prefix: str, secret_hash: str) -> ApiKey:
        with self._lock:
            if tenant not in self._tenants:
                raise NotFound("tenant", tenant)
            if prefix in self._api_key_prefixes:
                raise Conflict("an API key with this prefix already exists")
            key = ApiKey(
                id=next(self._ids["api_key"]),
                tenant=tenant,
                prefix=prefix,
                role=role,
                created_at=self._clock(),
            )
            self._api_keys[key.id] = (key, secret_hash)
            self._api_key_prefixes[prefix] = key.id
            return key

    def list_api_keys(self, tenant: str) -> Sequence[ApiKey]:
        with self._lock:
            return [
                key
                for key, _ in sorted(self._api_keys.values(), key=lambda kh: kh[0].id)
                if key.tenant == tenant
            ]

    def revoke_api_key(self, key_id: int) -> ApiKey:
        with self._lock:
            found = self._api_keys.get(key_id)
            if found is None:
                raise NotFound("API key", key_id)
            key, secret_hash = found
            if key.revoked_at is None:
                key = dataclasses.replace(key, revoked_at=self._clock())
                self._api_keys[key_id] = (key, secret_hash)
            return key

    def find_api_key(self, prefix: str) -> tuple[ApiKey, str] | None:
        with self._lock:
            key_id = self._api_key_prefixes.get(prefix)
            return None if key_id is None else self._api_keys[key_id]

    def touch_api_key(self, key_id: int, at: datetime) -> None:
        with self._lock:
            found = self._api_keys.get(key_id)
            if found is None:
                return
            key, secret_hash = found
            if key.last_used_at is None or key.last_used_at < at:
                self._api_keys[key_id] = (dataclasses.replace(key, last_used_at=at), secret_hash)

    # -- helpers (called with the lock held) --------------------------------------------
    def _later(self, previous: datetime) -> datetime:
        """Now, but strictly after ``previous``: ``updated_at`` doubles as the row's version."""
        return max(self._clock(), previous + _TICK)

    @staticmethod
    def _current(row: V | None, kind: str, key: int, expected: datetime | None) -> V:
        if row is None:
            raise NotFound(kind, key)
        if expected is not None and row.updated_at != expected:  # type: ignore[attr-defined]
            raise PreconditionFailed(f"{kind} {key} has changed since the version you named")
        return row

    def _require_stock_pair(self, tenant: str, store_id: int, item_id: int) -> None:
        if self.get_store(tenant, store_id) is None:
            raise NotFound("store", store_id)
        if self.get_item(tenant, item_id) is None:
            raise NotFound("item", item_id)

    def _quantity(self, store_id: int, item_id: int) -> int:
        level = self._store_levels[store_id].get(item_id)
        return 0 if level is None else int(level.quantity)

    def _put_level(
        self, store_id: int, item_id: int, quantity: int, now: datetime
    ) -> InventoryLevel:
        level = InventoryLevel(
            store_id=store_id, item_id=item_id, quantity=quantity, updated_at=now
        )
        self._store_levels[store_id][item_id] = level
        self._item_levels[item_id][store_id] = level
        return level

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
            id=next(self._ids["change"]),
            store_id=store_id,
            item_id=item_id,
            delta=delta,
            quantity_after=quantity_after,
            reason=reason,
            reference=reference,
            actor=actor,
            created_at=now,
        )
        self._ledger.setdefault(store_id, []).append(entry)


@hookimpl
def commerce_open_store(url: str, settings: Mapping[str, str]) -> MemoryStore | None:
    if url.split(":", 1)[0] != "memory":
        return None
    return MemoryStore()


@hookimpl
def commerce_storage_schemes() -> list[str]:
    return ["memory"]
