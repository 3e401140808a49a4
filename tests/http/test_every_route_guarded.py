"""Every operation that acts for a tenant refuses callers without credentials or the role."""

from __future__ import annotations

import falcon.testing
import pytest

from commerce.core.auth import Role
from commerce.entrypoints.http.routes import ROUTES, Operation, Route
from tests.http.conftest import READER_TOKEN, WRITER_TOKEN, Seed

pytestmark = pytest.mark.http

GUARDED = [
    pytest.param(route, op, id=f"{op.method} {route.template}")
    for route in ROUTES
    for op in route.operations
    if op.role is not None
]
TOKEN_OF_ROLE = {Role.reader: READER_TOKEN, Role.writer: WRITER_TOKEN}


def _path(route: Route, seed: Seed) -> str:
    ids = {
        "chain_id": seed.chains[0].id,
        "store_id": seed.stores[0].id,
        "item_id": seed.items[0].id,
    }
    return route.template.format(**{name: ids[name] for name in route.path_params})


@pytest.mark.parametrize(("route", "op"), GUARDED)
def test_every_tenant_operation_without_credentials_is_a_401_with_www_authenticate(
    anonymous: falcon.testing.TestClient, seed: Seed, route: Route, op: Operation
) -> None:
    result = anonymous.simulate_request(op.method, _path(route, seed), json={})
    assert result.status_code == 401
    assert result.headers["WWW-Authenticate"].startswith("Bearer")
    assert result.headers["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("route", "op"),
    [p for p in GUARDED if p.values[1].role is not Role.reader],  # type: ignore[union-attr]
)
def test_every_write_refuses_a_role_below_the_one_it_needs_with_a_403(
    seed: Seed, app: falcon.App, route: Route, op: Operation
) -> None:
    assert op.role is not None
    for role, token in TOKEN_OF_ROLE.items():
        if role >= op.role:
            continue
        client = falcon.testing.TestClient(app, headers={"Authorization": f"Bearer {token}"})
        result = client.simulate_request(op.method, _path(route, seed), json={})
        assert result.status_code == 403, (role.name, result.text)
        assert result.json["status"] == 403
