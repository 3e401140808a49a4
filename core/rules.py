"""The business rules every storage backend applies, written once as pure functions.

A backend keeps only its atomic statements (a conditional UPDATE, a dict write under a lock)
and calls these to decide and to explain: what a batch of adjustments leaves, which items it
would take below zero, whether a version or an expected quantity still holds, whether a row
may be deleted, and why a conditional write matched nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from commerce.core.errors import (
    ChainHasStores,
    CommerceError,
    ConcurrentChange,
    InsufficientStock,
    ItemHasStock,
    LevelTooHigh,
    NotFound,
    QuantityMismatch,
    Shortage,
    StoreHasStock,
    VersionMismatch,
)
from commerce.core.models import Adjustment
from commerce.core.validation import MAX_QUANTITY

TICK = timedelta(microseconds=1)
"""The smallest step of a stored time; ``updated_at`` moves forward by at least this."""

GUARD_SAMPLE = 100
"""How many dependent ids a refused delete names."""


def later(now: datetime, previous: datetime) -> datetime:
    """``now``, but strictly after ``previous``: ``updated_at`` doubles as the row's version
    and as the time of its ledger entry, so it must never repeat or go back, whatever the
    clocks of the replicas do."""
    return max(now, previous + TICK)


# -- adjustments --------------------------------------------------------------------------


def shortages(adjustments: Sequence[Adjustment], before: Mapping[int, int]) -> list[Shortage]:
    """Every item that some step of the batch would take below zero, in item order.

    ``before`` holds each level's quantity before the batch (a missing level holds 0). Each
    shortage names the quantity before the batch and the batch's total delta for the item.
    A step that is refused is not applied, so it does not hide a later step's shortage.
    """
    running = dict(before)
    totals: dict[int, int] = {}
    short: set[int] = set()
    for adjustment in adjustments:
        item_id = adjustment.item_id
        totals[item_id] = totals.get(item_id, 0) + adjustment.delta
        if item_id in short:
            continue
        if running.get(item_id, 0) + adjustment.delta < 0:
            short.add(item_id)
        else:
            running[item_id] = running.get(item_id, 0) + adjustment.delta
    return [Shortage(item_id=i, quantity=before.get(i, 0), delta=totals[i]) for i in sorted(short)]


def plan_adjustments(adjustments: Sequence[Adjustment], before: Mapping[int, int]) -> list[int]:
    """All or none: each step's quantity after it, or ``InsufficientStock`` naming every
    item short. No level may go below zero at any step of the batch, not only at its end,
    nor above ``MAX_QUANTITY`` (``LevelTooHigh``): quantities stay exact in JavaScript and
    fit every database's integer."""
    running = dict(before)
    after: list[int] = []
    for adjustment in adjustments:
        quantity = running.get(adjustment.item_id, 0) + adjustment.delta
        if quantity < 0:
            raise InsufficientStock(shortages(adjustments, before))
        if quantity > MAX_QUANTITY:
            raise LevelTooHigh(adjustment.item_id, MAX_QUANTITY)
        running[adjustment.item_id] = quantity
        after.append(quantity)
    return after


def before_batch(
    adjustments: Sequence[Adjustment], now: Mapping[int, int], applied: int
) -> dict[int, int]:
    """The quantities before the batch, from ``now`` (read after the first ``applied`` steps
    ran) minus what those steps added: how a backend that writes first and explains after
    recovers what ``shortages`` needs."""
    before = dict(now)
    for adjustment in adjustments[:applied]:
        before[adjustment.item_id] = before.get(adjustment.item_id, 0) - adjustment.delta
    return before


# -- versions -----------------------------------------------------------------------------


def check_version(kind: str, key: int, updated_at: datetime, expected: datetime | None) -> None:
    """``VersionMismatch`` when the caller named a version (``If-Match``) the row no longer has."""
    if expected is not None and updated_at != expected:
        raise VersionMismatch(kind, key)


def check_expected_quantity(
    store_id: int, item_id: int, current: int, expected: int | None
) -> None:
    """A counted set's compare-and-set: ``QuantityMismatch`` unless the level holds ``expected``."""
    if expected is not None and current != expected:
        raise QuantityMismatch(store_id, item_id, current, expected)


def refusal(
    kind: str,
    key: int,
    found: datetime | None,
    expected: datetime | None,
    guard: CommerceError | None = None,
) -> CommerceError:
    """Why a conditional update or delete of one row matched nothing.

    ``found`` is the row's ``updated_at`` read afterwards (``None``: no such row of the
    tenant); ``guard`` is what the delete guard says, if the write had one.
    """
    if found is None:
        return NotFound(kind, key)
    if expected is not None and found != expected:
        return VersionMismatch(kind, key)
    if guard is not None:
        return guard
    return ConcurrentChange(kind, key)


# -- delete guards ------------------------------------------------------------------------


def chain_delete_guard(chain_id: int, store_count: int) -> ChainHasStores | None:
    """A chain may go only once it has no stores."""
    return ChainHasStores(chain_id) if store_count > 0 else None


def store_delete_guard(
    store_id: int, stocked: int, item_ids: Sequence[int]
) -> StoreHasStock | None:
    """A store may go only once every level of it is zero; ``item_ids``: the first stocked."""
    return StoreHasStock(store_id, stocked, list(item_ids[:GUARD_SAMPLE])) if stocked else None


def item_delete_guard(item_id: int, stocked: int, store_ids: Sequence[int]) -> ItemHasStock | None:
    """An item may go only once every level of it is zero; ``store_ids``: the first stocked."""
    return ItemHasStock(item_id, stocked, list(store_ids[:GUARD_SAMPLE])) if stocked else None
