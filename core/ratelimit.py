"""The rate limit port: a per-key token bucket policy, one request's decision, the limiter.

The HTTP layer takes one token per authenticated request from its tenant's bucket through a
``RateLimiter``; where the buckets live (this process, a Redis shared by every process and
host) is the adapter's business, chosen by ``COMMERCE_RATE_LIMIT_STORE``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class RatePolicy:
    """``limit`` requests per ``period`` seconds, up to ``burst`` of them at once."""

    limit: int
    period: int
    burst: int

    @property
    def rate(self) -> float:
        """Tokens added to a bucket per second."""
        return self.limit / self.period


@dataclass(frozen=True, slots=True)
class Decision:
    """What one bucket said about one request, and what the ``RateLimit-*`` headers tell."""

    allowed: bool
    limit: int
    remaining: int
    reset: int
    """Seconds until the bucket is full again."""
    retry_after: int
    """Seconds until the next request would be let in; 0 when one would be now."""


def decision_for(policy: RatePolicy, allowed: bool, tokens: float) -> Decision:
    """The decision of a bucket of ``policy`` left holding ``tokens`` after the request.

    Every adapter answers through this, so that the headers mean the same whichever
    store counted the tokens.
    """
    rate = policy.rate
    tokens = max(0.0, min(float(policy.burst), tokens))
    return Decision(
        allowed=allowed,
        limit=policy.burst,
        remaining=int(tokens),
        reset=math.ceil((policy.burst - tokens) / rate),
        retry_after=0 if allowed else max(1, math.ceil((1.0 - tokens) / rate)),
    )


@runtime_checkable
class RateLimiter(Protocol):
    """Token buckets by key (a tenant), each created full on first use; safe across threads.

    A bucket holds up to ``policy.burst`` tokens and gains ``policy.rate`` a second; a request
    takes one or is refused. ``shared`` says whether every process using the same store
    counts into the same buckets (a Redis) or each process has its own (in memory).
    """

    policy: RatePolicy
    shared: bool

    def take(self, key: str) -> Decision:
        """Take one token from ``key``'s bucket; never raises for the store's sake."""
        ...

    def close(self) -> None:
        """Release what the limiter holds (connections); it is not used afterwards."""
        ...
