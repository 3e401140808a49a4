"""Path and query parameters: the text of a URL turned into ids, timestamps and page requests.

Parsing is the HTTP layer's job, not the core's: the use cases take ints and datetimes.
Every refusal is an ``InvalidInput`` naming the parameter, so the 400 says which one.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import falcon
import msgspec

from commerce.core.errors import InvalidInput
from commerce.core.pagination import MAX_LIMIT, PageRequest
from commerce.entrypoints.http.media import encode

MAX_ID = 2**63 - 1
"""The largest id a path or query parameter may name: a signed 64-bit integer."""
MAX_ITEMS_FILTER = 1000
"""How many item ids ``?items=`` may name."""

TIMESTAMP_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-5][0-9](\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
"""RFC 3339 ``date-time`` without leap seconds, which Python's datetime cannot hold."""
_TIMESTAMP = re.compile(TIMESTAMP_PATTERN)

EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
"""The moments a timestamp parameter may name, in UTC: those Python's datetime holds, which
every backend stores and compares (PostgreSQL's ``timestamptz`` spans 4713 BC to 294276 AD;
SQLite keeps the text ``YYYY-MM-DD HH:MM:SS.ffffff``, which sorts right for years 1 to 9999).
A local time inside the years 1 to 9999 whose UTC value falls outside them
(``9999-12-31T23:59:59-23:59``) is refused rather than overflowing."""
_RANGE = "0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z"


def parse_id(field: str, raw: str) -> int:
    """A positive 64-bit integer id, or ``InvalidInput`` naming ``field``."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        raise InvalidInput(field, "must be a positive integer")
    value = int(raw)
    if not 1 <= value <= MAX_ID:
        raise InvalidInput(field, "must be a positive integer")
    return value


def parse_timestamp(field: str, raw: str) -> datetime:
    """An RFC 3339 timestamp with its offset (``Z`` or ``+02:00``), returned in UTC."""
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidInput(
            field, "must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z"
        ) from None
    if value.tzinfo is None or "T" not in raw.upper():
        raise InvalidInput(field, "must be an RFC 3339 timestamp with an offset, e.g. ...Z")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # A local time of the years 1 to 9999 whose UTC value is not: 9999-12-31T23:59:59-23:59.
        raise InvalidInput(field, f"must be a moment from {_RANGE} (in UTC)") from None


_PLAIN_IDS = re.compile(r"[0-9]{1,19}(?:,[0-9]{1,19})*")
"""The common form of ``?items=``: digits and commas only (``re`` takes no other digits here)."""


def parse_item_ids(raw: str) -> list[int]:
    """``?items=3,7,9``: comma-separated ids, duplicates ignored, at most 1000, sorted."""
    if raw.count(",") < MAX_ITEMS_FILTER and _PLAIN_IDS.fullmatch(raw):
        # The common case in one pass; anything else (spaces, a zero, a bad part) is checked
        # part by part below, which names the part at fault.
        plain = sorted(set(map(int, raw.split(","))))
        if plain[0] >= 1 and plain[-1] <= MAX_ID:
            return plain
    parts = raw.split(",")
    if len(parts) > MAX_ITEMS_FILTER:
        raise InvalidInput("items", f"at most {MAX_ITEMS_FILTER} item ids")
    ids: set[int] = set()
    for part in parts:
        part = part.strip()
        try:
            ids.add(parse_id("items", part))
        except InvalidInput:
            raise InvalidInput(
                "items", f"must be comma-separated positive integers, got {part[:40]!r}"
            ) from None
    return sorted(ids)


# -- from a Falcon request ----------------------------------------------------------------------


def query_param(req: falcon.Request, name: str) -> str | None:
    """One query parameter's raw value; given twice it is ambiguous, so a 400."""
    value = req.params.get(name)
    if isinstance(value, list):
        raise InvalidInput(name, "must be given at most once")
    return value


def id_param(req: falcon.Request, name: str) -> int | None:
    """An id given as a query parameter (``?item_id=``); ``None`` when absent."""
    raw = query_param(req, name)
    return None if raw is None else parse_id(name, raw)


def item_ids_param(req: falcon.Request) -> list[int] | None:
    """``?items=``, parsed; ``None`` when absent (every item)."""
    raw = query_param(req, "items")
    return None if raw is None else parse_item_ids(raw)


def timestamp_param(req: falcon.Request, name: str) -> datetime | None:
    """An RFC 3339 query parameter, in UTC; ``None`` when absent."""
    raw = query_param(req, name)
    if raw is None:
        return None
    if not _TIMESTAMP.fullmatch(raw):
        raise InvalidInput(name, "must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z")
    # RFC 3339 allows a lower-case t and z; Python reads only the upper-case ones.
    return parse_timestamp(name, raw.upper())


def canonical_timestamp(value: datetime) -> str:
    """The form ``Link`` repeats a timestamp in: the one every response body uses."""
    text: str = msgspec.json.decode(encode(value))
    return text


def page_request(req: falcon.Request, kind: str, *, timed: bool = False) -> PageRequest:
    """``?limit=`` and ``?cursor=`` of a list of ``kind`` (in time order if ``timed``)."""
    limit = query_param(req, "limit")
    # Plain ASCII digits only: int() would also take " 5", "+5", "5_0" and other scripts' digits.
    if limit and not (limit.isascii() and limit.isdigit()):
        raise InvalidInput("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    return PageRequest.parse(kind, limit, query_param(req, "cursor"), timed=timed)
