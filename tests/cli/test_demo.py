"""The demo data set: the promised size and shape, the same every time, loaded only once."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from commerce.adapters.storage.memory import MemoryStore
from commerce.core.models import DEFAULT_TENANT, Chain, InventoryLevel, Item, Store
from commerce.entrypoints.config import Settings
from commerce.entrypoints.demo import DemoSummary, ensure_demo, load_demo
from commerce.entrypoints.wiring import open_store
from commerce.plugins import get_plugin_manager

TENANT = DEFAULT_TENANT


def _loaded() -> tuple[MemoryStore, DemoSummary]:
    store = MemoryStore()
    store.create_tenant(TENANT, "Demo")
    return store, load_demo(store, TENANT)


def _snapshot(
    store: MemoryStore,
) -> tuple[list[Chain], list[Store], list[Item], list[InventoryLevel]]:
    chains = list(store.list_chains(TENANT, after=None, limit=1000))
    stores = [s for c in chains for s in store.list_stores(TENANT, c.id, after=None, limit=1000)]
    items = list(store.list_items(TENANT, after=None, limit=1000))
    levels = [
        lv
        for s in stores
        for lv in store.list_levels(TENANT, s.id, item_ids=None, after=None, limit=1000)
    ]
    return chains, stores, items, levels


@pytest.fixture(scope="module")
def demo() -> tuple[MemoryStore, DemoSummary]:
    return _loaded()


def test_the_demo_has_three_chains_twelve_stores_and_sixty_items(
    demo: tuple[MemoryStore, DemoSummary],
) -> None:
    store, summary = demo
    chains, stores, items, _ = _snapshot(store)
    assert len(chains) == len(summary.chain_ids) == 3
    assert len(stores) == len(summary.store_ids) == 12
    assert len(items) == len(summary.item_ids) == 60


def test_the_demo_has_levels_for_most_store_item_pairs_and_some_zeros(
    demo: tuple[MemoryStore, DemoSummary],
) -> None:
    store, summary = demo
    *_, levels = _snapshot(store)
    assert len(levels) == summary.levels
    assert summary.levels > 0.75 * 12 * 60
    zeros = [lv for lv in levels if lv.quantity == 0]
    assert len(zeros) == summary.zero_levels
    assert 0 < len(zeros) < len(levels) / 4
    assert all(lv.quantity >= 0 for lv in levels)


def test_every_demo_cost_is_a_decimal_with_two_places(
    demo: tuple[MemoryStore, DemoSummary],
) -> None:
    store, _ = demo
    _, _, items, _ = _snapshot(store)
    for item in items:
        assert isinstance(item.cost, Decimal)
        assert item.cost.as_tuple().exponent == -2, item
        assert item.cost > 0


def test_demo_skus_are_unique_and_names_are_not_empty(
    demo: tuple[MemoryStore, DemoSummary],
) -> None:
    store, _ = demo
    _, stores, items, _ = _snapshot(store)
    assert len({i.sku for i in items}) == len(items)
    assert all(i.name and i.sku for i in items)
    assert all(s.name and s.phone and s.address and s.postal_code and s.city for s in stores)


def test_demo_stores_span_several_cities_and_iso_countries_and_one_is_inactive(
    demo: tuple[MemoryStore, DemoSummary],
) -> None:
    store, _ = demo
    _, stores, _, _ = _snapshot(store)
    countries = {s.country for s in stores}
    assert len(countries) >= 3
    assert all(len(c) == 2 and c.isascii() and c.isupper() for c in countries)
    assert len({s.city for s in stores}) >= 8
    assert [s.active for s in stores].count(False) == 1


def test_the_demo_is_the_same_every_time_it_is_loaded() -> None:
    first, second = _loaded()[0], _loaded()[0]

    def comparable(store: MemoryStore) -> object:
        chains, stores, items, levels = _snapshot(store)
        return (
            [(c.name, c.phone) for c in chains],
            [(s.name, s.chain_id, s.address, s.postal_code, s.city, s.country) for s in stores],
            [(i.sku, i.name, i.cost) for i in items],
            [(lv.store_id, lv.item_id, lv.quantity) for lv in levels],
        )

    assert comparable(first) == comparable(second)


def test_ensuring_the_demo_creates_the_tenant_and_loads_it_once() -> None:
    store = MemoryStore()
    first = ensure_demo(store, TENANT)
    again = ensure_demo(store, TENANT)
    assert first is not None
    assert again is None
    assert store.get_tenant(TENANT) is not None
    assert len(store.list_chains(TENANT, after=None, limit=1000)) == 3


def test_the_demo_is_loaded_once_into_a_durable_database(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/demo.db")
    pm = get_plugin_manager()
    manager = pm.hook.commerce_schema_manager(
        url=settings.database_url, settings=settings.plugin_settings()
    )
    assert manager is not None, "the built-in SQL plugin keeps the schema of sqlite://"
    manager.upgrade()
    results = []
    for _ in range(2):  # as two runs of `serve --demo` would, each with its own store
        store = open_store(pm, settings)
        try:
            results.append(ensure_demo(store, TENANT))
            chains = store.list_chains(TENANT, after=None, limit=1000)
        finally:
            store.close()
        assert len(chains) == 3
    assert results[0] is not None
    assert results[1] is None
