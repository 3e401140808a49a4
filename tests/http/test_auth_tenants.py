"""A principal's tenant must be well-formed and exist, whichever authenticator vouched for it."""

from __future__ import annotations

import time
from typing import Any

import falcon.testing
import jwt
import pytest

from commerce.adapters.auth.jwt import JwtAuthenticator
from commerce.core import usecases
from commerce.core.auth import Principal, Role
from commerce.core.errors import Unauthorized
from commerce.core.ports import Storage
from commerce.entrypoints.bootstrap import (
    TENANT_CACHE_LIMIT,
    TenantCheck,
    TenantChecked,
    bootstrap,
)
from commerce.entrypoints.config import Settings
from commerce.entrypoints.http.app import create_app
from commerce.plugins import get_plugin_manager
from tests.http.conftest import ACME, PRINCIPALS, READER_TOKEN, TokenAuthenticator

pytestmark = pytest.mark.http

SECRET = "a-shared-secret-of-at-least-32-bytes!"

MALFORMED = {
    "a NUL": "acme\x00",
    "100 characters": "a" * 100,
    "upper case": "ACME",
    "a space": "ac me",
    "empty": "",
    "a newline": "acme\n",
}


def _token(tenant: str) -> str:
    claims: dict[str, Any] = {
        "sub": "user-1",
        "tenant": tenant,
        "role": "admin",
        "exp": int(time.time()) + 300,
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


def _checked_jwt_app(storage: Storage) -> falcon.testing.TestClient:
    check = TenantCheck(lambda tenant: usecases.tenant_exists(storage.catalogue, tenant))
    authenticator = check.around(JwtAuthenticator.from_settings({"jwt_secret": SECRET}))
    return falcon.testing.TestClient(create_app(storage, [authenticator]))


def _get(client: falcon.testing.TestClient, token: str) -> falcon.testing.Result:
    return client.simulate_get("/chain", headers={"Authorization": f"Bearer {token}"})


class Counting:
    """``exists`` over a set of tenants, counting how often storage would be asked."""

    def __init__(self, *tenants: str) -> None:
        self.tenants = set(tenants)
        self.asked = 0

    def __call__(self, tenant: str) -> bool:
        self.asked += 1
        return tenant in self.tenants


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# -- the use case, on every backend -----------------------------------------------------------


@pytest.mark.parametrize("tenant", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_tenant_id_does_not_exist_on_any_backend(storage: Storage, tenant: str) -> None:
    assert usecases.tenant_exists(storage.catalogue, tenant) is False


def test_a_tenant_exists_once_it_is_created(storage: Storage) -> None:
    assert usecases.tenant_exists(storage.catalogue, ACME) is False
    usecases.create_tenant(storage.catalogue, ACME)
    assert usecases.tenant_exists(storage.catalogue, ACME) is True


# -- JWTs over HTTP, on every backend ---------------------------------------------------------


@pytest.mark.parametrize("tenant", [*MALFORMED.values(), "ghost"], ids=[*MALFORMED, "unknown"])
def test_a_signed_jwt_whose_tenant_is_malformed_or_unknown_is_a_401_never_a_500(
    storage: Storage, tenant: str
) -> None:
    usecases.create_tenant(storage.catalogue, ACME)
    client = _checked_jwt_app(storage)
    refused = _get(client, _token(tenant))
    assert refused.status_code == 401
    # The same body as any refused token: nothing says the signature was good.
    forged = _get(client, _token(ACME)[:-4] + "AAAA")
    assert refused.json == forged.json
    assert refused.json["detail"] == "the bearer token was not accepted"
    assert _get(client, _token(ACME)).status_code == 200


# -- the check ------------------------------------------------------------------------------


def test_a_principal_of_a_known_tenant_is_passed_through_and_none_stays_none() -> None:
    checked = TenantCheck(Counting(ACME)).around(TokenAuthenticator(PRINCIPALS))
    assert checked.authenticate(READER_TOKEN) == PRINCIPALS[READER_TOKEN]
    assert checked.authenticate(None) is None


def test_a_refusal_of_the_wrapped_authenticator_is_passed_through() -> None:
    checked = TenantCheck(Counting(ACME)).around(TokenAuthenticator(PRINCIPALS))
    with pytest.raises(Unauthorized, match="unknown token"):
        checked.authenticate("no-such-token")


def test_a_removed_tenant_is_refused_once_the_cache_lets_go_of_it() -> None:
    exists, clock = Counting(ACME), Clock()
    check = TenantCheck(exists, cache_seconds=5, monotonic=clock)
    principal = Principal(ACME, "alice", Role.reader)
    assert check.check(principal) is principal
    assert check.check(principal) is principal
    assert exists.asked == 1  # the second came from the cache
    exists.tenants.clear()
    clock.now += 4.9
    assert check.check(principal) is principal
    clock.now += 0.2
    with pytest.raises(Unauthorized, match="the bearer token was not accepted"):
        check.check(principal)


def test_an_unknown_tenant_is_not_cached_so_it_is_let_in_as_soon_as_it_is_created() -> None:
    exists = Counting()
    check = TenantCheck(exists, monotonic=Clock())
    principal = Principal(ACME, "alice", Role.reader)
    with pytest.raises(Unauthorized):
        check.check(principal)
    exists.tenants.add(ACME)
    assert check.check(principal) is principal


def test_the_cache_holds_a_bounded_number_of_tenants() -> None:
    check = TenantCheck(lambda tenant: True, monotonic=Clock())
    for n in range(TENANT_CACHE_LIMIT + 10):
        check.check(Principal(f"t{n}", "s", Role.reader))
    assert len(check._known) <= TENANT_CACHE_LIMIT


# -- wired by bootstrap ---------------------------------------------------------------------


def test_bootstrap_checks_the_tenant_of_every_authenticator_but_none() -> None:
    settings = Settings(
        database_url="memory://",
        auth=("jwt", "apikeys", "none"),
        extra={"jwt_secret": SECRET},
    )
    jwt_auth, keys, none = bootstrap(settings, get_plugin_manager()).authenticators
    assert isinstance(jwt_auth, TenantChecked)
    assert isinstance(keys, TenantChecked)
    assert not isinstance(none, TenantChecked)


def test_an_api_key_of_a_tenant_that_exists_is_let_in_through_bootstrap() -> None:
    runtime = bootstrap(Settings(database_url="memory://"), get_plugin_manager())
    usecases.create_tenant(runtime.storage.catalogue, ACME)
    token, _ = usecases.create_api_key(runtime.storage.api_keys, ACME, Role.reader)
    client = falcon.testing.TestClient(create_app(runtime.storage, runtime.authenticators))
    assert _get(client, token).status_code == 200


def test_auth_none_on_memory_serves_its_tenant_without_creating_it_as_the_readme_shows() -> None:
    settings = Settings.from_env({"COMMERCE_DATABASE_URL": "memory://", "COMMERCE_AUTH": "none"})
    runtime = bootstrap(settings, get_plugin_manager())
    client = falcon.testing.TestClient(create_app(runtime.storage, runtime.authenticators))
    assert client.simulate_get("/chain").status_code == 200
