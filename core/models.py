"""Domain types: tenants, chains, stores, items and inventory levels."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

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
