"""JSON in and out: one msgspec encoder for every body, and timestamps always in UTC with ``Z``."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Sequence
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

import falcon
import msgspec

from commerce.core.models import Chain, InventoryLevel, Item, LedgerEntry, Store, Tenant

# msgspec writes Decimal as a JSON string ("12.50"), so money never passes through a float,
# and writes an aware datetime whose offset is zero with a ``Z``.
_ENCODER = msgspec.json.Encoder(decimal_format="string")

encode = _ENCODER.encode
"""Serialize any JSON-able value (dataclasses and Structs included) to bytes."""

JSON_HANDLER = falcon.media.JSONHandler(dumps=_ENCODER.encode, loads=msgspec.json.decode)
"""The media handler for request bodies (and ``resp.media``): the same encoder, msgspec's decoder.

msgspec's ``DecodeError`` is a ``ValueError``, which Falcon turns into a 400.
"""

_timestamp_fields: dict[type, tuple[str, ...]] = {}
_zone_getters: dict[type, tuple[attrgetter[Any], ...]] = {}
_UTC_ONLY = frozenset([UTC])


def timestamp_fields(cls: type) -> tuple[str, ...]:
    """The names of ``cls``'s ``datetime`` fields, found once per class and then remembered."""
    names = _timestamp_fields.get(cls)
    if names is None:
        hints = typing.get_type_hints(cls)
        names = tuple(f.name for f in dataclasses.fields(cls) if hints[f.name] is datetime)
        _timestamp_fields[cls] = names
        _zone_getters[cls] = tuple(attrgetter(f"{name}.tzinfo") for name in names)
    return names


for _model in (Chain, Store, Item, InventoryLevel, LedgerEntry, Tenant):
    timestamp_fields(_model)


def _as_utc(value: datetime) -> datetime:
    # A naive timestamp from storage is UTC by the port's convention (SQLite keeps no zone).
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def in_utc(row: Any) -> Any:
    """``row`` itself when every timestamp is already UTC (the usual case), else a fixed copy."""
    changes: dict[str, datetime] | None = None
    for name in timestamp_fields(type(row)):
        value: datetime = getattr(row, name)
        if value.tzinfo is not UTC:
            if changes is None:
                changes = {}
            changes[name] = _as_utc(value)
    return row if changes is None else dataclasses.replace(row, **changes)


def encode_row(row: object) -> bytes:
    """One domain row as a JSON object."""
    return _ENCODER.encode(in_utc(row))


def encode_rows(rows: Sequence[object]) -> bytes:
    """Domain rows, all of one type, as a JSON array."""
    if rows:
        cls = type(rows[0])
        timestamp_fields(cls)
        # The usual case, every timestamp already in UTC, is checked in C (map, attrgetter,
        # set) rather than row by row in Python, several times faster on a full page.
        if not all(set(map(get, rows)) <= _UTC_ONLY for get in _zone_getters[cls]):
            return _ENCODER.encode([in_utc(row) for row in rows])
    return _ENCODER.encode(rows)
