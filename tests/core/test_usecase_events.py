"""The use cases log what an operator asks about: adjustments, levels set, conflicts, keys."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from commerce.adapters.storage.memory import memory_storage
from commerce.core import usecases
from commerce.core.apikeys import parse_api_key
from commerce.core.auth import Role
from commerce.core.errors import InsufficientStock, QuantityMismatch
from commerce.core.events import LogEvent
from commerce.core.models import Adjustment, NewChain, NewItem, NewStore, Reason
from commerce.core.ports import Storage


@pytest.fixture
def storage() -> Storage:
    return memory_storage()


def _events(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if isinstance(getattr(r, "event", None), LogEvent)]


def _store_and_item(storage: Storage) -> tuple[int, int]:
    usecases.create_tenant(storage.catalogue, "acme")
    chain = usecases.create_chain(storage.catalogue, "acme", NewChain(name="Acme"))
    store = usecases.create_store(storage.catalogue, "acme", NewStore(chain.id, "Main"))
    item = usecases.create_item(
        storage.catalogue, "acme", NewItem(sku="SKU-1", name="Thing", cost=Decimal("1.00"))
    )
    return store.id, item.id


def test_adjustments_levels_and_conflicts_are_logged(
    storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    store_id, item_id = _store_and_item(storage)
    inv = storage.inventory
    with caplog.at_level(logging.INFO, logger="commerce.usecases"):
        usecases.set_quantity(inv, "acme", store_id, item_id, 5, actor="key:abc")
        usecases.adjust_inventory(
            inv, "acme", store_id, [Adjustment(item_id, -2, Reason.sold)], actor="key:abc"
        )
        with pytest.raises(InsufficientStock):
            usecases.adjust_inventory(
                inv, "acme", store_id, [Adjustment(item_id, -9, Reason.sold)], actor="key:abc"
            )
        with pytest.raises(QuantityMismatch):
            usecases.set_quantity(
                inv, "acme", store_id, item_id, 1, actor="key:abc", expected_quantity=99
            )
    records = _events(caplog)
    assert [r.event for r in records] == [  # type: ignore[attr-defined]
        LogEvent.LEVEL_SET,
        LogEvent.INVENTORY_ADJUSTED,
        LogEvent.ADJUSTMENT_REFUSED,
        LogEvent.CAS_CONFLICT,
    ]
    level_set, adjusted, refused, conflict = records
    assert (level_set.store_id, level_set.quantity) == (store_id, 5)  # type: ignore[attr-defined]
    assert (adjusted.items, adjusted.actor) == (1, "key:abc")  # type: ignore[attr-defined]
    assert refused.short_items == [item_id]  # type: ignore[attr-defined]
    assert conflict.conflict == "expected_quantity"  # type: ignore[attr-defined]


def test_keys_made_and_revoked_are_logged_without_their_secret(
    storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    usecases.create_tenant(storage.catalogue, "acme")
    with caplog.at_level(logging.INFO, logger="commerce.usecases"):
        token, key = usecases.create_api_key(storage.api_keys, "acme", Role.writer)
        usecases.revoke_api_key(storage.api_keys, key.id)
    created, revoked = _events(caplog)
    assert created.event is LogEvent.API_KEY_CREATED  # type: ignore[attr-defined]
    assert (created.key_id, created.role) == (key.id, "writer")  # type: ignore[attr-defined]
    assert revoked.event is LogEvent.API_KEY_REVOKED  # type: ignore[attr-defined]
    parsed = parse_api_key(token)
    assert parsed is not None
    secret = parsed[1]  # the whole secret: it may itself hold "_"
    for record in caplog.records:
        text = record.getMessage() + repr(vars(record))
        assert token not in text
        assert secret not in text
