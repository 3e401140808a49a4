"""The storage contract for writes: updates, deletes, sets, adjustments, the ledger, idempotency."""

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
    IdempotencyMismatch,
    InsufficientStock,
    NotFound,
    PreconditionFailed,
    StorageUnavailable,
)
from commerce.core.models import (
    Adjustment,
    ChainPatch,
    ChangeFilter,
    ItemPatch,
    LedgerEntry,
    NewChain,
    NewItem,
    NewStore,
    Reason,
    StoredResponse,
    StorePatch,
)
from commerce.core.ports import CommerceStore
from tests.conftest import new_tenant

pytestmark = pytest.mark.contract


def _shop(store: CommerceStore, tenant: str) -> int:
    chain = store.create_chain(tenant, NewChain(name="Chain"))
    return store.create_store(tenant, NewStore(chain_id=chain.id, name="Shop")).id


def _items(store: CommerceStore, tenant: str, count: int) -> list[int]:
    return [
        store.create_item(tenant, NewItem(sku=f"W{n}", name=f"W{n}", cost=Decimal("1.00"))).id
        for n in range(count)
    ]


def _ledger(store: CommerceStore, tenant: str, shop: int, **where: object) -> list[LedgerEntry]:
    entries: list[LedgerEntry] = []
    after = None
    while True:
        page = store.list_changes(tenant, shop, ChangeFilter(**where), after=after, limit=50)  # type: ignore[arg-type]
        entries.extend(page)
        if len(page) < 50:
            return entries
        after = page[-1].id


def _quantities(store: CommerceStore, tenant: str, shop: int) -> dict[int, int]:
    levels = store.list_levels(tenant, shop, item_ids=None, after=None, limit=1000)
    return {lv.item_id: lv.quantity for lv in levels}


# -- updates and deletes ---------------------------------------------------------------


def test_updating_a_chain_changes_only_the_given_fields_and_moves_updated_at(
    store: CommerceStore,
) -> None:
    tenant = new_tenant(store)
    chain = store.create_chain(tenant, NewChain(name="Old", phone="+1 555"))
    updated = store.update_chain(tenant, chain.id, ChainPatch(name="New"))
    assert (updated.name, updated.phone, updated.created_at) == ("New", "+1 555", chain.created_at)
    assert updated.updated_at > chain.updated_at
    assert store.get_chain(tenant, chain.id) == updated
    again = store.update_chain(tenant, chain.id, ChainPatch(phone="+1 556"))
    assert again.updated_at > updated.updated_at


def test_an_update_naming_a_stale_version_is_refused_and_changes_nothing(
    store: CommerceStore,
) -> None:
    tenant = new_tenant(store)
    chain = store.create_chain(tenant, NewChain(name="Old"))
    current = store.update_chain(tenant, chain.id, ChainPatch(name="Current"))
    with pytest.raises(PreconditionFailed):
        store.update_chain(
            tenant, chain.id, ChainPatch(name="Lost"), expected_updated_at=chain.updated_at
        )
    assert store.get_chain(tenant, chain.id) == current
    fresh = store.update_chain(
        tenant, chain.id, ChainPatch(name="Won"), expected_updated_at=current.updated_at
    )
    assert fresh.name == "Won"


def test_writes_to_another_tenants_rows_are_not_found(store: CommerceStore) -> None:
    mine, theirs = new_tenant(store), new_tenant(store)
    chain = store.create_chain(theirs, NewChain(name="Theirs"))
    shop = store.create_store(theirs, NewStore(chain_id=chain.id, name="Shop"))
    item = store.create_item(theirs, NewItem(sku="T", name="T", cost=Decimal("1.00")))
    with pytest.raises(NotFound):
        store.update_chain(mine, chain.id, ChainPatch(name="Mine now"))
    with pytest.raises(NotFound):
        store.update_store(mine, shop.id, StorePatch(name="Mine now"))
    with pytest.raises(NotFound):
        store.update_item(mine, item.id, ItemPatch(name="Mine now"))
    with pytest.raises(NotFound):
        store.delete_item(mine, item.id)
    with pytest.raises(NotFound):
        store.delete_store(mine, shop.id)
    with pytest.raises(NotFound):
        store.delete_chain(mine, chain.id)
    assert store.get_chain(theirs, chain.id) == chain
    assert store.get_store(theirs, shop.id) == shop
    assert store.get_item(theirs, item.id) == item


def test_a_chain_with_stores_cannot_be_deleted_until_they_are_gone(store: CommerceStore) -> None:
    tenant = new_tenant(store)
    chain = store.create_chain(tenant, NewChain(name="Chain"))
    shop = store.create_store(tenant, NewStore(chain_id=chain.id, name="Shop"))
    with pytest.raises(Conflict):
        store.delete_chain(tenant, chain.id)
    assert store.get_chain(tenant, chain.id) == chain
    store.delete_store(tenant, shop.id)
    store.delete_chain(tenant, chain.id)
    assert store.get_chain(tenant, chain.id) is None
    assert store.list_chains(tenant, after=None, limit=10) == []


def test_updating_a_store_keeps_its_chain_and_other_fields(store: CommerceStore) -> None:
    tenant = new_tenant(store)
    chain = store.create_chain(tenant, NewChain(name="Chain"))
    shop = store.create_store(tenant, NewStore(chain_id=chain.id, name="Shop", city="Lyon"))
    updated = store.update_store(tenant, shop.id, StorePatch(active=False, country="FR"))
    assert (updated.active, updated.country, updated.city, updated.chain_id) == (
        False,
        "FR",
        "Lyon",
        chain.id,
    )
    assert store.list_stores(tenant, chain.id, after=None, limit=10) == [updated]


def test_a_store_holding_stock_cannot_be_deleted_but_one_at_zero_can(
    store: CommerceStore,
) -> None:
    tenant = new_tenant(store)
    shop = _shop(store, tenant)
    (item,) = _items(store, tenant, 1)
    store.set_quantity(tenant, shop, item, 2, actor="test")
    with pytest.raises(Conflict):
        store.delete_store(tenant, shop)
    store.set_quantity(tenant, shop, item, 0, actor="test")
    store.delete_store(tenant, shop)
    assert store.get_store(tenant, shop) is None
    assert store.list_item_levels(tenant, item, after=None, limit=10) == []


def test_an_item_in_stock_cannot_be_deleted_but_one_at_zero_can(store: CommerceStore) -> None:
    tenant = new_tenant(store)
    shop = _shop(store, tenant)
    (item,) = _items(store, tenant, 1)
    store.set_quantity(tenant, shop, item, 1, actor="test")
    with pytest.raises(Conflict):
        store.delete_item(tenant, item)
    store.adjust(tenant, shop, [Adjustment(item, -1, Reason.sold)], actor="test")
    store.delete_item(tenant, item)
    assert store.get_item(tenant, item) is None
    assert store.list_levels(tenant, shop, item_ids=None, after=None, limit=10) == []


def test_an_items_sku_may_change_but_not_to_another_items(store: CommerceStore) -> None:
    tenant = new_tenant(store)
    first, second = _items(store, tenant, 2)
    with pytest.raises(Conflict):
        store.update_item(tenant, second, ItemPatch(sku="W0"))
    renamed = store.update_item(tenant, first, ItemPatch(sku="NEW", cost=Decimal("3.10")))
    assert (renamed.sku, str(renamed.cost)) == ("NEW", "3.10")
    # The old sku is free again.
    store.update_item(tenant, second, ItemPatch(sku="W0"))
    assert sorted(i.sku for i in store.list_items(tenant, after=None, limit=10)) == ["NEW", "W0"]


def test_a_deleted_rows_version_check_is_not_found(store: CommerceStore) -> None:
    tenant = new_tenant(store)
    chain = store.create_chain(tenant, NewChain(name="Chain"))
    store.delete_chain(tenant, chain.id, expected_updated_at=chain.updated_at)
    with pytest.raises(NotFound):
        store.update_chain(
            tenant, chain.id, ChainPatch(name="x"), expected_updated_at=chain.updated_at
        )


# -- set --------------------------------------------------------------------------------


def test_a_set_records_the_difference_it_made_as_a_count(store: CommerceStore) -> None:
    tenant = new_tenant(store)
    shop = _shop(store, tenant)
    (item,) = _items(store, tenant, 1)
    store.set_quantity(tenant, shop, item, 10, actor="alice", reference="count-1")
    store.set_quantity(tenant, shop, item, 7, actor="bob")
    store.set_quantity(tenant, shop, item, 7, actor="bob")
    ledger = _ledger(store, tenant, shop)
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
    store: CommerceStore,
) -> None:
    tenant = new_tenant(store)
    shop = _shop(store, tenant)
    (item,) = _items(store, tenant, 1)
    store.set_quantity(tenant, shop, item, 5, actor="test", expected_quantity=0)
    with pytest.raises(Conflict) as caught:
        store.set_quantity(tenant, shop, item, 9, actor="test", expected_quantity=4)
    assert caught.value.extra["current_quantity"] == 5
    assert _quantities(store, tenant, shop) == {item: 5}
    assert len(_ledger(store, tenant, shop)) == 1
    level = store.set_quantity(tenant, shop, item, 9, actor="test", expected_quantity=5)
    assert level.quantity == 9


# -- adjust -----------------------------------------------------------------------------


def test_an_adjustment_batch_applies_every_delta_and_logs_each(store: CommerceStore) -> None:
    tenant = new_tenant(store)
    shop = _shop(store, tenant)
    a, b = _items(store, tenant, 2)
    store.set_quantity(tenant, shop, a, 5, actor="test")
    levels = store.adjust(
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
    assert _quantities(store, tenant, shop) == {a: 3, b: 11}
    ledger = _ledger(store, tenant, shop)[1:]
    assert [(e.item_id, e.delta, e.quantity_after, e.reason, e.reference) for e in ledger] == [
        (b, 12, 12, Reason.received, "PO-1"),
        (a, -2, 3, Reason.sold, None),
        (b, -1, 11, Reason.damaged, None),
    ]
    assert {e.actor for e in ledger} == {"till-3"}


def test_a_batch_that_would_go_below_zero_names_every_short_item_and_changes_nothing(
    store: CommerceStore,
) -> None:
    tenant = new_tenant(store)
    shop = _shop(store, tenant)
    a, b, c = _items(store, tenant, 3)
    store.set_quantity(tenant, shop, a, 5, actor="test")
    store.set_quantity(tenant, shop, b, 1, actor="test")
    before_levels, before_ledger = _quantities(store, tenant, shop), _ledger(store, tenant, shop)
    with pytest.raises(InsufficientStock) as caught:
        store.adjust(
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
    assert _quantities(store, tenant, shop) == before_levels
    assert _ledger(store, tenant, shop) == before_ledger


def test_no_step_of_a_batch_may_dip_below_zero_even_if_it_ends_above(
    store: CommerceStore,
) -> None:
    tenant = new_tenant(store)
    shop = _shop(store, tenant)
    (a,) = _items(store, tenant, 1)
    store.set_quantity(tenant, shop, a, 1, actor="test")
    with pytest.raises(InsufficientStock):
        store.adjust(
            tenant,
            shop,
            [Adjustment(a, -3, Reason.sold), Adjustment(a, 5, Reason.received)],
            actor="test",
        )
    levels = store.adjust(
        tenant,
        shop,
        [Adjustment(a, 5, Reason.received), Adjustment(a, -3, Reason.sold)],
        actor="test",
    )
    assert [lv.quantity for lv in levels] == [3]


def test_adjusting_an_unknown_or_foreign_item_is_not_found_and_changes_nothing(
    store: CommerceStore,
) -> None:
    mine, theirs = new_tenant(store), new_tenant(store)
    shop = _shop(store, mine)
    (a,) = _items(store, mine, 1)
    (foreign,) = _items(store, theirs, 1)
    for bad in (foreign, 987_654_321):
        with pytest.raises(NotFound):
            store.adjust(
                mine,
                shop,
                [Adjustment(a, 4, Reason.received), Adjustment(bad, 1, Reason.received)],
                actor="test",
            )
    assert _quantities(store, mine, shop) == {}
    assert _ledger(store, mine, shop) == []
    with pytest.raises(NotFound):
        store.adjust(theirs, shop, [Adjustment(foreign, 1, Reason.received)], actor="test")


# -- the ledger -------------------------------------------------------------------------


def test_the_ledger_filters_by_item_and_time_and_pages_by_id(store: CommerceStore) -> None:
    tenant = new_tenant(store)
    shop = _shop(store, tenant)
    a, b = _items(store, tenant, 2)
    for n in range(3):
        store.adjust(
            tenant,
            shop,
            [Adjustment(a, n + 1, Reason.received), Adjustment(b, 1, Reason.received)],
            actor="test",
        )
    everything = _ledger(store, tenant, shop)
    assert len(everything) == 6
    assert [e.item_id for e in _ledger(store, tenant, shop, item_id=a)] == [a, a, a]
    first_page = store.list_changes(tenant, shop, ChangeFilter(), after=None, limit=4)
    rest = store.list_changes(tenant, shop, ChangeFilter(), after=first_page[-1].id, limit=4)
    assert list(first_page) + list(rest) == everything
    middle = everything[2].created_at
    since = _ledger(store, tenant, shop, since=middle)
    until = _ledger(store, tenant, shop, until=middle)
    assert sorted(since + until, key=lambda e: e.id) == everything
    assert all(e.created_at >= middle for e in since)
    assert all(e.created_at < middle for e in until)


def test_another_tenant_sees_no_ledger(store: CommerceStore) -> None:
    mine, theirs = new_tenant(store), new_tenant(store)
    shop = _shop(store, theirs)
    (a,) = _items(store, theirs, 1)
    store.set_quantity(theirs, shop, a, 3, actor="test")
    assert store.list_changes(mine, shop, ChangeFilter(), after=None, limit=10) == []
    as_of = datetime.now(UTC) + timedelta(days=1)
    assert store.list_levels_as_of(mine, shop, as_of, item_ids=None, after=None, limit=10) == []


def test_levels_as_of_a_moment_are_the_last_ledger_entries_by_then(store: CommerceStore) -> None:
    tenant = new_tenant(store)
    shop = _shop(store, tenant)
    a, b, c = _items(store, tenant, 3)
    store.set_quantity(tenant, shop, a, 10, actor="test")
    store.set_quantity(tenant, shop, b, 4, actor="test")
    moment = _ledger(store, tenant, shop)[-1].created_at
    store.adjust(tenant, shop, [Adjustment(a, -3, Reason.sold)], actor="test")
    store.set_quantity(tenant, shop, c, 8, actor="test")

    def as_of(when: datetime, items: Sequence[int] | None = None) -> dict[int, int]:
        levels = store.list_levels_as_of(tenant, shop, when, item_ids=items, after=None, limit=100)
        assert [lv.item_id for lv in levels] == sorted(lv.item_id for lv in levels)
        return {lv.item_id: lv.quantity for lv in levels}

    later = _ledger(store, tenant, shop)[-1].created_at
    assert as_of(moment) == {a: 10, b: 4}
    assert as_of(later) == {a: 7, b: 4, c: 8} == _quantities(store, tenant, shop)
    assert as_of(moment, [b, c]) == {b: 4}
    first = _ledger(store, tenant, shop)[0].created_at
    assert as_of(first - timedelta(seconds=1)) == {}
    page = store.list_levels_as_of(tenant, shop, later, item_ids=None, after=a, limit=1)
    assert [lv.item_id for lv in page] == [b]


# -- idempotency keys -------------------------------------------------------------------

_RESPONSE = StoredResponse(
    status=201,
    headers=(("Content-Type", "application/json"), ("Location", "/chain/7")),
    body=b'{"id": 7}',
)
_MINUTE = timedelta(minutes=1)


def test_a_claimed_key_is_held_until_completed_then_replays_its_response(
    store: CommerceStore,
) -> None:
    tenant = new_tenant(store)
    assert store.claim_idempotency_key(tenant, "k-1", "fp", stale_after=_MINUTE) is None
    with pytest.raises(Conflict):
        store.claim_idempotency_key(tenant, "k-1", "fp", stale_after=_MINUTE)
    store.complete_idempotency_key(tenant, "k-1", _RESPONSE)
    assert store.claim_idempotency_key(tenant, "k-1", "fp", stale_after=_MINUTE) == _RESPONSE
    assert store.claim_idempotency_key(tenant, "k-1", "fp", stale_after=_MINUTE) == _RESPONSE


def test_a_key_reused_for_another_request_is_a_mismatch(store: CommerceStore) -> None:
    tenant = new_tenant(store)
    store.claim_idempotency_key(tenant, "k-2", "fp-a", stale_after=_MINUTE)
    with pytest.raises(IdempotencyMismatch):
        store.claim_idempotency_key(tenant, "k-2", "fp-b", stale_after=_MINUTE)
    store.complete_idempotency_key(tenant, "k-2", _RESPONSE)
    with pytest.raises(IdempotencyMismatch):
        store.claim_idempotency_key(tenant, "k-2", "fp-b", stale_after=_MINUTE)


def test_a_released_or_stale_claim_can_be_taken_again(store: CommerceStore) -> None:
    tenant = new_tenant(store)
    store.claim_idempotency_key(tenant, "k-3", "fp", stale_after=_MINUTE)
    store.release_idempotency_key(tenant, "k-3")
    assert store.claim_idempotency_key(tenant, "k-3", "fp", stale_after=_MINUTE) is None
    assert store.claim_idempotency_key(tenant, "k-3", "fp", stale_after=timedelta(0)) is None


def test_idempotency_keys_belong_to_one_tenant(store: CommerceStore) -> None:
    mine, theirs = new_tenant(store), new_tenant(store)
    store.claim_idempotency_key(theirs, "shared", "fp-theirs", stale_after=_MINUTE)
    store.complete_idempotency_key(theirs, "shared", _RESPONSE)
    assert store.claim_idempotency_key(mine, "shared", "fp-mine", stale_after=_MINUTE) is None


def test_purging_forgets_keys_claimed_before_the_cutoff(store: CommerceStore) -> None:
    tenant = new_tenant(store)
    store.claim_idempotency_key(tenant, "old", "fp", stale_after=_MINUTE)
    store.complete_idempotency_key(tenant, "old", _RESPONSE)
    assert store.purge_idempotency_keys(datetime.now(UTC) - timedelta(hours=1)) == 0
    assert store.purge_idempotency_keys(datetime.now(UTC) + timedelta(hours=1)) >= 1
    assert store.claim_idempotency_key(tenant, "old", "other", stale_after=_MINUTE) is None


# -- concurrency ------------------------------------------------------------------------

THREADS = 8
ADJUSTMENTS_PER_THREAD = 25


def test_concurrent_adjustments_of_one_hot_level_lose_nothing_and_never_go_negative(
    store: CommerceStore,
) -> None:
    tenant = new_tenant(store)
    shop = _shop(store, tenant)
    (hot,) = _items(store, tenant, 1)
    initial = 20
    store.set_quantity(tenant, shop, hot, initial, actor="test")
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
                (level,) = store.adjust(
                    tenant, shop, [Adjustment(hot, delta, Reason.correction)], actor=f"w{seed}"
                )
            except (InsufficientStock, StorageUnavailable):
                continue  # refused or given up after rollback: applied nothing
            with lock:
                accepted.append(delta)
                seen.append(level.quantity)

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(worker, range(THREADS)))
    final = _quantities(store, tenant, shop)[hot]
    assert final == initial + sum(accepted)
    assert min(seen, default=0) >= 0
    ledger = _ledger(store, tenant, shop, item_id=hot)
    assert sum(e.delta for e in ledger) == final
    assert len(ledger) == 1 + len(accepted)
    assert all(e.quantity_after >= 0 for e in ledger)
    assert len(accepted) > THREADS  # the run really exercised concurrent writes
