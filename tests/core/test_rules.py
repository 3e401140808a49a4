"""The business rules of ``commerce.core.rules``, as pure functions, without any storage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commerce.core import rules
from commerce.core.errors import (
    ChainHasStores,
    ConcurrentChange,
    InsufficientStock,
    ItemHasStock,
    NotFound,
    QuantityMismatch,
    StoreHasStock,
    VersionMismatch,
)
from commerce.core.models import Adjustment, Reason

NOON = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


def _batch(*steps: tuple[int, int]) -> list[Adjustment]:
    return [Adjustment(item_id, delta, Reason.correction) for item_id, delta in steps]


# -- later --------------------------------------------------------------------------------


def test_later_is_now_when_now_is_after_the_previous_time() -> None:
    assert rules.later(NOON, NOON - timedelta(seconds=1)) == NOON


@pytest.mark.parametrize("behind", [timedelta(0), timedelta(seconds=5)])
def test_later_moves_one_tick_past_the_previous_time_when_the_clock_has_not(
    behind: timedelta,
) -> None:
    previous = NOON + behind
    assert rules.later(NOON, previous) == previous + timedelta(microseconds=1)


# -- shortages and the all-or-none plan ---------------------------------------------------


def test_a_batch_that_stays_at_or_above_zero_has_no_shortage() -> None:
    batch = _batch((1, -5), (2, 3), (1, 2))
    assert rules.shortages(batch, {1: 5}) == []
    assert rules.plan_adjustments(batch, {1: 5}) == [0, 3, 2]


def test_a_missing_level_holds_zero() -> None:
    assert rules.plan_adjustments(_batch((7, 4)), {}) == [4]
    assert rules.shortages(_batch((7, -1)), {}) == [{"item_id": 7, "quantity": 0, "delta": -1}]


def test_every_short_item_is_named_in_item_order_with_its_quantity_and_total_delta() -> None:
    batch = _batch((3, -1), (1, -2), (2, -1), (3, 4), (1, -1))
    assert rules.shortages(batch, {1: 1, 2: 1, 3: 0}) == [
        {"item_id": 1, "quantity": 1, "delta": -3},
        {"item_id": 3, "quantity": 0, "delta": 3},
    ]


def test_a_step_that_dips_below_zero_is_short_even_if_the_batch_ends_above() -> None:
    batch = _batch((1, -3), (1, 5))
    assert rules.shortages(batch, {1: 1}) == [{"item_id": 1, "quantity": 1, "delta": 2}]
    with pytest.raises(InsufficientStock):
        rules.plan_adjustments(batch, {1: 1})
    assert rules.plan_adjustments(_batch((1, 5), (1, -3)), {1: 1}) == [6, 3]


def test_the_shortages_go_on_past_the_first_short_step() -> None:
    # The plan stops at the first step below zero; the shortages look at every step, so
    # item 2 is named too, and item 1 once, with the batch's total delta for it.
    batch = _batch((1, -5), (2, -2), (1, 1))
    assert rules.shortages(batch, {1: 1, 2: 1}) == [
        {"item_id": 1, "quantity": 1, "delta": -4},
        {"item_id": 2, "quantity": 1, "delta": -2},
    ]


def test_a_refused_plan_names_every_short_item_in_its_error() -> None:
    batch = _batch((1, -1), (2, -2), (3, -1))
    before = {1: 5, 2: 1}
    with pytest.raises(InsufficientStock) as caught:
        rules.plan_adjustments(batch, before)
    assert caught.value.shortages == rules.shortages(batch, before)
    assert caught.value.extra == {"items": caught.value.shortages}
    assert caught.value.detail == "not enough stock of item 2, 3; nothing was changed"


@given(
    before=st.dictionaries(st.integers(1, 4), st.integers(0, 6), max_size=4),
    steps=st.lists(st.tuples(st.integers(1, 4), st.integers(-6, 6).filter(bool)), max_size=8),
)
def test_a_plan_either_keeps_every_step_at_or_above_zero_or_is_refused_whole(
    before: dict[int, int], steps: list[tuple[int, int]]
) -> None:
    batch = _batch(*steps)
    running = dict(before)
    expected: list[int] | None = []
    for item_id, delta in steps:
        running[item_id] = running.get(item_id, 0) + delta
        if running[item_id] < 0:
            expected = None
            break
        assert expected is not None
        expected.append(running[item_id])
    if expected is None:
        with pytest.raises(InsufficientStock) as caught:
            rules.plan_adjustments(batch, before)
        assert caught.value.shortages
        assert caught.value.shortages == rules.shortages(batch, before)
    else:
        assert rules.plan_adjustments(batch, before) == expected
        assert rules.shortages(batch, before) == []


def test_the_quantities_before_a_batch_are_recovered_from_those_after_its_first_steps() -> None:
    batch = _batch((1, 4), (2, -1), (1, -2))
    # After the first two steps ran, item 1 holds 4 more and item 2 one less than before.
    assert rules.before_batch(batch, {1: 9, 2: 0}, applied=2) == {1: 5, 2: 1}
    assert rules.before_batch(batch, {1: 9}, applied=0) == {1: 9}


# -- versions -----------------------------------------------------------------------------


def test_no_version_named_or_the_same_version_passes() -> None:
    rules.check_version("chain", 4, NOON, None)
    rules.check_version("chain", 4, NOON, NOON)


def test_another_version_is_a_version_mismatch_naming_the_row() -> None:
    with pytest.raises(VersionMismatch) as caught:
        rules.check_version("chain", 4, NOON, NOON - rules.TICK)
    assert caught.value.detail == "chain 4 has changed since the version you named"


def test_an_expected_quantity_that_is_not_held_is_refused_with_the_current_one() -> None:
    rules.check_expected_quantity(2, 3, 5, None)
    rules.check_expected_quantity(2, 3, 5, 5)
    with pytest.raises(QuantityMismatch) as caught:
        rules.check_expected_quantity(2, 3, 5, 4)
    assert caught.value.extra == {"current_quantity": 5}
    assert caught.value.detail == "item 3 at store 2 holds 5, not 4"


# -- why a conditional write matched nothing ----------------------------------------------


def test_a_write_that_found_no_row_is_not_found() -> None:
    refused = rules.refusal("store", 9, None, NOON, ChainHasStores(1))
    assert isinstance(refused, NotFound)
    assert refused.detail == "store 9 does not exist"


def test_a_write_that_found_another_version_is_a_version_mismatch() -> None:
    refused = rules.refusal("store", 9, NOON, NOON - rules.TICK, ChainHasStores(1))
    assert isinstance(refused, VersionMismatch)


def test_a_write_that_found_its_version_is_refused_by_the_guard() -> None:
    guard = StoreHasStock(9, 1, [4])
    assert rules.refusal("store", 9, NOON, NOON, guard) is guard
    assert rules.refusal("store", 9, NOON, None, guard) is guard


def test_a_write_with_nothing_to_blame_lost_a_race() -> None:
    refused = rules.refusal("item", 9, NOON, None)
    assert isinstance(refused, ConcurrentChange)
    assert refused.detail == "item 9 changed meanwhile; try again"


# -- delete guards ------------------------------------------------------------------------


def test_a_chain_may_go_only_without_stores() -> None:
    assert rules.chain_delete_guard(5, 0) is None
    refused = rules.chain_delete_guard(5, 2)
    assert isinstance(refused, ChainHasStores)
    assert refused.detail == "chain 5 still has stores; delete or move them first"


def test_a_store_may_go_only_without_stock_and_the_refusal_names_the_first_items() -> None:
    assert rules.store_delete_guard(5, 0, []) is None
    refused = rules.store_delete_guard(5, 150, list(range(1, 151)))
    assert isinstance(refused, StoreHasStock)
    assert refused.detail == "store 5 still holds stock of 150 item(s)"
    assert refused.extra == {"item_ids": list(range(1, rules.GUARD_SAMPLE + 1))}


def test_an_item_may_go_only_without_stock_and_the_refusal_names_the_first_stores() -> None:
    assert rules.item_delete_guard(5, 0, []) is None
    refused = rules.item_delete_guard(5, 2, [8, 9])
    assert isinstance(refused, ItemHasStock)
    assert refused.detail == "item 5 is still in stock at 2 store(s)"
    assert refused.extra == {"store_ids": [8, 9]}
