"""Rate limiting per tenant: a token bucket each, checked after authentication; 429 when empty.

Off unless ``COMMERCE_RATE_LIMIT`` is set. The buckets live in this process: each replica of
the service limits on its own (docs/security.md says why that is acceptable).
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import falcon

from commerce.core.auth import Principal
from commerce.core.errors import Misconfigured
from commerce.core.events import LogEvent, event_log

log = event_log("commerce.http")

_PERIODS = {"second": 1, "minute": 60, "hour": 3600}
_SPEC = re.compile(r"\s*(\d+)\s*(?:/\s*(second|minute|hour)s?)?\s*")


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


def parse_policy(spec: str | None, burst: str | None = None) -> RatePolicy | None:
    """The policy of ``COMMERCE_RATE_LIMIT``/``COMMERCE_RATE_BURST``; ``None`` when off.

    ``100/second``, ``6000/minute``, ``100000/hour``, or a bare number (per second). The burst
    defaults to the limit: a quiet tenant may send one period's worth at once.
    """
    if spec is None or not spec.strip():
        return None
    match = _SPEC.fullmatch(spec.lower())
    if match is None or int(match.group(1)) < 1:
        raise Misconfigured(
            f"COMMERCE_RATE_LIMIT must look like 100/second, 6000/minute or 100000/hour: {spec!r}"
        )
    limit = int(match.group(1))
    period = _PERIODS[match.group(2) or "second"]
    size = limit
    if burst is not None and burst.strip():
        try:
            size = int(burst)
        except ValueError:
            size = 0
        if size < 1:
            raise Misconfigured(f"COMMERCE_RATE_BURST must be a whole number, 1 or more: {burst!r}")
    return RatePolicy(limit=limit, period=period, burst=size)


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


class TokenBuckets:
    """One token bucket per key (a tenant), created full on first use; safe across threads.

    A bucket holds up to ``burst`` tokens and gains ``policy.rate`` a second; a request takes
    one or is refused. Written here rather than taken from a library because the ones at hand
    count fixed or moving windows rather than refill a bucket, and read the wall clock
    themselves, where this takes ``clock`` (monotonic seconds) so that tests need not sleep.
    """

    def __init__(self, policy: RatePolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}
        """key -> (tokens, when they were counted)."""

    def take(self, key: str) -> Decision:
        policy = self.policy
        rate = policy.rate
        with self._lock:
            now = self._clock()
            tokens, then = self._buckets.get(key, (float(policy.burst), now))
            # max(): a clock that steps back must not drain a bucket.
            tokens = min(float(policy.burst), tokens + max(0.0, now - then) * rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[key] = (tokens, now)
        return Decision(
            allowed=allowed,
            limit=policy.burst,
            remaining=int(tokens),
            reset=math.ceil((policy.burst - tokens) / rate),
            retry_after=0 if allowed else max(1, math.ceil((1.0 - tokens) / rate)),
        )


class RateLimit:
    """Falcon middleware: after ``Authentication``, one token from the caller's tenant's bucket.

    Public operations (no principal) are not limited. When limiting is on, every limited
    response carries ``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset``; a
    refused one is a 429 with ``Retry-After`` as well.
    """

    def __init__(self, buckets: TokenBuckets) -> None:
        self._buckets = buckets

    def process_resource(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        resource: object,
        params: dict[str, object],
    ) -> None:
        principal: Principal | None = getattr(req.context, "principal", None)
        if principal is None:
            return
        decision = self._buckets.take(principal.tenant)
        req.context.rate_limit = decision
        if not decision.allowed:
            log(
                LogEvent.RATE_LIMITED,
                "rate limited: retry after %d s",
                decision.retry_after,
                retry_after=decision.retry_after,
            )
            raise falcon.HTTPTooManyRequests(
                description=(
                    f"This tenant may send {self._buckets.policy.limit} requests per "
                    f"{_period_name(self._buckets.policy.period)}; retry after "
                    f"{decision.retry_after} s."
                ),
                retry_after=decision.retry_after,
            )

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        decision: Decision | None = getattr(req.context, "rate_limit", None)
        if decision is None:
            return
        resp.set_header("RateLimit-Limit", str(decision.limit))
        resp.set_header("RateLimit-Remaining", str(decision.remaining))
        resp.set_header("RateLimit-Reset", str(decision.reset))


def _period_name(seconds: int) -> str:
    return next(name for name, length in _PERIODS.items() if length == seconds)
