"""/openapi.json is valid OpenAPI 3.1 and describes exactly what the app serves."""

from __future__ import annotations

import dataclasses
from typing import Any

import falcon
import falcon.inspect
import falcon.testing
import pytest
from openapi_spec_validator import validate

from core.models import Chain, InventoryLevel, Item, Store
from entrypoints.http.openapi import openapi_document
from entrypoints.http.routes import ROUTES
from tests.http.conftest import App

pytestmark = pytest.mark.http

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def _operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (path, method.upper()): op
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    }


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = openapi_document()
    assert doc["openapi"] == "3.1.0"
    validate(doc)


def test_the_served_document_is_the_generated_one(anonymous: falcon.testing.TestClient) -> None:
    assert anonymous.simulate_get("/openapi.json").json == openapi_document()


def test_every_route_the_app_serves_is_documented_and_nothing_else(app: App) -> None:
    served = {
        (route.path, method.method)
        for route in falcon.inspect.inspect_routes(app)
        for method in route.methods
        if not method.internal
    }
    assert served == set(_operations(openapi_document()))


def test_the_document_has_the_api_md_read_routes() -> None:
    assert set(_operations(openapi_document())) >= {
        ("/chain", "GET"),
        ("/chain/{chain_id}", "GET"),
        ("/chain/{chain_id}/stores", "GET"),
        ("/stores/{store_id}", "GET"),
        ("/stores/{store_id}/inventory", "GET"),
        ("/items", "GET"),
        ("/items/{item_id}", "GET"),
        ("/items/{item_id}/inventory", "GET"),
        ("/healthz", "GET"),
        ("/readyz", "GET"),
        ("/openapi.json", "GET"),
    }


def test_operation_ids_are_unique() -> None:
    ids = [op["operationId"] for op in _operations(openapi_document()).values()]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("model", [Chain, Store, Item, InventoryLevel])
def test_schemas_have_exactly_the_fields_of_the_core_types(model: type) -> None:
    schema = openapi_document()["components"]["schemas"][model.__name__]
    names = [f.name for f in dataclasses.fields(model)]
    assert list(schema["properties"]) == names
    assert sorted(schema["required"]) == sorted(names)


def test_timestamps_are_date_times_and_cost_a_decimal_string() -> None:
    schemas = openapi_document()["components"]["schemas"]
    assert schemas["Chain"]["properties"]["created_at"] == {"type": "string", "format": "date-time"}
    assert schemas["InventoryLevel"]["properties"]["updated_at"]["format"] == "date-time"
    assert schemas["Item"]["properties"]["cost"] == {"type": "string", "format": "decimal"}


def test_the_problem_schema_has_the_rfc_9457_members() -> None:
    problem = openapi_document()["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    assert "field" in problem["properties"]


def test_bearer_is_the_default_security_and_operational_routes_are_public() -> None:
    doc = openapi_document()
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["bearer"]["description"],
    }
    assert doc["security"] == [{"bearer": []}]
    ops = _operations(doc)
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert ops[(path, "GET")]["security"] == []
    assert "security" not in ops[("/chain", "GET")]


def _codes(op: dict[str, Any]) -> set[str]:
    return set(op["responses"])


def test_each_operation_lists_the_errors_it_can_answer_with() -> None:
    ops = _operations(openapi_document())
    assert _codes(ops[("/chain", "GET")]) == {"200", "400", "401", "503", "default"}
    assert _codes(ops[("/chain/{chain_id}", "GET")]) == {
        "200",
        "400",
        "401",
        "404",
        "503",
        "default",
    }
    assert _codes(ops[("/healthz", "GET")]) == {"200", "default"}
    assert _codes(ops[("/readyz", "GET")]) == {"200", "503", "default"}
    assert _codes(ops[("/openapi.json", "GET")]) == {"200", "default"}


def test_lists_are_arrays_with_a_link_header_and_paging_parameters() -> None:
    op = _operations(openapi_document())[("/stores/{store_id}/inventory", "GET")]
    ok = op["responses"]["200"]
    assert ok["content"]["application/json"]["schema"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/InventoryLevel"},
    }
    assert "Link" in ok["headers"]
    names = [p.get("name") for p in op["parameters"]]
    assert names[:4] == ["store_id", "limit", "cursor", "items"]


def test_error_responses_are_problem_json_with_their_headers() -> None:
    responses = openapi_document()["components"]["responses"]
    for response in responses.values():
        assert list(response["content"]) == ["application/problem+json"]
    assert "WWW-Authenticate" in responses["Unauthorized"]["headers"]
    assert "Retry-After" in responses["ServiceUnavailable"]["headers"]


def test_every_route_in_the_table_has_its_responders() -> None:
    for route in ROUTES:
        resource = route.resource
        for op in route.operations:
            name = f"on_{op.method.lower()}" + (f"_{route.suffix}" if route.suffix else "")
            assert callable(getattr(resource, name, None)), (route.template, name)


def test_callers_cannot_change_the_document_for_others() -> None:
    openapi_document()["paths"].clear()
    assert openapi_document()["paths"]
