"""Keyset pagination: a page size and an opaque cursor that names the last key seen."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

from commerce.core.errors import InvalidInput

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_KEY = 2**63 - 1
"""The largest key a cursor may name: every key is a row id, a signed 64-bit integer in
storage (PostgreSQL ``BIGINT``, SQLite ``INTEGER``), so a larger one could not be compared
with a column and would fail in the database instead of being refused here."""

_EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
MAX_MICROS = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - _EARLIEST) // _MICROSECOND
"""The latest time a cursor may name, in microseconds since 0001-01-01T00:00:00Z: the last
moment every backend stores."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True, order=True)
class TimeKey:
    """The keyset key of a list in time order: a row's time, then its id among rows of the
    same time. Rows past it are those later in ``(at, id)`` order."""

    at: datetime
    id: int


@dataclass(frozen=True, slots=True)
class PageRequest:
    """Rows whose key is greater than ``after``, at most ``limit`` of them.

    On a list in time order, ``after_time`` comes with ``after``: rows past
    ``TimeKey(after_time, after)``.
    """

    limit: int = DEFAULT_LIMIT
    after: int | None = None
    after_time: datetime | None = None

    @property
    def after_key(self) -> TimeKey | None:
        """The key of a list in time order that the cursor named, if it named one."""
        if self.after is None or self.after_time is None:
            return None
        return TimeKey(self.after_time, self.after)

    @classmethod
    def parse(
        cls, kind: str, limit: str | None, cursor: str | None, *, timed: bool = False
    ) -> PageRequest:
        """Build a request from raw query parameters, refusing anything malformed.

        ``timed``: the list is in time order, so its cursors name a ``TimeKey``; a cursor of
        the same list in id order is refused, and the other way round.
        """
        if limit is None or limit == "":
            size = DEFAULT_LIMIT
        else:
            try:
                size = int(limit)
            except ValueError:
                raise InvalidInput("limit", f"must be an integer from 1 to {MAX_LIMIT}") from None
            if not 1 <= size <= MAX_LIMIT:
                raise InvalidInput("limit", f"must be an integer from 1 to {MAX_LIMIT}")
        if not cursor:
            return cls(limit=size)
        if timed:
            key = decode_time_cursor(kind, cursor)
            return cls(limit=size, after=key.id, after_time=key.at)
        return cls(limit=size, after=decode_cursor(kind, cursor))


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of rows and, when more follow, the cursor that fetches them."""

    rows: Sequence[T]
    next_cursor: str | None

    @classmethod
    def from_rows(
        cls,
        kind: str,
        rows: Sequence[T],
        request: PageRequest,
        key: Callable[[T], int],
        time: Callable[[T], datetime] | None = None,
    ) -> Page[T]:
        """``rows`` holds up to ``limit + 1`` rows: the extra one only says that more follow.

        ``time``: the rows are in time order, ``(time, key)``, and the cursor names both.
        """
        if len(rows) > request.limit:
            kept = rows[: request.limit]
            last = kept[-1]
            if time is None:
                return cls(rows=kept, next_cursor=encode_cursor(kind, key(last)))
            cursor = encode_time_cursor(kind, TimeKey(time(last), key(last)))
            return cls(rows=kept, next_cursor=cursor)
        return cls(rows=rows, next_cursor=None)


def encode_cursor(kind: str, key: int) -> str:
    """An opaque, URL-safe token; the kind keeps one list's cursor from being used on another."""
    raw = f"{kind}:{key}".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(kind: str, cursor: str) -> int:
    """The key ``cursor`` names; ``InvalidInput`` naming ``cursor`` for anything this module
    did not issue for ``kind``, or a key beyond what storage holds (a forged cursor)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
        cursor_kind, _, key = raw.decode("ascii").partition(":")
        if cursor_kind != kind or not key.isdigit() or len(key) > 19:
            raise ValueError(cursor)
        # Only the exact token this module issued is accepted, never a lookalike spelling.
        if encode_cursor(kind, int(key)) != cursor or int(key) > MAX_KEY:
            raise ValueError(cursor)
        return int(key)
    except (ValueError, UnicodeError, binascii.Error):
        raise InvalidInput("cursor", "is not a cursor this list issued") from None


def encode_time_cursor(kind: str, key: TimeKey) -> str:
    """A cursor of a list in time order: the row's time, in microseconds since
    0001-01-01T00:00:00Z, and its id, so the next page starts right after that row."""
    micros = (key.at - _EARLIEST) // _MICROSECOND
    raw = f"{kind}:{micros}.{key.id}".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_time_cursor(kind: str, cursor: str) -> TimeKey:
    """The ``TimeKey`` ``cursor`` names; ``InvalidInput`` naming ``cursor`` for anything
    ``encode_time_cursor`` did not issue for ``kind`` (an id-order cursor included), or a
    time or id beyond what storage holds."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
        cursor_kind, _, value = raw.decode("ascii").partition(":")
        micros, dot, key = value.partition(".")
        if cursor_kind != kind or not dot:
            raise ValueError(cursor)
        if not (micros.isdigit() and key.isdigit() and len(micros) <= 18 and len(key) <= 19):
            raise ValueError(cursor)
        if int(micros) > MAX_MICROS or int(key) > MAX_KEY:
            raise ValueError(cursor)
        found = TimeKey(_EARLIEST + int(micros) * _MICROSECOND, int(key))
        # Only the exact token this module issued is accepted, never a lookalike spelling.
        if encode_time_cursor(kind, found) != cursor:
            raise ValueError(cursor)
        return found
    except (ValueError, UnicodeError, binascii.Error, OverflowError):
        raise InvalidInput("cursor", "is not a cursor this list issued") from None
