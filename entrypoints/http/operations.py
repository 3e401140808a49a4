"""The operations routes: liveness (``/healthz``), readiness (``/readyz``, with a reason when
not ready) and the OpenAPI document. They need no credentials and call no use case."""

from __future__ import annotations

import falcon
import msgspec

from commerce.core.errors import (
    SchemaBehind,
    StorageUnavailable,
)
from commerce.entrypoints.http.context import AppContext
from commerce.entrypoints.http.media import encode
from commerce.entrypoints.http.problems import send_problem


class Status(msgspec.Struct):
    """The body of ``/healthz`` and ``/readyz``."""

    status: str


_OK = encode(Status("ok"))


class Health:
    """Liveness: the process answers. It touches nothing else, so a slow database cannot fail it."""

    def __init__(self, ctx: AppContext) -> None:
        pass

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.data = _OK


class Ready:
    """Readiness: whether this process should be sent traffic now; 503 with a ``reason`` if not.

    The reasons, in the order they are looked at: ``draining`` (the server is stopping and
    finishing the requests in progress; storage is not asked), ``schema_behind`` (storage
    answers but needs ``commerce db upgrade``), ``storage_unreachable`` (storage cannot answer).
    The answer is a problem document (RFC 9457) with the reason as an extension member and a
    ``Retry-After``. ``check`` belongs to the storage bundle, not to a port: it asks whether
    storage can answer at all, which no use case is about.
    """

    def __init__(self, ctx: AppContext) -> None:
        self._check = ctx.storage.check
        self._lifecycle = ctx.lifecycle

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._lifecycle.draining:
            detail = "the server is stopping; it finishes the requests in progress and exits"
            _not_ready(resp, NOT_READY_DRAINING, detail, retry_after=DRAINING_RETRY_AFTER)
            return
        try:
            self._check()
        except SchemaBehind as exc:
            _not_ready(resp, NOT_READY_SCHEMA, exc.detail, retry_after=exc.retry_after)
        except StorageUnavailable as exc:
            _not_ready(resp, NOT_READY_STORAGE, exc.detail, retry_after=exc.retry_after)
        else:
            resp.data = _OK


NOT_READY_DRAINING = "draining"
NOT_READY_SCHEMA = "schema_behind"
NOT_READY_STORAGE = "storage_unreachable"
DRAINING_RETRY_AFTER = 5
"""Seconds a probe is told to wait during a drain; the process is gone soon after anyway."""


def _not_ready(resp: falcon.Response, reason: str, detail: str, *, retry_after: int) -> None:
    resp.set_header("Retry-After", str(retry_after))
    send_problem(
        resp,
        503,
        "storage-unavailable" if reason != NOT_READY_DRAINING else "draining",
        "Storage Unavailable" if reason != NOT_READY_DRAINING else "Draining",
        detail,
        extra={"reason": reason},
    )


class OpenAPIDocument:
    def __init__(self, ctx: AppContext) -> None:
        self._body = ctx.openapi_json

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.data = self._body
