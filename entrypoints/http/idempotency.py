"""Idempotency-Key: a retried write replays the first response instead of applying twice.

Keys live in storage (the ``IdempotencyRecords`` port, the only one this layer is given),
scoped to the caller's tenant, so a retry that lands on another replica finds them. The first
request with a key claims it, runs, and keeps its response; a retry of the same request (same
method, path, query and body) gets that response back with ``Idempotent-Replayed: true``; the
same key on a different request is a 422; a retry while the first still runs is a 409 with
``Retry-After``. A response of 500 or more is not kept: the key is released, so the retry
runs again.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta

import falcon

from commerce.core.auth import Principal
from commerce.core.errors import Conflict, InvalidInput
from commerce.core.events import LogEvent
from commerce.core.models import StoredResponse
from commerce.core.ports import IdempotencyRecords
from commerce.entrypoints.http.bodies import read_body

log = logging.getLogger("commerce.http")

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
"""1 to 255 visible ASCII characters: a UUID fits, and nothing that could smuggle in spaces."""
_KEY = re.compile(KEY_PATTERN)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
KEPT_HEADERS = ("Content-Type", "Location", "ETag")
"""The headers a replay repeats; the rest (X-Request-ID) belong to each request."""
STALE_AFTER = timedelta(seconds=60)
"""A claim this old whose request never finished is taken over: its holder is presumed dead."""
PURGE_EVERY = 60.0
"""Seconds between two purges of old keys by one process."""
MIN_TTL = timedelta(hours=24)


class KeyInUse(Conflict):
    """The key cannot be claimed now: its request still runs (``IdempotencyInProgress``), or
    the claim changed meanwhile (``ConcurrentChange``). The retry should wait and try again,
    which the 409 says with ``Retry-After``, a hint only HTTP has a use for."""

    retry_after = 1


def _utcnow() -> datetime:
    return datetime.now(UTC)


def fingerprint(req: falcon.Request, body: bytes) -> str:
    """What makes two requests "the same": method, path, query string and body."""
    digest = hashlib.sha256()
    for part in (req.method, req.root_path + req.path, req.query_string):
        digest.update(part.encode("utf-8", "surrogateescape"))
        digest.update(b"\n")
    digest.update(body)
    return digest.hexdigest()


class Idempotency:
    """Middleware: runs after authentication, which it needs for the tenant.

    Reads and writes without the header pass through untouched; reads cost one set lookup.
    """

    def __init__(
        self,
        records: IdempotencyRecords,
        writes: Collection[tuple[str, str]],
        *,
        max_body_bytes: int,
        ttl: timedelta = MIN_TTL,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._records = records
        self._writes = frozenset(writes)
        self._max_body_bytes = max_body_bytes
        self._ttl = max(ttl, MIN_TTL)
        self._clock = _utcnow if clock is None else clock
        self._next_purge = 0.0
        self._purge_lock = threading.Lock()

    def process_resource(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        resource: object,
        params: dict[str, object],
    ) -> None:
        if req.method not in WRITE_METHODS:
            return
        key = req.get_header(HEADER)
        if key is None or (req.uri_template, req.method) not in self._writes:
            return
        if not _KEY.fullmatch(key):
            raise InvalidInput(HEADER, "must be 1 to 255 visible ASCII characters")
        principal: Principal = req.context.principal
        body = read_body(req, self._max_body_bytes)
        self._purge_now_and_then()
        stored = self._claim(principal.tenant, key, fingerprint(req, body))
        if stored is None:
            req.context.idempotency = (principal.tenant, key)
            return
        resp.status = stored.status
        for name, value in stored.headers:
            resp.set_header(name, value)
        resp.set_header(REPLAYED, "true")
        resp.data = stored.body
        resp.complete = True  # the responder does not run: nothing is applied again

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        if req.method not in WRITE_METHODS:
            return
        held: tuple[str, str] | None = getattr(req.context, "idempotency", None)
        if held is None:
            return
        tenant, key = held
        status = resp.status_code
        try:
            if status >= 500:
                # Nothing was applied (or we cannot tell): let a retry run again.
                self._records.release_idempotency_key(tenant, key)
                return
            headers = tuple(
                (name, value)
                for name in KEPT_HEADERS
                if (value := resp.get_header(name)) is not None
            )
            body = resp.render_body() or b""
            self._records.complete_idempotency_key(
                tenant, key, StoredResponse(status=status, headers=headers, body=body)
            )
        except Exception as exc:
            # The response stands: the client must learn what happened to its request. Until
            # the claim goes stale, a retry gets a 409; after that it runs again.
            log.warning(
                "could not keep the response of idempotency key: %s",
                exc,
                extra={
                    "event": LogEvent.STORAGE_UNAVAILABLE,
                    "request_id": getattr(req.context, "request_id", None),
                    "method": req.method,
                    "path": req.path,
                },
            )

    def _claim(self, tenant: str, key: str, print_: str) -> StoredResponse | None:
        try:
            return self._records.claim_idempotency_key(tenant, key, print_, stale_after=STALE_AFTER)
        except Conflict as exc:
            raise KeyInUse(exc.detail) from None

    def _purge_now_and_then(self) -> None:
        """Forget keys older than the TTL, at most once a minute per process, never failing."""
        now = time.monotonic()
        if now < self._next_purge or not self._purge_lock.acquire(blocking=False):
            return
        try:
            self._next_purge = now + PURGE_EVERY
            self._records.purge_idempotency_keys(self._clock() - self._ttl)
        except Exception as exc:
            log.warning(
                "could not purge old idempotency keys: %s",
                exc,
                extra={"event": LogEvent.STORAGE_UNAVAILABLE},
            )
        finally:
            self._purge_lock.release()
