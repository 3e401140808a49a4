"""Request bodies: the JSON each write accepts, and how it becomes the core's types.

The Structs carry the domain's limits from ``commerce.core.validation`` as ``msgspec.Meta``, so the
OpenAPI document states them and most bad input is refused while decoding; the use cases
then run the core's own checks, which are the ones that count.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any, Final, TypeVar

import msgspec
from msgspec import UNSET, Meta, UnsetType

from commerce.core import validation
from commerce.core.models import (
    Adjustment,
    ChainPatch,
    ItemPatch,
    NewChain,
    NewItem,
    NewStore,
    Reason,
    StorePatch,
)
from commerce.entrypoints.http.params import MAX_ID

B = TypeVar("B", bound=msgspec.Struct)

# -- the patterns a field's text must match -------------------------------------------------
# Python's str.isspace() characters that are not control characters: a required text made of
# nothing else is blank to the core (``strip()``), so the schema must refuse it too.
_SPACES = r"\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_CONTROL = r"\x00-\x1f\x7f"

TEXT_PATTERN: Final = rf"^[^{_CONTROL}]*$"
"""One line of text: no control characters."""
REQUIRED_TEXT_PATTERN: Final = rf"^[^{_CONTROL}]*[^{_CONTROL}{_SPACES}][^{_CONTROL}]*$"
"""One line of text with at least one character that is not a space."""
COST_PATTERN: Final = r"^(0|[1-9][0-9]{0,9})(\.[0-9]{1,2})?$"
"""A decimal string, not negative, at most two places and at most ``validation.MAX_COST``."""


def _text(field: str, value: str) -> object:
    return validation.text(field, value, max_length=len(value))


def _required_text(field: str, value: str) -> object:
    return validation.text(field, value, max_length=len(value), required=True)


PATTERN_RULES: Final[dict[str, tuple[Callable[[str, str], object], str]]] = {
    TEXT_PATTERN: (_text, "must not contain control characters"),
    REQUIRED_TEXT_PATTERN: (_required_text, "must not be empty nor contain control characters"),
    validation.PHONE_PATTERN: (validation.phone, "may hold digits, spaces and + ( ) . / -"),
    validation.COUNTRY_PATTERN: (
        validation.country,
        "must be an ISO 3166-1 alpha-2 code such as FR",
    ),
    validation.SKU_PATTERN: (validation.sku, "may hold letters, digits and . _ / - (not first)"),
}
"""Pattern -> (the core's check of the same rule, its words when the value cannot be read).

A regex is a poor error message: a value that fails a pattern is handed to the core's own
check, so the 400 says what the core would (``name: must not contain control characters``).
Every pattern of a request body is here; ``COST_PATTERN`` has its own wording (``_cost_detail``).
"""
COST_FORMAT = 'must be a decimal string such as "12.50"'

Name = Annotated[
    str,
    Meta(min_length=1, max_length=validation.NAME_MAX, pattern=REQUIRED_TEXT_PATTERN),
]
Phone = Annotated[str, Meta(max_length=validation.PHONE_MAX, pattern=validation.PHONE_PATTERN)]
Address = Annotated[str, Meta(max_length=validation.ADDRESS_MAX, pattern=TEXT_PATTERN)]
PostalCode = Annotated[str, Meta(max_length=validation.POSTAL_CODE_MAX, pattern=TEXT_PATTERN)]
City = Annotated[str, Meta(max_length=validation.CITY_MAX, pattern=TEXT_PATTERN)]
Country = Annotated[
    str,
    Meta(
        max_length=2,
        pattern=validation.COUNTRY_PATTERN,
        description="ISO 3166-1 alpha-2 code such as `FR`, or empty.",
    ),
]
Sku = Annotated[
    str,
    Meta(min_length=1, max_length=validation.SKU_MAX, pattern=validation.SKU_PATTERN),
]
Cost = Annotated[
    str,
    Meta(
        pattern=COST_PATTERN,
        description='Exact money as a decimal **string** such as `"12.50"`: not negative, '
        f"at most {validation.MONEY_PLACES} decimal places, at most "
        f"`{validation.MAX_COST}`. A JSON number is refused, as it may have passed through "
        "a binary float.",
        examples=["12.50"],
    ),
]
Reference = Annotated[
    str,
    Meta(
        max_length=validation.REFERENCE_MAX,
        pattern=TEXT_PATTERN,
        description="The document behind the change: a delivery note, a receipt, an order.",
    ),
]
Quantity = Annotated[int, Meta(ge=0, le=validation.MAX_QUANTITY)]
Delta = Annotated[
    int,
    Meta(
        ge=-validation.MAX_QUANTITY,
        le=validation.MAX_QUANTITY,
        extra_json_schema={"not": {"const": 0}},
        description="Added to the level; negative to take away; never 0.",
    ),
]
ItemId = Annotated[int, Meta(ge=1, le=MAX_ID)]


# -- the bodies ------------------------------------------------------------------------------


class ChainCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new chain."""

    name: Name
    phone: Phone = ""


class ChainUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """The chain's fields to change; at least one, none of them null."""

    name: Name | UnsetType = UNSET
    phone: Phone | UnsetType = UNSET


class StoreCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new store of the chain named in the path."""

    name: Name
    phone: Phone = ""
    address: Address = ""
    postal_code: PostalCode = ""
    city: City = ""
    country: Country = ""
    active: bool = True


class StoreUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """The store's fields to change; at least one, none of them null."""

    name: Name | UnsetType = UNSET
    phone: Phone | UnsetType = UNSET
    address: Address | UnsetType = UNSET
    postal_code: PostalCode | UnsetType = UNSET
    city: City | UnsetType = UNSET
    country: Country | UnsetType = UNSET
    active: bool | UnsetType = UNSET


class ItemCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new item of the catalogue; ``sku`` is unique within the tenant."""

    sku: Sku
    name: Name
    cost: Cost


class ItemUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """The item's fields to change; at least one, none of them null."""

    sku: Sku | UnsetType = UNSET
    name: Name | UnsetType = UNSET
    cost: Cost | UnsetType = UNSET


class QuantitySet(msgspec.Struct, forbid_unknown_fields=True):
    """The quantity counted; with ``expected_quantity``, only if the level still holds that."""

    quantity: Quantity
    expected_quantity: Quantity | UnsetType = UNSET
    reference: Reference | UnsetType = UNSET


class AdjustmentLine(msgspec.Struct, forbid_unknown_fields=True):
    """One change of one item's level."""

    item_id: ItemId
    delta: Delta
    reason: Reason
    reference: Reference | UnsetType = UNSET


class AdjustmentBatch(msgspec.Struct, forbid_unknown_fields=True):
    """Changes applied in order, all or none."""

    adjustments: Annotated[
        list[AdjustmentLine], Meta(min_length=1, max_length=validation.MAX_ADJUSTMENTS)
    ]


PATCH_BODIES: Final = (ChainUpdate, StoreUpdate, ItemUpdate)
"""Bodies of which at least one field must be given."""

REQUEST_BODIES: Final = (
    ChainCreate,
    ChainUpdate,
    StoreCreate,
    StoreUpdate,
    ItemCreate,
    ItemUpdate,
    QuantitySet,
    AdjustmentBatch,
)


# -- from bodies to the core's types ------------------------------------------------------------


def _given(value: Any) -> Any:
    return None if value is UNSET else value


def _money(raw: str) -> Decimal:
    # The pattern has let through only plain decimal strings, which Decimal always reads.
    return Decimal(raw)


def new_chain(body: ChainCreate) -> NewChain:
    return NewChain(name=body.name, phone=body.phone)


def chain_patch(body: ChainUpdate) -> ChainPatch:
    return ChainPatch(name=_given(body.name), phone=_given(body.phone))


def new_store(chain_id: int, body: StoreCreate) -> NewStore:
    return NewStore(
        chain_id=chain_id,
        name=body.name,
        phone=body.phone,
        address=body.address,
        postal_code=body.postal_code,
        city=body.city,
        country=body.country,
        active=body.active,
    )


def store_patch(body: StoreUpdate) -> StorePatch:
    return StorePatch(
        name=_given(body.name),
        phone=_given(body.phone),
        address=_given(body.address),
        postal_code=_given(body.postal_code),
        city=_given(body.city),
        country=_given(body.country),
        active=_given(body.active),
    )


def new_item(body: ItemCreate) -> NewItem:
    return NewItem(sku=body.sku, name=body.name, cost=_money(body.cost))


def item_patch(body: ItemUpdate) -> ItemPatch:
    cost = None if body.cost is UNSET else _money(body.cost)
    return ItemPatch(sku=_given(body.sku), name=_given(body.name), cost=cost)


def adjustments(body: AdjustmentBatch) -> list[Adjustment]:
    return [
        Adjustment(
            item_id=line.item_id,
            delta=line.delta,
            reason=line.reason,
            reference=_given(line.reference),
        )
        for line in body.adjustments
    ]
