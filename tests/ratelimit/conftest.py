"""Fixtures: each rate limit store on a clock the test moves, and the Redis they may use.

Redis comes from ``COMMERCE_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``). When
it cannot be reached the Redis tests are skipped, except under CI (``CI`` set) or with
``COMMERCE_TEST_REQUIRE_REDIS=1``, where they fail. Every test's keys start with a prefix
of its own (this run's id and a random part), deleted afterwards, so runs sharing one Redis
never see each other's buckets.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import redis

from commerce.adapters.ratelimit.memory import TokenBuckets
from commerce.adapters.ratelimit.redis import RedisBuckets, connect
from commerce.core.ratelimit import RateLimiter, RatePolicy
from tests.backends import RUN_ID

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_required() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("COMMERCE_TEST_REQUIRE_REDIS") == "1"


def redis_url() -> str:
    return os.environ.get("COMMERCE_TEST_REDIS_URL") or DEFAULT_REDIS_URL


_unreachable: list[str] = []


def _give_up(reason: str) -> None:
    if redis_required():
        pytest.fail(reason, pytrace=False)
    pytest.skip(f"{reason} (set COMMERCE_TEST_REDIS_URL, or CI=1 to make this fail)")


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own on a reachable Redis; its keys are deleted after."""
    if _unreachable:
        _give_up(_unreachable[0])
    client = redis.Redis.from_url(redis_url(), socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        _unreachable.append(f"Redis at {redis_url()} is not usable: {error}")
        client.close()
        _give_up(_unreachable[0])
    prefix = f"commerce-test:{RUN_ID}:{secrets.token_hex(4)}:"
    try:
        yield prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


def redis_store_url(prefix: str) -> str:
    return f"{redis_url()}{'&' if '?' in redis_url() else '?'}prefix={prefix}"


class FakeClock:
    """Seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Store:
    """A way to make limiters of one store kind that all count into the same buckets (for
    Redis: the same prefix), on one fake clock."""

    id: str
    make: Callable[[RatePolicy], RateLimiter]
    clock: FakeClock


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    clock = FakeClock()
    if request.param == "memory":
        yield Store("memory", lambda policy: TokenBuckets(policy, clock=clock), clock)
        return
    prefix: str = request.getfixturevalue("redis_prefix")
    made: list[RedisBuckets] = []

    def make(policy: RatePolicy) -> RateLimiter:
        client, _ = connect(redis_store_url(prefix))
        # The store as configured by URL, timed by the test's clock instead of Redis's.
        limiter = RedisBuckets(client, policy, prefix=prefix, clock=clock)
        made.append(limiter)
        return limiter

    yield Store("redis", make, clock)
    for limiter in made:
        limiter.close()
