"""Rate limiting: a token bucket per tenant, off by default, 429 with headers when empty."""

from __future__ import annotations

import falcon
import falcon.testing
import pytest

from commerce.core.errors import Misconfigured
from commerce.entrypoints.config import Settings
from commerce.entrypoints.http.app import create_app, get_app
from commerce.entrypoints.http.problems import MEDIA_PROBLEM, PROBLEM_BASE
from commerce.entrypoints.http.ratelimit import RatePolicy, TokenBuckets, parse_policy
from commerce.plugins import get_plugin_manager
from tests.http.conftest import (
    GLOBEX_TOKEN,
    PRINCIPALS,
    READER_TOKEN,
    WRITER_TOKEN,
    App,
    Seed,
    TokenAuthenticator,
    client_for,
)

pytestmark = pytest.mark.http

RATE_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _limited_app(seed: Seed, clock: FakeClock, limit: int = 3, period: int = 1) -> App:
    buckets = TokenBuckets(RatePolicy(limit=limit, period=period, burst=limit), clock=clock)
    return create_app(seed.storage, [TokenAuthenticator(PRINCIPALS)], rate_limiter=buckets)


def test_n_requests_pass_and_the_next_is_a_429_with_retry_after_and_rate_limit_headers(
    seed: Seed, clock: FakeClock
) -> None:
    client = client_for(_limited_app(seed, clock, limit=3))
    remaining = []
    for _ in range(3):
        result = client.simulate_get("/chain")
        assert result.status_code == 200
        assert result.headers["RateLimit-Limit"] == "3"
        remaining.append(result.headers["RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]

    refused = client.simulate_get("/chain")
    assert refused.status_code == 429
    assert refused.headers["Content-Type"] == MEDIA_PROBLEM
    assert refused.json["type"] == PROBLEM_BASE + "too-many-requests"
    assert refused.json["status"] == 429
    assert refused.headers["Retry-After"] == "1"
    assert refused.headers["RateLimit-Limit"] == "3"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert int(refused.headers["RateLimit-Reset"]) >= 1
    assert "X-Request-ID" in refused.headers


def test_the_bucket_refills_as_the_clock_moves(seed: Seed, clock: FakeClock) -> None:
    client = client_for(_limited_app(seed, clock, limit=2))
    for _ in range(2):
        assert client.simulate_get("/chain").status_code == 200
    assert client.simulate_get("/chain").status_code == 429
    clock.now += 0.5  # half a second at two a second: one token back
    assert client.simulate_get("/chain").status_code == 200
    assert client.simulate_get("/chain").status_code == 429
    clock.now += 60  # never more than the burst, however long the pause
    assert [client.simulate_get("/chain").status_code for _ in range(3)] == [200, 200, 429]


def test_tenants_have_separate_buckets(seed: Seed, clock: FakeClock) -> None:
    app = _limited_app(seed, clock, limit=2)
    acme, globex = client_for(app, READER_TOKEN), client_for(app, GLOBEX_TOKEN)
    assert [acme.simulate_get("/chain").status_code for _ in range(3)] == [200, 200, 429]
    assert [globex.simulate_get("/chain").status_code for _ in range(2)] == [200, 200]


def test_principals_of_one_tenant_share_its_bucket(seed: Seed, clock: FakeClock) -> None:
    app = _limited_app(seed, clock, limit=2)
    reader, writer = client_for(app, READER_TOKEN), client_for(app, WRITER_TOKEN)
    assert reader.simulate_get("/chain").status_code == 200
    assert writer.simulate_get("/chain").status_code == 200
    assert reader.simulate_get("/chain").status_code == 429


def test_public_routes_and_refused_credentials_take_no_token(seed: Seed, clock: FakeClock) -> None:
    app = _limited_app(seed, clock, limit=1)
    anonymous = client_for(app, token=None)
    for _ in range(3):
        health = anonymous.simulate_get("/healthz")
        assert health.status_code == 200
        assert "RateLimit-Limit" not in health.headers
        assert anonymous.simulate_get("/chain").status_code == 401
    assert client_for(app).simulate_get("/chain").status_code == 200


def test_rate_limiting_is_off_by_default(app: App) -> None:
    client = client_for(app)
    for _ in range(50):
        result = client.simulate_get("/chain")
        assert result.status_code == 200
        assert not any(h in result.headers for h in RATE_HEADERS)


def test_the_limit_comes_from_commerce_rate_limit_and_burst() -> None:
    settings = Settings.from_env(
        {
            "COMMERCE_DATABASE_URL": "memory://",
            "COMMERCE_AUTH": "none",
            "COMMERCE_RATE_LIMIT": "2/minute",
            "COMMERCE_RATE_BURST": "2",
        }
    )
    client = falcon.testing.TestClient(get_app(settings, pm=get_plugin_manager()))
    statuses = [client.simulate_get("/chain").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_without_commerce_rate_limit_get_app_does_not_limit() -> None:
    settings = Settings.from_env({"COMMERCE_DATABASE_URL": "memory://", "COMMERCE_AUTH": "none"})
    assert settings.rate_limit is None
    client = falcon.testing.TestClient(get_app(settings, pm=get_plugin_manager()))
    response = client.simulate_get("/chain")
    assert response.status_code == 200
    assert "RateLimit-Limit" not in response.headers


@pytest.mark.parametrize(
    ("spec", "burst", "policy"),
    [
        ("100/second", None, RatePolicy(100, 1, 100)),
        ("100", None, RatePolicy(100, 1, 100)),
        ("6000/minute", "50", RatePolicy(6000, 60, 50)),
        (" 10 / hours ", None, RatePolicy(10, 3600, 10)),
        (None, None, None),
        ("", "5", None),
    ],
)
def test_a_rate_limit_is_a_number_per_second_minute_or_hour(
    spec: str | None, burst: str | None, policy: RatePolicy | None
) -> None:
    assert parse_policy(spec, burst) == policy


@pytest.mark.parametrize(
    ("spec", "burst"), [("fast", None), ("0/second", None), ("5/day", None), ("5", "0"), ("5", "x")]
)
def test_a_malformed_rate_limit_is_misconfigured(spec: str, burst: str | None) -> None:
    with pytest.raises(Misconfigured, match="COMMERCE_RATE"):
        parse_policy(spec, burst)


def test_a_burst_above_the_rate_lets_a_quiet_tenant_send_more_at_once(clock: FakeClock) -> None:
    buckets = TokenBuckets(RatePolicy(limit=1, period=1, burst=5), clock=clock)
    decisions = [buckets.take("t") for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert decisions[0].remaining == 4
    assert decisions[-1].retry_after == 1


def test_a_clock_stepping_back_does_not_drain_a_bucket(clock: FakeClock) -> None:
    buckets = TokenBuckets(RatePolicy(limit=2, period=1, burst=2), clock=clock)
    assert buckets.take("t").allowed
    clock.now -= 100
    assert buckets.take("t").allowed
