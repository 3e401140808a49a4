"""What goes out: timestamps in UTC with Z whatever storage hands back, money as strings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import msgspec
import pytest

from commerce.adapters.storage.memory import memory_storage
from commerce.core import usecases
from commerce.core.models import InventoryLevel, Item, NewChain, NewItem
from commerce.entrypoints.http.app import create_app
from commerce.entrypoints.http.media import encode_row, encode_rows
from tests.http.conftest import ACME, PRINCIPALS, TokenAuthenticator, client_for

pytestmark = pytest.mark.http


@pytest.mark.parametrize(
    "stamp",
    [
        datetime(2024, 5, 1, 14, 30, tzinfo=timezone(timedelta(hours=2))),
        datetime(2024, 5, 1, 8, 30, tzinfo=ZoneInfo("America/New_York")),
        datetime(2024, 5, 1, 12, 30, tzinfo=ZoneInfo("UTC")),
        datetime(2024, 5, 1, 12, 30),  # naive: UTC by the storage port's convention
        datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
    ],
)
def test_every_timestamp_goes_out_in_utc_with_z(stamp: datetime) -> None:
    storage = memory_storage(clock=lambda: stamp)
    usecases.create_tenant(storage.catalogue, ACME, "Acme")
    chain = usecases.create_chain(storage.catalogue, ACME, NewChain("North"))
    result = client_for(create_app(storage, [TokenAuthenticator(PRINCIPALS)])).simulate_get(
        f"/chain/{chain.id}"
    )
    assert result.json["created_at"] == "2024-05-01T12:30:00Z"
    assert result.json["updated_at"] == "2024-05-01T12:30:00Z"


def test_fractional_seconds_are_kept() -> None:
    item = Item(
        1,
        "S",
        "N",
        Decimal("1"),
        datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    assert b'"created_at":"2024-01-02T03:04:05.678000Z"' in encode_row(item)


def test_money_keeps_every_digit_as_a_string() -> None:
    stamp = datetime(2024, 1, 1, tzinfo=UTC)
    items = [
        Item(1, "A", "a", Decimal("12.50"), stamp, stamp),
        Item(2, "B", "b", Decimal("0.10"), stamp, stamp),
        Item(3, "C", "c", Decimal("12345678901234567890.01"), stamp, stamp),
    ]
    body = encode_rows(items)
    assert b'"cost":"12.50"' in body
    assert b'"cost":"0.10"' in body
    assert b'"cost":"12345678901234567890.01"' in body


def test_a_row_already_in_utc_is_sent_as_is() -> None:
    storage = memory_storage()
    usecases.create_tenant(storage.catalogue, ACME, "Acme")
    item = usecases.create_item(storage.catalogue, ACME, NewItem("S", "N", Decimal("1.00")))
    result = client_for(create_app(storage, [TokenAuthenticator(PRINCIPALS)])).simulate_get(
        f"/items/{item.id}"
    )
    assert result.json["created_at"].endswith("Z")
    assert datetime.fromisoformat(result.json["created_at"]) == item.created_at


def test_one_row_out_of_utc_in_a_page_is_fixed_and_the_others_kept() -> None:
    utc = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    naive = datetime(2024, 5, 1, 12, 31)
    levels = [InventoryLevel(1, n, n, naive if n == 2 else utc) for n in range(1, 4)]
    body = msgspec.json.decode(encode_rows(levels))
    assert [lv["updated_at"] for lv in body] == [
        "2024-05-01T12:30:00Z",
        "2024-05-01T12:31:00Z",
        "2024-05-01T12:30:00Z",
    ]


def test_an_empty_list_is_an_empty_array() -> None:
    assert encode_rows([]) == b"[]"
