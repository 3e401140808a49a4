"""The state every in-memory port shares: the lock, the dicts, the id counters, the clock.

Each port (``MemoryCatalogue``, ``MemoryInventory``, ...) holds the same ``MemoryState`` and
takes its lock for the whole of every method, so a write that touches several dicts (a
delete, an adjustment batch) is atomic for every reader, whichever port it comes through.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any, Protocol, TypeVar

from sortedcontainers import SortedDict

from commerce.core.apikeys import ApiKey
from commerce.core.errors import NotFound
from commerce.core.models import (
    Chain,
    InventoryLevel,
    Item,
    LedgerEntry,
    Store,
    StoredResponse,
    Tenant,
)
from commerce.core.rules import check_version

V = TypeVar("V")


class Versioned(Protocol):
    """A row whose ``updated_at`` is its version (chains, stores, items)."""

    @property
    def updated_at(self) -> datetime: ...


R = TypeVar("R", bound=Versioned)


def utcnow() -> datetime:
    return datetime.now(UTC)


def page(rows: SortedDict, after: int | None, limit: int) -> list[V]:
    """Keyset pagination over a sorted dict: at most ``limit`` values whose key is > ``after``."""
    keys = rows.irange(minimum=after, inclusive=(False, True)) if after is not None else rows
    return [rows[k] for k in islice(keys, limit)]


def patched(row: V, patch: Any, updated_at: datetime) -> V:
    """``row`` with the patch's non-``None`` fields and a new ``updated_at``."""
    changes = {
        f.name: getattr(patch, f.name)
        for f in dataclasses.fields(patch)
        if getattr(patch, f.name) is not None
    }
    return dataclasses.replace(row, **changes, updated_at=updated_at)  # type: ignore[type-var]


def current(row: R | None, kind: str, key: int, expected: datetime | None) -> R:
    """The row an update or delete acts on: ``NotFound`` if missing, ``VersionMismatch`` if
    the caller named a version it no longer has (``rules.check_version``)."""
    if row is None:
        raise NotFound(kind, key)
    check_version(kind, key, row.updated_at, expected)
    return row


def stocked(levels: SortedDict) -> list[int]:
    """The keys (item ids of a store's levels, store ids of an item's) of levels above zero."""
    return [key for key, level in levels.items() if level.quantity > 0]


def drop_levels(levels: dict[int, SortedDict], index: dict[int, SortedDict], key: int) -> None:
    """Remove the levels of one store (or item) ``key`` from ``levels`` and from the other
    ``index`` of the same levels (by item, or by store)."""
    for other in levels.pop(key):
        del index[other][key]


@dataclass
class Claim:
    """What an idempotency key holds: its request's fingerprint and, once done, the response."""

    fingerprint: str
    claimed_at: datetime
    response: StoredResponse | None = None


class MemoryState:
    """All data in dicts behind one re-entrant lock; callers hold ``lock`` while they use them.

    Rows are immutable dataclasses, so what a caller gets back can never be changed under it.
    """

    def __init__(self, clock: Callable[[], datetime] = utcnow) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self._ids = {
            kind: itertools.count(1) for kind in ("chain", "store", "item", "change", "api_key")
        }
        self.tenants: dict[str, Tenant] = {}
        self.chains: dict[str, SortedDict] = {}  # tenant -> chain id -> Chain
        self.chain_tenant: dict[int, str] = {}
        self.stores: dict[int, SortedDict] = {}  # chain id -> store id -> Store
        self.store_index: dict[int, tuple[str, Store]] = {}  # store id -> (tenant, store)
        self.items: dict[str, SortedDict] = {}  # tenant -> item id -> Item
        self.skus: dict[tuple[str, str], int] = {}
        self.store_levels: dict[int, SortedDict] = {}  # store id -> item id -> level
        self.item_levels: dict[int, SortedDict] = {}  # item id -> store id -> level
        self.ledger: dict[int, list[LedgerEntry]] = {}  # store id -> entries in id order
        self.claims: dict[tuple[str, str], Claim] = {}  # (tenant, key) -> claim
        self.api_keys: dict[int, tuple[ApiKey, str]] = {}  # key id -> (key, secret digest)
        self.api_key_prefixes: dict[str, int] = {}  # prefix -> key id

    def next_id(self, kind: str) -> int:
        return next(self._ids[kind])

    # -- lookups scoped to a tenant (called with the lock held) ----------------------------
    def chain(self, tenant: str, chain_id: int) -> Chain | None:
        chains = self.chains.get(tenant)
        return chains.get(chain_id) if chains is not None else None

    def store(self, tenant: str, store_id: int) -> Store | None:
        found = self.store_index.get(store_id)
        return found[1] if found is not None and found[0] == tenant else None

    def item(self, tenant: str, item_id: int) -> Item | None:
        items = self.items.get(tenant)
        return items.get(item_id) if items is not None else None

    def quantity(self, store_id: int, item_id: int) -> int:
        """A level's quantity; a missing level holds 0."""
        level = self.store_levels[store_id].get(item_id)
        return 0 if level is None else int(level.quantity)

    def put_level(
        self, store_id: int, item_id: int, quantity: int, now: datetime
    ) -> InventoryLevel:
        level = InventoryLevel(
            store_id=store_id, item_id=item_id, quantity=quantity, updated_at=now
        )
        self.store_levels[store_id][item_id] = level
        self.item_levels[item_id][store_id] = level
        return level
