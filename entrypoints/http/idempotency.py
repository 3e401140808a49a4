"""Idempotency-Key: a retried write replays the first response instead of applying twice.

Keys live in storage (the ``IdempotencyRecords`` port, the only one this layer is given),
scoped to the caller's tenant, so a retry that lands on another replica finds them. The first
request with a key claims it, runs, and keeps its response; a retry of the same request (same
method, path, query and body) gets that response back with ``Idempotent-Replayed: true``; the
same key on a different request is a 422.

Exactly once: the claim, the request's writes and the response kept for replay are one
transaction (``IdempotencyRecords.begin_transaction``), opened before the claim and committed
once the response is rendered and kept. A response of 500 or more, or a failure to keep the
response or to commit, rolls all of it back, the write included: the client gets that error
(a 503 with ``Retry-After`` when keeping failed), and its retry runs afresh. A retry sent
while the first request runs waits for it and gets its response; a 409 with ``Retry-After``
is left for keys another process holds outside such a transaction.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta

import falcon

from commerce.core.auth import Principal
from commerce.core.errors import Conflict, InvalidInput, StorageUnavailable
from commerce.core.events import LogEvent, event_log
from commerce.core.models import StoredResponse
from commerce.core.ports import IdempotencyRecords, Transaction
from commerce.entrypoints.http.decoding import read_body

log = event_log("commerce.http")

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
        # Before the transaction: the purge is not the request's to wait for or to undo.
        self._purge_now_and_then()
        transaction = self._records.begin_transaction()
        try:
            stored = self._claim(principal.tenant, key, fingerprint(req, body))
        except BaseException:
            transaction.rollback()
            raise
        if stored is None:
            # Held until process_response, which Falcon calls whatever the responder does.
            req.context.idempotency = (principal.tenant, key, transaction)
            return
        transaction.rollback()  # a replay changes nothing
        log(
            LogEvent.IDEMPOTENT_REPLAY,
            "replayed the response kept for this Idempotency-Key",
            original_status=stored.status,
        )
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
        held: tuple[str, str, Transaction] | None = getattr(req.context, "idempotency", None)
        if held is None:
            return
        req.context.idempotency = None
        tenant, key, transaction = held
        status = resp.status_code
        try:
            if status >= 500:
                # The claim and whatever the request wrote go together: a retry runs again.
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
            transaction.commit()
        except StorageUnavailable:
            # Rolled back below, the write with the record (or, if the connection was lost in
            # the commit, perhaps both committed): either way the retry is safe, as it replays
            # or runs afresh. The response rendered above must not reach the client; the 503
            # that replaces it is logged by the error handler.
            _discard(resp)
            raise
        except Exception as exc:
            log(
                LogEvent.REQUEST_FAILED,
                "could not keep the response of an idempotency key",
                exc_info=exc,
                request_id=getattr(req.context, "request_id", None),
                method=req.method,
                path=req.path,
                error=type(exc).__name__,
            )
            _discard(resp)
            raise StorageUnavailable(
                "the request's outcome could not be kept for its Idempotency-Key, so it was "
                "undone; send it again with the same key"
            ) from exc
        finally:
            transaction.rollback()  # nothing left to undo once committed

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
            log(
                LogEvent.STORAGE_UNAVAILABLE,
                "could not purge old idempotency keys: %s",
                type(exc).__name__,
                error=type(exc).__name__,
            )
        finally:
            self._purge_lock.release()


def _discard(resp: falcon.Response) -> None:
    """Forget the response the responder made, before an error handler makes another."""
    resp.text = None
    resp.data = None
    resp.media = None
    for name in KEPT_HEADERS:
        resp.delete_header(name)
