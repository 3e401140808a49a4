"""Use cases: plain functions over the ports. They never see HTTP or SQL."""

from __future__ import annotations

from core.errors import InvalidInput, NotFound
from core.models import Chain, InventoryLevel, Item, Store
from core.pagination import Page, PageRequest
from core.ports import CommerceStore

MAX_ID = 2**63 - 1
MAX_ITEMS_FILTER = 1000

# Cursor kinds: a cursor issued by one list is refused by another.
CHAINS = "chains"
STORES = "stores"
ITEMS = "items"
STORE_LEVELS = "store-levels"
ITEM_LEVELS = "item-levels"


def parse_id(field: str, raw: str) -> int:
    """A positive 64-bit integer id, or ``InvalidInput`` naming ``field``."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        raise InvalidInput(field, "must be a positive integer")
    value = int(raw)
    if not 1 <= value <= MAX_ID:
        raise InvalidInput(field, "must be a positive integer")
    return value


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
) -> Page[InventoryLevel]:
    """A store's levels; with ``item_ids``, only those items (items with no level left out)."""
    get_store(store, tenant, store_id)
    rows = store.list_levels(
        tenant, store_id, item_ids=item_ids, after=page.after, limit=page.limit + 1
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
