"""Authentication: bearer tokens, authenticators tried in order, public routes, 401s."""

from __future__ import annotations

import falcon
import falcon.testing
import pytest

from commerce.core.auth import Principal, Role
from commerce.core.errors import Unauthorized
from commerce.entrypoints.http.app import create_app
from commerce.entrypoints.http.problems import MEDIA_PROBLEM, PROBLEM_BASE
from tests.http.conftest import (
    ACME,
    GLOBEX,
    PRINCIPALS,
    READER_TOKEN,
    App,
    Seed,
    TokenAuthenticator,
)

pytestmark = pytest.mark.http

PROTECTED = [
    "/chain",
    "/chain/1",
    "/chain/1/stores",
    "/stores/4",
    "/stores/4/inventory",
    "/items",
    "/items/1",
    "/items/1/inventory",
]


def _assert_401(result: falcon.testing.Result) -> None:
    assert result.status_code == 401
    assert result.headers["Content-Type"] == MEDIA_PROBLEM
    assert result.json["type"] == PROBLEM_BASE + "unauthorized"
    assert result.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", PROTECTED)
def test_a_request_without_credentials_is_a_401_with_www_authenticate(
    anonymous: falcon.testing.TestClient, path: str
) -> None:
    result = anonymous.simulate_get(path)
    _assert_401(result)
    assert "invalid_token" not in result.headers["WWW-Authenticate"]


@pytest.mark.parametrize("path", PROTECTED)
def test_an_unknown_token_is_a_401_saying_the_token_is_invalid(
    anonymous: falcon.testing.TestClient, path: str
) -> None:
    result = anonymous.simulate_get(path, headers={"Authorization": "Bearer not-a-key"})
    _assert_401(result)
    assert 'error="invalid_token"' in result.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    "header", ["Basic YWxpY2U6c2VjcmV0", "Bearer", "Bearer    ", READER_TOKEN, "Token acme-reader"]
)
def test_an_authorization_header_without_a_bearer_token_is_a_401(
    anonymous: falcon.testing.TestClient, header: str
) -> None:
    _assert_401(anonymous.simulate_get("/chain", headers={"Authorization": header}))


def test_the_bearer_scheme_is_case_insensitive(anonymous: falcon.testing.TestClient) -> None:
    result = anonymous.simulate_get("/chain", headers={"Authorization": f"bearer {READER_TOKEN}"})
    assert result.status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/openapi.json"])
def test_operational_routes_need_no_credentials(
    anonymous: falcon.testing.TestClient, path: str
) -> None:
    assert anonymous.simulate_get(path).status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/openapi.json"])
def test_operational_routes_ignore_bad_credentials(
    anonymous: falcon.testing.TestClient, path: str
) -> None:
    result = anonymous.simulate_get(path, headers={"Authorization": "Bearer nonsense"})
    assert result.status_code == 200


def test_a_wrong_method_without_credentials_is_a_401_not_a_405(
    anonymous: falcon.testing.TestClient,
) -> None:
    # Methods the table does not list are never public by accident.
    _assert_401(anonymous.simulate_delete("/chain"))


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/openapi.json"])
def test_a_wrong_method_on_a_public_route_is_a_405_without_credentials(
    anonymous: falcon.testing.TestClient, path: str
) -> None:
    result = anonymous.simulate_request("TRACE", path)
    assert result.status_code == 405
    assert "GET" in [m.strip() for m in result.headers["Allow"].split(",")]


class Fixed:
    """Answers every request, with or without a token, as one principal."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal
        self.calls = 0

    def authenticate(self, token: str | None) -> Principal | None:
        self.calls += 1
        return self.principal


class Never:
    def __init__(self) -> None:
        self.calls = 0

    def authenticate(self, token: str | None) -> Principal | None:
        self.calls += 1
        return None


def _chain_names(app: App, token: str | None) -> list[str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    result = falcon.testing.TestClient(app).simulate_get("/chain", headers=headers)
    assert result.status_code == 200, result.text
    return [c["name"] for c in result.json]


def test_the_first_authenticator_that_answers_wins(seed: Seed) -> None:
    never = Never()
    globex = Fixed(Principal(GLOBEX, "g", Role.reader))
    acme = Fixed(Principal(ACME, "a", Role.reader))
    app = create_app(seed.storage, [never, globex, acme])
    assert _chain_names(app, "anything") == ["Globex Mart"]
    assert (never.calls, globex.calls, acme.calls) == (1, 1, 0)


def test_a_token_based_authenticator_passes_to_the_next_when_there_is_no_token(
    seed: Seed,
) -> None:
    fallback = Fixed(Principal(GLOBEX, "g", Role.reader))
    app = create_app(seed.storage, [TokenAuthenticator(PRINCIPALS), fallback])
    assert _chain_names(app, None) == ["Globex Mart"]
    assert _chain_names(app, READER_TOKEN) == ["North Foods", "South Foods", "Empty Foods"]


def test_an_authenticator_refusing_a_token_stops_the_search(seed: Seed) -> None:
    fallback = Fixed(Principal(GLOBEX, "g", Role.reader))
    app = create_app(seed.storage, [TokenAuthenticator(PRINCIPALS), fallback])
    result = falcon.testing.TestClient(app).simulate_get(
        "/chain", headers={"Authorization": "Bearer forged"}
    )
    _assert_401(result)
    assert fallback.calls == 0


def test_no_authenticators_means_every_protected_route_is_a_401(seed: Seed) -> None:
    client = falcon.testing.TestClient(create_app(seed.storage, []))
    _assert_401(client.simulate_get("/chain", headers={"Authorization": f"Bearer {READER_TOKEN}"}))
    assert client.simulate_get("/healthz").status_code == 200


class Revoked:
    def authenticate(self, token: str | None) -> Principal | None:
        raise Unauthorized("this key was revoked")


def test_the_authenticators_reason_is_the_problems_detail(seed: Seed) -> None:
    client = falcon.testing.TestClient(create_app(seed.storage, [Revoked()]))
    result = client.simulate_get("/chain", headers={"Authorization": "Bearer old"})
    _assert_401(result)
    assert result.json["detail"] == "this key was revoked"
