"""HEAD works wherever GET does (RFC 9110 9.3.2): the same status and headers, no body."""

from __future__ import annotations

import falcon.testing
import pytest

from commerce.entrypoints.http.routes import ROUTES, Route
from tests.http.conftest import READER_TOKEN, App, Seed, client_for

pytestmark = pytest.mark.http

GET_ROUTES = [
    pytest.param(route, id=route.template)
    for route in ROUTES
    if any(op.method == "GET" for op in route.operations)
]
VARYING = {"x-request-id"}
"""Headers that differ between any two requests, whatever their method."""


def _path(route: Route, seed: Seed, missing: bool = False) -> str:
    ids = {
        "chain_id": seed.chains[0].id,
        "store_id": seed.stores[0].id,
        "item_id": seed.items[0].id,
    }
    if missing:
        ids = dict.fromkeys(ids, 9_999_999)
    return route.template.format(**{name: ids[name] for name in route.path_params})


def _same_answer(client: falcon.testing.TestClient, path: str, **kwargs: object) -> None:
    got = client.simulate_get(path, **kwargs)  # type: ignore[arg-type]
    head = client.simulate_head(path, **kwargs)  # type: ignore[arg-type]
    assert head.status_code == got.status_code, (path, head.status_code, got.status_code)
    assert head.content == b""
    strip = lambda headers: {k: v for k, v in headers.items() if k.lower() not in VARYING}  # noqa: E731
    assert strip(head.headers) == strip(got.headers), path
    assert head.headers["X-Request-ID"]


@pytest.mark.parametrize("route", GET_ROUTES)
def test_head_answers_as_get_does_without_the_body(
    client: falcon.testing.TestClient, seed: Seed, route: Route
) -> None:
    _same_answer(client, _path(route, seed))


@pytest.mark.parametrize("route", [r for r in GET_ROUTES if r.values[0].path_params])  # type: ignore[union-attr]
def test_head_of_a_missing_resource_is_the_same_404_without_the_body(
    client: falcon.testing.TestClient, seed: Seed, route: Route
) -> None:
    _same_answer(client, _path(route, seed, missing=True))


def test_head_keeps_the_content_length_and_link_of_the_get(
    client: falcon.testing.TestClient,
) -> None:
    got = client.simulate_get("/chain", params={"limit": "1"})
    head = client.simulate_head("/chain", params={"limit": "1"})
    assert head.headers["Content-Length"] == str(len(got.content)) != "0"
    assert head.headers["Link"] == got.headers["Link"]


def test_head_with_a_matching_if_none_match_is_a_304_as_get_is(
    client: falcon.testing.TestClient, seed: Seed
) -> None:
    path = f"/items/{seed.items[0].id}"
    etag = client.simulate_get(path).headers["ETag"]
    result = client.simulate_head(path, headers={"If-None-Match": etag})
    assert result.status_code == 304
    assert result.headers["ETag"] == etag


def test_head_needs_the_credentials_get_needs(app: App, seed: Seed) -> None:
    anonymous = client_for(app, token=None)
    assert anonymous.simulate_head("/chain").status_code == 401
    assert anonymous.simulate_head("/healthz").status_code == 200
    assert client_for(app, READER_TOKEN).simulate_head("/chain").status_code == 200


def test_head_of_a_malformed_query_is_the_same_400(client: falcon.testing.TestClient) -> None:
    _same_answer(client, "/chain", params={"cursor": "forged"})


def test_a_route_without_get_does_not_answer_head(
    client: falcon.testing.TestClient, seed: Seed
) -> None:
    result = client_for(client.app, "acme-writer").simulate_head(
        f"/stores/{seed.stores[0].id}/inventory/adjustments"
    )
    assert result.status_code == 405
    assert "HEAD" not in result.headers["Allow"]


def test_allow_lists_head_beside_get(client: falcon.testing.TestClient) -> None:
    result = client.simulate_post("/healthz")
    assert result.status_code == 405
    allowed = [m.strip() for m in result.headers["Allow"].split(",")]
    assert "GET" in allowed
    assert "HEAD" in allowed
