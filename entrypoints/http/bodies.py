"""Request bodies: the JSON each write accepts, and reading it into a 400 that names the field.

The Structs carry the domain's limits from ``commerce.core.validation`` as ``msgspec.Meta``, so the
OpenAPI document states them and most bad input is refused while decoding; the use cases
then run the core's own checks, which are the ones that count.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Final, TypeVar

import falcon
import msgspec
from msgspec import UNSET, Meta, UnsetType

from commerce.core import validation
from commerce.core.errors import InvalidInput
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
_PATTERN_SHOWN: Final = {repr(pattern): pattern for pattern in PATTERN_RULES}
"""msgspec quotes the pattern in its message as ``repr`` spells it, backslashes doubled."""

_COST_FORMAT = 'must be a decimal string such as "12.50"'

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


# -- reading the body ------------------------------------------------------------------------


def _is_json(content_type: str) -> bool:
    return content_type.partition(";")[0].strip().lower() == falcon.MEDIA_JSON


def _stream_is_terminated(req: falcon.Request) -> bool:
    """Whether the body may be read to its end without a length (a chunked request).

    PEP 3333 servers that pass a chunked body on say so with ``wsgi.input_terminated``;
    others set ``Content-Length`` after de-chunking it (waitress does).
    """
    if req.env.get("wsgi.input_terminated"):
        return True
    encoding = req.get_header("Transfer-Encoding") or ""
    return "chunked" in encoding.lower()


def read_body(req: falcon.Request, max_bytes: int) -> bytes:
    """The raw body, read at most once per request; 413 past ``max_bytes``, chunked or not.

    At most ``max_bytes + 1`` bytes are read: one more than allowed is enough to refuse.
    """
    cached: bytes | None = getattr(req.context, "raw_body", None)
    if cached is not None:
        return cached
    if req.content_length is not None:
        raw = req.bounded_stream.read(max_bytes + 1)
    elif _stream_is_terminated(req):
        raw = req.stream.read(max_bytes + 1)
    else:
        raw = b""
    if len(raw) > max_bytes:
        raise falcon.HTTPContentTooLarge(
            description=f"The body is larger than {max_bytes} bytes, the most accepted."
        )
    req.context.raw_body = raw
    return raw


def decode(req: falcon.Request, body_type: type[B], max_bytes: int) -> B:
    """The request's JSON body as ``body_type``, or the 4xx that says what is wrong with it."""
    content_type = req.content_type
    if content_type is not None and not _is_json(content_type):
        raise falcon.HTTPUnsupportedMediaType(
            description=f"The body must be {falcon.MEDIA_JSON}, not {content_type[:100]}."
        )
    raw = read_body(req, max_bytes)
    if not raw.strip():
        raise InvalidInput("body", f"a JSON body is required ({falcon.MEDIA_JSON})")
    if content_type is None:
        # A body without a type could be anything; guessing would hide the client's mistake.
        raise falcon.HTTPUnsupportedMediaType(
            description=f"Send the body with Content-Type: {falcon.MEDIA_JSON}."
        )
    try:
        body = msgspec.json.decode(raw, type=body_type)
    except msgspec.ValidationError as exc:
        body = _with_integral_floats(raw, body_type, exc)
    except msgspec.DecodeError as exc:
        raise InvalidInput("body", f"is not valid JSON: {exc}") from None
    except RecursionError:
        raise _too_deep() from None
    refuse_duplicate_keys(raw)
    if isinstance(body, PATCH_BODIES) and all(
        getattr(body, name) is UNSET for name in body.__struct_fields__
    ):
        names = ", ".join(body.__struct_fields__)
        raise InvalidInput("body", f"must change at least one field of: {names}")
    return body


def _integral(value: Any) -> Any:
    """``value`` with every float that is exactly an integer (``3.0``) made that integer."""
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) <= _EXACT else value
    if isinstance(value, list):
        return [_integral(v) for v in value]
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    return value


_EXACT = 2**53
"""Beyond this a float no longer holds every integer, so ``1e17`` could be a rounded id."""


def _with_integral_floats(raw: bytes, body_type: type[B], error: msgspec.ValidationError) -> B:
    """Decode again, reading ``3.0`` as ``3``, or raise ``error`` as a 400.

    JSON has one number type: to JSON Schema, and to many a JSON library, ``3.0`` is the
    integer 3. msgspec is stricter, so the rare body that needs it is decoded a second way.
    """
    if "got `float`" not in str(error):
        raise _invalid(str(error), raw) from None
    try:
        return msgspec.convert(_integral(_untyped(raw)), body_type)
    except msgspec.ValidationError as exc:
        raise _invalid(str(exc), raw) from None


def _too_deep() -> InvalidInput:
    return InvalidInput("body", "is nested too deeply to be a body of this API")


def _untyped(raw: bytes) -> Any:
    """The body as plain JSON values. Decoding into a body type stops at the first value of
    the wrong shape; this reads everything, so a body nested thousands deep (which fits in
    the size limit) would exhaust the stack: that is a 400, not a 500."""
    try:
        return msgspec.json.decode(raw)
    except RecursionError:
        raise _too_deep() from None


# -- duplicate keys ------------------------------------------------------------------------------


class _Members(dict[str, Any]):
    """A JSON object read by ``json``, remembering the first key it was given twice."""

    duplicate: str | None = None


def _members(pairs: list[tuple[str, Any]]) -> _Members:
    members = _Members(pairs)
    if len(members) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                members.duplicate = key
                break
            seen.add(key)
    return members


def _pair_count(value: Any) -> int:
    """How many members the objects of ``value`` hold, nested ones included."""
    children: Iterable[Any]
    if isinstance(value, dict):
        count = len(value)
        children = value.values()
    elif isinstance(value, list):
        count = 0
        children = value
    else:
        return 0
    # Recursing only into containers: a batch's thousands of scalars cost no call each.
    for child in children:
        if isinstance(child, (dict, list)):
            count += _pair_count(child)
    return count


def _first_duplicate(value: Any, path: str) -> str | None:
    """The path of the first key given twice (``adjustments[1].delta``); ``None`` if none."""
    if isinstance(value, _Members):
        if value.duplicate is not None:
            return _join(path, value.duplicate)
        for name, member in value.items():
            found = _first_duplicate(member, _join(path, name))
            if found is not None:
                return found
    elif isinstance(value, list):
        for n, element in enumerate(value):
            found = _first_duplicate(element, f"{path}[{n}]")
            if found is not None:
                return found
    return None


def refuse_duplicate_keys(raw: bytes) -> None:
    """A 400 naming the key when an object of the body gives one key twice.

    msgspec, like most JSON readers, keeps the last value, so ``{"quantity": 5, "quantity":
    0}`` would be read as a count of 0 by us and maybe as 5 by a proxy that checked it. The
    cheap test: in JSON a ``:`` outside strings follows a key, so when the body holds as many
    ``:`` as its objects hold members, no key was repeated (and no string holds a ``:``).
    Only when they differ is the body read again, by ``json`` with a hook that sees every
    pair, to tell which. Called once the body has decoded into its type, so it is shallow.
    """
    colons = raw.count(b":")
    if colons == 0 or _pair_count(_untyped(raw)) == colons:
        return
    try:
        tree = json.loads(raw, object_pairs_hook=_members)
    except RecursionError:
        raise _too_deep() from None
    except ValueError as exc:
        # Not reached: json reads all that msgspec read (it is the laxer of the two).
        raise InvalidInput("body", f"is not valid JSON: {exc}") from None
    found = _first_duplicate(tree, "")
    if found is not None:
        raise InvalidInput(found, "is given more than once; each key may appear once in an object")


# -- msgspec's errors, told as the field they are about ----------------------------------------

_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]*)`$")
_REGEX = re.compile(r"^Expected `str` matching regex (?P<pattern>.*)$", re.DOTALL)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _value_at(raw: bytes, path: str) -> Any:
    """The JSON value at a msgspec path such as ``.adjustments[2].delta``; ``None`` if absent."""
    value: Any = _untyped(raw)
    for name, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path):
        try:
            value = value[name] if name else value[int(index)]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _cost_detail(raw: bytes, path: str) -> str:
    value = _value_at(raw, path)
    if value is None:
        return "must not be null; leave the field out to keep its value"
    if not isinstance(value, str):
        return f"{_COST_FORMAT}; send it as a JSON string, not a number"
    try:
        validation.cost("cost", Decimal(value))
    except InvalidInput as exc:
        return exc.detail.removeprefix("cost: ")
    except InvalidOperation:
        pass
    return _COST_FORMAT


def _invalid(error: str, raw: bytes) -> InvalidInput:
    match = _AT.match(error)
    assert match is not None  # the pattern matches any text
    message, path = match["message"], (match["path"] or "").lstrip(".")
    if unknown := _UNKNOWN.match(message):
        return InvalidInput(_join(path, unknown["name"]), "is not a field of this body")
    if missing := _MISSING.match(message):
        return InvalidInput(_join(path, missing["name"]), "is required")
    field = path or "body"
    if field == "cost" or field.endswith(".cost"):
        return InvalidInput(field, _cost_detail(raw, "." + path))
    if message.endswith("got `null`"):
        return InvalidInput(field, "must not be null; leave the field out to keep its value")
    if regex := _REGEX.match(message):
        return InvalidInput(field, _pattern_detail(raw, path, regex["pattern"]))
    if message.startswith("Invalid enum value"):
        values = ", ".join(r.value for r in Reason)
        return InvalidInput(field, f"must be one of: {values}")
    return InvalidInput(field, _in_words(message))


_TYPE_NAMES: Final = {
    "int": "an integer",
    "str": "a string",
    "bool": "true or false",
    "float": "a number",
    "object": "an object",
    "array": "an array",
    "null": "null",
}
_WRONG_TYPE = re.compile(r"^Expected `(?P<want>\w+)`(?: \| `null`)?, got `(?P<got>\w+)`$")
_BOUND = re.compile(r"^Expected `(?P<type>\w+)`(?: of length)? (?P<op>[<>]=) (?P<n>-?\d+)$")


def _pattern_detail(raw: bytes, path: str, shown: str) -> str:
    """Why a value failed its pattern, in the core's words (see ``PATTERN_RULES``)."""
    pattern = _PATTERN_SHOWN.get(shown)
    if pattern is None:
        # Not reached while PATTERN_RULES lists every pattern (a test checks it); even so, a
        # regex is never sent as a message.
        return "is not in the form this field takes (see its pattern in /openapi.json)"
    check, words = PATTERN_RULES[pattern]
    value = _value_at(raw, "." + path if path else "")
    if isinstance(value, str):
        try:
            check(path or "body", value)
        except InvalidInput as exc:
            return exc.detail.removeprefix(f"{path or 'body'}: ")
    return words


def _in_words(message: str) -> str:
    """msgspec's terse messages as the rest of the API words its 400s."""
    if wrong := _WRONG_TYPE.match(message):
        want = _TYPE_NAMES.get(wrong["want"], wrong["want"])
        got = _TYPE_NAMES.get(wrong["got"], wrong["got"])
        return f"must be {want}, not {got}"
    if bound := _BOUND.match(message):
        least = bound["op"] == ">="
        n = int(bound["n"])
        if bound["type"] == "str":
            if least and n == 1:
                return "must not be empty"
            return f"must be at {'least' if least else 'most'} {n} characters"
        if bound["type"] == "array":
            noun = "element" if n == 1 else "elements"
            return f"must hold at {'least' if least else 'most'} {n} {noun}"
        return f"must be {'at least' if least else 'at most'} {n}"
    return message
