"""Every failure is an RFC 9457 problem with the right status, and never leaks internals."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import falcon
import falcon.testing
import pytest

from commerce.adapters.storage.memory import memory_storage
from commerce.core import usecases
from commerce.core.auth import Role
from commerce.core.errors import (
    ChainHasStores,
    CommerceError,
    Conflict,
    Forbidden,
    IdempotencyMismatch,
    InsufficientStock,
    InvalidInput,
    ItemHasStock,
    LevelChanged,
    Misconfigured,
    NotFound,
    QuantityMismatch,
    SkuTaken,
    StorageUnavailable,
    StoreHasStock,
    Unauthorized,
    VersionMismatch,
)
from commerce.core.events import LogEvent
from commerce.core.ports import Storage
from commerce.entrypoints.http import app as app_module
from commerce.entrypoints.http.app import create_app
from commerce.entrypoints.http.problems import MEDIA_PROBLEM, PROBLEM_BASE
from commerce.entrypoints.http.routes import required_roles
from tests.http.conftest import (
    ACME,
    PRINCIPALS,
    READER_TOKEN,
    WRITER_TOKEN,
    App,
    Seed,
    TokenAuthenticator,
    client_for,
)

pytestmark = pytest.mark.http

ID_ROUTES = [
    ("/chain/{}", "chain_id"),
    ("/chain/{}/stores", "chain_id"),
    ("/stores/{}", "store_id"),
    ("/stores/{}/inventory", "store_id"),
    ("/items/{}", "item_id"),
    ("/items/{}/inventory", "item_id"),
]
LIST_ROUTES = ["/chain", "/chain/1/stores", "/stores/4/inventory", "/items", "/items/1/inventory"]
MALFORMED_IDS = [
    "abc",
    "0",
    "-1",
    "1.5",
    "1e3",
    "99999999999999999999",
    "9223372036854775808",
    "%C2%B3",
]


def assert_problem(result: falcon.testing.Result, status: int, slug: str) -> dict[str, Any]:
    assert result.status_code == status, result.text
    assert result.headers["Content-Type"] == MEDIA_PROBLEM
    body: dict[str, Any] = result.json
    assert body["type"] == PROBLEM_BASE + slug
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert "X-Request-ID" in result.headers
    return body


# -- 400 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", MALFORMED_IDS)
@pytest.mark.parametrize(("template", "field"), ID_ROUTES)
def test_a_malformed_id_is_a_400_naming_the_path_parameter(
    client: falcon.testing.TestClient, template: str, field: str, bad: str
) -> None:
    body = assert_problem(client.simulate_get(template.format(bad)), 400, "invalid-input")
    assert body["field"] == field
    assert field in body["detail"]


@pytest.mark.parametrize("limit", ["0", "1001", "-5", "ten", "1.5", "99999999999999999999999"])
@pytest.mark.parametrize("path", LIST_ROUTES)
def test_a_malformed_limit_is_a_400_naming_limit(
    client: falcon.testing.TestClient, path: str, limit: str
) -> None:
    body = assert_problem(client.simulate_get(path, params={"limit": limit}), 400, "invalid-input")
    assert body["field"] == "limit"


@pytest.mark.parametrize("cursor", ["garbage!!", "Y2hhaW5zOmFiYw", "%%%", "x" * 300])
@pytest.mark.parametrize("path", LIST_ROUTES)
def test_a_malformed_cursor_is_a_400_naming_cursor(
    client: falcon.testing.TestClient, path: str, cursor: str
) -> None:
    result = client.simulate_get(path, params={"cursor": cursor})
    body = assert_problem(result, 400, "invalid-input")
    assert body["field"] == "cursor"


@pytest.mark.parametrize("items", ["", "a", "1,,2", "1,-2", "1;2", "0", "3,x"])
def test_a_malformed_items_filter_is_a_400_naming_items(
    client: falcon.testing.TestClient, seed: Seed, items: str
) -> None:
    path = f"/stores/{seed.stores[0].id}/inventory"
    body = assert_problem(client.simulate_get(path, params={"items": items}), 400, "invalid-input")
    assert body["field"] == "items"


def test_more_than_a_thousand_item_ids_is_a_400_naming_items(
    client: falcon.testing.TestClient, seed: Seed
) -> None:
    path = f"/stores/{seed.stores[0].id}/inventory"
    ids = ",".join(str(n) for n in range(1, 1002))
    body = assert_problem(client.simulate_get(path, params={"items": ids}), 400, "invalid-input")
    assert body["field"] == "items"
    assert "1000" in body["detail"]


@pytest.mark.parametrize("name", ["limit", "cursor", "items"])
def test_a_query_parameter_given_twice_is_a_400_naming_it(
    client: falcon.testing.TestClient, seed: Seed, name: str
) -> None:
    path = f"/stores/{seed.stores[0].id}/inventory?{name}=1&{name}=2"
    body = assert_problem(client.simulate_get(path), 400, "invalid-input")
    assert body["field"] == name


def test_a_malformed_id_is_refused_before_storage_is_asked(
    seed: Seed,
) -> None:
    # Storage that fails every call: a 400 proves the id was judged first.
    app = create_app(failing_storage(RuntimeError), [TokenAuthenticator(PRINCIPALS)])
    body = assert_problem(client_for(app).simulate_get("/chain/abc"), 400, "invalid-input")
    assert body["field"] == "chain_id"


def test_a_malformed_content_length_is_a_400_problem(app: App) -> None:
    # Straight through WSGI: the test client's validator refuses such a request itself.
    environ = falcon.testing.create_environ(
        "/chain", headers={"Authorization": f"Bearer {READER_TOKEN}"}
    )
    environ["CONTENT_LENGTH"] = "lots"
    start_response = falcon.testing.StartResponseMock()
    body = b"".join(app(environ, start_response))
    assert start_response.status is not None
    assert start_response.status.startswith("400")
    assert start_response.headers_dict["Content-Type"] == MEDIA_PROBLEM
    assert json.loads(body)["type"] == PROBLEM_BASE + "bad-request"


def test_an_empty_id_segment_is_a_400_not_a_404(client: falcon.testing.TestClient) -> None:
    body = assert_problem(client.simulate_get("/chain/"), 400, "invalid-input")
    assert body["field"] == "chain_id"


# -- 404 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/nope", "/chain/1/nope", "/stores", "/", "/items/1/inventory/2"])
def test_an_unknown_route_is_a_404_problem(client: falcon.testing.TestClient, path: str) -> None:
    body = assert_problem(client.simulate_get(path), 404, "not-found")
    assert "field" not in body


def test_an_unknown_route_is_a_404_even_without_credentials(
    anonymous: falcon.testing.TestClient,
) -> None:
    assert_problem(anonymous.simulate_get("/nope"), 404, "not-found")


@pytest.mark.parametrize(
    ("template", "resource"),
    [
        ("/chain/{}", "chain"),
        ("/chain/{}/stores", "chain"),
        ("/stores/{}", "store"),
        ("/stores/{}/inventory", "store"),
        ("/items/{}", "item"),
        ("/items/{}/inventory", "item"),
    ],
)
def test_an_unknown_resource_is_a_404_problem_naming_it(
    client: falcon.testing.TestClient, template: str, resource: str
) -> None:
    body = assert_problem(client.simulate_get(template.format(987654)), 404, "not-found")
    assert body["detail"] == f"{resource} 987654 does not exist"


def _globex_paths(seed: Seed) -> list[str]:
    assert seed.globex_chain is not None
    assert seed.globex_store is not None
    assert seed.globex_item is not None
    return [
        f"/chain/{seed.globex_chain.id}",
        f"/chain/{seed.globex_chain.id}/stores",
        f"/stores/{seed.globex_store.id}",
        f"/stores/{seed.globex_store.id}/inventory",
        f"/stores/{seed.globex_store.id}/inventory?items={seed.globex_item.id}",
        f"/items/{seed.globex_item.id}",
        f"/items/{seed.globex_item.id}/inventory",
    ]


def test_another_tenants_resource_is_a_404_identical_to_a_missing_one(
    client: falcon.testing.TestClient, seed: Seed
) -> None:
    # The same requests against storage where those ids were never created.
    empty = memory_storage()
    usecases.create_tenant(empty.catalogue, ACME, "Acme")
    missing = client_for(create_app(empty, [TokenAuthenticator(PRINCIPALS)]))
    for path in _globex_paths(seed):
        theirs = client.simulate_get(path)
        absent = missing.simulate_get(path)
        assert_problem(theirs, 404, "not-found")
        assert theirs.content == absent.content, path
        assert theirs.headers["Content-Type"] == absent.headers["Content-Type"]
        assert theirs.headers.keys() == absent.headers.keys()


# -- 405, 413, 415 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/chain", "POST"),
        ("PUT", "/chain", "GET"),
        ("PUT", "/chain/1", "PATCH"),
        ("POST", "/items/1", "DELETE"),
        ("GET", "/stores/1/inventory/adjustments", "POST"),
        ("POST", "/stores/1/inventory/changes", "GET"),
        ("POST", "/healthz", "GET"),
    ],
)
def test_a_wrong_method_is_a_405_problem_with_allow(
    client: falcon.testing.TestClient, method: str, path: str, allow: str
) -> None:
    result = client.simulate_request(method, path)
    assert_problem(result, 405, "method-not-allowed")
    assert allow in [m.strip() for m in result.headers["Allow"].split(",")]


def test_a_body_over_the_limit_is_a_413_problem(seed: Seed) -> None:
    app = create_app(seed.storage, [TokenAuthenticator(PRINCIPALS)], max_body_bytes=10)
    client = client_for(app)
    assert_problem(client.simulate_put("/chain/1", body=b"x" * 11), 413, "content-too-large")
    # At the limit the body is let through, to the 405 this route answers to PUT.
    assert client.simulate_put("/chain/1", body=b"x" * 10).status_code == 405


def test_a_body_over_the_limit_is_refused_before_authentication(seed: Seed) -> None:
    app = create_app(seed.storage, [TokenAuthenticator(PRINCIPALS)], max_body_bytes=10)
    result = client_for(app, token=None).simulate_post("/chain", body=b"x" * 11)
    assert_problem(result, 413, "content-too-large")


class Echo:
    """A test-only route that reads a JSON body, as the write routes will."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = req.get_media()


def test_a_body_that_is_not_json_is_a_415_problem(app: App) -> None:
    app.add_route("/test/echo", Echo())
    result = client_for(app).simulate_post(
        "/test/echo", body="a=1", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert_problem(result, 415, "unsupported-media-type")


def test_malformed_json_is_a_400_problem(app: App) -> None:
    app.add_route("/test/echo", Echo())
    result = client_for(app).simulate_post(
        "/test/echo", body="{nope", headers={"Content-Type": "application/json"}
    )
    assert_problem(result, 400, "bad-request")


def test_a_json_body_is_read_and_written_through_the_apps_handler(app: App) -> None:
    app.add_route("/test/echo", Echo())
    result = client_for(app).simulate_post("/test/echo", json={"quantity": 3})
    assert result.status_code == 200
    assert result.json == {"quantity": 3}


# -- 403 and the mapping of every core error -------------------------------------------------


class Writes:
    """A test-only route standing in for the write routes to come."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.status = falcon.HTTP_201


def test_a_reader_writing_is_a_403_problem(seed: Seed, monkeypatch: pytest.MonkeyPatch) -> None:
    roles = {**required_roles(), ("/test/writes", "POST"): Role.writer}
    monkeypatch.setattr(app_module, "required_roles", lambda: roles)
    app = create_app(seed.storage, [TokenAuthenticator(PRINCIPALS)])
    app.add_route("/test/writes", Writes())
    body = assert_problem(
        client_for(app, READER_TOKEN).simulate_post("/test/writes"), 403, "forbidden"
    )
    assert "writer" in body["detail"]
    assert client_for(app, WRITER_TOKEN).simulate_post("/test/writes").status_code == 201
    assert_problem(client_for(app, None).simulate_post("/test/writes"), 401, "unauthorized")


class Raises:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise self.exc


@pytest.mark.parametrize(
    ("exc", "status", "slug"),
    [
        (InvalidInput("quantity", "must be an integer"), 400, "invalid-input"),
        (Unauthorized("no"), 401, "unauthorized"),
        (Forbidden("no"), 403, "forbidden"),
        (NotFound("chain", 5), 404, "not-found"),
        (Conflict("chain 5 still has stores"), 409, "conflict"),
        (
            InsufficientStock([{"item_id": 3, "quantity": 1, "delta": -2}]),
            409,
            "insufficient-stock",
        ),
        (StorageUnavailable("down", retry_after=3), 503, "storage-unavailable"),
        (Misconfigured("no plugin"), 500, "internal-error"),
        (CommerceError("unmapped"), 500, "internal-error"),
    ],
)
def test_each_core_error_maps_to_its_status(
    app: App, exc: CommerceError, status: int, slug: str
) -> None:
    app.add_route("/test/raises", Raises(exc))
    body = assert_problem(client_for(app).simulate_get("/test/raises"), status, slug)
    if status < 500:
        assert body["detail"] == exc.detail
        assert body["title"] == exc.title


STANDARD_MEMBERS = {"type", "title", "status", "detail", "field"}


@pytest.mark.parametrize(
    ("exc", "status", "slug", "members"),
    [
        (SkuTaken("A-1"), 409, "conflict", {}),
        (ChainHasStores(5), 409, "conflict", {}),
        (StoreHasStock(4, 2, [7, 9]), 409, "conflict", {"item_ids": [7, 9]}),
        (ItemHasStock(7, 1, [4]), 409, "conflict", {"store_ids": [4]}),
        (QuantityMismatch(4, 7, 10, 3), 409, "conflict", {"current_quantity": 10}),
        (
            InsufficientStock([{"item_id": 3, "quantity": 1, "delta": -2}]),
            409,
            "insufficient-stock",
            {"items": [{"item_id": 3, "quantity": 1, "delta": -2}]},
        ),
        (VersionMismatch("chain", 5), 412, "precondition-failed", {}),
        (LevelChanged(4, 7, 10), 412, "precondition-failed", {"current_quantity": 10}),
        (IdempotencyMismatch(), 422, "idempotency-key-reused", {}),
    ],
)
def test_each_typed_error_is_the_problem_of_its_base_class_with_its_own_facts(
    app: App, exc: CommerceError, status: int, slug: str, members: dict[str, Any]
) -> None:
    app.add_route("/test/raises", Raises(exc))
    body = assert_problem(client_for(app).simulate_get("/test/raises"), status, slug)
    assert body["detail"] == exc.detail
    assert body["title"] == exc.title
    assert {k: v for k, v in body.items() if k not in STANDARD_MEMBERS} == members


def test_a_fact_an_error_does_not_declare_is_not_sent_but_logged(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    # Undeclared, it would be missing from the OpenAPI document: a client could not know it.
    app.add_route("/test/raises", Raises(Conflict("no", undeclared=1)))
    with caplog.at_level(logging.WARNING, logger="commerce.http"):
        body = assert_problem(client_for(app).simulate_get("/test/raises"), 409, "conflict")
    assert "undeclared" not in body
    assert any("undeclared" in r.getMessage() for r in caplog.records)


def test_an_invalid_input_problem_names_the_body_field(app: App) -> None:
    app.add_route(
        "/test/raises", Raises(InvalidInput("adjustments[2].delta", "must be an integer"))
    )
    body = assert_problem(client_for(app).simulate_get("/test/raises"), 400, "invalid-input")
    assert body["field"] == "adjustments[2].delta"


# -- 503 and 500 -----------------------------------------------------------------------------


class FailingPort:
    """A port whose every method raises what ``make_error`` makes."""

    def __init__(self, make_error: Callable[[], Exception]) -> None:
        self._make_error = make_error

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def fail(*args: object, **kwargs: object) -> Any:
            raise self._make_error()

        return fail


def failing_storage(make_error: Callable[[], Exception]) -> Storage:
    """Storage whose every port, and ``check``, raises what ``make_error`` makes."""
    port: Any = FailingPort(make_error)

    def check() -> None:
        raise make_error()

    return Storage(port, port, port, port, check=check, close=lambda: None, name="failing")


def _down() -> Exception:
    return StorageUnavailable("database is not reachable", retry_after=7)


ALL_READS = [
    "/chain",
    "/chain/1",
    "/chain/1/stores",
    "/stores/1",
    "/stores/1/inventory",
    "/stores/1/inventory?items=1,2",
    "/items",
    "/items/1",
    "/items/1/inventory",
    "/readyz",
]


@pytest.mark.parametrize("path", ALL_READS)
def test_storage_down_is_a_503_problem_with_retry_after(path: str) -> None:
    app = create_app(failing_storage(_down), [TokenAuthenticator(PRINCIPALS)])
    result = client_for(app).simulate_get(path)
    assert_problem(result, 503, "storage-unavailable")
    assert result.headers["Retry-After"] == "7"


def test_storage_down_does_not_fail_liveness() -> None:
    app = create_app(failing_storage(_down), [TokenAuthenticator(PRINCIPALS)])
    assert client_for(app, None).simulate_get("/healthz").status_code == 200


def test_storage_down_is_logged_once_as_storage_unavailable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(failing_storage(_down), [TokenAuthenticator(PRINCIPALS)])
    with caplog.at_level(logging.INFO, logger="commerce.http"):
        client_for(app).simulate_get("/chain")
    events = [getattr(r, "event", None) for r in caplog.records]
    assert events.count(LogEvent.STORAGE_UNAVAILABLE) == 1


SECRET = "postgresql://admin:hunter2@db.internal/commerce"


def _boom() -> Exception:
    return RuntimeError(f"could not connect to {SECRET}")


@pytest.mark.parametrize("path", ALL_READS)
def test_an_unexpected_error_is_a_500_problem_without_internals(path: str) -> None:
    app = create_app(failing_storage(_boom), [TokenAuthenticator(PRINCIPALS)])
    result = client_for(app).simulate_get(path)
    body = assert_problem(result, 500, "internal-error")
    assert body["title"] == "Internal Server Error"
    for leak in ("hunter2", "Traceback", "RuntimeError", "could not connect", ".py"):
        assert leak not in result.text


def test_an_unexpected_error_is_logged_with_its_traceback_and_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(failing_storage(_boom), [TokenAuthenticator(PRINCIPALS)])
    with caplog.at_level(logging.INFO, logger="commerce.http"):
        result = client_for(app).simulate_get("/chain", headers={"X-Request-ID": "req-42"})
    failed = [r for r in caplog.records if getattr(r, "event", None) == LogEvent.REQUEST_FAILED]
    assert len(failed) == 1
    record = failed[0]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    assert record.request_id == "req-42"  # type: ignore[attr-defined]
    assert "req-42" in result.json["detail"]
