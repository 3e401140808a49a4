"""The in-process rate limit store (``memory://``): token buckets in a dict, per process.

Each process counts on its own: with N processes (``serve --workers N``, or N replicas) a
tenant may send up to N times the limit in all. The Redis store counts once for all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from commerce.core.ratelimit import Decision, RatePolicy, decision_for
from commerce.plugins import hookimpl
from commerce.plugins.hookspecs import RateLimitStore, Settings

BUCKETS_LIMIT = 100_000
"""Buckets kept at most; past it the full ones are forgotten (a full bucket is what a new
one is), so a process never grows without bound whatever tenants it sees."""


class TokenBuckets:
    """One token bucket per key (a tenant), created full on first use; safe across threads.

    A bucket holds up to ``burst`` tokens and gains ``policy.rate`` a second; a request takes
    one or is refused. Written here rather than taken from a library because the ones at hand
    count fixed or moving windows rather than refill a bucket, and read the wall clock
    themselves, where this takes ``clock`` (monotonic seconds) so that tests need not sleep.
    """

    shared = False

    def __init__(self, policy: RatePolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}
        """key -> (tokens, when they were counted)."""

    def take(self, key: str) -> Decision:
        policy = self.policy
        burst = float(policy.burst)
        with self._lock:
            now = self._clock()
            tokens, then = self._buckets.get(key, (burst, now))
            # max(): a clock that steps back must not drain a bucket.
            tokens = min(burst, tokens + max(0.0, now - then) * policy.rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            if len(self._buckets) >= BUCKETS_LIMIT and key not in self._buckets:
                self._forget_full(now)
            self._buckets[key] = (tokens, now)
        return decision_for(policy, allowed, tokens)

    def close(self) -> None:
        with self._lock:
            self._buckets.clear()

    def _forget_full(self, now: float) -> None:
        burst, rate = float(self.policy.burst), self.policy.rate
        self._buckets = {
            key: (tokens, then)
            for key, (tokens, then) in self._buckets.items()
            if tokens + (now - then) * rate < burst
        }


def open_memory(url: str, policy: RatePolicy, settings: Settings) -> TokenBuckets:
    return TokenBuckets(policy)


@hookimpl
def commerce_rate_limit_stores() -> list[RateLimitStore]:
    return [
        RateLimitStore(
            name="memory",
            schemes=("memory",),
            open=open_memory,
            shared=False,
            description="token buckets in each process: N processes allow N times the limit",
        )
    ]
