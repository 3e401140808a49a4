"""Rate limiting per tenant: one token per authenticated request from its tenant's bucket;
429 when empty.

Off unless ``COMMERCE_RATE_LIMIT`` is set. Where the buckets live is the ``RateLimiter``'s
business (``core.ratelimit``), a plugin chosen by ``COMMERCE_RATE_LIMIT_STORE``: this process
(``memory://``, the default) or a Redis every process and host shares (docs/security.md).
"""

from __future__ import annotations

import re

import falcon

from commerce.adapters.ratelimit.memory import TokenBuckets
from commerce.core.auth import Principal
from commerce.core.errors import Misconfigured
from commerce.core.events import LogEvent, event_log
from commerce.core.ratelimit import Decision, RateLimiter, RatePolicy

__all__ = ["Decision", "RateLimit", "RatePolicy", "TokenBuckets", "parse_policy"]

log = event_log("commerce.http")

_PERIODS = {"second": 1, "minute": 60, "hour": 3600}
_SPEC = re.compile(r"\s*(\d+)\s*(?:/\s*(second|minute|hour)s?)?\s*")


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


class RateLimit:
    """Falcon middleware: after ``Authentication``, one token from the caller's tenant's bucket.

    Public operations (no principal) are not limited. When limiting is on, every limited
    response carries ``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset``; a
    refused one is a 429 with ``Retry-After`` as well.
    """

    def __init__(self, buckets: RateLimiter) -> None:
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
