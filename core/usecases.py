"""Use cases: plain functions over the ports, the only way in for HTTP, the CLI and the seeder.

Each takes only the ports it needs and validates its input with ``core.validation`` first,
so every backend sees valid rows only. They never see HTTP or SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from commerce.core import spans, validation
from commerce.core.auth import Role
from commerce.core.errors import (
    InsufficientStock,
    InvalidInput,
    NotFound,
    QuantityMismatch,
)
from commerce.core.events import LogEvent, event_log
from commerce.core.flags import AS_OF_READS, COUNTED_SETS, DEFAULTS, Flags, require
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
    Store,
    StorePatch,
)
from commerce.core.pagination import Page, PageRequest, TimeKey
from commerce.core.ports import Catalogue, Inventory

# Tenants and API keys are use cases too, kept in core/tenancy.py and offered here with the
# others, so that every entry point has one way in.
from commerce.core.tenancy import (
    API_KEY_ATTEMPTS as API_KEY_ATTEMPTS,
)
from commerce.core.tenancy import (
    create_api_key as create_api_key,
)
from commerce.core.tenancy import (
    create_tenant as create_tenant,
)
from commerce.core.tenancy import (
    get_tenant as get_tenant,
)
from commerce.core.tenancy import (
    list_api_keys as list_api_keys,
)
from commerce.core.tenancy import (
    list_tenants as list_tenants,
)
from commerce.core.tenancy import (
    revoke_api_key as revoke_api_key,
)
from commerce.core.tenancy import (
    tenant_exists as tenant_exists,
)

log = event_log("commerce.usecases")

# Cursor kinds: a cursor issued by one list is refused by another.
CHAINS = "chains"
STORES = "stores"
ITEMS = "items"
STORE_LEVELS = "store-levels"
ITEM_LEVELS = "item-levels"
CHANGES = "changes"


# -- catalogue reads ----------------------------------------------------------------------


@spans.usecase
def list_chains(catalogue: Catalogue, tenant: str, page: PageRequest) -> Page[Chain]:
    rows = catalogue.list_chains(tenant, after=page.after, limit=page.limit + 1)
    return Page.from_rows(CHAINS, rows, page, key=lambda c: c.id)


@spans.usecase
def get_chain(catalogue: Catalogue, tenant: str, chain_id: int) -> Chain:
    chain = catalogue.get_chain(tenant, chain_id)
    if chain is None:
        raise NotFound("chain", chain_id)
    return chain


@spans.usecase
def list_chain_stores(
    catalogue: Catalogue, tenant: str, chain_id: int, page: PageRequest
) -> Page[Store]:
    get_chain(catalogue, tenant, chain_id)
    rows = catalogue.list_stores(tenant, chain_id, after=page.after, limit=page.limit + 1)
    return Page.from_rows(STORES, rows, page, key=lambda s: s.id)


@spans.usecase
def get_store(catalogue: Catalogue, tenant: str, store_id: int) -> Store:
    found = catalogue.get_store(tenant, store_id)
    if found is None:
        raise NotFound("store", store_id)
    return found


@spans.usecase
def list_items(catalogue: Catalogue, tenant: str, page: PageRequest) -> Page[Item]:
    rows = catalogue.list_items(tenant, after=page.after, limit=page.limit + 1)
    return Page.from_rows(ITEMS, rows, page, key=lambda i: i.id)


@spans.usecase
def get_item(catalogue: Catalogue, tenant: str, item_id: int) -> Item:
    item = catalogue.get_item(tenant, item_id)
    if item is None:
        raise NotFound("item", item_id)
    return item


# -- catalogue writes ---------------------------------------------------------------------


@spans.usecase
def create_chain(catalogue: Catalogue, tenant: str, new: NewChain) -> Chain:
    return catalogue.create_chain(tenant, validation.new_chain(new))


@spans.usecase
def update_chain(
    catalogue: Catalogue,
    tenant: str,
    chain_id: int,
    patch: ChainPatch,
    expected_updated_at: datetime | None = None,
) -> Chain:
    return catalogue.update_chain(
        tenant, chain_id, validation.chain_patch(patch), expected_updated_at=expected_updated_at
    )


@spans.usecase
def delete_chain(
    catalogue: Catalogue, tenant: str, chain_id: int, expected_updated_at: datetime | None = None
) -> None:
    catalogue.delete_chain(tenant, chain_id, expected_updated_at=expected_updated_at)


@spans.usecase
def create_store(catalogue: Catalogue, tenant: str, new: NewStore) -> Store:
    return catalogue.create_store(tenant, validation.new_store(new))


@spans.usecase
def update_store(
    catalogue: Catalogue,
    tenant: str,
    store_id: int,
    patch: StorePatch,
    expected_updated_at: datetime | None = None,
) -> Store:
    return catalogue.update_store(
        tenant, store_id, validation.store_patch(patch), expected_updated_at=expected_updated_at
    )


@spans.usecase
def delete_store(
    catalogue: Catalogue, tenant: str, store_id: int, expected_updated_at: datetime | None = None
) -> None:
    catalogue.delete_store(tenant, store_id, expected_updated_at=expected_updated_at)


@spans.usecase
def create_item(catalogue: Catalogue, tenant: str, new: NewItem) -> Item:
    return catalogue.create_item(tenant, validation.new_item(new))


@spans.usecase
def update_item(
    catalogue: Catalogue,
    tenant: str,
    item_id: int,
    patch: ItemPatch,
    expected_updated_at: datetime | None = None,
) -> Item:
    return catalogue.update_item(
        tenant, item_id, validation.item_patch(patch), expected_updated_at=expected_updated_at
    )


@spans.usecase
def delete_item(
    catalogue: Catalogue, tenant: str, item_id: int, expected_updated_at: datetime | None = None
) -> None:
    catalogue.delete_item(tenant, item_id, expected_updated_at=expected_updated_at)


# -- inventory ----------------------------------------------------------------------------


@spans.usecase
def list_store_inventory(
    catalogue: Catalogue,
    inventory: Inventory,
    tenant: str,
    store_id: int,
    page: PageRequest,
    item_ids: list[int] | None = None,
    as_of: datetime | None = None,
    *,
    flags: Flags = DEFAULTS,
    role: Role | None = None,
) -> Page[InventoryLevel]:
    """A store's levels; with ``item_ids``, only those items (items with no level left out).

    With ``as_of``, the levels as they were then, derived from the change ledger: only if the
    flag ``as-of-reads`` is on for the tenant (and ``role``), else ``FeatureDisabled``.
    """
    if as_of is None:
        rows = inventory.list_levels(
            tenant, store_id, item_ids=item_ids, after=page.after, limit=page.limit + 1
        )
        if not rows:
            # A level belongs to a store of its own tenant (a foreign key says so): levels
            # found prove the store is there, and only an empty answer needs it checked.
            # So a read that finds levels is one call to storage, one round trip.
            get_store(catalogue, tenant, store_id)
    else:
        require(flags, AS_OF_READS, tenant, role)
        get_store(catalogue, tenant, store_id)  # the ledger outlives a deleted store
        rows = inventory.list_levels_as_of(
            tenant, store_id, as_of, item_ids=item_ids, after=page.after, limit=page.limit + 1
        )
    return Page.from_rows(STORE_LEVELS, rows, page, key=lambda lv: lv.item_id)


@spans.usecase
def list_item_inventory(
    catalogue: Catalogue, inventory: Inventory, tenant: str, item_id: int, page: PageRequest
) -> Page[InventoryLevel]:
    get_item(catalogue, tenant, item_id)
    rows = inventory.list_item_levels(tenant, item_id, after=page.after, limit=page.limit + 1)
    return Page.from_rows(ITEM_LEVELS, rows, page, key=lambda lv: lv.store_id)


@spans.usecase
def get_level(
    catalogue: Catalogue, inventory: Inventory, tenant: str, store_id: int, item_id: int
) -> InventoryLevel:
    rows = inventory.list_levels(tenant, store_id, item_ids=[item_id], after=None, limit=1)
    if not rows:
        get_store(catalogue, tenant, store_id)  # a level found proves the store (see above)
        raise NotFound("inventory level of item", item_id)
    return rows[0]


@spans.usecase
def find_level(
    catalogue: Catalogue, inventory: Inventory, tenant: str, store_id: int, item_id: int
) -> InventoryLevel | None:
    """The level if there is one; ``NotFound`` unless store and item are the tenant's."""
    get_store(catalogue, tenant, store_id)
    get_item(catalogue, tenant, item_id)
    rows = inventory.list_levels(tenant, store_id, item_ids=[item_id], after=None, limit=1)
    return rows[0] if rows else None


@spans.usecase
def set_quantity(
    inventory: Inventory,
    tenant: str,
    store_id: int,
    item_id: int,
    quantity: int,
    *,
    actor: str,
    expected_quantity: int | None = None,
    reference: str | None = None,
    flags: Flags = DEFAULTS,
    role: Role | None = None,
) -> InventoryLevel:
    """A counted set: only if the flag ``counted-sets`` is on for the tenant (and ``role``),
    else ``FeatureDisabled`` before anything is looked at."""
    require(flags, COUNTED_SETS, tenant, role)
    validation.quantity("quantity", quantity)
    if expected_quantity is not None:
        validation.quantity("expected_quantity", expected_quantity)
    validation.reference("reference", reference)
    try:
        level = inventory.set_quantity(
            tenant,
            store_id,
            item_id,
            quantity,
            actor=actor,
            expected_quantity=expected_quantity,
            reference=reference,
        )
    except QuantityMismatch:
        log(
            LogEvent.CAS_CONFLICT,
            "compare-and-set refused: the level of item %d at store %d no longer holds the "
            "expected quantity",
            item_id,
            store_id,
            store_id=store_id,
            item_id=item_id,
            conflict="expected_quantity",
        )
        raise
    log(
        LogEvent.LEVEL_SET,
        "level of item %d at store %d set to %d",
        item_id,
        store_id,
        quantity,
        store_id=store_id,
        item_id=item_id,
        quantity=quantity,
        actor=actor,
    )
    return level


@spans.usecase
def adjust_inventory(
    inventory: Inventory,
    tenant: str,
    store_id: int,
    adjustments: Sequence[Adjustment],
    *,
    actor: str,
) -> Sequence[InventoryLevel]:
    checked = validation.adjustments(adjustments)
    try:
        levels = inventory.adjust(tenant, store_id, checked, actor=actor)
    except InsufficientStock as refused:
        short = [s["item_id"] for s in refused.shortages]
        log(
            LogEvent.ADJUSTMENT_REFUSED,
            "adjustment at store %d refused: not enough stock of %d item(s)",
            store_id,
            len(short),
            store_id=store_id,
            items=len(checked),
            actor=actor,
            short_items=short,
        )
        raise
    log(
        LogEvent.INVENTORY_ADJUSTED,
        "adjusted %d item(s) at store %d",
        len(checked),
        store_id,
        store_id=store_id,
        items=len(checked),
        actor=actor,
    )
    return levels


@spans.usecase
def list_changes(
    catalogue: Catalogue,
    inventory: Inventory,
    tenant: str,
    store_id: int,
    where: ChangeFilter,
    page: PageRequest,
) -> Page[LedgerEntry]:
    """A store's ledger entries, oldest first: by ``id``, or with ``since`` or ``until`` by
    ``(created_at, id)`` (``ChangeFilter.by_time``), whose cursors name both and are parsed
    with ``PageRequest.parse(..., timed=True)``."""
    if where.since is not None and where.until is not None and where.since >= where.until:
        raise InvalidInput("until", "must be later than since")
    after: int | TimeKey | None = page.after
    if where.by_time:
        after = page.after_key
        if page.after is not None and after is None:
            raise InvalidInput("cursor", "is not a cursor this list issued")
    elif page.after_time is not None:
        raise InvalidInput("cursor", "is not a cursor this list issued")
    get_store(catalogue, tenant, store_id)
    rows = inventory.list_changes(tenant, store_id, where, after=after, limit=page.limit + 1)
    if where.by_time:
        return Page.from_rows(CHANGES, rows, page, key=_entry_id, time=_entry_time)
    return Page.from_rows(CHANGES, rows, page, key=_entry_id)


def _entry_id(entry: LedgerEntry) -> int:
    return entry.id


def _entry_time(entry: LedgerEntry) -> datetime:
    return entry.created_at
