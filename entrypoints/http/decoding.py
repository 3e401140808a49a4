"""Reading a request's JSON body into a Struct of ``bodies``, refusing what is malformed.

The body is read within its limit, duplicate keys are refused, and msgspec's errors become
a 400 that names the field in the words of ``commerce.core.validation``, never a regex.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import falcon
import msgspec
from msgspec import UNSET

from commerce.core import validation
from commerce.core.errors import InvalidInput
from commerce.core.models import (
    Reason,
)
from commerce.entrypoints.http.bodies import COST_FORMAT, PATCH_BODIES, PATTERN_RULES, B

_PATTERN_SHOWN: Final = {repr(pattern): pattern for pattern in PATTERN_RULES}
"""msgspec quotes the pattern in its message as ``repr`` spells it, backslashes doubled."""


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
        return f"{COST_FORMAT}; send it as a JSON string, not a number"
    try:
        validation.cost("cost", Decimal(value))
    except InvalidInput as exc:
        return exc.detail.removeprefix("cost: ")
    except InvalidOperation:
        pass
    return COST_FORMAT


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
