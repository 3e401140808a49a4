"""A store with items and levels, for the read tests of the SQL storage."""

from __future__ import annotations

from decimal import Decimal

from commerce.adapters.storage.sql import SqlStorage
from commerce.core.models import NewChain, NewItem, NewStore


def stocked_store(storage: SqlStorage, items: int, *, every: int = 1) -> tuple[int, list[int]]:
    """Tenant "t", one store and ``items`` items; every ``every``-th item (from the first) has
    a level of its position + 1. Returns the store's id and the items' ids, in order."""
    catalogue = storage.catalogue
    catalogue.create_tenant("t", "T")
    chain = catalogue.create_chain("t", NewChain(name="C")).id
    shop = catalogue.create_store("t", NewStore(chain_id=chain, name="S")).id
    ids = []
    for n in range(items):
        item = catalogue.create_item("t", NewItem(sku=f"S{n}", name="I", cost=Decimal("1")))
        ids.append(item.id)
        if n % every == 0:
            storage.inventory.set_quantity("t", shop, item.id, n + 1, actor="test")
    return shop, ids
