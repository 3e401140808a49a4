"""The route table: what the app serves and what ``/openapi.json`` describes, from one list."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from core.auth import Role
from core.models import Chain, InventoryLevel, Item, Store
from core.pagination import DEFAULT_LIMIT, MAX_LIMIT
from core.services import MAX_ITEMS_FILTER
from entrypoints.http import resources
from entrypoints.http.resources import AppContext, Status


@dataclass(frozen=True, slots=True)
class QueryParam:
    name: str
    description: str
    schema: Mapping[str, Any]


LIMIT = QueryParam(
    "limit",
    f"Page size, from 1 to {MAX_LIMIT}.",
    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
)
CURSOR = QueryParam(
    "cursor",
    "Opaque cursor of the next page; take it from the previous page's `Link` header.",
    {"type": "string"},
)
ITEMS = QueryParam(
    "items",
    f"Only these item ids, comma-separated (at most {MAX_ITEMS_FILTER}); "
    "items the store holds no level of are left out.",
    {"type": "string", "pattern": r"^[0-9]+(,[0-9]+)*$", "examples": ["3,7,9"]},
)


@dataclass(frozen=True, slots=True)
class Operation:
    """One method on one route, with everything the OpenAPI document says about it."""

    method: str
    operation_id: str
    summary: str
    response: type
    """The body's type; with ``many``, the type of each element of a paginated array."""
    many: bool = False
    query: tuple[QueryParam, ...] = ()
    """Query parameters besides ``limit`` and ``cursor``, which every ``many`` operation has."""
    role: Role | None = Role.reader
    """The least role that may call it; ``None`` for a public operation."""
    uses_storage: bool = True
    """Whether it can fail with 503 because storage is down."""
    tag: str = "inventory"

    def query_params(self) -> tuple[QueryParam, ...]:
        return (LIMIT, CURSOR, *self.query) if self.many else self.query


@dataclass(frozen=True, slots=True)
class Route:
    template: str
    resource: Callable[[AppContext], object]
    """Built once per app; every route naming the same class shares the one instance."""
    operations: tuple[Operation, ...]
    suffix: str | None = None
    """Falcon's responder suffix: ``"item"`` routes GET to ``on_get_item``."""

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(re.findall(r"{(\w+)}", self.template))


ROUTES: tuple[Route, ...] = (
    Route(
        "/chain",
        resources.Chains,
        (Operation("GET", "listChains", "All chains of the caller's tenant", Chain, many=True),),
    ),
    Route(
        "/chain/{chain_id}",
        resources.Chains,
        (Operation("GET", "getChain", "One chain", Chain),),
        suffix="item",
    ),
    Route(
        "/chain/{chain_id}/stores",
        resources.ChainStores,
        (Operation("GET", "listChainStores", "The stores of a chain", Store, many=True),),
    ),
    Route(
        "/stores/{store_id}",
        resources.Stores,
        (Operation("GET", "getStore", "One store", Store),),
        suffix="item",
    ),
    Route(
        "/stores/{store_id}/inventory",
        resources.StoreInventory,
        (
            Operation(
                "GET",
                "listStoreInventory",
                "The store's inventory levels, optionally only of some items",
                InventoryLevel,
                many=True,
                query=(ITEMS,),
            ),
        ),
    ),
    Route(
        "/items",
        resources.Items,
        (Operation("GET", "listItems", "The item catalogue", Item, many=True),),
    ),
    Route(
        "/items/{item_id}",
        resources.Items,
        (Operation("GET", "getItem", "One item", Item),),
        suffix="item",
    ),
    Route(
        "/items/{item_id}/inventory",
        resources.ItemInventory,
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
        resources.Health,
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
        resources.Ready,
        (
            Operation(
                "GET",
                "getReadiness",
                "Readiness: storage answers",
                Status,
                role=None,
                tag="operations",
            ),
        ),
    ),
    Route(
        "/openapi.json",
        resources.OpenAPIDocument,
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


def required_roles() -> dict[tuple[str, str], Role | None]:
    """(URI template, method) -> the role it needs, for the authentication middleware."""
    return {(route.template, op.method): op.role for route, op in operations()}
