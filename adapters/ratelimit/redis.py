"""The Redis rate limit store (``redis://``): one token bucket per tenant, shared by every
process and host that uses the same Redis, so ``serve --workers N`` and N replicas together
let a tenant send the limit, not N times it.

Each request is one atomic Lua script (GCRA, the generic cell rate algorithm: the token
bucket kept as a single "theoretical arrival time" per tenant), timed by Redis's own clock so
that hosts whose clocks differ still agree, and stored with an expiry at the moment the
bucket would be full again, so an idle tenant costs no memory. redis-py is the client: the
reference client of the Redis project, thread-safe with a connection pool per process.

When Redis cannot be reached (or answers an error), the limit **fails open to this
process's own buckets**: requests are limited per process, as with ``memory://``, rather than
all refused (a rate limit protects capacity and fairness; turning a Redis outage into an API
outage would defeat it) or all let through. ``RATE_LIMIT_STORE_UNAVAILABLE`` is logged when
that starts, ``RATE_LIMIT_STORE_RESTORED`` when Redis answers again; Redis is tried again at
most once every ``RETRY_SECONDS``, so an outage does not add a timeout to every request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from commerce.adapters.ratelimit.memory import TokenBuckets
from commerce.core.errors import Misconfigured
from commerce.core.events import LogEvent, event_log
from commerce.core.ratelimit import Decision, RatePolicy, decision_for
from commerce.plugins import hookimpl
from commerce.plugins.hookspecs import RateLimitStore, Settings

log = event_log(__name__)

DEFAULT_PREFIX = "commerce:ratelimit:"
"""What every bucket's key starts with; ``?prefix=`` in the URL sets another (one Redis
shared by several deployments, or tests)."""

TIMEOUT_SECONDS = 0.5
"""Connect and read timeout unless the URL sets ``socket_timeout``/``socket_connect_timeout``:
a request waits at most this long for Redis before falling back."""

RETRY_SECONDS = 1.0
"""After a failure, how long requests use the per-process buckets before Redis is tried again."""

MICROSECONDS = 1_000_000

SCRIPT = """
-- KEYS[1]: the tenant's bucket. ARGV[1]: microseconds per token. ARGV[2]: the burst.
-- ARGV[3]: now in microseconds, or "" for Redis's own clock (the same for every host).
-- Answers {allowed, tokens left in microseconds of refill}.
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now
if ARGV[3] == "" then
  local t = redis.call("TIME")
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[3])
end
local tat = tonumber(redis.call("GET", KEYS[1])) or now
if tat < now then tat = now end
local capacity = burst * interval
local new_tat = tat + interval
if new_tat - now <= capacity then
  local ttl = math.max(1, math.ceil((new_tat - now) / 1000))
  redis.call("SET", KEYS[1], string.format("%.0f", new_tat), "PX", ttl)
  return {1, math.floor(capacity - (new_tat - now))}
end
return {0, math.floor(capacity - (tat - now))}
"""


class RedisBuckets:
    """Token buckets in Redis, one key per tenant; falls back to ``TokenBuckets`` (this
    process's) while Redis cannot answer. ``clock`` (seconds), if given, replaces Redis's
    clock: for tests that move time instead of sleeping."""

    shared = True

    def __init__(
        self,
        client: redis.Redis,
        policy: RatePolicy,
        *,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] | None = None,
        retry_seconds: float = RETRY_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self._client = client
        self._script = client.register_script(SCRIPT)
        self._prefix = prefix
        self._clock = clock
        # Whole microseconds, so that the script's arithmetic is exact (a rate of over a
        # million a second would round to zero: one a microsecond is the most it counts).
        self._interval = max(1, round(MICROSECONDS / policy.rate))
        self._retry_seconds = retry_seconds
        self._monotonic = monotonic
        self._fallback = TokenBuckets(policy, clock=clock or time.monotonic)
        self._lock = threading.Lock()
        self._down_until: float | None = None
        """While set, Redis failed and is not asked again before this (monotonic) time."""

    @property
    def degraded(self) -> bool:
        """Whether the limit is being counted in this process because Redis failed."""
        return self._down_until is not None

    def take(self, key: str) -> Decision:
        down_until = self._down_until
        if down_until is not None and self._monotonic() < down_until:
            return self._fallback.take(key)
        now = "" if self._clock is None else str(round(self._clock() * MICROSECONDS))
        try:
            allowed, tokens = self._script(
                keys=[self._prefix + key], args=[self._interval, self.policy.burst, now]
            )
        except redis.RedisError as error:
            self._failed(error)
            return self._fallback.take(key)
        if down_until is not None:
            self._restored()
        return decision_for(self.policy, bool(allowed), int(tokens) / self._interval)

    def close(self) -> None:
        self._client.close()

    def _failed(self, error: Exception) -> None:
        with self._lock:
            first = self._down_until is None
            self._down_until = self._monotonic() + self._retry_seconds
        if first:
            # The error names the host and port at most, never the URL's password.
            message = f"{type(error).__name__}: {error}"[:200]
            log(
                LogEvent.RATE_LIMIT_STORE_UNAVAILABLE,
                "the rate limit store cannot be reached; counting in this process meanwhile: %s",
                message,
                store="redis",
                error=message,
            )

    def _restored(self) -> None:
        with self._lock:
            was_down = self._down_until is not None
            self._down_until = None
        if was_down:
            log(
                LogEvent.RATE_LIMIT_STORE_RESTORED,
                "the rate limit store answers again; the limit is shared again",
                store="redis",
            )


def split_url(url: str) -> tuple[str, str]:
    """``url`` without the ``prefix`` query parameter (redis-py would refuse it), and the
    prefix (``DEFAULT_PREFIX`` unless given)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((value for name, value in query if name == "prefix"), DEFAULT_PREFIX)
    kept = urlencode([(name, value) for name, value in query if name != "prefix"])
    return urlunsplit(parts._replace(query=kept)), prefix


def connect(url: str) -> tuple[redis.Redis, str]:
    """A client for the Redis at ``url`` (nothing connected yet) and the key prefix."""
    plain, prefix = split_url(url)
    try:
        client = redis.Redis.from_url(
            plain,
            socket_connect_timeout=TIMEOUT_SECONDS,
            socket_timeout=TIMEOUT_SECONDS,
            # No retries inside the client: one timeout is all a request may wait.
            retry=Retry(NoBackoff(), 0),
        )
    except (ValueError, TypeError) as error:
        # redis-py's words name the part at fault, never the password.
        raise Misconfigured(
            f"COMMERCE_RATE_LIMIT_STORE is not a Redis URL: {error} "
            "(redis://host:6379/0, rediss:// for TLS)"
        ) from None
    return client, prefix


def open_redis(url: str, policy: RatePolicy, settings: Settings) -> RedisBuckets:
    """A limiter on the Redis at ``url``; nothing is connected until the first request."""
    client, prefix = connect(url)
    return RedisBuckets(client, policy, prefix=prefix)


@hookimpl
def commerce_rate_limit_stores() -> list[RateLimitStore]:
    return [
        RateLimitStore(
            name="redis",
            schemes=("redis", "rediss"),
            open=open_redis,
            shared=True,
            description="token buckets in Redis, shared by every process and host using it",
        )
    ]
