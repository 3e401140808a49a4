"""API keys end to end through the app: the real authenticator over real storage."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import falcon.testing
import pytest

from commerce.adapters.auth import apikeys
from commerce.adapters.auth.apikeys import (
    DEFAULT_CACHE_SECONDS,
    DEFAULT_TOUCH_SECONDS,
    ApiKeyAuthenticator,
)
from commerce.adapters.storage.memory import memory_storage
from commerce.adapters.storage.sql import AlembicSchemaManager, SqlStorage, open_sql_storage
from commerce.core import usecases
from commerce.core.apikeys import ApiKey, NewApiKey, new_api_key, parse_api_key
from commerce.core.auth import Principal, Role
from commerce.core.errors import Misconfigured, StorageUnavailable, Unauthorized
from commerce.core.ports import ApiKeys, Storage
from commerce.entrypoints.bootstrap import TenantChecked, bootstrap
from commerce.entrypoints.config import Settings
from commerce.entrypoints.http.app import create_app
from commerce.plugins import get_plugin_manager
from tests.http.conftest import (
    ACME,
    GLOBEX,
    PRINCIPALS,
    READER_TOKEN,
    App,
    Seed,
    TokenAuthenticator,
    client_for,
)

pytestmark = pytest.mark.http


class FakeMonotonic:
    """A monotonic clock that moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class WallClock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Keys:
    storage: Storage
    app: App
    monotonic: FakeMonotonic
    wall: WallClock
    reader: str
    writer: str
    globex: str

    def client(self, token: str | None) -> falcon.testing.TestClient:
        return client_for(self.app, token)


def _key(api_keys: ApiKeys, tenant: str, role: Role) -> NewApiKey:
    made = new_api_key()
    api_keys.create_api_key(tenant, role, made.prefix, made.secret_hash)
    return made


def _app(storage: Storage, monotonic: FakeMonotonic, wall: WallClock) -> App:
    authenticator = ApiKeyAuthenticator(storage.api_keys, monotonic=monotonic, now=wall)
    return create_app(storage, [authenticator])


@pytest.fixture
def keys(seed: Seed) -> Keys:
    monotonic, wall = FakeMonotonic(), WallClock()
    api_keys = seed.storage.api_keys
    return Keys(
        storage=seed.storage,
        app=_app(seed.storage, monotonic, wall),
        monotonic=monotonic,
        wall=wall,
        reader=_key(api_keys, ACME, Role.reader).token,
        writer=_key(api_keys, ACME, Role.writer).token,
        globex=_key(api_keys, GLOBEX, Role.admin).token,
    )


def _prefix(token: str) -> str:
    parsed = parse_api_key(token)
    assert parsed is not None
    return parsed[0]


def _key_id(api_keys: ApiKeys, token: str) -> int:
    found = api_keys.find_api_key(_prefix(token))
    assert found is not None
    return found[0].id


# -- the key itself -----------------------------------------------------------------------


def test_a_new_key_is_cm_a_prefix_and_a_256_bit_secret_stored_as_its_sha256() -> None:
    made = new_api_key()
    parsed = parse_api_key(made.token)
    assert parsed is not None
    prefix, secret = parsed
    assert made.token == f"cm_{prefix}_{secret}"
    assert prefix == made.prefix
    assert len(prefix) == 8
    assert len(secret) == 43  # secrets.token_urlsafe(32): 256 bits
    assert made.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in made.secret_hash


def test_two_new_keys_share_neither_prefix_nor_secret() -> None:
    first, second = new_api_key(), new_api_key()
    assert first.prefix != second.prefix
    assert first.token != second.token


# -- through the app ----------------------------------------------------------------------


def test_a_valid_key_reads_its_tenants_data(keys: Keys) -> None:
    result = keys.client(keys.reader).simulate_get("/chain")
    assert result.status_code == 200
    assert [c["name"] for c in result.json] == ["North Foods", "South Foods", "Empty Foods"]


def test_a_key_acts_for_its_own_tenant_only(keys: Keys, seed: Seed) -> None:
    assert seed.globex_chain is not None
    chain = f"/chain/{seed.globex_chain.id}"
    assert keys.client(keys.reader).simulate_get(chain).status_code == 404
    assert keys.client(keys.globex).simulate_get(chain).status_code == 200


def test_a_reader_key_writing_is_a_403(keys: Keys) -> None:
    result = keys.client(keys.reader).simulate_post(
        "/items", json={"sku": "TEA-1", "name": "Tea", "cost": "4.50"}
    )
    assert result.status_code == 403


def test_a_writer_key_may_write(keys: Keys) -> None:
    result = keys.client(keys.writer).simulate_post(
        "/items", json={"sku": "TEA-1", "name": "Tea", "cost": "4.50"}
    )
    assert result.status_code == 201


def test_the_principal_of_a_key_names_the_key_by_its_prefix_never_its_secret(
    keys: Keys,
) -> None:
    authenticator = ApiKeyAuthenticator(keys.storage.api_keys)
    assert authenticator.authenticate(keys.writer) == Principal(
        ACME, f"key:{_prefix(keys.writer)}", Role.writer
    )


def test_a_revoked_key_is_a_401(seed: Seed) -> None:
    api_keys = seed.storage.api_keys
    token = _key(api_keys, ACME, Role.admin).token
    api_keys.revoke_api_key(_key_id(api_keys, token))
    result = client_for(_app(seed.storage, FakeMonotonic(), WallClock()), token).simulate_get(
        "/chain"
    )
    assert result.status_code == 401
    assert result.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_key_revoked_while_cached_is_refused_once_the_cache_lifetime_has_passed(
    keys: Keys,
) -> None:
    client = keys.client(keys.reader)
    assert client.simulate_get("/chain").status_code == 200
    keys.storage.api_keys.revoke_api_key(_key_id(keys.storage.api_keys, keys.reader))
    keys.monotonic.now += DEFAULT_CACHE_SECONDS
    assert client.simulate_get("/chain").status_code == 401


def test_unknown_wrong_malformed_and_revoked_keys_get_byte_identical_401s(
    keys: Keys, seed: Seed
) -> None:
    api_keys = seed.storage.api_keys
    revoked = _key(api_keys, ACME, Role.reader).token
    api_keys.revoke_api_key(_key_id(api_keys, revoked))
    prefix = _prefix(keys.reader)
    wrong_secret = f"cm_{prefix}_{'A' * 43}"
    # The right key once, so the wrong secret is also tried against a cached key.
    assert keys.client(keys.reader).simulate_get("/chain").status_code == 200
    refused = {
        "unknown prefix": new_api_key().token,
        "wrong secret": wrong_secret,
        "wrong secret, uncached": f"cm_{_prefix(keys.writer)}_{'B' * 43}",
        "malformed": "cm_short",
        "malformed secret": f"cm_{prefix}_tooshort",
        "revoked": revoked,
        "not a key at all": "not-a-key",
    }
    bodies = {}
    for case, token in refused.items():
        result = keys.client(token).simulate_get("/chain")
        assert result.status_code == 401, case
        assert result.headers["WWW-Authenticate"].startswith("Bearer"), case
        bodies[case] = result.content
    assert len(set(bodies.values())) == 1, bodies
    assert prefix.encode() not in bodies["wrong secret"]


def test_a_token_that_is_not_a_key_is_left_to_the_next_authenticator(seed: Seed) -> None:
    app = create_app(
        seed.storage, [ApiKeyAuthenticator(seed.storage.api_keys), TokenAuthenticator(PRINCIPALS)]
    )
    assert client_for(app, READER_TOKEN).simulate_get("/chain").status_code == 200


def test_last_used_at_is_recorded_on_first_use_and_then_at_most_once_per_interval(
    keys: Keys,
) -> None:
    client = keys.client(keys.reader)

    def last_used() -> datetime | None:
        found = keys.storage.api_keys.find_api_key(_prefix(keys.reader))
        assert found is not None
        return found[0].last_used_at

    assert last_used() is None
    first = keys.wall.now
    assert client.simulate_get("/chain").status_code == 200
    assert last_used() == first
    keys.wall.now += timedelta(seconds=10)
    keys.monotonic.now += 10
    assert client.simulate_get("/chain").status_code == 200
    assert last_used() == first
    keys.wall.now += timedelta(seconds=DEFAULT_TOUCH_SECONDS)
    keys.monotonic.now += DEFAULT_TOUCH_SECONDS
    assert client.simulate_get("/chain").status_code == 200
    assert last_used() == keys.wall.now


class TouchFails:
    """API keys whose ``last_used_at`` cannot be written; everything else works."""

    def __init__(self, api_keys: ApiKeys) -> None:
        self._api_keys = api_keys

    def create_api_key(self, tenant: str, role: Role, prefix: str, secret_hash: str) -> ApiKey:
        return self._api_keys.create_api_key(tenant, role, prefix, secret_hash)

    def list_api_keys(self, tenant: str) -> Sequence[ApiKey]:
        return self._api_keys.list_api_keys(tenant)

    def revoke_api_key(self, key_id: int) -> ApiKey:
        return self._api_keys.revoke_api_key(key_id)

    def find_api_key(self, prefix: str) -> tuple[ApiKey, str] | None:
        return self._api_keys.find_api_key(prefix)

    def touch_api_key(self, key_id: int, at: datetime) -> None:
        raise StorageUnavailable("the database is gone for a moment")


def test_a_failing_last_used_write_never_fails_the_request() -> None:
    working = memory_storage()
    storage = dataclasses.replace(working, api_keys=TouchFails(working.api_keys))
    usecases.create_tenant(storage.catalogue, ACME, "Acme")
    token = _key(storage.api_keys, ACME, Role.reader).token
    app = create_app(storage, [ApiKeyAuthenticator(storage.api_keys)])
    assert client_for(app, token).simulate_get("/chain").status_code == 200


# -- as a plugin --------------------------------------------------------------------------


def test_commerce_auth_apikeys_builds_the_key_authenticator_through_the_plugins() -> None:
    settings = Settings(database_url="memory://", auth=("apikeys",))
    [authenticator] = bootstrap(settings, get_plugin_manager()).authenticators
    # Wrapped, as every authenticator but `none` is, by the check that its tenant exists.
    assert isinstance(authenticator, TenantChecked)
    assert isinstance(authenticator.inner, ApiKeyAuthenticator)


def test_a_cache_lifetime_that_is_not_a_number_of_seconds_is_refused_at_start() -> None:
    settings = Settings(
        database_url="memory://", auth=("apikeys",), extra={"apikey_cache_seconds": "soon"}
    )
    with pytest.raises(Misconfigured, match="COMMERCE_APIKEY_CACHE_SECONDS"):
        bootstrap(settings, get_plugin_manager()).authenticators  # noqa: B018 -- builds them


# -- secrets stay secret ------------------------------------------------------------------


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Iterator[tuple[Path, SqlStorage]]:
    path = tmp_path / "keys.db"
    url = f"sqlite:///{path}"
    AlembicSchemaManager(url).upgrade()
    storage = open_sql_storage(url)
    yield path, storage
    storage.close()


def test_neither_a_key_nor_its_secret_appears_in_the_logs_or_in_clear_in_the_database_file(
    sqlite_file: tuple[Path, SqlStorage], caplog: pytest.LogCaptureFixture
) -> None:
    path, storage = sqlite_file
    caplog.set_level(logging.DEBUG)
    usecases.create_tenant(storage.catalogue, ACME, "Acme")
    made = _key(storage.api_keys, ACME, Role.admin)
    other = _key(storage.api_keys, ACME, Role.reader)
    app = create_app(storage, [ApiKeyAuthenticator(storage.api_keys)])
    parsed = parse_api_key(made.token)
    assert parsed is not None
    _, secret = parsed
    client = client_for(app, made.token)
    assert client.simulate_get("/chain").status_code == 200
    assert client.simulate_post("/chain", json={"name": "Logged"}).status_code == 201
    assert client_for(app, made.token[:-1] + "x").simulate_get("/chain").status_code == 401
    storage.api_keys.revoke_api_key(_key_id(storage.api_keys, other.token))
    assert client_for(app, other.token).simulate_get("/chain").status_code == 401
    storage.close()

    assert caplog.records, "the requests were expected to be logged"
    logged = caplog.text + "".join(repr(r.__dict__) for r in caplog.records)
    raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    for token in (made.token, other.token):
        clear = parse_api_key(token)
        assert clear is not None
        assert token not in logged
        assert clear[1] not in logged
        assert token.encode() not in raw
        assert clear[1].encode() not in raw
    assert secret.encode() not in raw


# -- an unknown prefix and a wrong secret take the same path ---------------------------------


class CountingKeys:
    """The ``ApiKeys`` port, counting the lookups by prefix."""

    def __init__(self, inner: ApiKeys) -> None:
        self._inner = inner
        self.lookups = 0

    def find_api_key(self, prefix: str) -> tuple[ApiKey, str] | None:
        self.lookups += 1
        return self._inner.find_api_key(prefix)

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


def test_an_unknown_prefix_and_a_wrong_secret_each_cost_one_lookup_and_one_comparison(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage = memory_storage()
    usecases.create_tenant(storage.catalogue, ACME, "Acme")
    made = _key(storage.api_keys, ACME, Role.reader)
    keys = CountingKeys(storage.api_keys)
    authenticator = ApiKeyAuthenticator(keys)  # type: ignore[arg-type]  # a counting stand-in
    # The key is used, so it sits in the cache when the wrong secret comes.
    assert authenticator.authenticate(made.token) is not None
    compared: list[tuple[str, str]] = []

    def counting(given: str, stored: str) -> bool:
        compared.append((given, stored))
        return hmac.compare_digest(given, stored)

    monkeypatch.setattr(apikeys, "digests_match", counting)
    parsed = parse_api_key(made.token)
    assert parsed is not None
    prefix, secret = parsed
    other_secret = secret[:-1] + ("B" if secret[-1] != "B" else "C")
    unknown_prefix = "zzzzzzzz" if prefix != "zzzzzzzz" else "yyyyyyyy"
    for token, stored in (
        (f"cm_{unknown_prefix}_{secret}", apikeys._NO_SUCH_HASH),
        (f"cm_{prefix}_{other_secret}", hashlib.sha256(secret.encode()).hexdigest()),
    ):
        before = keys.lookups
        compared.clear()
        with pytest.raises(Unauthorized, match="the bearer token was not accepted"):
            authenticator.authenticate(token)
        # One lookup and one comparison each: the cached key's prefix is not answered faster.
        assert keys.lookups == before + 1
        assert [s for _, s in compared] == [stored]


def test_the_right_key_still_comes_from_the_cache_without_a_lookup() -> None:
    storage = memory_storage()
    usecases.create_tenant(storage.catalogue, ACME, "Acme")
    made = _key(storage.api_keys, ACME, Role.reader)
    keys = CountingKeys(storage.api_keys)
    authenticator = ApiKeyAuthenticator(keys)  # type: ignore[arg-type]  # a counting stand-in
    authenticator.authenticate(made.token)
    authenticator.authenticate(made.token)
    assert keys.lookups == 1
