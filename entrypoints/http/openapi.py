"""The OpenAPI 3.1 document, built from the route table and the core's types; no store needed."""

from __future__ import annotations

import dataclasses
from functools import cache
from importlib import metadata
from typing import Any

import msgspec

from commerce.core.auth import Role
from commerce.core.flags import AS_OF_READS, COUNTED_SETS, Flag
from commerce.entrypoints.http.bodies import PATCH_BODIES
from commerce.entrypoints.http.idempotency import HEADER as IDEMPOTENCY_KEY
from commerce.entrypoints.http.idempotency import KEY_PATTERN, REPLAYED
from commerce.entrypoints.http.media import timestamp_fields
from commerce.entrypoints.http.params import MAX_ID
from commerce.entrypoints.http.problems import MEDIA_PROBLEM, PROBLEM_BASE, problem_models
from commerce.entrypoints.http.routes import Operation, Route, operations

_SCHEMAS = "#/components/schemas/"
_RESPONSES = "#/components/responses/"
_HEADERS = "#/components/headers/"
_PARAMETERS = "#/components/parameters/"

_DESCRIPTION = f"""\
An inventory service for retail store chains: chains, stores, items and inventory levels.

Every request but `/healthz`, `/readyz` and `/openapi.json` needs `Authorization: Bearer
<API key or JWT>`. Another tenant's resource is a 404, exactly as if it did not exist.
When rate limiting is on, each tenant's requests are limited: responses carry
`RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`, and one over the limit is a
429 with `Retry-After`.

Lists are JSON arrays, paginated by `limit` and an opaque `cursor`; the next page, if any, is
announced in a `Link: <...>; rel="next"` header. Errors are RFC 9457 problem details
(`{MEDIA_PROBLEM}`) whose `type` starts with `{PROBLEM_BASE}`. Timestamps are RFC 3339 in
UTC (`Z`); money is a decimal string such as `"12.50"`, in responses and in request bodies.

Writes take `application/json` bodies; unknown fields are refused. A `PATCH` changes the
fields it names (at least one; `null` is refused). Single resources carry a strong `ETag`:
`If-None-Match` on a GET answers 304, `If-Match` on a PUT, PATCH or DELETE answers 412 when
the resource has changed. Every POST, PUT, PATCH and DELETE takes an `{IDEMPOTENCY_KEY}`: a
retry of the same request with the same key answers the first response again (with
`{REPLAYED}: true`) and applies nothing twice.
"""


FLAGGED: dict[str, tuple[Flag, str]] = {
    "listStoreInventory": (AS_OF_READS, "With `as_of`, behind"),
    "setLevel": (COUNTED_SETS, "Behind"),
}
"""Operations a feature flag can turn off for a tenant (operation id -> the flag, and how the
description says so): their 404 may be a `feature-disabled` problem naming the flag."""


def _version() -> str:
    try:
        return metadata.version("commerce")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _is_model(cls: type) -> bool:
    return dataclasses.is_dataclass(cls) or issubclass(cls, msgspec.Struct)


def _schemas(models: list[type]) -> dict[str, Any]:
    _, components = msgspec.json.schema_components(models, ref_template=_SCHEMAS + "{name}")
    # msgspec only says "date-time" for datetimes annotated as aware; the core cannot carry
    # msgspec annotations, and this layer sends every timestamp in UTC, so say it here.
    for model in models:
        if dataclasses.is_dataclass(model):
            properties = components[model.__name__]["properties"]
            for name in timestamp_fields(model):
                properties[name]["format"] = "date-time"
    for body in PATCH_BODIES:
        components[body.__name__]["minProperties"] = 1
    if "Reason" in components:
        components["Reason"]["description"] = "Why a quantity changed."
    return components


def _ref(base: str, name: str) -> dict[str, str]:
    return {"$ref": base + name}


def _problem_response(description: str, **headers: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {
            "X-Request-ID": _ref(_HEADERS, "XRequestID"),
            **{name: _ref(_HEADERS, ref) for name, ref in headers.items()},
        },
        "content": {MEDIA_PROBLEM: {"schema": _ref(_SCHEMAS, "Problem")}},
    }


def _naming_errors(status: int, response: dict[str, Any]) -> dict[str, Any]:
    """``response`` whose schema also names the problems of the errors sent with ``status``.

    ``Problem`` admits every problem; each ``<Error>Problem`` says which members come with
    which error, so a client generator gets a type for each.
    """
    specific = [
        _ref(_SCHEMAS, name) for name, (_, sent) in problem_models().items() if sent == status
    ]
    if specific:
        content = response["content"][MEDIA_PROBLEM]
        content["schema"] = {"anyOf": [*specific, content["schema"]]}
    return response


def _header(description: str, **schema: Any) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string", **schema}}


_RATE_LIMIT_HEADERS_BY_NAME = {
    "RateLimit-Limit": "How many requests the caller's tenant may send at once.",
    "RateLimit-Remaining": "How many it may still send now.",
    "RateLimit-Reset": "Seconds until it may send `RateLimit-Limit` at once again.",
}
"""Sent on every authenticated response while rate limiting is on (`COMMERCE_RATE_LIMIT`)."""

_RATE_LIMIT_HEADERS = {
    name.replace("-", ""): {
        "description": description + " Sent only while rate limiting is on.",
        "schema": {"type": "integer", "minimum": 0},
    }
    for name, description in _RATE_LIMIT_HEADERS_BY_NAME.items()
}


def _components(models: list[type]) -> dict[str, Any]:
    return {
        "schemas": _schemas(models),
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "An API key (`commerce keys create`) or a JWT, as configured.",
            }
        },
        "headers": {
            "XRequestID": _header(
                "The request's id: the client's own if it sent a sane one "
                "(`^[A-Za-z0-9._:-]{1,128}$`), else a fresh one."
            ),
            "Link": _header(
                'The next page, as `<path?...&cursor=...>; rel="next"`; absent on the last page.'
            ),
            "RetryAfter": {
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "integer", "minimum": 0},
            },
            "WWWAuthenticate": _header("The scheme to authenticate with: `Bearer`."),
            **_RATE_LIMIT_HEADERS,
            "ETag": _header(
                "The representation's strong entity tag, for `If-None-Match` and `If-Match`."
            ),
            "Location": _header("The path of the resource created.", format="uri-reference"),
            "IdempotentReplayed": _header(
                f"`true` when this is the response kept under the `{IDEMPOTENCY_KEY}`, sent "
                "again; nothing was applied this time.",
                enum=["true"],
            ),
        },
        "parameters": {
            "XRequestID": {
                "name": "X-Request-ID",
                "in": "header",
                "required": False,
                "description": "An id for this request, echoed back and written to the logs. "
                "A value that does not match `^[A-Za-z0-9._:-]{1,128}$` is not refused but "
                "replaced by a fresh id, as it could carry anything into the logs.",
                "schema": {"type": "string"},
            },
            "IdempotencyKey": {
                "name": IDEMPOTENCY_KEY,
                "in": "header",
                "required": False,
                "description": "A key of the client's choosing (a UUID), unique per request it "
                "means. A retry with the same key and the same request answers the first "
                "response again, applying nothing; with another request, 422. Kept at least "
                "24 hours, per tenant.",
                "schema": {"type": "string", "pattern": KEY_PATTERN},
            },
            "IfMatch": {
                "name": "If-Match",
                "in": "header",
                "required": False,
                "description": "Apply only if the resource's current `ETag` is one of these "
                "(or, for `*`, if it exists); else 412.",
                "schema": {"type": "string"},
            },
            "IfNoneMatch": {
                "name": "If-None-Match",
                "in": "header",
                "required": False,
                "description": "Answer 304, without a body, if the resource's current `ETag` "
                "is one of these (or, for `*`, if it exists).",
                "schema": {"type": "string"},
            },
        },
        "responses": {
            "BadRequest": _problem_response(
                "A malformed path or query parameter, header or body; `field` names it."
            ),
            "Unauthorized": _problem_response(
                "No credentials, or credentials that were not accepted.",
                **{"WWW-Authenticate": "WWWAuthenticate"},
            ),
            "Forbidden": _problem_response("The credentials' role may not do this."),
            "NotFound": _problem_response(
                "No such resource for the caller's tenant (another tenant's is the same 404)."
            ),
            "NotFoundOrFeatureDisabled": _naming_errors(
                404,
                _problem_response(
                    "No such resource for the caller's tenant (another tenant's is the same "
                    "404), or a feature this operation needs is not enabled for the caller's "
                    "tenant (`feature-disabled`, naming the `flag`)."
                ),
            ),
            "Conflict": _naming_errors(
                409,
                _problem_response(
                    "The request contradicts the current state (`conflict`, or "
                    "`insufficient-stock` with `items`), or a request with the same "
                    "`Idempotency-Key` is still running (with `Retry-After`).",
                    **{"Retry-After": "RetryAfter"},
                ),
            ),
            "PreconditionFailed": _naming_errors(
                412, _problem_response("`If-Match` names no current version of the resource.")
            ),
            "ContentTooLarge": _problem_response("The body is larger than the limit (1 MiB)."),
            "UnsupportedMediaType": _problem_response("The body is not `application/json`."),
            "IdempotencyKeyReused": _problem_response(
                "The `Idempotency-Key` was used before for a different request."
            ),
            "TooManyRequests": _problem_response(
                "The caller's tenant has sent more requests than its rate limit allows; retry "
                "after `Retry-After` seconds.",
                **{"Retry-After": "RetryAfter"},
                **{name: name.replace("-", "") for name in _RATE_LIMIT_HEADERS_BY_NAME},
            ),
            "ServiceUnavailable": _problem_response(
                "Storage cannot answer now; retry later.", **{"Retry-After": "RetryAfter"}
            ),
            "Problem": _problem_response("Any other failure: 405 (with `Allow`), 413, 415, 500."),
        },
    }


def _body_schema(op: Operation) -> dict[str, Any]:
    response = op.response
    assert response is not None
    one = _ref(_SCHEMAS, response.__name__) if _is_model(response) else {"type": "object"}
    return {"type": "array", "items": one} if op.many or op.batch else one


def _success(op: Operation) -> dict[str, Any]:
    headers = {"X-Request-ID": _ref(_HEADERS, "XRequestID")}
    if op.many:
        headers["Link"] = _ref(_HEADERS, "Link")
    if op.status == 201:
        headers["Location"] = _ref(_HEADERS, "Location")
    if op.etag:
        headers["ETag"] = _ref(_HEADERS, "ETag")
    if op.writes:
        headers[REPLAYED] = _ref(_HEADERS, "IdempotentReplayed")
    if op.role is not None:
        headers.update(
            {name: _ref(_HEADERS, name.replace("-", "")) for name in _RATE_LIMIT_HEADERS_BY_NAME}
        )
    ok: dict[str, Any] = {"description": op.summary, "headers": headers}
    if op.response is not None:
        ok["content"] = {"application/json": {"schema": _body_schema(op)}}
    return ok


def _operation(route: Route, op: Operation) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": "A positive integer id.",
            "schema": {"type": "integer", "format": "int64", "minimum": 1, "maximum": MAX_ID},
        }
        for name in route.path_params
    ]
    parameters += [
        {
            "name": q.name,
            "in": "query",
            "required": False,
            "description": q.description,
            "schema": dict(q.schema),
        }
        for q in op.query_params()
    ]
    if op.writes:
        parameters.append(_ref(_PARAMETERS, "IdempotencyKey"))
    if op.conditional:
        parameters.append(_ref(_PARAMETERS, "IfMatch"))
    if op.etag and op.method == "GET":
        parameters.append(_ref(_PARAMETERS, "IfNoneMatch"))
    parameters.append(_ref(_PARAMETERS, "XRequestID"))

    responses: dict[str, Any] = {str(op.status): _success(op)}
    if op.etag and op.method == "GET":
        responses["304"] = {
            "description": "The client's copy, named in `If-None-Match`, is current.",
            "headers": {
                "ETag": _ref(_HEADERS, "ETag"),
                "X-Request-ID": _ref(_HEADERS, "XRequestID"),
            },
        }
    if route.path_params or op.query_params() or op.body is not None or op.writes:
        responses["400"] = _ref(_RESPONSES, "BadRequest")
    if op.role is not None:
        responses["401"] = _ref(_RESPONSES, "Unauthorized")
        if op.role > min(Role):
            responses["403"] = _ref(_RESPONSES, "Forbidden")
    if route.path_params or op.operation_id in FLAGGED:
        not_found = "NotFoundOrFeatureDisabled" if op.operation_id in FLAGGED else "NotFound"
        responses["404"] = _ref(_RESPONSES, not_found)
    if op.writes:
        responses["409"] = _ref(_RESPONSES, "Conflict")
    if op.conditional:
        responses["412"] = _ref(_RESPONSES, "PreconditionFailed")
    if op.body is not None:
        responses["413"] = _ref(_RESPONSES, "ContentTooLarge")
        responses["415"] = _ref(_RESPONSES, "UnsupportedMediaType")
    if op.writes:
        responses["422"] = _ref(_RESPONSES, "IdempotencyKeyReused")
    if op.role is not None:
        responses["429"] = _ref(_RESPONSES, "TooManyRequests")
    if op.uses_storage:
        responses["503"] = _ref(_RESPONSES, "ServiceUnavailable")
    responses["default"] = _ref(_RESPONSES, "Problem")

    doc: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": parameters,
    }
    if op.body is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(_SCHEMAS, op.body.__name__)}},
        }
    doc["responses"] = responses
    if op.role is None:
        doc["security"] = []
    else:
        doc["description"] = f"Needs the `{op.role.name}` role or above."
        if op.notes:
            doc["description"] += " " + op.notes
        if op.operation_id in FLAGGED:
            flag, how = FLAGGED[op.operation_id]
            doc["description"] += (
                f" {how} the feature flag `{flag.key}`: where it is off for the caller's "
                "tenant, 404 `feature-disabled`."
            )
    return doc


@cache
def _document() -> dict[str, Any]:
    models: list[type] = []
    paths: dict[str, dict[str, Any]] = {}
    for route, op in operations():
        for model in (op.response, op.body):
            if model is not None and _is_model(model) and model not in models:
                models.append(model)
        paths.setdefault(route.template, {})[op.method.lower()] = _operation(route, op)
    models.extend(model for model, _ in problem_models().values())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "commerce",
            "version": _version(),
            "description": _DESCRIPTION,
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": [
            {"name": "inventory", "description": "Chains, stores, items and inventory levels."},
            {"name": "operations", "description": "Health, readiness and this document."},
        ],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": _components(models),
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route the app serves, as a fresh JSON-able dict."""
    # Built once; callers get their own copy, so changing it cannot change what is served.
    document: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(_document()))
    return document
