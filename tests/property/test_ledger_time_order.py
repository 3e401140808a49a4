"""``changes?since=&until=`` on every backend: the ledger in ``(created_at, id)`` order, each
matching entry exactly once across pages, whatever the clock that stamped the entries did."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commerce.adapters.storage.memory import memory_storage
from commerce.adapters.storage.sql import SqlStorage, sql_storage
from commerce.core import usecases
from commerce.core.models import (
    Adjustment,
    ChangeFilter,
    LedgerEntry,
    NewChain,
    NewItem,
    NewStore,
    Reason,
)
from commerce.core.pagination import PageRequest
from commerce.core.ports import Storage
from tests.contract.base import unique_tenant

pytestmark = pytest.mark.property

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class SteppedClock:
    """A clock the test sets: it may stand still, or step back, between writes."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def _clocked(storage: Storage, clock: SteppedClock) -> Storage:
    """A storage of the same backend whose writes ``clock`` stamps (on SQL, the same database)."""
    if isinstance(storage, SqlStorage):
        return sql_storage(storage.engine, owns_engine=False, clock=clock)
    return memory_storage(clock=clock)


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


@pytest.fixture
def clocked(storage: Storage, clock: SteppedClock) -> Iterator[Storage]:
    opened = _clocked(storage, clock)
    yield opened
    opened.close()


def _shop_with_items(storage: Storage, count: int) -> tuple[str, int, list[int]]:
    catalogue = storage.catalogue
    tenant = unique_tenant(catalogue)
    chain = catalogue.create_chain(tenant, NewChain(name="Chain"))
    shop = catalogue.create_store(tenant, NewStore(chain_id=chain.id, name="Shop")).id
    items = [
        catalogue.create_item(tenant, NewItem(sku=f"S{n}", name="I", cost=Decimal("1.00"))).id
        for n in range(count)
    ]
    return tenant, shop, items


def _walk(storage: Storage, tenant: str, shop: int, where: ChangeFilter, limit: int) -> list:  # type: ignore[type-arg]
    """Follow the cursors to the end as a client would, through their text."""
    rows: list[LedgerEntry] = []
    cursor: str | None = None
    for _ in range(1000):
        request = PageRequest.parse(usecases.CHANGES, str(limit), cursor, timed=where.by_time)
        page = usecases.list_changes(
            storage.catalogue, storage.inventory, tenant, shop, where, request
        )
        assert len(page.rows) <= limit
        rows.extend(page.rows)
        if page.next_cursor is None:
            return rows
        assert page.rows, "a page that announces a next page is never empty"
        cursor = page.next_cursor
    raise AssertionError("pagination never ended")


def _by_time(entries: Iterable[LedgerEntry]) -> list[LedgerEntry]:
    return sorted(entries, key=lambda e: (e.created_at, e.id))


def test_a_time_filter_puts_an_entry_stamped_earlier_first_even_with_a_later_id(
    clocked: Storage, clock: SteppedClock
) -> None:
    tenant, shop, (a, b) = _shop_with_items(clocked, 2)
    clock.now = START + timedelta(seconds=10)
    clocked.inventory.adjust(tenant, shop, [Adjustment(a, 1, Reason.received)], actor="t")
    clock.now = START  # the clock stepped back: b's entry has the later id, the earlier time
    clocked.inventory.adjust(tenant, shop, [Adjustment(b, 1, Reason.received)], actor="t")
    by_id = _walk(clocked, tenant, shop, ChangeFilter(), limit=1)
    assert [e.item_id for e in by_id] == [a, b]
    since = ChangeFilter(since=START - timedelta(days=1))
    assert [e.item_id for e in _walk(clocked, tenant, shop, since, limit=1)] == [b, a]
    assert [e.item_id for e in _walk(clocked, tenant, shop, since, limit=5)] == [b, a]
    until = ChangeFilter(until=START + timedelta(days=1))
    assert [e.item_id for e in _walk(clocked, tenant, shop, until, limit=1)] == [b, a]


@given(data=st.data())
def test_a_time_range_walks_every_matching_entry_once_in_time_order(
    storage: Storage, data: st.DataObject
) -> None:
    clock = SteppedClock()
    clocked = _clocked(storage, clock)
    try:
        tenant, shop, items = _shop_with_items(clocked, 3)
        steps = data.draw(
            st.lists(
                st.tuples(
                    st.integers(min_value=-3, max_value=3),  # ms the clock moves, back or on
                    st.lists(st.sampled_from(items), min_size=1, max_size=4),
                ),
                min_size=1,
                max_size=8,
            ),
            label="steps",
        )
        for shift, batch in steps:
            clock.now += timedelta(milliseconds=shift)
            adjustments = [Adjustment(item, 1, Reason.received) for item in batch]
            clocked.inventory.adjust(tenant, shop, adjustments, actor="t")
        everything = list(
            clocked.inventory.list_changes(tenant, shop, ChangeFilter(), after=None, limit=1000)
        )
        times = sorted({e.created_at for e in everything})
        moments = [times[0] - timedelta(days=1), *times, times[-1] + timedelta(days=1)]
        since = data.draw(st.none() | st.sampled_from(moments[:-1]), label="since")
        later = [t for t in moments if since is None or t > since]
        until = data.draw(st.none() | st.sampled_from(later), label="until")
        item = data.draw(st.none() | st.sampled_from(items), label="item_id")
        limit = data.draw(st.integers(min_value=1, max_value=5), label="limit")
        where = ChangeFilter(item_id=item, since=since, until=until)
        matching = [
            e
            for e in everything
            if (since is None or e.created_at >= since)
            and (until is None or e.created_at < until)
            and (item is None or e.item_id == item)
        ]
        # A time filter lists in time order; none, in id order.
        expected = _by_time(matching) if where.by_time else matching
        assert _walk(clocked, tenant, shop, where, limit) == expected
    finally:
        clocked.close()
