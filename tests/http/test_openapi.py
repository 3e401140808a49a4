"""/openapi.json is valid OpenAPI 3.1 and describes exactly what the app serves."""

from __future__ import annotations

import dataclasses
from typing import Any

import falcon
import falcon.inspect
import falcon.testing
import pytest
from openapi_spec_validator import validate

from commerce.core.errors import error_classes
from commerce.core.models import Chain, InventoryLevel, Item, Reason, Store
from commerce.core.validation import MAX_ADJUSTMENTS, MAX_QUANTITY, NAME_MAX
from commerce.entrypoints.http.bodies import COST_PATTERN
from commerce.entrypoints.http.openapi import openapi_document
from commerce.entrypoints.http.routes import ROUTES
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
    documented = set(_operations(openapi_document()))
    # HEAD is served wherever GET is and implied by it (RFC 9110), so the document lists GET.
    implied = {(path, "HEAD") for path, method in documented if method == "GET"}
    assert served == documented | implied


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
    assert _codes(ops[("/chain", "GET")]) == {"200", "400", "401", "429", "503", "default"}
    assert _codes(ops[("/chain/{chain_id}", "GET")]) == {
        "200",
        "304",
        "400",
        "401",
        "404",
        "429",
        "503",
        "default",
    }
    assert _codes(ops[("/chain", "POST")]) == {
        "201",
        "400",
        "401",
        "403",
        "409",
        "413",
        "415",
        "422",
        "429",
        "503",
        "default",
    }
    assert _codes(ops[("/items/{item_id}", "PATCH")]) == {
        "200",
        "400",
        "401",
        "403",
        "404",
        "409",
        "412",
        "413",
        "415",
        "422",
        "429",
        "503",
        "default",
    }
    assert _codes(ops[("/stores/{store_id}", "DELETE")]) == {
        "204",
        "400",
        "401",
        "403",
        "404",
        "409",
        "412",
        "422",
        "429",
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
            name = f"on_{op.method.lower()}"
            assert callable(getattr(resource, name, None)), (route.template, name)


def test_callers_cannot_change_the_document_for_others() -> None:
    openapi_document()["paths"].clear()
    assert openapi_document()["paths"]


# -- writes ----------------------------------------------------------------------------------------

WRITE_ROUTES = {
    ("/chain", "POST"),
    ("/chain/{chain_id}", "PATCH"),
    ("/chain/{chain_id}", "DELETE"),
    ("/chain/{chain_id}/stores", "POST"),
    ("/stores/{store_id}", "PATCH"),
    ("/stores/{store_id}", "DELETE"),
    ("/items", "POST"),
    ("/items/{item_id}", "PATCH"),
    ("/items/{item_id}", "DELETE"),
    ("/stores/{store_id}/inventory/{item_id}", "PUT"),
    ("/stores/{store_id}/inventory/adjustments", "POST"),
}


def _param_names(doc: dict[str, Any], op: dict[str, Any]) -> list[str]:
    names = []
    for param in op["parameters"]:
        if "$ref" in param:
            param = doc["components"]["parameters"][param["$ref"].rsplit("/", 1)[1]]
        names.append(param["name"])
    return names


def test_the_document_has_the_api_md_write_routes() -> None:
    ops = _operations(openapi_document())
    assert set(ops) >= WRITE_ROUTES | {
        ("/stores/{store_id}/inventory/{item_id}", "GET"),
        ("/stores/{store_id}/inventory/changes", "GET"),
    }
    names = _param_names(openapi_document(), ops[("/stores/{store_id}/inventory", "GET")])
    assert "as_of" in names


def test_every_write_has_a_closed_json_body_schema_except_deletes() -> None:
    doc = openapi_document()
    schemas = doc["components"]["schemas"]
    for key in WRITE_ROUTES:
        op = _operations(doc)[key]
        if key[1] == "DELETE":
            assert "requestBody" not in op
            assert "content" not in op["responses"]["204"]
            continue
        body = op["requestBody"]
        assert body["required"] is True
        ref = body["content"]["application/json"]["schema"]["$ref"]
        assert schemas[ref.rsplit("/", 1)[1]]["additionalProperties"] is False, key


def test_every_write_takes_an_idempotency_key_and_conditional_ones_if_match() -> None:
    doc = openapi_document()
    for key in WRITE_ROUTES:
        op = _operations(doc)[key]
        names = _param_names(doc, op)
        assert "Idempotency-Key" in names, key
        assert ("If-Match" in names) == (key[1] in {"PUT", "PATCH", "DELETE"}), key
        assert {"409", "422"} <= set(op["responses"]), key


def test_single_resources_take_if_none_match_and_may_answer_304() -> None:
    doc = openapi_document()
    for path in ("/chain/{chain_id}", "/stores/{store_id}", "/items/{item_id}",
                 "/stores/{store_id}/inventory/{item_id}"):  # fmt: skip
        op = _operations(doc)[(path, "GET")]
        assert "If-None-Match" in _param_names(doc, op)
        assert "ETag" in op["responses"]["200"]["headers"]
        assert "ETag" in op["responses"]["304"]["headers"]


def test_creates_answer_201_with_location_and_etag() -> None:
    ops = _operations(openapi_document())
    for key in [k for k in WRITE_ROUTES if k[1] == "POST" and "adjustments" not in k[0]]:
        headers = ops[key]["responses"]["201"]["headers"]
        assert {"Location", "ETag", "Idempotent-Replayed"} <= set(headers), key


def test_body_schemas_state_the_domain_limits() -> None:
    schemas = openapi_document()["components"]["schemas"]
    item = schemas["ItemCreate"]["properties"]
    assert item["name"]["maxLength"] == NAME_MAX
    assert item["cost"]["type"] == "string"
    assert item["cost"]["pattern"] == COST_PATTERN
    line = schemas["AdjustmentLine"]["properties"]
    assert line["delta"]["not"] == {"const": 0}
    assert line["delta"]["maximum"] == MAX_QUANTITY
    assert line["reason"] == {"$ref": "#/components/schemas/Reason"}
    assert set(schemas["Reason"]["enum"]) == {r.value for r in Reason}
    assert schemas["AdjustmentBatch"]["properties"]["adjustments"]["maxItems"] == MAX_ADJUSTMENTS
    assert schemas["QuantitySet"]["properties"]["quantity"]["minimum"] == 0
    for patch in ("ChainUpdate", "StoreUpdate", "ItemUpdate"):
        assert schemas[patch]["minProperties"] == 1
        assert schemas[patch]["required"] == []


def test_the_problem_schema_documents_its_extension_members() -> None:
    problem = openapi_document()["components"]["schemas"]["Problem"]["properties"]
    assert {"current_quantity", "items", "store_ids"} <= set(problem)


def test_every_fact_any_error_declares_is_a_member_of_the_problem_schema() -> None:
    problem = openapi_document()["components"]["schemas"]["Problem"]
    declared = {(cls.__name__, name) for cls in error_classes() for name in cls.extensions}
    assert declared, "no error declares an extension member"
    for owner, name in declared:
        assert name in problem["properties"], f"{owner} sends {name!r}, undocumented"
        assert name not in problem["required"]


def test_each_error_with_facts_of_its_own_has_a_schema_requiring_them() -> None:
    schemas = openapi_document()["components"]["schemas"]
    for cls in error_classes():
        own = cls.__dict__.get("extensions")
        if not own:
            continue
        schema = schemas[f"{cls.__name__}Problem"]
        assert set(own) <= set(schema["required"]), cls.__name__
        assert {"type", "title", "status", "detail"} <= set(schema["required"])


def test_a_conflict_names_the_problems_that_carry_facts() -> None:
    conflict = openapi_document()["components"]["responses"]["Conflict"]
    refs = [s["$ref"] for s in conflict["content"]["application/problem+json"]["schema"]["anyOf"]]
    assert "#/components/schemas/InsufficientStockProblem" in refs
    assert "#/components/schemas/StoreHasStockProblem" in refs
    assert refs[-1] == "#/components/schemas/Problem"
