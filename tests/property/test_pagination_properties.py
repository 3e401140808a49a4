"""Properties of keyset pagination and of the ``?items=`` filter, on every storage backend."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commerce.core import usecases
from commerce.core.errors import InvalidInput
from commerce.core.models import NewChain, NewItem, NewStore
from commerce.core.pagination import (
    MAX_KEY,
    MAX_LIMIT,
    MAX_MICROS,
    Page,
    PageRequest,
    TimeKey,
    decode_cursor,
    decode_time_cursor,
    encode_cursor,
    encode_time_cursor,
)
from commerce.core.ports import Storage
from commerce.entrypoints.http.params import EARLIEST, LATEST, parse_item_ids, parse_timestamp
from tests.contract.base import unique_tenant
from tests.property.hostile import INTEGERS, KINDS, cursors, limits, timestamps

pytestmark = pytest.mark.property

T = TypeVar("T")


def _walk(fetch: Callable[[PageRequest], Page[T]], kind: str, limit: int) -> list[T]:
    """Follow cursors to the end the way a client would, through the raw query values."""
    rows: list[T] = []
    cursor: str | None = None
    for _ in range(10_000):
        page = fetch(PageRequest.parse(kind, str(limit), cursor))
        assert len(page.rows) <= limit
        rows.extend(page.rows)
        if page.next_cursor is None:
            return rows
        assert page.rows, "a page that announces a next page is never empty"
        cursor = page.next_cursor
    raise AssertionError("pagination never ended")


@given(count=st.integers(min_value=0, max_value=25), limit=st.integers(min_value=1, max_value=12))
def test_walking_every_page_of_chains_returns_each_exactly_once_in_order(
    storage: Storage, count: int, limit: int
) -> None:
    catalogue = storage.catalogue
    tenant = unique_tenant(catalogue)
    made = [catalogue.create_chain(tenant, NewChain(name=f"C{n}")).id for n in range(count)]
    walked = _walk(lambda p: usecases.list_chains(catalogue, tenant, p), usecases.CHAINS, limit)
    assert [c.id for c in walked] == made


@given(
    quantities=st.lists(st.integers(min_value=0, max_value=10**6), min_size=0, max_size=20),
    limit=st.integers(min_value=1, max_value=7),
)
def test_walking_a_stores_inventory_returns_each_level_exactly_once_in_order(
    storage: Storage, quantities: list[int], limit: int
) -> None:
    catalogue, inventory = storage.catalogue, storage.inventory
    tenant = unique_tenant(catalogue)
    chain = catalogue.create_chain(tenant, NewChain(name="Chain"))
    shop = catalogue.create_store(tenant, NewStore(chain_id=chain.id, name="Shop")).id
    model: dict[int, int] = {}
    for n, quantity in enumerate(quantities):
        item = catalogue.create_item(tenant, NewItem(sku=f"S{n}", name="I", cost=Decimal("1.00")))
        inventory.set_quantity(tenant, shop, item.id, quantity, actor="test")
        model[item.id] = quantity

    def fetch(page: PageRequest) -> Page[object]:
        return usecases.list_store_inventory(catalogue, inventory, tenant, shop, page)  # type: ignore[return-value]

    walked = _walk(fetch, usecases.STORE_LEVELS, limit)
    assert [(lv.item_id, lv.quantity) for lv in walked] == sorted(model.items())  # type: ignore[attr-defined]


@given(
    data=st.data(),
    item_count=st.integers(min_value=1, max_value=15),
    limit=st.integers(min_value=1, max_value=20),
)
def test_the_items_filter_equals_a_dict_models_answer(
    storage: Storage, data: st.DataObject, item_count: int, limit: int
) -> None:
    catalogue, inventory = storage.catalogue, storage.inventory
    tenant = unique_tenant(catalogue)
    chain = catalogue.create_chain(tenant, NewChain(name="Chain"))
    shop = catalogue.create_store(tenant, NewStore(chain_id=chain.id, name="Shop")).id
    items = [
        catalogue.create_item(tenant, NewItem(sku=f"S{n}", name="I", cost=Decimal("1.00"))).id
        for n in range(item_count)
    ]
    model: dict[int, int] = {}
    for item_id in data.draw(st.lists(st.sampled_from(items), unique=True), label="stocked"):
        model[item_id] = data.draw(st.integers(min_value=0, max_value=500), label="qty")
        inventory.set_quantity(tenant, shop, item_id, model[item_id], actor="test")
    # Ask for known items, unknown ids and repeats, in any order, as a client might type them.
    asked = data.draw(
        st.lists(st.sampled_from(items) | st.integers(min_value=1, max_value=10**9), min_size=1),
        label="asked",
    )
    raw = ",".join(str(i) for i in asked)
    expected = sorted((i, model[i]) for i in set(asked) if i in model)

    def fetch(page: PageRequest) -> Page[object]:
        ids = parse_item_ids(raw)
        return usecases.list_store_inventory(catalogue, inventory, tenant, shop, page, ids)  # type: ignore[return-value]

    walked = _walk(fetch, usecases.STORE_LEVELS, limit)
    assert [(lv.item_id, lv.quantity) for lv in walked] == expected  # type: ignore[attr-defined]


@given(key=st.integers(min_value=0, max_value=2**63 - 1), kind=st.sampled_from(["a", "chains"]))
def test_a_cursor_decodes_to_the_key_it_was_made_from(key: int, kind: str) -> None:
    assert decode_cursor(kind, encode_cursor(kind, key)) == key


@given(garbage=st.text(max_size=40))
def test_any_string_as_a_cursor_is_either_a_key_or_a_400_naming_the_cursor(garbage: str) -> None:
    outcome: int | str
    try:
        outcome = decode_cursor("chains", garbage)
    except InvalidInput as exc:
        outcome = exc.field
    if isinstance(outcome, int):
        assert encode_cursor("chains", outcome) == garbage
    else:
        assert outcome == "cursor"


@given(
    issued_for=st.sampled_from(KINDS) | st.text(max_size=12),
    asked_by=st.sampled_from(KINDS),
    key=INTEGERS.filter(lambda k: k >= 0),
)
def test_a_forged_cursor_is_its_key_only_for_its_own_list_and_a_key_storage_holds(
    issued_for: str, asked_by: str, key: int
) -> None:
    """Any kind, any integer: a key comes back only if the list and the range are right."""
    outcome: int | str
    try:
        outcome = decode_cursor(asked_by, encode_cursor(issued_for, key))
    except InvalidInput as exc:
        outcome = exc.field
    if issued_for == asked_by and key <= MAX_KEY:
        assert outcome == key
    else:
        assert outcome == "cursor"


@pytest.mark.parametrize("key", [MAX_KEY + 1, 10**19 - 1, 2**64])
def test_a_well_formed_cursor_past_a_64_bit_key_is_refused(key: int) -> None:
    with pytest.raises(InvalidInput) as caught:
        decode_cursor("chains", encode_cursor("chains", key))
    assert caught.value.field == "cursor"
    assert decode_cursor("chains", encode_cursor("chains", MAX_KEY)) == MAX_KEY


MOMENTS = st.datetimes(
    min_value=EARLIEST.replace(tzinfo=None), max_value=LATEST.replace(tzinfo=None)
)


@given(at=MOMENTS, key=st.integers(min_value=0, max_value=MAX_KEY), kind=st.sampled_from(KINDS))
def test_a_time_cursor_decodes_to_the_time_and_key_it_was_made_from(
    at: datetime, key: int, kind: str
) -> None:
    made = TimeKey(at.replace(tzinfo=UTC), key)
    assert decode_time_cursor(kind, encode_time_cursor(kind, made)) == made
    request = PageRequest.parse(kind, "5", encode_time_cursor(kind, made), timed=True)
    assert (request.after_key, request.limit) == (made, 5)


@given(garbage=st.text(max_size=40) | cursors())
def test_any_string_as_a_time_cursor_is_either_its_key_or_a_400_naming_the_cursor(
    garbage: str,
) -> None:
    outcome: TimeKey | str
    try:
        outcome = decode_time_cursor(usecases.CHANGES, garbage)
    except InvalidInput as exc:
        outcome = exc.field
    if isinstance(outcome, TimeKey):
        assert encode_time_cursor(usecases.CHANGES, outcome) == garbage
        assert EARLIEST <= outcome.at <= LATEST
        assert 0 <= outcome.id <= MAX_KEY
    else:
        assert outcome == "cursor"


@given(
    issued_for=st.sampled_from(KINDS) | st.text(max_size=12),
    micros=INTEGERS.filter(lambda n: n >= 0),
    key=INTEGERS.filter(lambda k: k >= 0),
)
def test_a_forged_time_cursor_is_refused_unless_its_list_time_and_key_are_right(
    issued_for: str, micros: int, key: int
) -> None:
    forged = base64.urlsafe_b64encode(f"{issued_for}:{micros}.{key}".encode()).rstrip(b"=")
    outcome: TimeKey | str
    try:
        outcome = decode_time_cursor(usecases.CHANGES, forged.decode())
    except InvalidInput as exc:
        outcome = exc.field
    if issued_for == usecases.CHANGES and micros <= MAX_MICROS and key <= MAX_KEY:
        assert outcome == TimeKey(EARLIEST + timedelta(microseconds=micros), key)
    else:
        assert outcome == "cursor"


def test_a_list_in_time_order_and_the_same_list_by_id_refuse_each_others_cursors() -> None:
    by_id = encode_cursor(usecases.CHANGES, 5)
    by_time = encode_time_cursor(usecases.CHANGES, TimeKey(EARLIEST, 5))
    for cursor, timed in ((by_id, True), (by_time, False)):
        with pytest.raises(InvalidInput) as caught:
            PageRequest.parse(usecases.CHANGES, None, cursor, timed=timed)
        assert caught.value.field == "cursor"
    latest = encode_time_cursor(usecases.CHANGES, TimeKey(LATEST, MAX_KEY))
    assert decode_time_cursor(usecases.CHANGES, latest) == TimeKey(LATEST, MAX_KEY)


@given(limit=limits())
def test_any_limit_is_a_page_size_from_1_to_the_most_or_a_400_naming_limit(limit: str) -> None:
    outcome: PageRequest | str
    try:
        outcome = PageRequest.parse("chains", limit, None)
    except InvalidInput as exc:
        outcome = exc.field
    if isinstance(outcome, str):
        assert outcome == "limit"
    else:
        assert 1 <= outcome.limit <= MAX_LIMIT


@given(raw=timestamps())
def test_any_timestamp_is_a_utc_moment_storage_holds_or_a_400_naming_it(raw: str) -> None:
    """Years 1 and 9999 at every offset, fractions of any length: never an overflow."""
    outcome: datetime | str
    try:
        outcome = parse_timestamp("as_of", raw.upper())
    except InvalidInput as exc:
        outcome = exc.field
    if isinstance(outcome, str):
        assert outcome == "as_of"
    else:
        assert outcome.utcoffset() == timedelta(0)
        assert EARLIEST <= outcome <= LATEST


@pytest.mark.parametrize(
    "raw",
    [
        "9999-12-31T23:59:59-23:59",
        "9999-12-31T23:59:59.999999-00:01",
        "0001-01-01T00:00:00+23:59",
        "0001-01-01T00:00:00.000001+00:01",
    ],
)
def test_a_local_time_whose_utc_moment_is_outside_the_years_1_to_9999_is_refused(
    raw: str,
) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_timestamp("since", raw)
    assert caught.value.field == "since"
    assert "0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z" in caught.value.detail


def test_the_edges_themselves_are_accepted() -> None:
    assert parse_timestamp("as_of", "0001-01-01T00:00:00Z") == EARLIEST
    assert parse_timestamp("as_of", "9999-12-31T23:59:59.999999Z") == LATEST
    assert parse_timestamp("as_of", "0001-01-01T23:59:00+23:59") == EARLIEST
    assert parse_timestamp("as_of", "9999-12-31T00:00:59.999999-23:59") == LATEST


def test_a_cursor_from_one_list_is_refused_by_another() -> None:
    with pytest.raises(InvalidInput) as caught:
        decode_cursor("items", encode_cursor("chains", 5))
    assert caught.value.field == "cursor"


@given(ids=st.lists(st.integers(min_value=1, max_value=2**63 - 1), min_size=1, max_size=50))
def test_the_items_parameter_parses_to_the_sorted_distinct_ids(ids: list[int]) -> None:
    assert parse_item_ids(",".join(map(str, ids))) == sorted(set(ids))


@given(
    raw=st.text(alphabet=st.sampled_from("0123456789,- a+x"), min_size=0, max_size=30).filter(
        lambda s: not all(p.strip().isdigit() and int(p) > 0 for p in s.split(","))
    )
)
def test_a_malformed_items_parameter_is_refused_naming_items(raw: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_item_ids(raw)
    assert caught.value.field == "items"


def test_more_than_a_thousand_item_ids_are_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_item_ids(",".join(str(i) for i in range(1, 1002)))
    assert caught.value.field == "items"
    assert len(parse_item_ids(",".join(str(i) for i in range(1, 1001)))) == 1000
