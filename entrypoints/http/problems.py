"""Every failure as an RFC 9457 problem: the one place errors become HTTP statuses.

The typed errors of ``commerce.core.errors`` say what went wrong (``detail``) and the facts a
client can act on (``extra``, declared with their types in ``extensions``). This module maps
each class to its status and slug, builds the problem body from the error, and builds the
OpenAPI ``Problem`` schemas from the same declarations, so that no extension member can be
sent without being documented: an undeclared one is not sent at all.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from functools import cache
from http import HTTPStatus
from typing import Annotated, Any, Literal

import falcon
import msgspec
from msgspec import UNSET, Meta, UnsetType

from commerce.core.errors import (
    CommerceError,
    ConcurrentChange,
    Conflict,
    FeatureDisabled,
    Forbidden,
    IdempotencyMismatch,
    InsufficientStock,
    InvalidInput,
    LevelChanged,
    NotFound,
    PreconditionFailed,
    StorageUnavailable,
    Unauthorized,
    error_classes,
)
from commerce.core.events import LogEvent, event_log
from commerce.entrypoints.http.media import encode

MEDIA_PROBLEM = "application/problem+json"
PROBLEM_BASE = "https://commerce.example/problems/"
"""Problem ``type`` URIs are this plus a slug. They identify a kind of problem; they are not
links, so clients compare them as strings (docs/http.md lists them)."""

WWW_AUTHENTICATE = 'Bearer realm="commerce"'

log = event_log("commerce.http")


CORE_ERRORS: dict[type[CommerceError], tuple[int, str]] = {
    InvalidInput: (400, "invalid-input"),
    Unauthorized: (401, "unauthorized"),
    Forbidden: (403, "forbidden"),
    NotFound: (404, "not-found"),
    FeatureDisabled: (404, "feature-disabled"),
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


def status_of(cls: type[CommerceError]) -> tuple[int, str] | None:
    """(status, slug) of an error class: its own entry, else its nearest base's; ``None``: 500."""
    for base in cls.__mro__:
        found = CORE_ERRORS.get(base)
        if found is not None:
            return found
    return None


def extension_members(ex: CommerceError) -> dict[str, object]:
    """The facts of ``ex.extra`` its class declares in ``extensions``, in the order raised.

    A fact the class does not declare would be missing from the OpenAPI document, so it is
    not sent; the warning tells whoever added it to declare it.
    """
    declared = type(ex).extensions
    undeclared = sorted(name for name in ex.extra if name not in declared)
    if undeclared:
        log(
            LogEvent.CLIENT_ERROR,
            "%s carries undeclared extension members %s; add them to its extensions",
            type(ex).__name__,
            ", ".join(undeclared),
            error=type(ex).__name__,
            undeclared=undeclared,
        )
    return {name: value for name, value in ex.extra.items() if name in declared}


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
    body: dict[str, object] = {
        "type": problem_type(slug),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if field is not None:
        body["field"] = field
    for name, value in (extra or {}).items():
        body.setdefault(name, value)
    resp.data = encode(body)


def _request_fields(req: falcon.Request) -> dict[str, Any]:
    return {
        "request_id": getattr(req.context, "request_id", None),
        "method": req.method,
        "path": req.path,
    }


def handle_core_error(
    req: falcon.Request, resp: falcon.Response, ex: CommerceError, params: dict[str, Any]
) -> None:
    mapped = status_of(type(ex))
    if mapped is None:
        handle_unexpected(req, resp, ex, params)
        return
    status, slug = mapped
    field = ex.field if isinstance(ex, InvalidInput) else None
    send_problem(resp, status, slug, ex.title, ex.detail, field, extension_members(ex))
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
    elif isinstance(ex, PreconditionFailed) and not isinstance(ex, LevelChanged):
        # An If-Match that no longer holds; a level's (LevelChanged) is logged by its use case.
        log(LogEvent.CAS_CONFLICT, "%s", ex.detail, conflict="version", path=req.path)
    elif isinstance(ex, ConcurrentChange):
        # A conditional write in storage lost to another writer between its two statements.
        log(LogEvent.CAS_CONFLICT, "%s", ex.detail, conflict="concurrent", path=req.path)
    elif isinstance(ex, StorageUnavailable):
        log(
            LogEvent.STORAGE_UNAVAILABLE,
            "storage unavailable: %s",
            ex.detail,
            **_request_fields(req),
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
    log(
        LogEvent.REQUEST_FAILED,
        "request failed: %s %s",
        req.method,
        req.path,
        exc_info=ex,
        error=type(ex).__name__,
        **fields,
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


# -- the schemas of the problem documents -------------------------------------------------------

_FIELD: tuple[str, Any, Any] = ("field", str | None, None)
_PROBLEM_DOC = """An RFC 9457 problem details object, the body of every error response.

``field`` names the query parameter, header, path parameter or body field a 400 is about
(``adjustments[2].delta``). The members past the standard ones are facts a client can act
on, each sent only by the problems its description names (their own schemas, too, are here:
``<Error>Problem``)."""


def documented_errors() -> list[tuple[type[CommerceError], int, str]]:
    """(class, status, slug) of every error class that declares extension members of its own
    and is sent as a problem (a 500 sends no facts), most general first."""
    found = []
    for cls in error_classes():
        mapped = status_of(cls)
        if cls.__dict__.get("extensions") and mapped is not None:
            found.append((cls, *mapped))
    return found


def _members() -> dict[str, tuple[Any, list[str]]]:
    """Extension member -> (its type, who sends it), over every documented error.

    Two classes may share a member only with the same type: one name, one meaning.
    """
    members: dict[str, tuple[Any, list[str]]] = {}
    for cls, status, slug in documented_errors():
        for name, kind in cls.extensions.items():
            known, senders = members.setdefault(name, (kind, []))
            if known != kind:
                raise TypeError(
                    f"extension member {name!r} is {known} in one error and {kind} in "
                    f"{cls.__name__}; give one of them another name"
                )
            senders.append(f"{status} `{slug}` ({cls.__name__})")
    return members


def _error_problem(cls: type[CommerceError], status: int, slug: str) -> type[msgspec.Struct]:
    """``<Error>Problem``: its ``type`` and ``status`` fixed, its extension members required."""
    # getdoc: a class without a docstring of its own (StoreHasStock) says what its base says.
    summary = (inspect.getdoc(cls) or cls.__name__).split("\n\n")[0]
    return msgspec.defstruct(
        f"{cls.__name__}Problem",
        [
            ("type", Literal[problem_type(slug)]),
            ("title", str),
            ("status", Literal[status]),
            ("detail", str),
            *([_FIELD] if issubclass(cls, InvalidInput) else []),
            *cls.extensions.items(),
        ],
        kw_only=True,
        omit_defaults=True,
        namespace={"__doc__": f"`{slug}` ({status}): " + " ".join(summary.split())},
    )


@cache
def problem_models() -> dict[str, tuple[type[msgspec.Struct], int | None]]:
    """The OpenAPI schemas of problem documents, built from the errors' ``extensions``.

    Schema name -> (msgspec Struct, the status it is sent with). First ``Problem`` (any
    status): the standard members and, optional, every extension member any error declares.
    Then one ``<Error>Problem`` for each error that declares members of its own.
    """
    optional = [
        (name, Annotated[kind | UnsetType, Meta(description=f"Sent with {'; '.join(by)}.")], UNSET)
        for name, (kind, by) in _members().items()
    ]
    problem = msgspec.defstruct(
        "Problem",
        [("type", str), ("title", str), ("status", int), ("detail", str), _FIELD, *optional],
        kw_only=True,
        omit_defaults=True,
        namespace={"__doc__": _PROBLEM_DOC},
    )
    models: dict[str, tuple[type[msgspec.Struct], int | None]] = {"Problem": (problem, None)}
    for cls, status, slug in documented_errors():
        model = _error_problem(cls, status, slug)
        models[model.__name__] = (model, status)
    return models
