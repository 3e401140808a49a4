"""API keys end to end through the app: the real authenticator over a real store."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import falcon.testing
import pytest

from commerce.adapters.auth.apikeys import (
    DEFAULT_CACHE_SECONDS,
    DEFAULT_TOUCH_SECONDS,
    ApiKeyAuthenticator,
)
from commerce.adapters.storage.memory import MemoryStore
from commerce.adapters.storage.sql import AlembicSchemaManager, SqlOptions, SqlStore
from commerce.adapters.storage.sql.engine import create_engine
from commerce.core.apikeys import NewApiKey, new_api_key, parse_api_key
from commerce.core.auth import Principal, Role
from commerce.core.errors import Misconfigured, StorageUnavailable
from commerce.core.ports import CommerceStore
from commerce.entrypoints.config import Settings
from commerce.entrypoints.http.app import create_app
from commerce.entrypoints.wiring import make_authenticators
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
    store: CommerceStore
    app: App
    monotonic: FakeMonotonic
    wall: WallClock
    reader: str
    writer: str
    globex: str

    def client(self, token: str | None) -> falcon.testing.TestClient:
        return client_for(self.app, token)


def _key(store: CommerceStore, tenant: str, role: Role) -> NewApiKey:
    made = new_api_key()
    store.create_api_key(tenant, role, made.prefix, made.secret_hash)
    return made


def _app(store: CommerceStore, monotonic: FakeMonotonic, wall: WallClock) -> App:
    authenticator = ApiKeyAuthenticator(store, monotonic=monotonic, now=wall)
    return create_app(store, [authenticator])


@pytest.fixture
def keys(seed: Seed) -> Keys:
    monotonic, wall = FakeMonotonic(), WallClock()
    return Keys(
        store=seed.store,
        app=_app(seed.store, monotonic, wall),
        monotonic=monotonic,
        wall=wall,
        reader=_key(seed.store, ACME, Role.reader).token,
        writer=_key(seed.store, ACME, Role.writer).token,
        globex=_key(seed.store, GLOBEX, Role.admin).token,
    )


def _prefix(token: str) -> str:
    parsed = parse_api_key(token)
    assert parsed is not None
    return parsed[0]


def _key_id(store: CommerceStore, token: str) -> int:
    found = store.find_api_key(_prefix(token))
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
    authenticator = ApiKeyAuthenticator(keys.store)
    assert authenticator.authenticate(keys.writer) == Principal(
        ACME, f"key:{_prefix(keys.writer)}", Role.writer
    )


def test_a_revoked_key_is_a_401(seed: Seed) -> None:
    token = _key(seed.store, ACME, Role.admin).token
    seed.store.revoke_api_key(_key_id(seed.store, token))
    result = client_for(_app(seed.store, FakeMonotonic(), WallClock()), token).simulate_get(
        "/chain"
    )
    assert result.status_code == 401
    assert result.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_key_revoked_while_cached_is_refused_once_the_cache_lifetime_has_passed(
    keys: Keys,
) -> None:
    client = keys.client(keys.reader)
    assert client.simulate_get("/chain").status_code == 200
    keys.store.revoke_api_key(_key_id(keys.store, keys.reader))
    keys.monotonic.now += DEFAULT_CACHE_SECONDS
    assert client.simulate_get("/chain").status_code == 401


def test_unknown_wrong_malformed_and_revoked_keys_get_byte_identical_401s(
    keys: Keys, seed: Seed
) -> None:
    revoked = _key(seed.store, ACME, Role.reader).token
    seed.store.revoke_api_key(_key_id(seed.store, revoked))
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
    app = create_app(seed.store, [ApiKeyAuthenticator(seed.store), TokenAuthenticator(PRINCIPALS)])
    assert client_for(app, READER_TOKEN).simulate_get("/chain").status_code == 200


def test_last_used_at_is_recorded_on_first_use_and_then_at_most_once_per_interval(
    keys: Keys,
) -> None:
    client = keys.client(keys.reader)

    def last_used() -> datetime | None:
        found = keys.store.find_api_key(_prefix(keys.reader))
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


class TouchFails(MemoryStore):
    def touch_api_key(self, key_id: int, at: datetime) -> None:
        raise StorageUnavailable("the database is gone for a moment")


def test_a_failing_last_used_write_never_fails_the_request() -> None:
    store = TouchFails()
    store.create_tenant(ACME, "Acme")
    token = _key(store, ACME, Role.reader).token
    app = create_app(store, [ApiKeyAuthenticator(store)])
    assert client_for(app, token).simulate_get("/chain").status_code == 200


# -- as a plugin --------------------------------------------------------------------------


def test_commerce_auth_apikeys_builds_the_key_authenticator_through_the_plugins() -> None:
    store = MemoryStore()
    settings = Settings(database_url="memory://", auth=("apikeys",))
    [authenticator] = make_authenticators(get_plugin_manager(), settings, store)
    assert isinstance(authenticator, ApiKeyAuthenticator)


def test_a_cache_lifetime_that_is_not_a_number_of_seconds_is_refused_at_start() -> None:
    settings = Settings(
        database_url="memory://", auth=("apikeys",), extra={"apikey_cache_seconds": "soon"}
    )
    with pytest.raises(Misconfigured, match="COMMERCE_APIKEY_CACHE_SECONDS"):
        make_authenticators(get_plugin_manager(), settings, MemoryStore())


# -- secrets stay secret ------------------------------------------------------------------


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Iterator[tuple[Path, SqlStore]]:
    path = tmp_path / "keys.db"
    url = f"sqlite:///{path}"
    AlembicSchemaManager(url).upgrade()
    store = SqlStore(create_engine(url, SqlOptions()))
    yield path, store
    store.close()


def test_neither_a_key_nor_its_secret_appears_in_the_logs_or_in_clear_in_the_database_file(
    sqlite_file: tuple[Path, SqlStore], caplog: pytest.LogCaptureFixture
) -> None:
    path, store = sqlite_file
    caplog.set_level(logging.DEBUG)
    store.create_tenant(ACME, "Acme")
    made = _key(store, ACME, Role.admin)
    other = _key(store, ACME, Role.reader)
    app = create_app(store, [ApiKeyAuthenticator(store)])
    parsed = parse_api_key(made.token)
    assert parsed is not None
    _, secret = parsed
    client = client_for(app, made.token)
    assert client.simulate_get("/chain").status_code == 200
    assert client.simulate_post("/chain", json={"name": "Logged"}).status_code == 201
    assert client_for(app, made.token[:-1] + "x").simulate_get("/chain").status_code == 401
    store.revoke_api_key(_key_id(store, other.token))
    assert client_for(app, other.token).simulate_get("/chain").status_code == 401
    store.close()

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
