"""Generated data: the plan's every row, through the use cases when storage has no bulk loader."""

from __future__ import annotations

import pytest

from commerce.adapters.storage.memory import memory_storage
from commerce.core import usecases
from commerce.core.errors import InvalidInput
from commerce.core.pagination import PageRequest
from commerce.core.seeding import SeedPlan, seed_generated
from commerce.entrypoints.cli import main


def test_seeding_without_a_bulk_loader_adds_every_row_and_reports_progress_per_batch() -> None:
    storage = memory_storage()
    told: list[int] = []
    plan = SeedPlan(chains=2, stores_per_chain=3, items=5, batch=4)
    counts = seed_generated(
        storage.catalogue, storage.inventory, "acme", plan, progress=told.append
    )
    assert (counts.chains, counts.stores, counts.items, counts.levels) == (2, 6, 5, 30)
    assert sum(told) == plan.levels == 30
    assert max(told) <= 4
    page = PageRequest(limit=100)
    chains = usecases.list_chains(storage.catalogue, "acme", page).rows
    stores = [
        s
        for c in chains
        for s in usecases.list_chain_stores(storage.catalogue, "acme", c.id, page).rows
    ]
    levels = [
        lv
        for s in stores
        for lv in usecases.list_store_inventory(
            storage.catalogue, storage.inventory, "acme", s.id, page
        ).rows
    ]
    assert len(levels) == 30
    assert all(0 <= lv.quantity <= 500 for lv in levels)


def test_the_same_seed_gives_the_same_costs_and_quantities() -> None:
    def generated() -> tuple[list[str], list[int]]:
        storage = memory_storage()
        plan = SeedPlan(chains=1, stores_per_chain=2, items=4, seed=7)
        seed_generated(storage.catalogue, storage.inventory, "t", plan)
        page = PageRequest(limit=100)
        items = usecases.list_items(storage.catalogue, "t", page).rows
        [chain] = usecases.list_chains(storage.catalogue, "t", page).rows
        stores = usecases.list_chain_stores(storage.catalogue, "t", chain.id, page).rows
        quantities = [
            lv.quantity
            for s in stores
            for lv in usecases.list_store_inventory(
                storage.catalogue, storage.inventory, "t", s.id, page
            ).rows
        ]
        return [str(i.cost) for i in items], quantities

    assert generated() == generated()


def test_a_tenant_that_is_not_an_id_is_refused_before_anything_is_made() -> None:
    storage = memory_storage()
    with pytest.raises(InvalidInput):
        seed_generated(storage.catalogue, storage.inventory, "Not Valid", SeedPlan(1, 1, 1))
    assert usecases.list_tenants(storage.catalogue) == []


def test_commerce_seed_on_memory_goes_through_the_use_cases(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["seed", "--tenant", "acme", "--chains", "1", "--stores-per-chain", "2", "--items", "3"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "seeded tenant acme: 1 chains, 2 stores, 3 items, 6 levels" in out
    assert "memory:// keeps nothing" in err
