"""The route table: what the app serves and what ``/openapi.json`` describes, from one list."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from commerce.core.auth import Role
from commerce.core.models import Chain, InventoryLevel, Item, LedgerEntry, Store
from commerce.core.pagination import DEFAULT_LIMIT, MAX_LIMIT
from commerce.entrypoints.http import bodies, resources
from commerce.entrypoints.http.context import AppContext
from commerce.entrypoints.http.idempotency import WRITE_METHODS
from commerce.entrypoints.http.operations import Health, OpenAPIDocument, Ready, Status
from commerce.entrypoints.http.params import MAX_ID, MAX_ITEMS_FILTER, TIMESTAMP_PATTERN


@dataclass(frozen=True, slots=True)
class QueryParam:
    name: str
    description: str
    schema: Mapping[str, Any]


LIMIT = QueryParam(
    "limit",
    f"Page size, from 1 to {MAX_LIMIT}; empty (`limit=`) means the default.",
    {
        "anyOf": [
            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
            {"type": "string", "maxLength": 0},
        ],
        "default": DEFAULT_LIMIT,
    },
)
CURSOR = QueryParam(
    "cursor",
    "Opaque cursor of the next page; take it from the previous page's `Link` header.",
    {"type": "string"},
)
_ID = " *[1-9][0-9]{0,17} *"
ITEMS = QueryParam(
    "items",
    f"Only these item ids, comma-separated (at most {MAX_ITEMS_FILTER}); "
    "items the store holds no level of are left out.",
    {
        "type": "string",
        # Ids from 1 up, spaces allowed around them; at most 18 digits keeps every id the
        # pattern admits below 2**63, so that what it admits the API accepts.
        "pattern": rf"^{_ID}(,{_ID}){{0,{MAX_ITEMS_FILTER - 1}}}$",
        "examples": ["3,7,9"],
    },
)


def _timestamp(name: str, description: str) -> QueryParam:
    return QueryParam(
        name,
        description + " RFC 3339, e.g. `2026-01-31T12:00:00Z`; leap seconds are refused.",
        {"type": "string", "format": "date-time", "pattern": TIMESTAMP_PATTERN},
    )


AS_OF = _timestamp(
    "as_of", "The levels as they were at this moment, derived from the change ledger."
)
ITEM_ID = QueryParam(
    "item_id",
    "Only the changes of this item.",
    {"type": "integer", "format": "int64", "minimum": 1, "maximum": MAX_ID},
)
SINCE = _timestamp("since", "Only changes made at or after this moment.")
UNTIL = _timestamp("until", "Only changes made before this moment; later than `since`.")


@dataclass(frozen=True, slots=True)
class Operation:
    """One method on one route, with everything the OpenAPI document says about it."""

    method: str
    operation_id: str
    summary: str
    response: type | None
    """The body's type; with ``many`` or ``batch``, of each element of the array; ``None`` for
    no body (204)."""
    many: bool = False
    """The body is a paginated array."""
    batch: bool = False
    """The body is an array, not paginated."""
    query: tuple[QueryParam, ...] = ()
    """Query parameters besides ``limit`` and ``cursor``, which every ``many`` operation has."""
    role: Role | None = Role.reader
    """The least role that may call it; ``None`` for a public operation."""
    uses_storage: bool = True
    """Whether it can fail with 503 because storage is down."""
    tag: str = "inventory"
    body: type | None = None
    """The request body's type, a msgspec Struct; ``None`` for none."""
    status: int = 200
    etag: bool = False
    """One resource's representation, sent with an ``ETag``; a GET honours ``If-None-Match``."""
    notes: str = ""
    """More for the document's description of the operation."""

    def query_params(self) -> tuple[QueryParam, ...]:
        return (LIMIT, CURSOR, *self.query) if self.many else self.query

    @property
    def writes(self) -> bool:
        """Takes ``Idempotency-Key``."""
        return self.method in WRITE_METHODS

    @property
    def conditional(self) -> bool:
        """Takes ``If-Match``."""
        return self.method in CONDITIONAL_METHODS


CONDITIONAL_METHODS = frozenset({"PUT", "PATCH", "DELETE"})


@dataclass(frozen=True, slots=True)
class Route:
    template: str
    resource: Callable[[AppContext], object]
    """Built once per app; every route naming the same class shares the one instance. A
    collection and one member of it are two classes (``…Collection``, ``…Member``), so every
    responder is a plain ``on_<method>``: no route needs a Falcon responder suffix."""
    operations: tuple[Operation, ...]

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(re.findall(r"{(\w+)}", self.template))


ROUTES: tuple[Route, ...] = (
    Route(
        "/chain",
        resources.ChainCollection,
        (
            Operation("GET", "listChains", "All chains of the caller's tenant", Chain, many=True),
            Operation(
                "POST",
                "createChain",
                "Create a chain",
                Chain,
                role=Role.admin,
                body=bodies.ChainCreate,
                status=201,
                etag=True,
            ),
        ),
    ),
    Route(
        "/chain/{chain_id}",
        resources.ChainMember,
        (
            Operation("GET", "getChain", "One chain", Chain, etag=True),
            Operation(
                "PATCH",
                "updateChain",
                "Change some fields of a chain",
                Chain,
                role=Role.admin,
                body=bodies.ChainUpdate,
                etag=True,
            ),
            Operation(
                "DELETE",
                "deleteChain",
                "Delete a chain that has no stores",
                None,
                role=Role.admin,
                status=204,
                notes="409 while the chain still has stores.",
            ),
        ),
    ),
    Route(
        "/chain/{chain_id}/stores",
        resources.ChainStoreCollection,
        (
            Operation("GET", "listChainStores", "The stores of a chain", Store, many=True),
            Operation(
                "POST",
                "createStore",
                "Open a store in a chain",
                Store,
                role=Role.writer,
                body=bodies.StoreCreate,
                status=201,
                etag=True,
            ),
        ),
    ),
    Route(
        "/stores/{store_id}",
        resources.StoreMember,
        (
            Operation("GET", "getStore", "One store", Store, etag=True),
            Operation(
                "PATCH",
                "updateStore",
                "Change some fields of a store",
                Store,
                role=Role.writer,
                body=bodies.StoreUpdate,
                etag=True,
            ),
            Operation(
                "DELETE",
                "deleteStore",
                "Delete a store that holds no stock",
                None,
                role=Role.admin,
                status=204,
                notes="409 while any level at the store is above zero. Its zero levels go "
                "with it; its change history stays.",
            ),
        ),
    ),
    Route(
        "/stores/{store_id}/inventory",
        resources.StoreLevelCollection,
        (
            Operation(
                "GET",
                "listStoreInventory",
                "The store's inventory levels, optionally only of some items, now or then",
                InventoryLevel,
                many=True,
                query=(ITEMS, AS_OF),
            ),
        ),
    ),
    Route(
        "/stores/{store_id}/inventory/adjustments",
        resources.StoreAdjustments,
        (
            Operation(
                "POST",
                "adjustInventory",
                "Apply a batch of adjustments, all or none",
                InventoryLevel,
                batch=True,
                role=Role.writer,
                body=bodies.AdjustmentBatch,
                notes="Each adjustment is one entry of the change history. If any would take "
                "a level below zero, nothing changes and the 409 (`insufficient-stock`) "
                "lists every item short in `items`. Answers the resulting levels of the "
                "items named, ordered by `item_id`.",
            ),
        ),
    ),
    Route(
        "/stores/{store_id}/inventory/changes",
        resources.StoreChangeCollection,
        (
            Operation(
                "GET",
                "listInventoryChanges",
                "The store's change history: delta, quantity after, reason, who, when",
                LedgerEntry,
                many=True,
                query=(ITEM_ID, SINCE, UNTIL),
                notes="Oldest first: by `id`; with `since` or `until`, by `created_at`, then `id`.",
            ),
        ),
    ),
    Route(
        "/stores/{store_id}/inventory/{item_id}",
        resources.StoreLevelMember,
        (
            Operation(
                "GET", "getLevel", "One item's level at one store", InventoryLevel, etag=True
            ),
            Operation(
                "PUT",
                "setLevel",
                "Set one item's level, as a count does",
                InventoryLevel,
                role=Role.writer,
                body=bodies.QuantitySet,
                etag=True,
                notes="Creates the level if the store holds none. The change history records "
                "the difference it made (reason `count`). With `expected_quantity`, or "
                "`If-Match`, only if the level still holds that: else 409 with "
                "`current_quantity` (412 for `If-Match`).",
            ),
        ),
    ),
    Route(
        "/items",
        resources.ItemCollection,
        (
            Operation("GET", "listItems", "The item catalogue", Item, many=True),
            Operation(
                "POST",
                "createItem",
                "Add an item to the catalogue",
                Item,
                role=Role.writer,
                body=bodies.ItemCreate,
                status=201,
                etag=True,
                notes="409 if the tenant has an item with that `sku` already.",
            ),
        ),
    ),
    Route(
        "/items/{item_id}",
        resources.ItemMember,
        (
            Operation("GET", "getItem", "One item", Item, etag=True),
            Operation(
                "PATCH",
                "updateItem",
                "Change some fields of an item",
                Item,
                role=Role.writer,
                body=bodies.ItemUpdate,
                etag=True,
                notes="409 if the new `sku` is another item's.",
            ),
            Operation(
                "DELETE",
                "deleteItem",
                "Delete an item no store holds",
                None,
                role=Role.admin,
                status=204,
                notes="409 while any store holds some. Its zero levels go with it.",
            ),
        ),
    ),
    Route(
        "/items/{item_id}/inventory",
        resources.ItemLevelCollection,
        (
            Operation(
                "GET",
                "listItemInventory",
                "The item's inventory levels across the tenant's stores",
                InventoryLevel,
                many=True,
            ),
        ),
    ),
    Route(
        "/healthz",
        Health,
        (
            Operation(
                "GET",
                "getHealth",
                "Liveness: the process answers",
                Status,
                role=None,
                uses_storage=False,
                tag="operations",
            ),
        ),
    ),
    Route(
        "/readyz",
        Ready,
        (
            Operation(
                "GET",
                "getReadiness",
                "Readiness: storage answers, the schema is current, no stop has begun",
                Status,
                role=None,
                tag="operations",
            ),
        ),
    ),
    Route(
        "/openapi.json",
        OpenAPIDocument,
        (
            Operation(
                "GET",
                "getOpenAPI",
                "This OpenAPI document",
                dict,
                role=None,
                uses_storage=False,
                tag="operations",
            ),
        ),
    ),
)


def operations() -> Iterator[tuple[Route, Operation]]:
    for route in ROUTES:
        for op in route.operations:
            yield route, op


def write_operations() -> set[tuple[str, str]]:
    """(URI template, method) of every operation that takes ``Idempotency-Key``."""
    return {(route.template, op.method) for route, op in operations() if op.writes}


def required_roles() -> dict[tuple[str, str], Role | None]:
    """(URI template, method) -> the role it needs, for the authentication middleware.

    HEAD needs what GET needs: it is the same operation without the body (``answers_head``).
    """
    roles = {(route.template, op.method): op.role for route, op in operations()}
    for (template, method), role in list(roles.items()):
        if method == "GET":
            roles.setdefault((template, "HEAD"), role)
    return roles


def answers_head(resource: object) -> object:
    """``resource``, answering HEAD with its GET responder wherever it has one (RFC 9110 9.3.2).

    Falcon drops the body of a response to HEAD and keeps its ``Content-Length``, so the GET
    responder gives HEAD the same status and headers (``ETag``, ``Link``, a 304 or a 404)
    without a second implementation to keep in step. The OpenAPI document lists GET only:
    HEAD is implied by it, as RFC 9110 requires.
    """
    get = getattr(resource, "on_get", None)
    if get is not None and getattr(resource, "on_head", None) is None:
        # Falcon finds responders by attribute when the route is added: an instance
        # attribute is enough, and no resource class has to spell out an alias.
        setattr(resource, "on_head", get)  # noqa: B010
    return resource
