"""The OpenAPI 3.1 document, built from the route table and the core's types; no store needed."""

from __future__ import annotations

import dataclasses
from functools import cache
from importlib import metadata
from typing import Any

import msgspec

from core.auth import Role
from core.services import MAX_ID
from entrypoints.http.media import timestamp_fields
from entrypoints.http.problems import MEDIA_PROBLEM, PROBLEM_BASE, Problem
from entrypoints.http.routes import Operation, Route, operations

_SCHEMAS = "#/components/schemas/"
_RESPONSES = "#/components/responses/"
_HEADERS = "#/components/headers/"
_PARAMETERS = "#/components/parameters/"

_DESCRIPTION = f"""\
An inventory service for retail store chains: chains, stores, items and inventory levels.

Every request but `/healthz`, `/readyz` and `/openapi.json` needs `Authorization: Bearer
<API key or JWT>`. Another tenant's resource is a 404, exactly as if it did not exist.

Lists are JSON arrays, paginated by `limit` and an opaque `cursor`; the next page, if any, is
announced in a `Link: <...>; rel="next"` header. Errors are RFC 9457 problem details
(`{MEDIA_PROBLEM}`) whose `type` starts with `{PROBLEM_BASE}`. Timestamps are RFC 3339 in
UTC (`Z`); money is a decimal string such as `"12.50"`.
"""


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
            "XRequestID": {
                "description": "The request's id: the client's own if it sent a sane one "
                "(`^[A-Za-z0-9._:-]{1,128}$`), else a fresh one.",
                "schema": {"type": "string"},
            },
            "Link": {
                "description": 'The next page, as `<path?...&cursor=...>; rel="next"`; '
                "absent on the last page.",
                "schema": {"type": "string"},
            },
            "RetryAfter": {
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "integer", "minimum": 0},
            },
            "WWWAuthenticate": {
                "description": "The scheme to authenticate with: `Bearer`.",
                "schema": {"type": "string"},
            },
        },
        "parameters": {
            "XRequestID": {
                "name": "X-Request-ID",
                "in": "header",
                "required": False,
                "description": "An id for this request, echoed back and written to the logs.",
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
            }
        },
        "responses": {
            "BadRequest": _problem_response(
                "A malformed path or query parameter; `field` names it."
            ),
            "Unauthorized": _problem_response(
                "No credentials, or credentials that were not accepted.",
                **{"WWW-Authenticate": "WWWAuthenticate"},
            ),
            "Forbidden": _problem_response("The credentials' role may not do this."),
            "NotFound": _problem_response(
                "No such resource for the caller's tenant (another tenant's is the same 404)."
            ),
            "ServiceUnavailable": _problem_response(
                "Storage cannot answer now; retry later.", **{"Retry-After": "RetryAfter"}
            ),
            "Problem": _problem_response("Any other failure: 405 (with `Allow`), 413, 415, 500."),
        },
    }


def _body_schema(op: Operation) -> dict[str, Any]:
    one = _ref(_SCHEMAS, op.response.__name__) if _is_model(op.response) else {"type": "object"}
    return {"type": "array", "items": one} if op.many else one


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
    parameters.append(_ref(_PARAMETERS, "XRequestID"))

    ok_headers = {"X-Request-ID": _ref(_HEADERS, "XRequestID")}
    if op.many:
        ok_headers["Link"] = _ref(_HEADERS, "Link")
    responses: dict[str, Any] = {
        "200": {
            "description": op.summary,
            "headers": ok_headers,
            "content": {"application/json": {"schema": _body_schema(op)}},
        }
    }
    if len(parameters) > 1:
        responses["400"] = _ref(_RESPONSES, "BadRequest")
    if op.role is not None:
        responses["401"] = _ref(_RESPONSES, "Unauthorized")
        if op.role > min(Role):
            responses["403"] = _ref(_RESPONSES, "Forbidden")
    if route.path_params:
        responses["404"] = _ref(_RESPONSES, "NotFound")
    if op.uses_storage:
        responses["503"] = _ref(_RESPONSES, "ServiceUnavailable")
    responses["default"] = _ref(_RESPONSES, "Problem")

    doc: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": parameters,
        "responses": responses,
    }
    if op.role is None:
        doc["security"] = []
    else:
        doc["description"] = f"Needs the `{op.role.name}` role or above."
    return doc


@cache
def _document() -> dict[str, Any]:
    models: list[type] = []
    paths: dict[str, dict[str, Any]] = {}
    for route, op in operations():
        if _is_model(op.response) and op.response not in models:
            models.append(op.response)
        paths.setdefault(route.template, {})[op.method.lower()] = _operation(route, op)
    models.append(Problem)
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
