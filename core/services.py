"""Use cases: plain functions over the ports. They never see HTTP or SQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from commerce.core import validation
from commerce.core.errors import InvalidInput, NotFound
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
from commerce.core.pagination import Page, PageRequest
from commerce.core.ports import CommerceStore

MAX_ID = 2**63 - 1
MAX_ITEMS_FILTER = 1000

# Cursor kinds: a cursor issued by one list is refused by another.
CHAINS = "chains"
STORES = "stores"
ITEMS = "items"
STORE_LEVELS = "store-levels"
ITEM_LEVELS = "item-levels"
CHANGES = "changes"


def parse_id(field: str, raw: str) -> int:
    """A positive 64-bit integer id, or ``InvalidInput`` naming ``field``."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        raise InvalidInput(field, "must be a positive integer")
    value = int(raw)
    if not 1 <= value <= MAX_ID:
        raise InvalidInput(field, "must be a positive integer")
    return value


def parse_timestamp(field: str, raw: str) -> datetime:
    """An RFC 3339 timestamp with its offset (``Z`` or ``+02:00``), returned in UTC."""
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidInput(
            field, "must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z"
        ) from None
    if value.tzinfo is None or "T" not in raw.upper():
        raise InvalidInput(field, "must be an RFC 3339 timestamp with an offset, e.g. ...Z")
    return value.astimezone(UTC)


def parse_item_ids(raw: str) -> list[int]:
    """``?items=3,7,9``: comma-separated ids, duplicates ignored, at most 1000, sorted."""
    parts = raw.split(",")
    if len(parts) > MAX_ITEMS_FILTER:
        raise InvalidInput("items", f"at most {MAX_ITEMS_FILTER} item ids")
    ids: set[int] = set()
    for part in parts:
        part = part.strip()
        try:
            ids.add(parse_id("items", part))
        except InvalidInput:
            raise InvalidInput(
                "items", f"must be comma-separated positive integers, got {part[:40]!r}"
            ) from None
    return sorted(ids)


def list_chains(store: CommerceStore, tenant: str, page: PageRequest) -> Page[Chain]:
    rows = store.list_chains(tenant, after=page.after, limit=page.limit + 1)
    return Page.from_rows(CHAINS, rows, page, key=lambda c: c.id)


def get_chain(store: CommerceStore, tenant: str, chain_id: int) -> Chain:
    chain = store.get_chain(tenant, chain_id)
    if chain is None:
        raise NotFound("chain", chain_id)
    return chain


def list_chain_stores(
    store: CommerceStore, tenant: str, chain_id: int, page: PageRequest
) -> Page[Store]:
    get_chain(store, tenant, chain_id)
    rows = store.list_stores(tenant, chain_id, after=page.after, limit=page.limit + 1)
    return Page.from_rows(STORES, rows, page, key=lambda s: s.id)


def get_store(store: CommerceStore, tenant: str, store_id: int) -> Store:
    found = store.get_store(tenant, store_id)
    if found is None:
        raise NotFound("store", store_id)
    return found


def list_store_inventory(
    store: CommerceStore,
    tenant: str,
    store_id: int,
    page: PageRequest,
    item_ids: list[int] | None = None,
    as_of: datetime | None = None,
) -> Page[InventoryLevel]:
    """A store's levels; with ``item_ids``, only those items (items with no level left out).

    With ``as_of``, the levels as they were then, derived from the change ledger.
    """
    get_store(store, tenant, store_id)
    if as_of is None:
        rows = store.list_levels(
            tenant, store_id, item_ids=item_ids, after=page.after, limit=page.limit + 1
        )
    else:
        rows = store.list_levels_as_of(
            tenant, store_id, as_of, item_ids=item_ids, after=page.after, limit=page.limit + 1
        )
    return Page.from_rows(STORE_LEVELS, rows, page, key=lambda lv: lv.item_id)


def list_items(store: CommerceStore, tenant: str, page: PageRequest) -> Page[Item]:
    rows = store.list_items(tenant, after=page.after, limit=page.limit + 1)
    return Page.from_rows(ITEMS, rows, page, key=lambda i: i.id)


def get_item(store: CommerceStore, tenant: str, item_id: int) -> Item:
    item = store.get_item(tenant, item_id)
    if item is None:
        raise NotFound("item", item_id)
    return item


def list_item_inventory(
    store: CommerceStore, tenant: str, item_id: int, page: PageRequest
) -> Page[InventoryLevel]:
    get_item(store, tenant, item_id)
    rows = store.list_item_levels(tenant, item_id, after=page.after, limit=page.limit + 1)
    return Page.from_rows(ITEM_LEVELS, rows, page, key=lambda lv: lv.store_id)


def get_level(store: CommerceStore, tenant: str, store_id: int, item_id: int) -> InventoryLevel:
    get_store(store, tenant, store_id)
    rows = store.list_levels(tenant, store_id, item_ids=[item_id], after=None, limit=1)
    if not rows:
        raise NotFound("inventory level of item", item_id)
    return rows[0]


# -- writes ------------------------------------------------------------------------------
# Each validates with core.validation first, so every backend sees only valid rows.


def create_chain(store: CommerceStore, tenant: str, new: NewChain) -> Chain:
    return store.create_chain(tenant, validation.new_chain(new))


def update_chain(
    store: CommerceStore,
    tenant: str,
    chain_id: int,
    patch: ChainPatch,
    expected_updated_at: datetime | None = None,
) -> Chain:
    return store.update_chain(
        tenant, chain_id, validation.chain_patch(patch), expected_updated_at=expected_updated_at
    )


def delete_chain(
    store: CommerceStore, tenant: str, chain_id: int, expected_updated_at: datetime | None = None
) -> None:
    store.delete_chain(tenant, chain_id, expected_updated_at=expected_updated_at)


def create_store(store: CommerceStore, tenant: str, new: NewStore) -> Store:
    return store.create_store(tenant, validation.new_store(new))


def update_store(
    store: CommerceStore,
    tenant: str,
    store_id: int,
    patch: StorePatch,
    expected_updated_at: datetime | None = None,
) -> Store:
    return store.update_store(
        tenant, store_id, validation.store_patch(patch), expected_updated_at=expected_updated_at
    )


def delete_store(
    store: CommerceStore, tenant: str, store_id: int, expected_updated_at: datetime | None = None
) -> None:
    store.delete_store(tenant, store_id, expected_updated_at=expected_updated_at)


def create_item(store: CommerceStore, tenant: str, new: NewItem) -> Item:
    return store.create_item(tenant, validation.new_item(new))


def update_item(
    store: CommerceStore,
    tenant: str,
    item_id: int,
    patch: ItemPatch,
    expected_updated_at: datetime | None = None,
) -> Item:
    return store.update_item(
        tenant, item_id, validation.item_patch(patch), expected_updated_at=expected_updated_at
    )


def delete_item(
    store: CommerceStore, tenant: str, item_id: int, expected_updated_at: datetime | None = None
) -> None:
    store.delete_item(tenant, item_id, expected_updated_at=expected_updated_at)


def set_quantity(
    store: CommerceStore,
    tenant: str,
    store_id: int,
    item_id: int,
    quantity: int,
    *,
    actor: str,
    expected_quantity: int | None = None,
    reference: str | None = None,
) -> InventoryLevel:
    validation.quantity("quantity", quantity)
    if expected_quantity is not None:
        validation.quantity("expected_quantity", expected_quantity)
    validation.reference("reference", reference)
    return store.set_quantity(
        tenant,
        store_id,
        item_id,
        quantity,
        actor=actor,
        expected_quantity=expected_quantity,
        reference=reference,
    )


def adjust_inventory(
    store: CommerceStore,
    tenant: str,
    store_id: int,
    adjustments: Sequence[Adjustment],
    *,
    actor: str,
) -> Sequence[InventoryLevel]:
    return store.adjust(tenant, store_id, validation.adjustments(adjustments), actor=actor)


def list_changes(
    store: CommerceStore, tenant: str, store_id: int, where: ChangeFilter, page: PageRequest
) -> Page[LedgerEntry]:
    if where.since is not None and where.until is not None and where.since >= where.until:
        raise InvalidInput("until", "must be later than since")
    get_store(store, tenant, store_id)
    rows = store.list_changes(tenant, store_id, where, after=page.after, limit=page.limit + 1)
    return Page.from_rows(CHANGES, rows, page, key=lambda e: e.id)
