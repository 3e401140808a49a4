"""The demo data set: the promised size and shape, the same every time, loaded only once."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from commerce.adapters.storage.memory import memory_storage
from commerce.core import usecases
from commerce.core.models import DEFAULT_TENANT, Chain, InventoryLevel, Item, Store
from commerce.core.ports import Storage
from commerce.core.seeding import DemoSummary, ensure_demo, load_demo
from commerce.entrypoints.bootstrap import bootstrap
from commerce.entrypoints.config import Settings
from commerce.plugins import get_plugin_manager

TENANT = DEFAULT_TENANT


def _loaded() -> tuple[Storage, DemoSummary]:
    storage = memory_storage()
    usecases.create_tenant(storage.catalogue, TENANT, "Demo")
    return storage, load_demo(storage.catalogue, storage.inventory, TENANT)


def _snapshot(
    storage: Storage,
) -> tuple[list[Chain], list[Store], list[Item], list[InventoryLevel]]:
    catalogue, inventory = storage.catalogue, storage.inventory
    chains = list(catalogue.list_chains(TENANT, after=None, limit=1000))
    stores = [
        s for c in chains for s in catalogue.list_stores(TENANT, c.id, after=None, limit=1000)
    ]
    items = list(catalogue.list_items(TENANT, after=None, limit=1000))
    levels = [
        lv
        for s in stores
        for lv in inventory.list_levels(TENANT, s.id, item_ids=None, after=None, limit=1000)
    ]
    return chains, stores, items, levels


@pytest.fixture(scope="module")
def demo() -> tuple[Storage, DemoSummary]:
    return _loaded()


def test_the_demo_has_three_chains_twelve_stores_and_sixty_items(
    demo: tuple[Storage, DemoSummary],
) -> None:
    storage, summary = demo
    chains, stores, items, _ = _snapshot(storage)
    assert len(chains) == len(summary.chain_ids) == 3
    assert len(stores) == len(summary.store_ids) == 12
    assert len(items) == len(summary.item_ids) == 60


def test_the_demo_has_levels_for_most_store_item_pairs_and_some_zeros(
    demo: tuple[Storage, DemoSummary],
) -> None:
    storage, summary = demo
    *_, levels = _snapshot(storage)
    assert len(levels) == summary.levels
    assert summary.levels > 0.75 * 12 * 60
    zeros = [lv for lv in levels if lv.quantity == 0]
    assert len(zeros) == summary.zero_levels
    assert 0 < len(zeros) < len(levels) / 4
    assert all(lv.quantity >= 0 for lv in levels)


def test_every_demo_cost_is_a_decimal_with_two_places(
    demo: tuple[Storage, DemoSummary],
) -> None:
    storage, _ = demo
    _, _, items, _ = _snapshot(storage)
    for item in items:
        assert isinstance(item.cost, Decimal)
        assert item.cost.as_tuple().exponent == -2, item
        assert item.cost > 0


def test_demo_skus_are_unique_and_names_are_not_empty(
    demo: tuple[Storage, DemoSummary],
) -> None:
    storage, _ = demo
    _, stores, items, _ = _snapshot(storage)
    assert len({i.sku for i in items}) == len(items)
    assert all(i.name and i.sku for i in items)
    assert all(s.name and s.phone and s.address and s.postal_code and s.city for s in stores)


def test_demo_stores_span_several_cities_and_iso_countries_and_one_is_inactive(
    demo: tuple[Storage, DemoSummary],
) -> None:
    storage, _ = demo
    _, stores, _, _ = _snapshot(storage)
    countries = {s.country for s in stores}
    assert len(countries) >= 3
    assert all(len(c) == 2 and c.isascii() and c.isupper() for c in countries)
    assert len({s.city for s in stores}) >= 8
    assert [s.active for s in stores].count(False) == 1


def test_the_demo_is_the_same_every_time_it_is_loaded() -> None:
    first, second = _loaded()[0], _loaded()[0]

    def comparable(storage: Storage) -> object:
        chains, stores, items, levels = _snapshot(storage)
        return (
            [(c.name, c.phone) for c in chains],
            [(s.name, s.chain_id, s.address, s.postal_code, s.city, s.country) for s in stores],
            [(i.sku, i.name, i.cost) for i in items],
            [(lv.store_id, lv.item_id, lv.quantity) for lv in levels],
        )

    assert comparable(first) == comparable(second)


def test_ensuring_the_demo_creates_the_tenant_and_loads_it_once() -> None:
    storage = memory_storage()
    catalogue = storage.catalogue
    first = ensure_demo(storage.catalogue, storage.inventory, TENANT)
    again = ensure_demo(storage.catalogue, storage.inventory, TENANT)
    assert first is not None
    assert again is None
    assert catalogue.get_tenant(TENANT) is not None
    assert len(catalogue.list_chains(TENANT, after=None, limit=1000)) == 3


def test_the_demo_is_loaded_once_into_a_durable_database(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/demo.db")
    pm = get_plugin_manager()
    manager = bootstrap(settings, pm).schema_manager()
    assert manager is not None, "the built-in SQL plugin keeps the schema of sqlite://"
    manager.upgrade()
    results = []
    for _ in range(2):  # as two runs of `serve --demo` would, each with its own runtime
        runtime = bootstrap(settings, pm)
        try:
            storage = runtime.storage
            results.append(ensure_demo(storage.catalogue, storage.inventory, TENANT))
            chains = storage.catalogue.list_chains(TENANT, after=None, limit=1000)
        finally:
            runtime.close()
        assert len(chains) == 3
    assert results[0] is not None
    assert results[1] is None
