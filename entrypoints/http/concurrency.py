"""A cap on each tenant's requests in progress at once, so that one tenant cannot hold every thread.

waitress serves a fixed number of threads. Without a cap, one tenant sending heavy reads in
parallel (1,000 ids, ``as_of``, ``limit=1000``) holds all of them and every other tenant's
request waits behind its work. With the cap, a tenant at its share waits briefly for
one of its own slots and is then answered 429 with ``Retry-After``, so the other threads
stay free for the other tenants.

Queued while it moves, then refused: a request over the cap waits for a slot as long as
the tenant's requests keep finishing (one at least every ``wait`` seconds, 1 by default;
5 s at the most), and at most ``limit`` of a tenant's requests wait at once (any more are
refused at once). Quick requests (a sale takes milliseconds) then pass through the cap one
after another with no 429 even when one tenant sends more at once than the server has
threads, which is what a busy till system does; behind slow ones (heavy reads) a waiter
gives up after ``wait``, so another tenant's request is never held up for long.
"""

from __future__ import annotations

import threading
import time

import falcon

from commerce.core.auth import Principal

UNCAPPED = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})
"""Operational routes, never capped: a probe must get through while a tenant is at its cap.
They are public, so they carry no principal and would not be counted anyway; the list says
so even if one of them comes to require credentials."""

DEFAULT_WAIT = 1.0
"""Seconds a request over its tenant's cap waits for a slot with none of the tenant's
requests finishing, before the 429."""

MAX_WAIT = 5.0
"""Seconds a request over its tenant's cap waits for a slot at the most."""

RETRY_AFTER = 1
"""Seconds a refused client is told to wait: about as long as a heavy request takes."""


class TenantConcurrency:
    """Falcon middleware, after ``Authentication``: at most ``limit`` requests of one tenant
    in progress; past it a short wait for a slot, then a 429 problem with ``Retry-After``.

    A request holds its slot from this ``process_resource`` to this ``process_response``,
    which Falcon runs whatever the outcome, error or not, and after that of every middleware
    listed later (idempotency's writes included), so a slot is always given back, and only
    once the request's storage work is done. Counts live in this process: each replica caps
    on its own.
    """

    def __init__(self, limit: int, *, wait: float = DEFAULT_WAIT) -> None:
        if limit < 1:
            raise ValueError(f"a tenant must be allowed at least 1 request at once, not {limit}")
        if wait < 0:
            raise ValueError(f"the wait for a slot cannot be negative, not {wait}")
        self.limit = limit
        self.wait = wait
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)
        self._in_progress: dict[str, int] = {}
        """tenant -> requests in progress; a tenant with none has no entry."""
        self._waiting: dict[str, int] = {}
        """tenant -> requests waiting for a slot; a tenant with none has no entry."""
        self._released: dict[str, float] = {}
        """tenant -> when a slot of it was last given back, while any of it wait."""

    def in_progress(self, tenant: str) -> int:
        """How many of ``tenant``'s requests hold a slot now (for tests and metrics)."""
        with self._lock:
            return self._in_progress.get(tenant, 0)

    def process_resource(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        resource: object,
        params: dict[str, object],
    ) -> None:
        principal: Principal | None = getattr(req.context, "principal", None)
        if principal is None or req.uri_template in UNCAPPED:
            return
        tenant = principal.tenant
        if not self._take(tenant):
            raise falcon.HTTPTooManyRequests(
                description=(
                    f"This tenant already has {self.limit} requests in progress, the most it "
                    f"may have at once; retry after {RETRY_AFTER} s."
                ),
                retry_after=RETRY_AFTER,
            )
        req.context.concurrency_slot = tenant

    def _take(self, tenant: str) -> bool:
        """A slot for ``tenant``; ``False`` if none came.

        Over the cap, the request waits while the tenant's own requests keep finishing (one
        at least every ``wait`` seconds), ``MAX_WAIT`` at the most: a burst of quick requests
        queues through, a pile of slow ones is refused after ``wait``.
        """
        with self._lock:
            if self._in_progress.get(tenant, 0) < self.limit:
                self._in_progress[tenant] = self._in_progress.get(tenant, 0) + 1
                return True
            waiting = self._waiting.get(tenant, 0)
            if self.wait <= 0 or waiting >= self.limit:
                return False
            self._waiting[tenant] = waiting + 1
            start = time.monotonic()
            try:
                while self._in_progress.get(tenant, 0) >= self.limit:
                    now = time.monotonic()
                    # Waiting is worth it only while the tenant's requests keep finishing.
                    progress = max(start, self._released.get(tenant, start))
                    left = min(progress + self.wait, start + MAX_WAIT) - now
                    if left <= 0:
                        return False
                    self._freed.wait(left)
                self._in_progress[tenant] = self._in_progress.get(tenant, 0) + 1
                return True
            finally:
                if self._waiting[tenant] == 1:
                    del self._waiting[tenant]
                else:
                    self._waiting[tenant] -= 1

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        tenant: str | None = getattr(req.context, "concurrency_slot", None)
        if tenant is None:
            return
        req.context.concurrency_slot = None
        with self._lock:
            left = self._in_progress[tenant] - 1
            if left:
                self._in_progress[tenant] = left
            else:
                # No entry for an idle tenant: the table stays as small as the busy ones.
                del self._in_progress[tenant]
            if tenant in self._waiting:
                self._released[tenant] = time.monotonic()
                self._freed.notify_all()
            else:
                self._released.pop(tenant, None)
