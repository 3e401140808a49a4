"""Tenant isolation as a property: random principals sending random requests to every route,
over random multi-tenant data, never see or change another tenant's rows, on every backend."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import falcon.testing
import pytest
from hypothesis import given
from hypothesis import strategies as st

from commerce.core.auth import Principal, Role
from commerce.core.errors import Unauthorized
from commerce.core.models import ChangeFilter, NewChain, NewItem, NewStore
from commerce.core.ports import Storage
from commerce.entrypoints.http.app import create_app
from commerce.entrypoints.http.routes import ROUTES, Operation, Route
from tests.contract.base import unique_tenant

pytestmark = pytest.mark.property

KINDS = ("chain", "store", "item")
_skus = itertools.count(1)

OPERATIONS: list[tuple[Route, Operation]] = [
    (route, op) for route in ROUTES for op in route.operations if op.role is not None
]
"""Every operation that acts for a tenant: every route but the public probes and the document."""


class Tokens:
    """``<tenant>:<role>`` tokens, so a request's principal is plain to read in a failure."""

    def authenticate(self, token: str | None) -> Principal | None:
        if token is None or token.count(":") != 1:
            raise Unauthorized("no such token")
        tenant, role = token.split(":")
        return Principal(tenant=tenant, subject=f"user-of-{tenant}", role=Role[role])


def _populate(storage: Storage, tenant: str, draw: Callable[..., Any]) -> dict[str, set[int]]:
    catalogue, inventory = storage.catalogue, storage.inventory
    owned: dict[str, set[int]] = {kind: set() for kind in KINDS}
    items = [
        catalogue.create_item(
            tenant, NewItem(sku=f"ISO-{next(_skus)}", name="Item", cost=Decimal("1.25"))
        ).id
        for _ in range(draw(st.integers(min_value=1, max_value=3)))
    ]
    owned["item"].update(items)
    for _ in range(draw(st.integers(min_value=1, max_value=2))):
        chain = catalogue.create_chain(tenant, NewChain(name="Chain")).id
        owned["chain"].add(chain)
        for _ in range(draw(st.integers(min_value=0, max_value=2))):
            shop = catalogue.create_store(tenant, NewStore(chain_id=chain, name="Shop")).id
            owned["store"].add(shop)
            for item in items:
                if draw(st.booleans()):
                    quantity = draw(st.integers(min_value=0, max_value=20))
                    inventory.set_quantity(tenant, shop, item, quantity, actor="setup")
    return owned


def _snapshot(storage: Storage, tenant: str, owned: dict[str, set[int]]) -> object:
    """Everything a tenant has, as the storage ports (not the API) report it."""
    catalogue, inventory = storage.catalogue, storage.inventory
    chains = catalogue.list_chains(tenant, after=None, limit=1000)
    items = catalogue.list_items(tenant, after=None, limit=1000)
    shops = [s for c in chains for s in catalogue.list_stores(tenant, c.id, after=None, limit=1000)]
    levels = [
        inventory.list_levels(tenant, s.id, item_ids=None, after=None, limit=1000) for s in shops
    ]
    ledgers = [
        inventory.list_changes(tenant, s.id, ChangeFilter(), after=None, limit=1000) for s in shops
    ]
    return (list(chains), list(items), shops, levels, ledgers)


def _body(op: Operation, draw: Callable[..., Any], ids: list[int]) -> dict[str, Any] | None:
    match op.operation_id:
        case "createChain" | "updateChain" | "createStore" | "updateStore":
            return {"name": "Renamed"}
        case "createItem":
            return {"sku": f"NEW-{next(_skus)}", "name": "New", "cost": "2.00"}
        case "updateItem":
            return {"name": "Renamed", "cost": "3.50"}
        case "setLevel":
            return {"quantity": draw(st.integers(min_value=0, max_value=9))}
        case "adjustInventory":
            lines = draw(
                st.lists(
                    st.tuples(st.sampled_from(ids), st.integers(-3, 5).filter(bool)),
                    min_size=1,
                    max_size=3,
                )
            )
            return {
                "adjustments": [
                    {"item_id": i, "delta": d, "reason": "correction"} for i, d in lines
                ]
            }
    return None


def _kind_of(op: Operation) -> str | None:
    name = getattr(op.response, "__name__", "")
    return {"Chain": "chain", "Store": "store", "Item": "item"}.get(name)


def _check_rows(body: Any, op: Operation, owned: dict[str, set[int]]) -> None:
    rows = body if isinstance(body, list) else [body]
    kind = _kind_of(op)
    for row in rows:
        assert isinstance(row, dict)
        if kind is not None:
            assert row["id"] in owned[kind], (op.operation_id, row)
        if "chain_id" in row:
            assert row["chain_id"] in owned["chain"], (op.operation_id, row)
        if "store_id" in row:
            assert row["store_id"] in owned["store"], (op.operation_id, row)
        if "item_id" in row:
            assert row["item_id"] in owned["item"], (op.operation_id, row)


@given(data=st.data())
def test_no_request_by_any_principal_ever_sees_or_changes_another_tenants_rows(
    storage: Storage, data: st.DataObject
) -> None:
    draw = data.draw
    tenants = [unique_tenant(storage.catalogue, "iso") for _ in range(3)]
    owned = {t: _populate(storage, t, draw) for t in tenants}
    # Per kind, every tenant's ids and one nobody has: a draw's meaning does not depend on
    # which ids the storage happened to hand out, so Hypothesis can replay it exactly.
    pool = {
        kind: [*sorted(i for t in tenants for i in owned[t][kind]), 987_654_321] for kind in KINDS
    }
    client = falcon.testing.TestClient(create_app(storage, [Tokens()]))

    for _ in range(draw(st.integers(min_value=1, max_value=10), label="requests")):
        tenant = draw(st.sampled_from(tenants), label="tenant")
        role = draw(st.sampled_from(list(Role)), label="role")
        route, op = draw(st.sampled_from(OPERATIONS), label="operation")
        params = {
            name: draw(st.sampled_from(pool[name.removesuffix("_id")]))
            for name in route.path_params
        }
        path = route.template.format(**params)
        query = ""
        if op.operation_id == "listStoreInventory" and draw(st.booleans()):
            chosen = draw(st.lists(st.sampled_from(pool["item"]), min_size=1, max_size=5))
            query = "items=" + ",".join(map(str, chosen))
        body = _body(op, draw, pool["item"])
        named = {(name.removesuffix("_id"), value) for name, value in params.items()} | {
            ("item", line["item_id"]) for line in (body or {}).get("adjustments", [])
        }
        foreign = {(kind, i) for kind, i in named if i not in owned[tenant][kind]}
        others = [t for t in tenants if t != tenant]
        before = {t: _snapshot(storage, t, owned[t]) for t in others} if foreign else {}

        response = client.simulate_request(
            op.method,
            path,
            query_string=query,
            json=body,
            headers={"Authorization": f"Bearer {tenant}:{role.name}"},
        )

        assert response.status_code < 500, (op.operation_id, response.text)
        if foreign:
            # Another tenant's id answers exactly like a missing one (or the role stops it first).
            assert response.status_code in (403, 404), (op.operation_id, path, response.text)
            assert before == {t: _snapshot(storage, t, owned[t]) for t in others}
        if response.status_code < 300 and response.content:
            if response.status_code == 201 and (kind := _kind_of(op)):
                owned[tenant][kind].add(response.json["id"])
            _check_rows(response.json, op, owned[tenant])
