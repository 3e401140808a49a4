"""The inventory port's contract: levels, counted sets, adjustments, the ledger, levels as-of.

Inventory refers to the catalogue's stores and items, so this suite uses both ports; it also
holds the catalogue's deletes that stock prevents, as they need levels to exist.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from commerce.core.errors import (
    Conflict,
    InsufficientStock,
    LevelTooHigh,
    NotFound,
    StorageUnavailable,
)
from commerce.core.models import (
    Adjustment,
    ChangeFilter,
    LedgerEntry,
    NewChain,
    NewItem,
    NewStore,
    Reason,
)
from commerce.core.pagination import TimeKey
from commerce.core.ports import Catalogue, Inventory
from commerce.core.validation import MAX_QUANTITY
from tests.contract.base import NewTenant, PortFixtures
from tests.contract.catalogue import items as _items

THREADS = 8
ADJUSTMENTS_PER_THREAD = 25


def _store_in(catalogue: Catalogue, tenant: str, city: str = "Lyon") -> tuple[int, int]:
    chain = catalogue.create_chain(tenant, NewChain(name="Chain", phone="+33 1 23 45 67 89"))
    shop = catalogue.create_store(
        tenant,
        NewStore(
            chain_id=chain.id,
            name=f"{city} Centre",
            phone="+33 4 00 00 00 00",
            address="1 Rue de la République",
            postal_code="69002",
            city=city,
            country="FR",
        ),
    )
    return chain.id, shop.id


def _shop(catalogue: Catalogue, tenant: str) -> int:
    chain = catalogue.create_chain(tenant, NewChain(name="Chain"))
    return catalogue.create_store(tenant, NewStore(chain_id=chain.id, name="Shop")).id


def _ledger(
    inventory: Inventory, tenant: str, shop: int, limit: int = 50, **where: object
) -> list[LedgerEntry]:
    """Every entry ``where`` selects, page by page; with ``since``, in time order."""
    entries: list[LedgerEntry] = []
    after: int | TimeKey | None = None
    matching = ChangeFilter(**where)  # type: ignore[arg-type]
    while True:
        page = inventory.list_changes(tenant, shop, matching, after=after, limit=limit)
        entries.extend(page)
        if len(page) < limit:
            return entries
        last = page[-1]
        after = TimeKey(last.created_at, last.id) if matching.by_time else last.id


def _in_time_order(entries: Sequence[LedgerEntry]) -> list[LedgerEntry]:
    return sorted(entries, key=lambda e: (e.created_at, e.id))


def _quantities(inventory: Inventory, tenant: str, shop: int) -> dict[int, int]:
    levels = inventory.list_levels(tenant, shop, item_ids=None, after=None, limit=1000)
    return {lv.item_id: lv.quantity for lv in levels}


class InventoryContract(PortFixtures):
    """Uses the fixtures ``catalogue``, ``inventory`` and ``new_tenant``."""

    # -- levels ----------------------------------------------------------------------
    def test_setting_a_quantity_creates_then_replaces_the_level(
        self, catalogue: Catalogue, inventory: Inventory, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        _, shop = _store_in(catalogue, tenant)
        item = catalogue.create_item(tenant, NewItem(sku="A", name="A", cost=Decimal("1.00")))
        first = inventory.set_quantity(tenant, shop, item.id, 7, actor="test")
        assert (first.store_id, first.item_id, first.quantity) == (shop, item.id, 7)
        assert first.updated_at.utcoffset() == timedelta(0)
        second = inventory.set_quantity(tenant, shop, item.id, 0, actor="test")
        assert second.quantity == 0
        assert second.updated_at >= first.updated_at
        assert inventory.list_levels(tenant, shop, item_ids=None, after=None, limit=10) == [second]

    def test_a_store_lists_its_levels_in_item_order(
        self, catalogue: Catalogue, inventory: Inventory, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        _, shop = _store_in(catalogue, tenant)
        items = [
            catalogue.create_item(
                tenant, NewItem(sku=f"I{n}", name=f"I{n}", cost=Decimal("2.00"))
            ).id
            for n in range(5)
        ]
        for n, item_id in enumerate(reversed(items)):
            inventory.set_quantity(tenant, shop, item_id, n, actor="test")
        levels = inventory.list_levels(tenant, shop, item_ids=None, after=None, limit=100)
        assert [lv.item_id for lv in levels] == items
        assert {lv.item_id: lv.quantity for lv in levels} == {
            item_id: n for n, item_id in enumerate(reversed(items))
        }
        page = inventory.list_levels(tenant, shop, item_ids=None, after=items[1], limit=2)
        assert [lv.item_id for lv in page] == items[2:4]

    def test_levels_for_chosen_items_leave_out_items_without_a_level(
        self, catalogue: Catalogue, inventory: Inventory, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        _, shop = _store_in(catalogue, tenant)
        items = [
            catalogue.create_item(
                tenant, NewItem(sku=f"I{n}", name=f"I{n}", cost=Decimal("2.00"))
            ).id
            for n in range(4)
        ]
        inventory.set_quantity(tenant, shop, items[0], 3, actor="test")
        inventory.set_quantity(tenant, shop, items[2], 0, actor="test")
        chosen = [items[2], items[1], items[0], 999_999_999]
        levels = inventory.list_levels(tenant, shop, item_ids=chosen, after=None, limit=100)
        assert [(lv.item_id, lv.quantity) for lv in levels] == [(items[0], 3), (items[2], 0)]
        after_first = inventory.list_levels(
            tenant, shop, item_ids=chosen, after=items[0], limit=100
        )
        assert [lv.item_id for lv in after_first] == [items[2]]
        assert inventory.list_levels(tenant, shop, item_ids=[], after=None, limit=100) == []

    def test_an_item_lists_its_levels_across_stores_in_store_order(
        self, catalogue: Catalogue, inventory: Inventory, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        _, lyon = _store_in(catalogue, tenant, "Lyon")
        _, nice = _store_in(catalogue, tenant, "Nice")
        item = catalogue.create_item(tenant, NewItem(sku="X", name="X", cost=Decimal("5.00")))
        inventory.set_quantity(tenant, nice, item.id, 4, actor="test")
        inventory.set_quantity(tenant, lyon, item.id, 9, actor="test")
        levels = inventory.list_item_levels(tenant, item.id, after=None, limit=100)
        assert [(lv.store_id, lv.quantity) for lv in levels] == sorted([(lyon, 9), (nice, 4)])
        assert (
            len(inventory.list_item_levels(tenant, item.id, after=levels[0].store_id, limit=5)) == 1
        )

    def test_a_tenant_never_sees_another_tenants_store(
        self, catalogue: Catalogue, inventory: Inventory, new_tenant: NewTenant
    ) -> None:
        mine, theirs = new_tenant(), new_tenant()
        _, shop = _store_in(catalogue, theirs)
        assert catalogue.get_store(mine, shop) is None
        assert inventory.list_levels(mine, shop, item_ids=None, after=None, limit=10) == []

    def test_levels_cannot_be_set_across_tenants(
        self, catalogue: Catalogue, inventory: Inventory, new_tenant: NewTenant
    ) -> None:
        mine, theirs = new_tenant(), new_tenant()
        _, my_shop = _store_in(catalogue, mine)
        _, their_shop = _store_in(catalogue, theirs)
        my_item = catalogue.create_item(mine, NewItem(sku="M", name="M", cost=Decimal("1.00")))
        their_item = catalogue.create_item(theirs, NewItem(sku="T", name="T", cost=Decimal("1.00")))
        with pytest.raises(NotFound):
            inventory.set_quantity(mine, their_shop, my_item.id, 1, actor="test")
        with pytest.raises(NotFound):
            inventory.set_quantity(mine, my_shop, their_item.id, 1, actor="test")
        assert inventory.list_levels(mine, my_shop, item_ids=None, after=None, limit=10) == []
        assert inventory.list_item_levels(mine, their_item.id, after=None, limit=10) == []
        assert inventory.list_item_levels(theirs, their_item.id, after=None, limit=10) == []

    def test_setting_a_level_on_a_missing_store_or_item_is_not_found(
        self, catalogue: Catalogue, inventory: Inventory, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        _, shop = _store_in(catalogue, tenant)
        item = catalogue.create_item(tenant, NewItem(sku="A", name="A", cost=Decimal("1.00")))
        with pytest.raises(NotFound):
            inventory.set_quantity(tenant, 987_654_321, item.id, 1, actor="test")
        with pytest.raises(NotFound):
            inventory.set_quantity(tenant, shop, 987_654_321, 1, actor="test")

    # -- deletes that stock prevents ---------------------------------------------------
    def test_a_store_holding_stock_cannot_be_deleted_but_one_at_zero_can(
        self, catalogue: Catalogue, inventory: Inventory, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        shop = _shop(catalogue, tenant)
        (item,) = _items(catalogue, tenant, 1)
        inventory.set_quantity(tenant, shop, item, 2, actor="test")
        with pytest.raises(Conflict):
            catalogue.delete_store(tenant, shop)
        inventory.set_quantity(tenant, shop, item, 0, actor="test")
        catalogue.delete_store(tenant, shop)
        assert catalogue.get_store(tenant, shop) is None
        assert inventory.list_item_levels(tenant, item, after=None, limit=10) == []

    def test_an_item_in_stock_cannot_be_deleted_but_one_at_zero_can(
        self, catalogue: Catalogue, inventory: Inventory, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        shop = _shop(catalogue, tenant)
        (item,) = _items(catalogue, tenant, 1)
        inventory.set_quantity(tenant, shop, item, 1, actor="test")
        with pytest.raises(Conflict):
            catalogue.delete_item(tenant, item)
        inventory.adjust(tenant, shop, [Adjustment(item, -1, Reason.sold)], actor="test")
        catalogue.delete_item(tenant, item)
        assert catalogue.get_item(tenant, item) is None
        assert inventory.list_levels(tenant, shop, item_ids=None, after=None, limit=10) == []

    # -- set -------------------------------------------------------------------------
    def test_a_set_records_the_difference_it_made_as_a_count(
        self, catalogue: Catalogue, inventory: Inventory, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        shop = _shop(catalogue, tenant)
        (item,) = _items(catalogue, tenant, 1)
        inventory.set_quantity(tenant, shop, item, 10, actor="alice", reference="count-1")
        inventory.set_quantity(tenant, shop, item, 7, actor="bob")
        inventory.set_quantity(tenant, shop, item, 7, actor="bob")
        ledger = _ledger(inventory, tenant, shop)
        assert [(e.delta, e.quantity_after, e.reason, e.actor) for e in ledger] == [
            (10, 10, Reason.count, "alice"),
            (-3, 7, Reason.count, "bob"),
            (0, 7, Reason.count, "bob"),
        ]
        assert ledger[0].reference == "count-1"
        assert ledger[1].reference is None
        assert all(e.store_id == shop and e.item_id == item for e in ledger)
        assert [e.id for e in ledger] == sorted({e.id for e in ledger})

    def test_a_compare_and_set_with_the_wrong_quantity_is_refused_with_the_current_one(
        self, catalogue: Catalogue, inventory: Inventory, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        shop = _shop(catalogue, tenant)
        (item,) = _items(catalogue, tenant, 1)
        inventory.set_quantity(tenant, shop, item, 5, actor="test", expected_quantity=0)
        with pytest.raises(Conflict) as caught:
            inventory.set_quantity(tenant, shop, item, 9, actor="test", expected_quantity=4)
        assert caught.value.extra["current_quantity"] == 5
        assert _quantities(inventory, tenant, shop) == {item: 5}
        assert len(_ledger(inventory, tenant, shop)) == 1
        level = inventory.set_quantity(tenant, shop, item, 9, actor="test", expected_quantity=5)
        assert level.quantity == 9

    # -- adjust ----------------------------------------------------------------------
    def test_an_adjustment_batch_applies_every_delta_and_logs_each(
        self, catalogue: Catalogue, inventory: Inventory, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        shop = _shop(catalogue, tenant)
        a, b = _items(catalogue, tenant, 2)
        inventory.set_quantity(tenant, shop, a, 5, actor="test")
        levels = inventory.adjust(
            tenant,
            shop,
            [
                Adjustment(b, 12, Reason.received, "PO-1"),
                Adjustment(a, -2, Reason.sold),
                Adjustment(b, -1, Reason.damaged),
            ],
            actor="till-3",
        )
        assert [(lv.item_id, lv.quantity) for lv in levels] == sorted([(a, 3), (b, 11)])
        assert _quantities(inventory, tenant, shop) == {a: 3, b: 11}
        ledger = _ledger(inventory, tenant, shop)[1:]
        assert [(e.item_id, e.delta, e.quantity_after, e.reason, e.reference) for e in ledger] == [
            (b, 12, 12, Reason.received, "PO-1"),
            (a, -2, 3, Reason.sold, None),
            (b, -1, 11, Reason.damaged, None),
        ]
        assert {e.actor for e in ledger} == {"till-3"}

    def test_a_batch_that_would_go_below_zero_names_every_short_item_and_changes_nothing(
        self, catalogue: Catalogue, inventory: Inventory, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        shop = _shop(catalogue, tenant)
        a, b, c = _items(catalogue, tenant, 3)
        inventory.set_quantity(tenant, shop, a, 5, actor="test")
        inventory.set_quantity(tenant, shop, b, 1, actor="test")
        before_levels = _quantities(inventory, tenant, shop)
        before_ledger = _ledger(inventory, tenant, shop)
        with pytest.raises(InsufficientStock) as caught:
            inventory.adjust(
                tenant,
                shop,
                [
                    Adjustment(a, -1, Reason.sold),
                    Adjustment(b, -2, Reason.sold),
                    Adjustment(c, -1, Reason.lost),
                ],
                actor="test",
            )
        assert caught.value.shortages == [
            {"item_id": b, "quantity": 1, "delta": -2},
            {"item_id": c, "quantity": 0, "delta": -1},
        ]
        assert _quantities(inventory, tenant, shop) == before_levels
        assert _ledger(inventory, tenant, shop) == before_ledger

    def test_no_step_of_a_batch_may_dip_below_zero_even_if_it_ends_above(
        self, catalogue: Catalogue, inventory: Inventory, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        shop = _shop(catalogue, tenant)
        (a,) = _items(catalogue, tenant, 1)
        inventory.set_quantity(tenant, shop, a, 1, actor="test")
        with pytest.raises(InsufficientStock):
            inventory.adjust(
                tenant,
                shop,
                [Adjustment(a, -3, Reason.sold), Adjustment(a, 5, Reason.received)],
                actor="test",
            )
        levels = inventory.adjust(
            tenant,
            shop,
            [Adjustment(a, 5, Reason.received), Adjustment(a, -3, Reason.sold)],
            actor="test",
        )
        assert [lv.quantity for lv in levels] == [3]

    def test_a_batch_that_would_take_a_level_past_the_maximum_is_refused_and_changes_nothing(
        self, catalogue: Catalogue, inventory: Inventory, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        shop = _shop(catalogue, tenant)
        a, b = _items(catalogue, tenant, 2)
        inventory.set_quantity(tenant, shop, a, MAX_QUANTITY - 1, actor="test")
        before_levels = _quantities(inventory, tenant, shop)
        before_ledger = _ledger(inventory, tenant, shop)
        with pytest.raises(LevelTooHigh) as caught:
            inventory.adjust(
                tenant,
                shop,
                [Adjustment(b, 3, Reason.received), Adjustment(a, 2, Reason.received)],
                actor="test",
            )
        assert caught.value.extra == {"item_id": a}
        assert _quantities(inventory, tenant, shop) == before_levels
        assert _ledger(inventory, tenant, shop) == before_ledger
        levels = inventory.adjust(tenant, shop, [Adjustment(a, 1, Reason.received)], actor="t")
        assert [lv.quantity for lv in levels] == [MAX_QUANTITY]

    def test_adjusting_an_unknown_or_foreign_item_is_not_found_and_changes_nothing(
        self, catalogue: Catalogue, inventory: Inventory, new_tenant: NewTenant
    ) -> None:
        mine, theirs = new_tenant(), new_tenant()
        shop = _shop(catalogue, mine)
        (a,) = _items(catalogue, mine, 1)
        (foreign,) = _items(catalogue, theirs, 1)
        for bad in (foreign, 987_654_321):
            with pytest.raises(NotFound):
                inventory.adjust(
                    mine,
                    shop,
                    [Adjustment(a, 4, Reason.received), Adjustment(bad, 1, Reason.received)],
                    actor="test",
                )
        assert _quantities(inventory, mine, shop) == {}
        assert _ledger(inventory, mine, shop) == []
        with pytest.raises(NotFound):
            inventory.adjust(theirs, shop, [Adjustment(foreign, 1, Reason.received)], actor="test")

    # -- the ledger and levels as of a moment ----------------------------------------------
    def test_the_ledger_filters_by_item_and_time_and_pages_by_id(
        self, catalogue: Catalogue, inventory: Inventory, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        shop = _shop(catalogue, tenant)
        a, b = _items(catalogue, tenant, 2)
        for n in range(3):
            inventory.adjust(
                tenant,
                shop,
                [Adjustment(a, n + 1, Reason.received), Adjustment(b, 1, Reason.received)],
                actor="test",
            )
        everything = _ledger(inventory, tenant, shop)
        assert len(everything) == 6
        assert [e.item_id for e in _ledger(inventory, tenant, shop, item_id=a)] == [a, a, a]
        first_page = inventory.list_changes(tenant, shop, ChangeFilter(), after=None, limit=4)
        rest = inventory.list_changes(
            tenant, shop, ChangeFilter(), after=first_page[-1].id, limit=4
        )
        assert list(first_page) + list(rest) == everything
        middle = everything[2].created_at
        since = _ledger(inventory, tenant, shop, since=middle)
        until = _ledger(inventory, tenant, shop, until=middle)
        assert sorted(since + until, key=lambda e: e.id) == everything
        assert all(e.created_at >= middle for e in since)
        assert all(e.created_at < middle for e in until)
        assert since == _in_time_order(since)

    def test_a_time_range_lists_the_ledger_in_time_order_and_pages_by_time_and_id(
        self, catalogue: Catalogue, inventory: Inventory, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        shop = _shop(catalogue, tenant)
        a, b, c = _items(catalogue, tenant, 3)
        for n in range(3):
            # Entries of one batch may share their time (ties go by id); a level stepped twice
            # in a batch may be stamped later than the batch's other entries.
            inventory.adjust(
                tenant,
                shop,
                [
                    Adjustment(a, 1, Reason.received),
                    Adjustment(b, n + 1, Reason.received),
                    Adjustment(a, 1, Reason.received),
                    Adjustment(c, 1, Reason.received),
                ],
                actor="test",
            )
        everything = _ledger(inventory, tenant, shop)
        first = min(e.created_at for e in everything)
        middle = sorted(e.created_at for e in everything)[len(everything) // 2]
        last = max(e.created_at for e in everything)
        for since in (None, first - timedelta(days=1), first, middle, last):
            for until in (None, middle, last):
                if since is not None and until is not None and since >= until:
                    continue
                for item in (None, a, b):
                    matching = [
                        e
                        for e in everything
                        if (since is None or e.created_at >= since)
                        and (until is None or e.created_at < until)
                        and (item is None or e.item_id == item)
                    ]
                    # With a time filter, in time order; without, in id order.
                    timed = since is not None or until is not None
                    expected = _in_time_order(matching) if timed else matching
                    for limit in (1, 2, 5, 100):
                        walked = _ledger(
                            inventory, tenant, shop, limit, since=since, until=until, item_id=item
                        )
                        assert walked == expected, (since, until, item, limit)
        # After the last entry's key nothing follows; before the first, everything does.
        newest = _in_time_order(everything)[-1]
        key = TimeKey(newest.created_at, newest.id)
        assert (
            inventory.list_changes(tenant, shop, ChangeFilter(since=first), after=key, limit=9)
            == []
        )
        everything_by_time = inventory.list_changes(
            tenant, shop, ChangeFilter(since=first), after=TimeKey(first, 0), limit=100
        )
        assert everything_by_time == _in_time_order(everything)

    def test_a_key_of_the_other_order_is_a_type_error(
        self, catalogue: Catalogue, inventory: Inventory, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        shop = _shop(catalogue, tenant)
        (a,) = _items(catalogue, tenant, 1)
        entry = inventory.list_changes(tenant, shop, ChangeFilter(), after=None, limit=1)
        assert entry == []
        inventory.set_quantity(tenant, shop, a, 1, actor="test")
        (entry,) = inventory.list_changes(tenant, shop, ChangeFilter(), after=None, limit=1)
        since = ChangeFilter(since=entry.created_at)
        with pytest.raises(TypeError):
            inventory.list_changes(tenant, shop, since, after=entry.id, limit=1)
        with pytest.raises(TypeError):
            inventory.list_changes(
                tenant, shop, ChangeFilter(), after=TimeKey(entry.created_at, 0), limit=1
            )

    def test_another_tenant_sees_no_ledger(
        self, catalogue: Catalogue, inventory: Inventory, new_tenant: NewTenant
    ) -> None:
        mine, theirs = new_tenant(), new_tenant()
        shop = _shop(catalogue, theirs)
        (a,) = _items(catalogue, theirs, 1)
        inventory.set_quantity(theirs, shop, a, 3, actor="test")
        assert inventory.list_changes(mine, shop, ChangeFilter(), after=None, limit=10) == []
        as_of = datetime.now(UTC) + timedelta(days=1)
        assert (
            inventory.list_levels_as_of(mine, shop, as_of, item_ids=None, after=None, limit=10)
            == []
        )

    def test_levels_as_of_a_moment_are_the_last_ledger_entries_by_then(
        self, catalogue: Catalogue, inventory: Inventory, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        shop = _shop(catalogue, tenant)
        a, b, c = _items(catalogue, tenant, 3)
        inventory.set_quantity(tenant, shop, a, 10, actor="test")
        inventory.set_quantity(tenant, shop, b, 4, actor="test")
        moment = _ledger(inventory, tenant, shop)[-1].created_at
        inventory.adjust(tenant, shop, [Adjustment(a, -3, Reason.sold)], actor="test")
        inventory.set_quantity(tenant, shop, c, 8, actor="test")

        def as_of(when: datetime, items: Sequence[int] | None = None) -> dict[int, int]:
            levels = inventory.list_levels_as_of(
                tenant, shop, when, item_ids=items, after=None, limit=100
            )
            assert [lv.item_id for lv in levels] == sorted(lv.item_id for lv in levels)
            return {lv.item_id: lv.quantity for lv in levels}

        later = _ledger(inventory, tenant, shop)[-1].created_at
        assert as_of(moment) == {a: 10, b: 4}
        assert as_of(later) == {a: 7, b: 4, c: 8} == _quantities(inventory, tenant, shop)
        assert as_of(moment, [b, c]) == {b: 4}
        first = _ledger(inventory, tenant, shop)[0].created_at
        assert as_of(first - timedelta(seconds=1)) == {}
        page = inventory.list_levels_as_of(tenant, shop, later, item_ids=None, after=a, limit=1)
        assert [lv.item_id for lv in page] == [b]

    # -- concurrency -----------------------------------------------------------------
    def test_concurrent_adjustments_of_one_hot_level_lose_nothing_and_never_go_negative(
        self, catalogue: Catalogue, inventory: Inventory, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        shop = _shop(catalogue, tenant)
        (hot,) = _items(catalogue, tenant, 1)
        initial = 20
        inventory.set_quantity(tenant, shop, hot, initial, actor="test")
        accepted: list[int] = []
        seen: list[int] = []
        lock = threading.Lock()
        start = threading.Barrier(THREADS)

        def worker(seed: int) -> None:
            rng = random.Random(seed)
            start.wait()
            for _ in range(ADJUSTMENTS_PER_THREAD):
                delta = rng.choice([-3, -2, -1, 1, 2])
                try:
                    (level,) = inventory.adjust(
                        tenant, shop, [Adjustment(hot, delta, Reason.correction)], actor=f"w{seed}"
                    )
                except (InsufficientStock, StorageUnavailable):
                    continue  # refused or given up after rollback: applied nothing
                with lock:
                    accepted.append(delta)
                    seen.append(level.quantity)

        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(worker, range(THREADS)))
        final = _quantities(inventory, tenant, shop)[hot]
        assert final == initial + sum(accepted)
        assert min(seen, default=0) >= 0
        ledger = _ledger(inventory, tenant, shop, item_id=hot)
        assert sum(e.delta for e in ledger) == final
        assert len(ledger) == 1 + len(accepted)
        assert all(e.quantity_after >= 0 for e in ledger)
        assert len(accepted) > THREADS  # the run really exercised concurrent writes
