"""Seeding use cases: the demo data set, and generated chains, stores, items and levels in bulk.

Both build their rows here and hand them to the use cases (or, for generated data, to a
``BulkLoader`` when the storage has one), so the CLI, ``serve --demo`` and any other caller
load exactly the same data through the same checks. Standard library only: progress is
reported through a callback, never drawn.
"""

from __future__ import annotations

import contextlib
import random
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from commerce.core import usecases, validation
from commerce.core.demodata import DEMO_CHAINS, DEMO_ITEMS
from commerce.core.errors import TenantExists
from commerce.core.models import NewChain, NewItem, NewStore
from commerce.core.pagination import MAX_LIMIT, PageRequest
from commerce.core.ports import BulkLoader, Catalogue, Inventory

T = TypeVar("T")

DEMO_SEED = 20240611
"""Fixed, so every load of the demo gives the same quantities (and the docs' examples hold)."""

DEMO_TENANT_NAME = "Demo tenant"

DEMO_ACTOR = "demo"
SEED_ACTOR = "seed"
"""Who the ledger says set the levels the demo and the seeder load."""


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """What ``load_demo`` created, with ids as the storage assigned them."""

    tenant: str
    chain_ids: tuple[int, ...]
    store_ids: tuple[int, ...]
    item_ids: tuple[int, ...]
    levels: int
    zero_levels: int


def load_demo(catalogue: Catalogue, inventory: Inventory, tenant: str) -> DemoSummary:
    """Create the demo chains, stores, items and levels for ``tenant``, which must exist.

    It only adds rows: callers that must not load twice (``serve --demo`` on a durable
    database) use ``ensure_demo``, which checks first whether the tenant has chains.
    """
    chain_ids: list[int] = []
    store_ids: list[int] = []
    inactive: set[int] = set()
    for new_chain, stores in DEMO_CHAINS:
        chain = usecases.create_chain(catalogue, tenant, new_chain)
        chain_ids.append(chain.id)
        for s in stores:
            created = usecases.create_store(
                catalogue,
                tenant,
                NewStore(
                    chain_id=chain.id,
                    name=s.name,
                    phone=s.phone,
                    address=s.address,
                    postal_code=s.postal_code,
                    city=s.city,
                    country=s.country,
                    active=s.active,
                ),
            )
            store_ids.append(created.id)
            if not s.active:
                inactive.add(created.id)

    item_ids = [
        usecases.create_item(catalogue, tenant, NewItem(sku=sku, name=name, cost=Decimal(cost))).id
        for sku, name, cost in DEMO_ITEMS
    ]

    # One generator, consumed in a fixed order, so the quantities never change between loads.
    rng = random.Random(DEMO_SEED)
    levels = zero_levels = 0
    for store_id in store_ids:
        for item_id in item_ids:
            roll = rng.random()
            if roll < 0.12:
                continue  # this store does not carry the item: no level at all
            if store_id in inactive:
                quantity = 0 if roll < 0.9 else rng.randint(1, 5)
            elif roll < 0.20:
                quantity = 0  # carried, but sold out
            else:
                quantity = rng.randint(1, 240)
            usecases.set_quantity(inventory, tenant, store_id, item_id, quantity, actor=DEMO_ACTOR)
            levels += 1
            zero_levels += quantity == 0

    return DemoSummary(
        tenant=tenant,
        chain_ids=tuple(chain_ids),
        store_ids=tuple(store_ids),
        item_ids=tuple(item_ids),
        levels=levels,
        zero_levels=zero_levels,
    )


def ensure_tenant(catalogue: Catalogue, tenant: str, name: str | None = None) -> None:
    """Create ``tenant`` unless it exists; another process creating it meanwhile is as good."""
    with contextlib.suppress(TenantExists):
        usecases.create_tenant(catalogue, tenant, name)


def ensure_demo(catalogue: Catalogue, inventory: Inventory, tenant: str) -> DemoSummary | None:
    """Create ``tenant`` if missing and load the demo unless it has chains already.

    Returns what was loaded, ``None`` if the tenant had data: running ``serve --demo`` again
    on a durable database never duplicates the data set.
    """
    ensure_tenant(catalogue, tenant, DEMO_TENANT_NAME)
    if usecases.list_chains(catalogue, tenant, PageRequest(limit=1)).rows:
        return None
    return load_demo(catalogue, inventory, tenant)


@dataclass(frozen=True, slots=True)
class TenantOverview:
    """How much a tenant holds, and ids that exist in it, for examples to point at."""

    chains: int
    stores: int
    items: int
    chain_id: int | None
    store_id: int | None
    """An active store of the first chain (any store of it if none is active)."""
    item_ids: tuple[int, ...]
    """Up to three items that have a level at ``store_id`` (else the first items)."""


def overview(catalogue: Catalogue, inventory: Inventory, tenant: str) -> TenantOverview:
    """Counts (of the first 1000 rows of each list) and a few ids of ``tenant``'s data."""
    page = PageRequest(limit=MAX_LIMIT)
    chains = usecases.list_chains(catalogue, tenant, page).rows
    items = usecases.list_items(catalogue, tenant, page).rows
    stores_of = {
        chain.id: usecases.list_chain_stores(catalogue, tenant, chain.id, page).rows
        for chain in chains
    }
    chain_id = chains[0].id if chains else None
    first = stores_of[chain_id] if chain_id is not None else []
    active = [s for s in first if s.active] or list(first)
    store_id = active[0].id if active else None
    item_ids: tuple[int, ...] = tuple(i.id for i in items[:3])
    if store_id is not None:
        stocked = usecases.list_store_inventory(
            catalogue, inventory, tenant, store_id, PageRequest(limit=3)
        ).rows
        item_ids = tuple(lv.item_id for lv in stocked) or item_ids
    return TenantOverview(
        chains=len(chains),
        stores=sum(len(s) for s in stores_of.values()),
        items=len(items),
        chain_id=chain_id,
        store_id=store_id,
        item_ids=item_ids,
    )


# -- generated data -------------------------------------------------------------------------

BATCH = 10_000
"""Rows per batch: large enough to amortise round trips, small enough to show progress."""

CITIES = (
    ("Lyon", "69002", "FR"),
    ("Porto", "4000-447", "PT"),
    ("Seattle", "98101", "US"),
    ("Osaka", "530-0001", "JP"),
    ("Leipzig", "04109", "DE"),
    ("Valparaíso", "2340000", "CL"),
)

MAX_QUANTITY = 500
"""Generated levels hold 0 to this many."""


@dataclass(frozen=True, slots=True)
class SeedPlan:
    """Generated data: ``chains`` chains of ``stores_per_chain`` stores each, ``items`` items,
    and a level for every item at every store. ``seed`` fixes costs and quantities."""

    chains: int
    stores_per_chain: int
    items: int
    seed: int = 1
    batch: int = BATCH

    @property
    def levels(self) -> int:
        return self.chains * self.stores_per_chain * self.items


@dataclass(frozen=True, slots=True)
class SeedCounts:
    """What ``seed_generated`` added."""

    chains: int
    stores: int
    items: int
    levels: int

    @property
    def rows(self) -> int:
        return self.chains + self.stores + self.items + self.levels


def seed_generated(
    catalogue: Catalogue,
    inventory: Inventory,
    tenant: str,
    plan: SeedPlan,
    *,
    loader: BulkLoader | None = None,
    progress: Callable[[int], object] = lambda levels: None,
) -> SeedCounts:
    """Create ``tenant`` if missing and add ``plan``'s rows to it.

    With a ``loader`` (the storage's ``BulkLoader``) the rows go in many per statement; the
    loader skips the per-row checks, so the rows are checked here first (levels are made in
    range). Without one they go through the use cases one at a time. ``progress`` is told
    how many levels each batch added. SKUs carry a random run tag, so that seeding a tenant
    twice adds a second catalogue instead of failing on the first duplicate.
    """
    ensure_tenant(catalogue, tenant)
    target = UseCaseLoader(catalogue, inventory) if loader is None else loader
    rng = random.Random(plan.seed)
    run_tag = secrets.token_hex(3).upper()
    try:
        new_chains = [
            validation.new_chain(NewChain(name=f"Chain {n:04d}", phone=f"+1 555-01{n % 100:02d}"))
            for n in range(plan.chains)
        ]
        chain_ids = _add(target.add_chains, tenant, new_chains, plan.batch)
        new_stores = [
            validation.new_store(_generated_store(chain_id, c, s))
            for c, chain_id in enumerate(chain_ids)
            for s in range(plan.stores_per_chain)
        ]
        store_ids = _add(target.add_stores, tenant, new_stores, plan.batch)
        new_items = [
            validation.new_item(
                NewItem(
                    sku=f"GEN-{run_tag}-{k:07d}",
                    name=f"Generated item {k}",
                    cost=Decimal(rng.randint(50, 50_000)).scaleb(-2),
                )
            )
            for k in range(plan.items)
        ]
        item_ids = _add(target.add_items, tenant, new_items, plan.batch)
        levels = 0
        batch: list[tuple[int, int, int]] = []
        # rng.randint(0, MAX_QUANTITY), inlined as it draws (a million calls cost a second):
        # the same bits, so a seed's quantities are what they were.
        bits, draw = (MAX_QUANTITY + 1).bit_length(), rng.getrandbits
        for store_id in store_ids:
            for item_id in item_ids:
                quantity = draw(bits)
                while quantity > MAX_QUANTITY:
                    quantity = draw(bits)
                batch.append((store_id, item_id, quantity))
                if len(batch) >= plan.batch:
                    levels += target.add_levels(tenant, batch)
                    progress(len(batch))
                    batch = []
        if batch:
            levels += target.add_levels(tenant, batch)
            progress(len(batch))
    finally:
        target.close()
    return SeedCounts(
        chains=len(chain_ids), stores=len(store_ids), items=len(item_ids), levels=levels
    )


def _batches(rows: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _add(
    add: Callable[[str, Sequence[T]], list[int]], tenant: str, rows: Sequence[T], size: int
) -> list[int]:
    ids: list[int] = []
    for part in _batches(rows, size):
        ids += add(tenant, part)
    return ids


def _generated_store(chain_id: int, chain: int, n: int) -> NewStore:
    city, postal_code, country = CITIES[(chain + n) % len(CITIES)]
    return NewStore(
        chain_id=chain_id,
        name=f"{city} {chain:04d}-{n:04d}",
        phone=f"+1 555-01{n % 100:02d}",
        address=f"{n + 1} Main Street",
        postal_code=postal_code,
        city=city,
        country=country,
        active=n % 17 != 16,
    )


class UseCaseLoader:
    """A ``BulkLoader`` for storage that has none: the use cases, one row at a time."""

    def __init__(self, catalogue: Catalogue, inventory: Inventory) -> None:
        self._catalogue = catalogue
        self._inventory = inventory

    def add_chains(self, tenant: str, rows: Sequence[NewChain]) -> list[int]:
        return [usecases.create_chain(self._catalogue, tenant, r).id for r in rows]

    def add_stores(self, tenant: str, rows: Sequence[NewStore]) -> list[int]:
        return [usecases.create_store(self._catalogue, tenant, r).id for r in rows]

    def add_items(self, tenant: str, rows: Sequence[NewItem]) -> list[int]:
        return [usecases.create_item(self._catalogue, tenant, r).id for r in rows]

    def add_levels(self, tenant: str, rows: Sequence[tuple[int, int, int]]) -> int:
        for store_id, item_id, quantity in rows:
            usecases.set_quantity(
                self._inventory, tenant, store_id, item_id, quantity, actor=SEED_ACTOR
            )
        return len(rows)

    def close(self) -> None:
        return None
