"""A Hypothesis state machine drives each storage beside a plain-dict model and checks invariants.

Invariants after every step: the levels equal the model's, no quantity is negative, every
level's ledger sums to it, and a neighbouring tenant's data is neither visible nor touched.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from commerce.core import usecases
from commerce.core.errors import Conflict, InsufficientStock
from commerce.core.models import Adjustment, ChangeFilter, NewChain, NewItem, NewStore, Reason
from commerce.core.pagination import PageRequest
from commerce.core.ports import Storage
from tests.contract.base import unique_tenant

pytestmark = pytest.mark.property

REASONS = st.sampled_from(list(Reason))


class StorageMachine(RuleBasedStateMachine):
    """Rules pick rows by position among the live ones, so every step does real work."""

    def __init__(self, storage: Storage) -> None:
        super().__init__()
        self.catalogue = catalogue = storage.catalogue
        self.inventory = inventory = storage.inventory
        self.tenant = unique_tenant(catalogue, "sm")
        self.neighbour = unique_tenant(catalogue, "nb")
        chain = catalogue.create_chain(self.neighbour, NewChain(name="Next door"))
        self.nb_shop = catalogue.create_store(self.neighbour, NewStore(chain.id, "Next door")).id
        self.nb_item = catalogue.create_item(
            self.neighbour, NewItem(sku="NB", name="NB", cost=Decimal("1.00"))
        ).id
        inventory.set_quantity(self.neighbour, self.nb_shop, self.nb_item, 99, actor="nb")
        self.model_chains: dict[int, set[int]] = {}  # chain -> its stores
        self.model_items: set[int] = set()
        self.levels: dict[tuple[int, int], int] = {}
        self.snapshots: list[tuple[int, int, datetime, dict[int, int]]] = []
        self.sku_counter = 0
        first = self.create_chain("First")
        self.create_shop(first)
        for _ in range(3):
            self.create_item(Decimal("2.50"))

    def _pick(self, ids: set[int] | list[int], n: int) -> int | None:
        ordered = sorted(ids)
        return ordered[n % len(ordered)] if ordered else None

    @property
    def _shops(self) -> set[int]:
        return {shop for shops in self.model_chains.values() for shop in shops}

    # -- catalogue ---------------------------------------------------------------------
    def create_chain(self, name: str) -> int:
        chain = usecases.create_chain(self.catalogue, self.tenant, NewChain(name=name))
        assert chain.name == name
        self.model_chains[chain.id] = set()
        return chain.id

    @rule(name=st.from_regex(r"[A-Za-zÀ-ÿ0-9'-][A-Za-zÀ-ÿ0-9' -]{0,11}", fullmatch=True))
    def add_chain(self, name: str) -> None:
        self.create_chain(name)

    def create_shop(self, chain: int) -> None:
        shop = usecases.create_store(
            self.catalogue, self.tenant, NewStore(chain_id=chain, name="S")
        )
        self.model_chains[chain].add(shop.id)

    @rule(n=st.integers(min_value=0, max_value=9))
    def add_shop(self, n: int) -> None:
        chain = self._pick(set(self.model_chains), n)
        if chain is not None:
            self.create_shop(chain)

    @rule(cost=st.decimals(min_value=0, max_value=1000, places=2))
    def create_item(self, cost: Decimal) -> None:
        self.sku_counter += 1
        new = NewItem(sku=f"SKU-{self.sku_counter}", name="I", cost=cost)
        item = usecases.create_item(self.catalogue, self.tenant, new)
        assert item.cost == cost
        self.model_items.add(item.id)

    @rule(n=st.integers(min_value=0, max_value=9))
    def delete_chain(self, n: int) -> None:
        chain = self._pick(set(self.model_chains), n)
        if chain is None:
            return
        if self.model_chains[chain]:
            with pytest.raises(Conflict):
                usecases.delete_chain(self.catalogue, self.tenant, chain)
            return
        usecases.delete_chain(self.catalogue, self.tenant, chain)
        del self.model_chains[chain]

    @rule(n=st.integers(min_value=0, max_value=9))
    def delete_shop(self, n: int) -> None:
        shop = self._pick(self._shops, n)
        if shop is None:
            return
        if any(q > 0 for (s, _), q in self.levels.items() if s == shop):
            with pytest.raises(Conflict):
                usecases.delete_store(self.catalogue, self.tenant, shop)
            return
        usecases.delete_store(self.catalogue, self.tenant, shop)
        for shops in self.model_chains.values():
            shops.discard(shop)
        self.levels = {k: q for k, q in self.levels.items() if k[0] != shop}

    @rule(n=st.integers(min_value=0, max_value=9))
    def delete_item(self, n: int) -> None:
        item = self._pick(self.model_items, n)
        if item is None:
            return
        if any(q > 0 for (_, i), q in self.levels.items() if i == item):
            with pytest.raises(Conflict):
                usecases.delete_item(self.catalogue, self.tenant, item)
            return
        usecases.delete_item(self.catalogue, self.tenant, item)
        self.model_items.discard(item)
        self.levels = {k: q for k, q in self.levels.items() if k[1] != item}

    # -- inventory ---------------------------------------------------------------------
    @rule(
        s=st.integers(min_value=0, max_value=9),
        i=st.integers(min_value=0, max_value=9),
        quantity=st.integers(min_value=0, max_value=50),
    )
    def set_quantity(self, s: int, i: int, quantity: int) -> None:
        shop, item = self._pick(self._shops, s), self._pick(self.model_items, i)
        if shop is None or item is None:
            return
        level = usecases.set_quantity(
            self.inventory, self.tenant, shop, item, quantity, actor="machine"
        )
        assert level.quantity == quantity
        self.levels[(shop, item)] = quantity

    @rule(
        s=st.integers(min_value=0, max_value=9),
        batch=st.lists(
            st.tuples(
                st.integers(min_value=0, max_value=9),
                st.integers(min_value=-20, max_value=20).filter(bool),
                REASONS,
            ),
            min_size=1,
            max_size=4,
        ),
    )
    def adjust(self, s: int, batch: list[tuple[int, int, Reason]]) -> None:
        shop = self._pick(self._shops, s)
        if shop is None or not self.model_items:
            return
        adjustments = [
            Adjustment(self._pick(self.model_items, i) or 0, delta, reason)
            for i, delta, reason in batch
        ]
        running = dict(self.levels)
        short = set()
        for adj in adjustments:
            key = (shop, adj.item_id)
            if adj.item_id in short:
                continue
            if running.get(key, 0) + adj.delta < 0:
                short.add(adj.item_id)
            else:
                running[key] = running.get(key, 0) + adj.delta
        if short:
            with pytest.raises(InsufficientStock) as caught:
                usecases.adjust_inventory(self.inventory, self.tenant, shop, adjustments, actor="m")
            assert {s["item_id"] for s in caught.value.shortages} == short
            return
        usecases.adjust_inventory(self.inventory, self.tenant, shop, adjustments, actor="m")
        self.levels = running

    # -- history -----------------------------------------------------------------------
    @rule(n=st.integers(min_value=0, max_value=9))
    def snapshot(self, n: int) -> None:
        shop = self._pick(self._shops, n)
        if shop is None:
            return
        entries = self._ledger(shop)
        if entries:
            mine = {i: q for (s, i), q in self.levels.items() if s == shop}
            # The latest time, not the last entry's: within one batch a level stepped twice
            # is stamped a microsecond later each time, so ids and times may disagree.
            moment = max(e.created_at for e in entries)
            self.snapshots.append((shop, entries[-1].id, moment, mine))

    @precondition(lambda self: bool(self.snapshots))
    @rule(data=st.data())
    def levels_as_of_a_past_moment_match_the_model_then(self, data: st.DataObject) -> None:
        shop, last_id, moment, expected = data.draw(st.sampled_from(self.snapshots))
        if shop not in self._shops:
            return
        # A later entry stamped at or before that instant (the same microsecond, or a level
        # whose clock was pushed a microsecond ahead) belongs to that moment too.
        if any(e.id > last_id and e.created_at <= moment for e in self._ledger(shop)):
            return
        page = usecases.list_store_inventory(
            self.catalogue, self.inventory, self.tenant, shop, PageRequest(limit=1000), as_of=moment
        )
        got = {lv.item_id: lv.quantity for lv in page.rows}
        # Items deleted since then still had their level at that moment.
        assert {i: q for i, q in got.items() if i in expected} == expected
        assert all(i in expected or q == 0 or i not in self.model_items for i, q in got.items())

    # -- invariants --------------------------------------------------------------------
    def _ledger(self, shop: int) -> list:  # type: ignore[type-arg]
        return list(
            self.inventory.list_changes(self.tenant, shop, ChangeFilter(), after=None, limit=10_000)
        )

    @invariant()
    def levels_equal_the_model_and_are_never_negative(self) -> None:
        for chain, shops in self.model_chains.items():
            listed = self.catalogue.list_stores(self.tenant, chain, after=None, limit=1000)
            assert {s.id for s in listed} == shops
            for shop in shops:
                levels = self.inventory.list_levels(
                    self.tenant, shop, item_ids=None, after=None, limit=1000
                )
                got = {lv.item_id: lv.quantity for lv in levels}
                assert got == {i: q for (s, i), q in self.levels.items() if s == shop}
                assert all(q >= 0 for q in got.values())

    @invariant()
    def every_levels_ledger_sums_to_it(self) -> None:
        for (shop, item), quantity in self.levels.items():
            entries = [e for e in self._ledger(shop) if e.item_id == item]
            assert sum(e.delta for e in entries) == quantity
            assert entries[-1].quantity_after == quantity

    @invariant()
    def the_neighbour_is_neither_seen_nor_touched(self) -> None:
        mine = self.catalogue.list_chains(self.tenant, after=None, limit=1000)
        assert {c.id for c in mine} == set(self.model_chains)
        assert self.catalogue.get_store(self.tenant, self.nb_shop) is None
        theirs = self.inventory.list_levels(
            self.neighbour, self.nb_shop, item_ids=None, after=None, limit=10
        )
        assert [(lv.item_id, lv.quantity) for lv in theirs] == [(self.nb_item, 99)]


def test_the_storage_agrees_with_a_dict_model_through_any_sequence_of_writes(
    storage: Storage,
) -> None:
    run_state_machine_as_test(
        lambda: StorageMachine(storage),  # type: ignore[arg-type]  # a factory works too
        settings=settings(max_examples=30, stateful_step_count=50),
    )
