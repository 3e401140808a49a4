"""Keyset pagination: a page size and an opaque cursor that names the last key seen."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from commerce.core.errors import InvalidInput

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_KEY = 2**63 - 1
"""The largest key a cursor may name: every key is a row id, a signed 64-bit integer in
storage (PostgreSQL ``BIGINT``, SQLite ``INTEGER``), so a larger one could not be compared
with a column and would fail in the database instead of being refused here."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PageRequest:
    """Rows whose key is greater than ``after``, at most ``limit`` of them."""

    limit: int = DEFAULT_LIMIT
    after: int | None = None

    @classmethod
    def parse(cls, kind: str, limit: str | None, cursor: str | None) -> PageRequest:
        """Build a request from raw query parameters, refusing anything malformed."""
        if limit is None or limit == "":
            size = DEFAULT_LIMIT
        else:
            try:
                size = int(limit)
            except ValueError:
                raise InvalidInput("limit", f"must be an integer from 1 to {MAX_LIMIT}") from None
            if not 1 <= size <= MAX_LIMIT:
                raise InvalidInput("limit", f"must be an integer from 1 to {MAX_LIMIT}")
        after = decode_cursor(kind, cursor) if cursor else None
        return cls(limit=size, after=after)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of rows and, when more follow, the cursor that fetches them."""

    rows: Sequence[T]
    next_cursor: str | None

    @classmethod
    def from_rows(
        cls, kind: str, rows: Sequence[T], request: PageRequest, key: Callable[[T], int]
    ) -> Page[T]:
        """``rows`` holds up to ``limit + 1`` rows: the extra one only says that more follow."""
        if len(rows) > request.limit:
            kept = rows[: request.limit]
            return cls(rows=kept, next_cursor=encode_cursor(kind, key(kept[-1])))
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
