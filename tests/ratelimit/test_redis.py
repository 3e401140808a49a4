"""The Redis store: one limit for every process and host, chosen by URL; when Redis cannot
answer, each process limits on its own (fail open to per-process buckets), and says so."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import falcon.testing
import pytest
import redis

from commerce.adapters.ratelimit.memory import TokenBuckets
from commerce.adapters.ratelimit.redis import (
    DEFAULT_PREFIX,
    RedisBuckets,
    connect,
    open_redis,
    split_url,
)
from commerce.core.errors import Misconfigured
from commerce.core.events import LogEvent
from commerce.core.ratelimit import RatePolicy
from commerce.entrypoints.bootstrap import Runtime
from commerce.entrypoints.config import Settings
from commerce.entrypoints.http.app import create_app
from tests.http.conftest import PRINCIPALS, READER_TOKEN, TokenAuthenticator, seed_storage
from tests.ratelimit.conftest import FakeClock, redis_store_url

ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE = "redis://127.0.0.1:1/0"
"""Nothing listens on port 1: every connection is refused at once."""


def _events(caplog: pytest.LogCaptureFixture, event: LogEvent) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) is event]


def test_two_processes_on_one_redis_let_through_the_burst_once_in_all(redis_prefix: str) -> None:
    """Two processes each try the whole burst at the same time; together they get it once."""
    script = textwrap.dedent(
        """
        import sys
        from commerce.adapters.ratelimit.redis import open_redis
        from commerce.core.ratelimit import RatePolicy

        limiter = open_redis(sys.argv[1], RatePolicy(limit=20, period=3600, burst=20), {})
        sys.stdin.readline()  # start together
        print(sum(limiter.take("acme").allowed for _ in range(20)))
        """
    )
    url = redis_store_url(redis_prefix)
    processes = [
        subprocess.Popen(  # noqa: S603 -- our own interpreter
            [sys.executable, "-c", script, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(2)
    ]
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    counts = [int(process.communicate(timeout=60)[0]) for process in processes]
    assert sum(counts) == 20
    assert all(process.returncode == 0 for process in processes)


def test_two_apps_sharing_a_redis_limit_answer_429_once_the_tenant_burst_is_spent(
    redis_prefix: str,
) -> None:
    from commerce.adapters.storage.memory import memory_storage

    policy = RatePolicy(limit=3, period=3600, burst=3)
    apps = [
        create_app(
            seed_storage(memory_storage()).storage,
            [TokenAuthenticator(PRINCIPALS)],
            rate_limiter=open_redis(redis_store_url(redis_prefix), policy, {}),
        )
        for _ in range(2)
    ]
    clients = [falcon.testing.TestClient(app) for app in apps]
    headers = {"Authorization": f"Bearer {READER_TOKEN}"}
    statuses = [
        clients[i % 2].simulate_get("/chain", headers=headers).status_code for i in range(5)
    ]
    assert statuses == [200, 200, 200, 429, 429]


def test_an_unreachable_redis_fails_open_to_per_process_buckets_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = open_redis(UNREACHABLE, RatePolicy(limit=2, period=3600, burst=2), {})
    with caplog.at_level(logging.INFO):
        allowed = [limiter.take("acme").allowed for _ in range(4)]
    # Still limited, by this process's own bucket: neither all refused nor all let through.
    assert allowed == [True, True, False, False]
    assert limiter.degraded
    warned = _events(caplog, LogEvent.RATE_LIMIT_STORE_UNAVAILABLE)
    assert len(warned) == 1
    assert warned[0].store == "redis"  # type: ignore[attr-defined]
    assert "ConnectionError" in warned[0].error  # type: ignore[attr-defined]


def test_the_password_in_the_url_is_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    limiter = open_redis(
        "redis://:hunter2-not-logged@127.0.0.1:1/0", RatePolicy(limit=1, period=1, burst=1), {}
    )
    with caplog.at_level(logging.DEBUG):
        limiter.take("acme")
    assert _events(caplog, LogEvent.RATE_LIMIT_STORE_UNAVAILABLE)
    assert "hunter2" not in caplog.text


class _Flaky:
    """Stands in for the store's script: fails while ``down``, counts the calls."""

    def __init__(self, script: object) -> None:
        self.script = script
        self.down = True
        self.calls = 0

    def __call__(self, *args: object, **kwargs: object) -> object:
        self.calls += 1
        if self.down:
            raise redis.ConnectionError("Error 111 connecting to redis:6379. Connection refused.")
        return self.script(*args, **kwargs)  # type: ignore[operator]


def test_redis_is_asked_again_only_after_the_retry_interval_and_sharing_resumes(
    redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    policy = RatePolicy(limit=5, period=3600, burst=5)
    client, _ = connect(redis_store_url(redis_prefix))
    monotonic = FakeClock()
    limiter = RedisBuckets(
        client, policy, prefix=redis_prefix, retry_seconds=1.0, monotonic=monotonic
    )
    flaky = _Flaky(limiter._script)
    limiter._script = flaky  # type: ignore[assignment]
    with caplog.at_level(logging.INFO):
        assert limiter.take("acme").allowed  # Redis fails: this process's bucket answers
        limiter.take("acme")
        assert flaky.calls == 1  # not asked again within the interval
        flaky.down = False
        monotonic.now += 1.5
        first_shared = limiter.take("acme")
    assert flaky.calls == 2
    assert not limiter.degraded
    # Counted in Redis again, where no token had been taken yet.
    assert first_shared.remaining == 4
    assert len(_events(caplog, LogEvent.RATE_LIMIT_STORE_UNAVAILABLE)) == 1
    assert len(_events(caplog, LogEvent.RATE_LIMIT_STORE_RESTORED)) == 1
    limiter.close()


def test_buckets_expire_once_they_would_be_full_again(redis_prefix: str) -> None:
    client, _ = connect(redis_store_url(redis_prefix))
    limiter = RedisBuckets(client, RatePolicy(limit=1, period=60, burst=2), prefix=redis_prefix)
    limiter.take("acme")
    ttl_ms = client.pttl(f"{redis_prefix}acme")
    assert 0 < ttl_ms <= 60_000  # one token short, at one a minute
    limiter.close()


def test_the_prefix_comes_from_the_url_and_is_not_handed_to_redis() -> None:
    assert split_url("redis://h:6379/2?prefix=shop1:&socket_timeout=1") == (
        "redis://h:6379/2?socket_timeout=1",
        "shop1:",
    )
    assert split_url("rediss://h/0") == ("rediss://h/0", DEFAULT_PREFIX)


def test_a_url_redis_cannot_use_stops_the_start() -> None:
    with pytest.raises(Misconfigured, match="COMMERCE_RATE_LIMIT_STORE"):
        open_redis("redis://h:6379/0?socket_timeout=soon", RatePolicy(1, 1, 1), {})


def _runtime(**settings: object) -> Runtime:
    return Runtime(Settings(database_url="memory://", **settings))  # type: ignore[arg-type]


def test_the_store_is_chosen_by_the_url_in_the_settings(redis_prefix: str) -> None:
    memory = _runtime(rate_limit="5/second").rate_limiter
    assert isinstance(memory, TokenBuckets)
    assert not memory.shared
    runtime = _runtime(rate_limit="5/second", rate_limit_store=redis_store_url(redis_prefix))
    shared = runtime.rate_limiter
    assert isinstance(shared, RedisBuckets)
    assert shared.shared
    assert shared.take("acme").allowed
    runtime.close()
    assert _runtime(rate_limit_store=redis_store_url(redis_prefix)).rate_limiter is None


def test_a_store_no_plugin_keeps_stops_the_start_naming_those_there_are() -> None:
    with pytest.raises(Misconfigured, match=r"memcached://.*memory://, redis://"):
        _ = _runtime(rate_limit="5/second", rate_limit_store="memcached://h:11211").rate_limiter


def test_the_store_is_read_from_the_environment() -> None:
    env = {"COMMERCE_RATE_LIMIT_STORE": " redis://cache:6379/1 "}
    assert Settings.from_env(env).rate_limit_store == "redis://cache:6379/1"
    assert Settings.from_env({}).rate_limit_store == "memory://"
