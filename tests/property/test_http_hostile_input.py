"""Whatever an outsider puts in a URL or a body, the API answers 4xx, never 5xx, on every backend.

Hypothesis writes the queries of every list route (forged cursors of any kind and any
integer, timestamps at the edges of the years 1 and 9999 with any offset and fraction, limits
of any size, lists of item ids past 64 bits), the path ids, and the bodies of every write (any
JSON, values past every bound, keys given twice), and sends them to the app over each storage
backend. A 400 names the parameter or field it is about; HEAD answers as GET does.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import falcon.testing
import msgspec
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from commerce.core import usecases
from commerce.core.pagination import (
    MAX_KEY,
    MAX_MICROS,
    TimeKey,
    encode_cursor,
    encode_time_cursor,
)
from commerce.core.ports import Storage
from commerce.entrypoints.http import bodies
from commerce.entrypoints.http.app import create_app
from commerce.entrypoints.http.params import LATEST
from commerce.entrypoints.http.problems import MEDIA_PROBLEM
from commerce.entrypoints.http.routes import ROUTES, Operation, Route
from tests.http.conftest import ADMIN_TOKEN, PRINCIPALS, Seed, TokenAuthenticator, seed_storage
from tests.property.hostile import (
    EDGE_INTEGERS,
    INTEGERS,
    JUNK,
    QUERY_VALUES,
)

pytestmark = pytest.mark.property

LISTS: list[tuple[Route, Operation]] = [
    (route, op) for route in ROUTES for op in route.operations if op.many
]
WRITES: list[tuple[Route, Operation]] = [
    (route, op) for route in ROUTES for op in route.operations if op.body is not None
]
KIND_OF = {
    "listChains": usecases.CHAINS,
    "listChainStores": usecases.STORES,
    "listStoreInventory": usecases.STORE_LEVELS,
    "listInventoryChanges": usecases.CHANGES,
    "listItems": usecases.ITEMS,
    "listItemInventory": usecases.ITEM_LEVELS,
}
"""The cursor kind of each list; a list this table does not know fails the first test."""


@dataclass
class Api:
    client: falcon.testing.TestClient
    seed: Seed

    def ids(self, name: str) -> list[int]:
        seed = self.seed
        return {
            "chain_id": [c.id for c in seed.chains],
            "store_id": [s.id for s in seed.stores],
            "item_id": [i.id for i in seed.items],
        }[name]


@pytest.fixture
def api(storage: Storage) -> Api:
    """The app over this backend, seeded once per test (examples share it), as ACME's admin."""
    seed = seed_storage(storage)
    app = create_app(storage, [TokenAuthenticator(PRINCIPALS)])
    return Api(
        falcon.testing.TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}), seed
    )


@pytest.fixture(autouse=True)
def _quiet_logs(caplog: pytest.LogCaptureFixture) -> None:
    # A 500 is asserted on, not logged: its traceback would bury the falsifying example.
    caplog.set_level("CRITICAL")


def _path(data: st.DataObject, api: Api, route: Route) -> str:
    values = {}
    for name in route.path_params:
        values[name] = data.draw(
            st.sampled_from(api.ids(name)).map(str) | INTEGERS.map(str) | JUNK.filter(_no_slash),
            label=name,
        )
    return route.template.format(**values)


def _no_slash(text: str) -> bool:
    return "/" not in text and "?" not in text and "#" not in text and text not in {"", ".", ".."}


def _assert_answered(result: falcon.testing.Result, allowed_fields: set[str]) -> None:
    assert result.status_code < 500, result.text
    if result.status_code >= 400:
        assert result.headers["Content-Type"] == MEDIA_PROBLEM, result.text
    if result.status_code == 400:
        problem = result.json
        assert problem.get("field") in allowed_fields, problem


# -- the properties ------------------------------------------------------------------------------


def test_every_list_route_has_a_cursor_kind() -> None:
    assert {op.operation_id for _, op in LISTS} == set(KIND_OF)


@given(data=st.data())
@example(data=None)  # type: ignore[arg-type]
def test_no_query_on_any_list_route_is_answered_with_a_5xx(api: Api, data: st.DataObject) -> None:
    if data is None:
        _known_holes(api)
        return
    route, op = data.draw(st.sampled_from(LISTS), label="route")
    path = _path(data, api, route)
    names = [param.name for param in op.query_params()]
    chosen = data.draw(st.lists(st.sampled_from(names), unique=True), label="params")
    params = {name: data.draw(QUERY_VALUES[name], label=name) for name in chosen}
    if "cursor" in params and data.draw(st.booleans(), label="cursor of this list"):
        key = data.draw(EDGE_INTEGERS.filter(lambda k: k >= 0), label="key")
        params["cursor"] = encode_cursor(KIND_OF[op.operation_id], key)
    got = api.client.simulate_get(path, params=params)
    _assert_answered(got, {*names, *route.path_params})
    assert got.status_code in {200, 400, 404}, got.text
    head = api.client.simulate_head(path, params=params)
    assert head.status_code == got.status_code


def _known_holes(api: Api) -> None:
    """The values that were 500s on every backend before, as fixed cases."""
    store = api.seed.stores[0].id
    for kind, path in [
        (usecases.CHAINS, "/chain"),
        (usecases.STORE_LEVELS, f"/stores/{store}/inventory"),
        (usecases.CHANGES, f"/stores/{store}/inventory/changes"),
    ]:
        for key in (2**63, 10**19 - 1):
            result = api.client.simulate_get(path, params={"cursor": encode_cursor(kind, key)})
            _assert_answered(result, {"cursor"})
            assert result.status_code == 400
        assert (
            api.client.simulate_get(path, params={"cursor": encode_cursor(kind, MAX_KEY)}).json
            == []
        )
    # With since, the history pages by (created_at, id): a cursor naming a moment or an id
    # past what storage holds is a 400 as well, and the last key there is holds nothing past.
    changes = f"/stores/{store}/inventory/changes"
    since = {"since": "2026-01-01T00:00:00Z"}
    past = base64.urlsafe_b64encode(f"{usecases.CHANGES}:{MAX_MICROS + 1}.1".encode())
    for forged in (
        past.rstrip(b"=").decode(),
        encode_time_cursor(usecases.CHANGES, TimeKey(LATEST, 2**63)),
        encode_cursor(usecases.CHANGES, 1),  # the same list's cursor without since
    ):
        result = api.client.simulate_get(changes, params={**since, "cursor": forged})
        _assert_answered(result, {"cursor"})
        assert result.status_code == 400
    last = encode_time_cursor(usecases.CHANGES, TimeKey(LATEST, MAX_KEY))
    assert api.client.simulate_get(changes, params={**since, "cursor": last}).json == []
    result = api.client.simulate_get(changes, params={"cursor": last})
    _assert_answered(result, {"cursor"})
    assert result.status_code == 400
    for name, path in [
        ("as_of", f"/stores/{store}/inventory"),
        ("since", f"/stores/{store}/inventory/changes"),
        ("until", f"/stores/{store}/inventory/changes"),
    ]:
        for raw in ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+00:01"):
            result = api.client.simulate_get(path, params={name: raw})
            _assert_answered(result, {name})
            assert result.status_code == 400
        for raw in (
            "9999-12-31T23:59:59.999999Z",
            "9999-12-31T23:59:59+23:59",
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00-23:59",
        ):
            result = api.client.simulate_get(path, params={name: raw})
            assert result.status_code == 200, (name, raw, result.text)


def _json_values() -> st.SearchStrategy[Any]:
    scalars = (
        st.none()
        | st.booleans()
        | INTEGERS
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20)
        | st.sampled_from(["\x00", "a\x1fb", "\u2028", "   ", "-x", "12.5", "1e3", "ZZ"])
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=8,
    )


def _fields(body: type[msgspec.Struct]) -> list[str]:
    names = list(body.__struct_fields__)
    if body is bodies.AdjustmentBatch:
        names += [f"adjustments[0].{n}" for n in bodies.AdjustmentLine.__struct_fields__]
    return names


def _valid(api: Api, body: type[msgspec.Struct], n: int) -> dict[str, Any]:
    item = api.seed.items[0].id
    return {
        bodies.ChainCreate: {"name": f"C{n}"},
        bodies.ChainUpdate: {"phone": "1"},
        bodies.StoreCreate: {"name": f"S{n}"},
        bodies.StoreUpdate: {"city": "X"},
        bodies.ItemCreate: {"sku": f"H-{n}", "name": "N", "cost": "1.00"},
        bodies.ItemUpdate: {"name": "N"},
        bodies.QuantitySet: {"quantity": 1},
        bodies.AdjustmentBatch: {
            "adjustments": [{"item_id": item, "delta": 1, "reason": "received"}]
        },
    }[body]


def _raw_object(pairs: list[tuple[str, Any]]) -> bytes:
    """A JSON object from pairs, keys repeated as given (``json.dumps`` of a dict cannot)."""
    return ("{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in pairs) + "}").encode()


@given(data=st.data())
def test_no_body_on_any_write_is_answered_with_a_5xx(api: Api, data: st.DataObject) -> None:
    route, op = data.draw(st.sampled_from(WRITES), label="route")
    assert op.body is not None
    path = _path(data, api, route)
    n = data.draw(st.integers(min_value=0, max_value=10**6), label="n")
    body = _valid(api, op.body, n)
    fields = _fields(op.body)
    line: dict[str, Any] | None = None
    for name in data.draw(st.lists(st.sampled_from(fields), max_size=3), label="changed"):
        value = data.draw(_json_values(), label=name)
        if name.startswith("adjustments[0]."):
            # A change inside the first adjustment: of the valid one, whatever else changed.
            line = {**(line or _valid(api, op.body, n)["adjustments"][0])}
            line[name.removeprefix("adjustments[0].")] = value
            body["adjustments"] = [line]
        else:
            body[name] = value
    pairs = list(body.items())
    if pairs and data.draw(st.booleans(), label="a key twice"):
        pairs.append((pairs[0][0], data.draw(_json_values(), label="again")))
    if data.draw(st.booleans(), label="any JSON at all"):
        raw = json.dumps(data.draw(_json_values(), label="body")).encode()
    else:
        raw = _raw_object(pairs)
    result = api.client.simulate_request(
        op.method, path, body=raw, headers={"Content-Type": "application/json"}
    )
    assert result.status_code < 500, result.text
    if result.status_code >= 400:
        assert result.headers["Content-Type"] == MEDIA_PROBLEM, result.text
    if result.status_code == 400:
        # The field a 400 names is the client's own: a path parameter, ``body``, or a member
        # of the body, known or not (``x: is not a field of this body``).
        problem = result.json
        assert isinstance(problem.get("field"), str), problem
        assert problem["detail"].startswith(problem["field"] + ": "), problem
        assert "regex" not in problem["detail"], problem
