"""Domain types: tenants, chains, stores, items, inventory levels and their change ledger."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum

TENANT_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

DEFAULT_TENANT = "demo"
"""The tenant that requests act for when no authenticator names one."""


@dataclass(frozen=True, slots=True)
class Tenant:
    """The unit of data isolation: every chain and item belongs to exactly one tenant."""

    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Chain:
    id: int
    name: str
    phone: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Store:
    id: int
    chain_id: int
    name: str
    phone: str
    address: str
    postal_code: str
    city: str
    country: str
    active: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Item:
    """A physical product. ``cost`` is exact money, never a binary float."""

    id: int
    sku: str
    name: str
    cost: Decimal
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class InventoryLevel:
    """How many of one item one store holds."""

    store_id: int
    item_id: int
    quantity: int
    updated_at: datetime


# What a caller supplies to create a row; ids and timestamps come from the store.


@dataclass(frozen=True, slots=True)
class NewChain:
    name: str
    phone: str = ""


@dataclass(frozen=True, slots=True)
class NewStore:
    chain_id: int
    name: str
    phone: str = ""
    address: str = ""
    postal_code: str = ""
    city: str = ""
    country: str = ""
    active: bool = True


@dataclass(frozen=True, slots=True)
class NewItem:
    sku: str
    name: str
    cost: Decimal


# What a caller changes in a row; ``None`` leaves a field as it is.


@dataclass(frozen=True, slots=True)
class ChainPatch:
    name: str | None = None
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class StorePatch:
    name: str | None = None
    phone: str | None = None
    address: str | None = None
    postal_code: str | None = None
    city: str | None = None
    country: str | None = None
    active: bool | None = None


@dataclass(frozen=True, slots=True)
class ItemPatch:
    sku: str | None = None
    name: str | None = None
    cost: Decimal | None = None


class Reason(Enum):
    """Why a quantity changed; every ledger entry carries one. ``value`` is the wire form."""

    received = "received"
    sold = "sold"
    returned = "returned"
    damaged = "damaged"
    lost = "lost"
    count = "count"
    transfer_in = "transfer_in"
    transfer_out = "transfer_out"
    correction = "correction"


@dataclass(frozen=True, slots=True)
class Adjustment:
    """Add ``delta`` (negative to take away) to one item's level at a store."""

    item_id: int
    delta: int
    reason: Reason
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One change of one level, appended in the same transaction as the change itself.

    The entries of a level, summed, give its quantity; the last one at or before a moment
    gives the quantity at that moment.
    """

    id: int
    store_id: int
    item_id: int
    delta: int
    quantity_after: int
    reason: Reason
    reference: str | None
    actor: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ChangeFilter:
    """Which ledger entries of a store to list: one item, a time range (``since <= t < until``)."""

    item_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None

    @property
    def by_time(self) -> bool:
        """Whether the entries are listed in time order, ``(created_at, id)``, instead of by
        ``id``: when ``since`` or ``until`` is given, so that a backend reads exactly the range
        between them on an index of the store's history by time. In id order it would walk
        the entries before ``since`` (or, on the last page, after ``until``) to filter them
        out, as ids do not follow times closely enough to bound a range by a time."""
        return self.since is not None or self.until is not None


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A response kept under an idempotency key, replayed to a retry of the same request."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
