"""Body refusals name the rule in the core's words, never a regex; a key given twice is a 400."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import falcon.testing
import msgspec
import msgspec.inspect as mi
import pytest

from commerce.core import validation
from commerce.core.errors import InvalidInput
from commerce.entrypoints.http import bodies
from commerce.entrypoints.http.bodies import COST_PATTERN, PATTERN_RULES, REQUEST_BODIES
from tests.http.conftest import ADMIN_TOKEN, App, Seed, client_for
from tests.http.test_errors import assert_problem

pytestmark = pytest.mark.http

Client = falcon.testing.TestClient


def _pattern_fields(info: mi.Type, path: str) -> Iterator[tuple[str, str]]:
    """(path of the field, its pattern) for every pattern-constrained string in a body type."""
    if isinstance(info, mi.Metadata):
        yield from _pattern_fields(info.type, path)
    elif isinstance(info, mi.StrType):
        if info.pattern is not None:
            yield path, info.pattern
    elif isinstance(info, mi.UnionType):
        for member in info.types:
            yield from _pattern_fields(member, path)
    elif isinstance(info, mi.ListType):
        yield from _pattern_fields(info.item_type, f"{path}[0]")
    elif isinstance(info, mi.StructType):
        for f in info.fields:
            yield from _pattern_fields(f.type, f"{path}.{f.name}" if path else f.name)


PATTERN_FIELDS = [
    (body, path, pattern)
    for body in REQUEST_BODIES
    for path, pattern in _pattern_fields(mi.type_info(body), "")
]


def test_every_pattern_of_every_body_has_its_rule_in_words() -> None:
    assert PATTERN_FIELDS, "the bodies have pattern-constrained fields"
    unexplained = {p for _, _, p in PATTERN_FIELDS if p != COST_PATTERN and p not in PATTERN_RULES}
    assert not unexplained


def _request(body: type[msgspec.Struct], seed: Seed) -> tuple[str, str, dict[str, Any]]:
    """(method, path, a valid body) of the operation that takes ``body``."""
    chain, store, item = seed.chains[0].id, seed.stores[0].id, seed.items[0].id
    line = {"item_id": item, "delta": 1, "reason": "received"}
    return {
        bodies.ChainCreate: ("POST", "/chain", {"name": "New"}),
        bodies.ChainUpdate: ("PATCH", f"/chain/{chain}", {}),
        bodies.StoreCreate: ("POST", f"/chain/{chain}/stores", {"name": "New"}),
        bodies.StoreUpdate: ("PATCH", f"/stores/{store}", {}),
        bodies.ItemCreate: ("POST", "/items", {"sku": "NEW-1", "name": "New", "cost": "1.00"}),
        bodies.ItemUpdate: ("PATCH", f"/items/{item}", {}),
        bodies.QuantitySet: ("PUT", f"/stores/{store}/inventory/{item}", {"quantity": 1}),
        bodies.AdjustmentBatch: (
            "POST",
            f"/stores/{store}/inventory/adjustments",
            {"adjustments": [line]},
        ),
    }[body]


def _with(valid: dict[str, Any], path: str, value: str) -> dict[str, Any]:
    """``valid`` with ``value`` at ``path`` (``name`` or ``adjustments[0].reference``)."""
    if path.startswith("adjustments[0]."):
        line = {**valid["adjustments"][0], path.removeprefix("adjustments[0]."): value}
        return {"adjustments": [line]}
    return {**valid, path: value}


@pytest.fixture
def admin_client(app: App) -> Client:
    return client_for(app, ADMIN_TOKEN)


@pytest.mark.parametrize(
    ("body", "path"),
    [
        pytest.param(body, path, id=f"{body.__name__}.{path}")
        for body, path, pattern in PATTERN_FIELDS
        if pattern != COST_PATTERN
    ],
)
def test_a_control_character_in_any_text_field_is_refused_in_the_cores_words(
    admin_client: Client, seed: Seed, body: type[msgspec.Struct], path: str
) -> None:
    method, url, valid = _request(body, seed)
    result = admin_client.simulate_request(method, url, json=_with(valid, path, "\x01"))
    problem = assert_problem(result, 400, "invalid-input")
    assert problem["field"] == path
    assert problem["detail"] == f"{path}: must not contain control characters"


def _core_says(check: Callable[[str, str], object], field: str, value: str) -> str:
    with pytest.raises(InvalidInput) as caught:
        check(field, value)
    return caught.value.detail


@pytest.mark.parametrize(
    ("field", "value", "check"),
    [
        ("name", "   ", lambda f, v: validation.text(f, v, max_length=200, required=True)),
        ("name", "\u3000\u2028", lambda f, v: validation.text(f, v, max_length=200, required=True)),
        ("phone", "call me", validation.phone),
        ("country", "fr", validation.country),
        ("city", "a\nb", lambda f, v: validation.text(f, v, max_length=100)),
    ],
)
def test_a_store_field_that_breaks_its_rule_is_refused_as_the_core_words_it(
    admin_client: Client,
    seed: Seed,
    field: str,
    value: str,
    check: Callable[[str, str], object],
) -> None:
    body = {"name": "New", field: value}
    result = admin_client.simulate_post(f"/chain/{seed.chains[0].id}/stores", json=body)
    problem = assert_problem(result, 400, "invalid-input")
    assert problem["field"] == field
    assert problem["detail"] == _core_says(check, field, value)
    assert "regex" not in problem["detail"]
    assert "\\" not in problem["detail"]


def test_a_sku_that_breaks_its_rule_is_refused_as_the_core_words_it(admin_client: Client) -> None:
    result = admin_client.simulate_post("/items", json={"sku": "-x", "name": "N", "cost": "1.00"})
    problem = assert_problem(result, 400, "invalid-input")
    assert problem["detail"] == _core_says(validation.sku, "sku", "-x")


# -- duplicate keys -------------------------------------------------------------------------------


def _post_raw(client: Client, path: str, raw: bytes) -> falcon.testing.Result:
    return client.simulate_post(path, body=raw, headers={"Content-Type": "application/json"})


def test_a_key_given_twice_is_a_400_naming_it_and_nothing_is_written(
    admin_client: Client,
) -> None:
    before = len(admin_client.simulate_get("/chain").json)
    result = _post_raw(admin_client, "/chain", b'{"name": "First", "name": "Second"}')
    problem = assert_problem(result, 400, "invalid-input")
    assert problem["field"] == "name"
    assert (
        problem["detail"] == "name: is given more than once; each key may appear once in an object"
    )
    assert len(admin_client.simulate_get("/chain").json) == before


def test_a_key_spelled_twice_with_an_escape_is_still_the_same_key(admin_client: Client) -> None:
    result = _post_raw(admin_client, "/chain", b'{"name": "First", "n\\u0061me": "Second"}')
    assert assert_problem(result, 400, "invalid-input")["field"] == "name"


def test_a_nested_key_given_twice_is_named_with_its_path(admin_client: Client, seed: Seed) -> None:
    item = seed.items[0].id
    raw = (
        f'{{"adjustments": [{{"item_id": {item}, "delta": 1, "reason": "received"}}, '
        f'{{"item_id": {item}, "delta": 5, "delta": -5, "reason": "sold"}}]}}'
    ).encode()
    result = _post_raw(admin_client, f"/stores/{seed.stores[0].id}/inventory/adjustments", raw)
    assert assert_problem(result, 400, "invalid-input")["field"] == "adjustments[1].delta"


def test_the_same_key_in_two_objects_and_colons_inside_strings_are_fine(
    admin_client: Client, seed: Seed
) -> None:
    item = seed.items[0].id
    raw = (
        f'{{"adjustments": [{{"item_id": {item}, "delta": 1, "reason": "received", '
        f'"reference": "PO: 12:30"}}, {{"item_id": {item}, "delta": 2, "reason": "received"}}]}}'
    ).encode()
    result = _post_raw(admin_client, f"/stores/{seed.stores[0].id}/inventory/adjustments", raw)
    assert result.status_code == 200, result.text
    assert _post_raw(admin_client, "/chain", b'{"name": "A: B"}').status_code == 201


def test_a_duplicate_key_is_refused_on_the_integral_float_path_too(
    admin_client: Client, seed: Seed
) -> None:
    path = f"/stores/{seed.stores[0].id}/inventory/{seed.items[0].id}"
    result = admin_client.simulate_put(
        path,
        body=b'{"quantity": 5.0, "quantity": 0}',
        headers={"Content-Type": "application/json"},
    )
    assert assert_problem(result, 400, "invalid-input")["field"] == "quantity"


# -- bodies nested deeper than any body of the API -------------------------------------------


DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    "raw",
    [
        b'{"sku": "A", "name": "N", "cost": ' + DEEP + b"}",
        b'{"sku": "A", "name": "N", "cost": 1.5, "x": ' + DEEP + b"}",
        DEEP,
        b'{"name": ' + DEEP + b"}",
    ],
    ids=["as-the-cost", "after-a-float", "alone", "as-a-name"],
)
def test_a_body_nested_thousands_deep_is_a_400_not_a_500(admin_client: Client, raw: bytes) -> None:
    assert len(raw) < 1 << 20, "within the default body limit"
    result = _post_raw(admin_client, "/items", raw)
    assert_problem(result, 400, "invalid-input")
