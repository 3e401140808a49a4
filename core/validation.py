"""The domain's rules for what a row may hold, applied by the use cases before any store sees it.

The HTTP layer's schemas use the same limits, so the OpenAPI document states them, but these
checks are the ones that count: every entry point (HTTP, CLI, a plugin) goes through them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from commerce.core.errors import InvalidInput
from commerce.core.models import (
    TENANT_ID_PATTERN,
    Adjustment,
    ChainPatch,
    ItemPatch,
    NewChain,
    NewItem,
    NewStore,
    StorePatch,
)

NAME_MAX = 200
PHONE_MAX = 40
ADDRESS_MAX = 200
POSTAL_CODE_MAX = 20
CITY_MAX = 100
SKU_MAX = 64
REFERENCE_MAX = 200
MONEY_PLACES = 2
MAX_COST = Decimal("9999999999.99")
MAX_QUANTITY = 2**53 - 1
"""Quantities and deltas stay exact for JavaScript clients."""
MAX_ADJUSTMENTS = 1000

PHONE_PATTERN = r"^[0-9+()./ -]*$"
COUNTRY_PATTERN = r"^([A-Z]{2})?$"
SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]*$"

_PHONE = re.compile(PHONE_PATTERN)
_COUNTRY = re.compile(COUNTRY_PATTERN)
_SKU = re.compile(SKU_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CENT = Decimal(1).scaleb(-MONEY_PLACES)


def text(field: str, value: str, *, max_length: int, required: bool = False) -> str:
    """Plain one-line text: no control characters, at most ``max_length`` characters."""
    if _CONTROL.search(value):
        raise InvalidInput(field, "must not contain control characters")
    if len(value) > max_length:
        raise InvalidInput(field, f"must be at most {max_length} characters")
    if required and not value.strip():
        raise InvalidInput(field, "must not be empty")
    return value


def _matching(field: str, value: str, pattern: re.Pattern[str], what: str, max_length: int) -> str:
    text(field, value, max_length=max_length)
    if not pattern.fullmatch(value):
        raise InvalidInput(field, what)
    return value


def phone(field: str, value: str) -> str:
    return _matching(field, value, _PHONE, "may hold digits, spaces and + ( ) . / -", PHONE_MAX)


def country(field: str, value: str) -> str:
    return _matching(field, value, _COUNTRY, "must be an ISO 3166-1 alpha-2 code such as FR", 2)


def sku(field: str, value: str) -> str:
    if not value:
        raise InvalidInput(field, "must not be empty")
    return _matching(
        field, value, _SKU, "may hold letters, digits and . _ / - (not first)", SKU_MAX
    )


def cost(field: str, value: Decimal) -> Decimal:
    """Exact money: finite, not negative, at most two decimal places; kept with two places."""
    try:
        if not value.is_finite():
            raise InvalidInput(field, "must be a finite amount")
        exact = value.quantize(_CENT)
    except InvalidOperation:
        raise InvalidInput(field, f"must be at most {MAX_COST}") from None
    if exact != value:
        raise InvalidInput(field, f"must have at most {MONEY_PLACES} decimal places")
    if exact < 0:
        raise InvalidInput(field, "must not be negative")
    if exact > MAX_COST:
        raise InvalidInput(field, f"must be at most {MAX_COST}")
    return exact


def quantity(field: str, value: int) -> int:
    if isinstance(value, bool) or not 0 <= value <= MAX_QUANTITY:
        raise InvalidInput(field, f"must be an integer from 0 to {MAX_QUANTITY}")
    return value


def delta(field: str, value: int) -> int:
    if isinstance(value, bool) or value == 0 or abs(value) > MAX_QUANTITY:
        raise InvalidInput(
            field, f"must be a non-zero integer from -{MAX_QUANTITY} to {MAX_QUANTITY}"
        )
    return value


def reference(field: str, value: str | None) -> str | None:
    return None if value is None else text(field, value, max_length=REFERENCE_MAX)


def tenant_id(field: str, value: str) -> str:
    """A tenant id: lower-case letters, digits, - and _, at most 63, starting with a letter
    or digit (it appears in URLs, logs and JWT claims, so it stays plain)."""
    if not TENANT_ID_PATTERN.fullmatch(value):
        raise InvalidInput(
            field,
            f"{value[:80]!r} is not a tenant id: lower-case letters, digits, - and _, at most 63",
        )
    return value


def tenant_name(field: str, value: str) -> str:
    return text(field, value, max_length=NAME_MAX, required=True)


def new_chain(new: NewChain) -> NewChain:
    text("name", new.name, max_length=NAME_MAX, required=True)
    phone("phone", new.phone)
    return new


def chain_patch(patch: ChainPatch) -> ChainPatch:
    if patch.name is not None:
        text("name", patch.name, max_length=NAME_MAX, required=True)
    if patch.phone is not None:
        phone("phone", patch.phone)
    return patch


def _store_fields(
    name: str | None,
    phone_: str | None,
    address: str | None,
    postal_code: str | None,
    city: str | None,
    country_: str | None,
) -> None:
    if name is not None:
        text("name", name, max_length=NAME_MAX, required=True)
    if phone_ is not None:
        phone("phone", phone_)
    if address is not None:
        text("address", address, max_length=ADDRESS_MAX)
    if postal_code is not None:
        text("postal_code", postal_code, max_length=POSTAL_CODE_MAX)
    if city is not None:
        text("city", city, max_length=CITY_MAX)
    if country_ is not None:
        country("country", country_)


def new_store(new: NewStore) -> NewStore:
    _store_fields(new.name, new.phone, new.address, new.postal_code, new.city, new.country)
    return new


def store_patch(patch: StorePatch) -> StorePatch:
    _store_fields(
        patch.name, patch.phone, patch.address, patch.postal_code, patch.city, patch.country
    )
    return patch


def new_item(new: NewItem) -> NewItem:
    sku("sku", new.sku)
    text("name", new.name, max_length=NAME_MAX, required=True)
    return NewItem(sku=new.sku, name=new.name, cost=cost("cost", new.cost))


def item_patch(patch: ItemPatch) -> ItemPatch:
    if patch.sku is not None:
        sku("sku", patch.sku)
    if patch.name is not None:
        text("name", patch.name, max_length=NAME_MAX, required=True)
    if patch.cost is None:
        return patch
    return ItemPatch(sku=patch.sku, name=patch.name, cost=cost("cost", patch.cost))


def adjustments(batch: Sequence[Adjustment]) -> Sequence[Adjustment]:
    if not 1 <= len(batch) <= MAX_ADJUSTMENTS:
        raise InvalidInput("adjustments", f"must hold from 1 to {MAX_ADJUSTMENTS} adjustments")
    for n, adjustment in enumerate(batch):
        if adjustment.item_id < 1:
            raise InvalidInput(f"adjustments[{n}].item_id", "must be a positive integer")
        delta(f"adjustments[{n}].delta", adjustment.delta)
        reference(f"adjustments[{n}].reference", adjustment.reference)
    return batch
