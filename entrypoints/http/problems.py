"""Every failure as an RFC 9457 problem: the one place errors become HTTP statuses."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import falcon
import msgspec

from commerce.core.errors import (
    CommerceError,
    Conflict,
    Forbidden,
    IdempotencyMismatch,
    InsufficientStock,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    StorageUnavailable,
    Unauthorized,
)
from commerce.core.events import LogEvent
from commerce.entrypoints.http.media import encode

MEDIA_PROBLEM = "application/problem+json"
PROBLEM_BASE = "https://commerce.example/problems/"
"""Problem ``type`` URIs are this plus a slug. They identify a kind of problem; they are not
links, so clients compare them as strings (docs/http.md lists them)."""

WWW_AUTHENTICATE = 'Bearer realm="commerce"'

log = logging.getLogger("commerce.http")


class Shortage(msgspec.Struct):
    """An item an adjustment batch would take below zero."""

    item_id: int
    quantity: int
    """What the store held before the batch."""
    delta: int
    """The batch's total change of this item."""


class Problem(msgspec.Struct, omit_defaults=True):
    """An RFC 9457 problem details object, the body of every error response.

    ``field`` names the query parameter, header, path parameter or body field a 400 is about
    (``adjustments[2].delta``). Extension members a client can act on: ``current_quantity``
    (the level's quantity when a compare-and-set found another), ``items`` (the items an
    adjustment batch would take below zero), ``store_ids`` (the stores that still hold an
    item that cannot be deleted).
    """

    type: str
    title: str
    status: int
    detail: str
    field: str | None = None
    current_quantity: int | None = None
    items: list[Shortage] | None = None
    store_ids: list[int] | None = None


CORE_ERRORS: dict[type[CommerceError], tuple[int, str]] = {
    InvalidInput: (400, "invalid-input"),
    Unauthorized: (401, "unauthorized"),
    Forbidden: (403, "forbidden"),
    NotFound: (404, "not-found"),
    Conflict: (409, "conflict"),
    InsufficientStock: (409, "insufficient-stock"),
    PreconditionFailed: (412, "precondition-failed"),
    IdempotencyMismatch: (422, "idempotency-key-reused"),
    StorageUnavailable: (503, "storage-unavailable"),
}
"""Core error class -> (status, slug). Lookup walks the MRO, so a subclass of ``Conflict``
without an entry of its own is still a 409. Anything else (``Misconfigured``) is a 500."""

FALCON_ERRORS: dict[int, tuple[str, str]] = {
    400: ("bad-request", "Bad Request"),
    404: ("not-found", "Not Found"),
    405: ("method-not-allowed", "Method Not Allowed"),
    413: ("content-too-large", "Content Too Large"),
    415: ("unsupported-media-type", "Unsupported Media Type"),
    429: ("too-many-requests", "Too Many Requests"),
}
"""Status -> (slug, title) for errors Falcon raises itself; other statuses derive both from the
reason phrase. Titles are spelled here because Python's phrases vary by version (413)."""

INTERNAL_ERROR = "internal-error"


def problem_type(slug: str) -> str:
    return PROBLEM_BASE + slug


def send_problem(
    resp: falcon.Response,
    status: int,
    slug: str,
    title: str,
    detail: str,
    field: str | None = None,
    extra: Mapping[str, object] | None = None,
) -> None:
    """Send a problem; ``extra`` adds extension members, never replacing the standard ones."""
    resp.status = status
    resp.content_type = MEDIA_PROBLEM
    if not extra:
        resp.data = encode(Problem(problem_type(slug), title, status, detail, field))
        return
    body: dict[str, object] = {
        "type": problem_type(slug),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if field is not None:
        body["field"] = field
    for name, value in extra.items():
        body.setdefault(name, value)
    resp.data = encode(body)


def _request_fields(req: falcon.Request) -> dict[str, Any]:
    return {
        "request_id": getattr(req.context, "request_id", None),
        "method": req.method,
        "path": req.path,
    }


def _core_status(exc: CommerceError) -> tuple[int, str] | None:
    for cls in type(exc).__mro__:
        found = CORE_ERRORS.get(cls)
        if found is not None:
            return found
    return None


def handle_core_error(
    req: falcon.Request, resp: falcon.Response, ex: CommerceError, params: dict[str, Any]
) -> None:
    mapped = _core_status(ex)
    if mapped is None:
        handle_unexpected(req, resp, ex, params)
        return
    status, slug = mapped
    field = ex.field if isinstance(ex, InvalidInput) else None
    send_problem(resp, status, slug, ex.title, ex.detail, field, ex.extra)
    retry_after: int | None = getattr(ex, "retry_after", None)
    if retry_after is not None:
        resp.set_header("Retry-After", str(retry_after))
    if isinstance(ex, Unauthorized):
        # RFC 6750: say that a token was presented and refused, not merely missing.
        presented = req.get_header("Authorization") is not None
        resp.set_header(
            "WWW-Authenticate",
            WWW_AUTHENTICATE + (', error="invalid_token"' if presented else ""),
        )
    elif isinstance(ex, StorageUnavailable):
        log.warning(
            "storage unavailable: %s",
            ex.detail,
            extra={
                "event": LogEvent.STORAGE_UNAVAILABLE,
                **_request_fields(req),
            },
        )


def handle_http_error(
    req: falcon.Request, resp: falcon.Response, ex: falcon.HTTPError, params: dict[str, Any]
) -> None:
    status = ex.status_code
    known = FALCON_ERRORS.get(status)
    if known is not None:
        slug, title = known
    else:
        title = HTTPStatus(status).phrase
        slug = title.lower().replace(" ", "-")
    if status == 404:
        # Falcon's own 404 (no route): the same problem as an unknown resource, saying less.
        detail = "There is no resource at this path."
    elif status == 405:
        detail = f"{req.method} is not allowed here; the Allow header lists what is."
    else:
        detail = ex.description or title
    send_problem(resp, status, slug, title, detail)
    if ex.headers:
        resp.set_headers(ex.headers)


def handle_unexpected(
    req: falcon.Request, resp: falcon.Response, ex: Exception, params: dict[str, Any]
) -> None:
    """A 500 whose body says nothing about the failure; the log has the traceback."""
    fields = _request_fields(req)
    log.error(
        "request failed: %s %s",
        req.method,
        req.path,
        exc_info=ex,
        extra={
            "event": LogEvent.REQUEST_FAILED,
            **fields,
        },
    )
    detail = "The server could not complete the request."
    if fields["request_id"]:
        detail += f" Quote request id {fields['request_id']} when reporting it."
    send_problem(resp, 500, INTERNAL_ERROR, "Internal Server Error", detail)


def install(app: falcon.App[falcon.Request, falcon.Response]) -> None:
    """Route every exception to a problem response; Falcon picks the most specific handler."""
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(falcon.HTTPError, handle_http_error)
    app.add_error_handler(CommerceError, handle_core_error)
