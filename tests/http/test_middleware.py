"""Request ids on every response, and one log record per request that holds no secrets."""

from __future__ import annotations

import io
import json
import logging
import re
from typing import Any

import falcon
import falcon.testing
import pytest

from commerce.core import context
from commerce.core.events import LogEvent
from commerce.entrypoints.http.app import create_app
from commerce.entrypoints.logs import configure_logging, flush_logs
from tests.http.conftest import (
    ADMIN_TOKEN,
    PRINCIPALS,
    READER_TOKEN,
    App,
    Seed,
    TokenAuthenticator,
    client_for,
)

pytestmark = pytest.mark.http

_UUID_HEX = re.compile(r"^[0-9a-f]{16}-[0-9a-f]+$")
"""A generated id: a random prefix drawn once per process, then a counter."""


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/chain"),
        ("GET", "/healthz"),
        ("GET", "/nope"),
        ("GET", "/chain/abc"),
        ("GET", "/chain/999"),
        ("DELETE", "/chain"),
    ],
)
def test_every_response_carries_a_fresh_request_id(
    client: falcon.testing.TestClient, method: str, path: str
) -> None:
    first = client.simulate_request(method, path).headers["X-Request-ID"]
    second = client.simulate_request(method, path).headers["X-Request-ID"]
    assert _UUID_HEX.match(first)
    assert first != second


def test_a_401_carries_a_request_id_too(anonymous: falcon.testing.TestClient) -> None:
    result = anonymous.simulate_get("/chain", headers={"X-Request-ID": "abc-123"})
    assert result.status_code == 401
    assert result.headers["X-Request-ID"] == "abc-123"


@pytest.mark.parametrize(
    "given", ["abc-123", "0f8fad5b-d9cb-469f-a165-70867728950e", "svc.a:b_c", "x" * 128]
)
def test_a_sane_client_request_id_is_echoed(client: falcon.testing.TestClient, given: str) -> None:
    result = client.simulate_get("/chain", headers={"X-Request-ID": given})
    assert result.headers["X-Request-ID"] == given


@pytest.mark.parametrize("given", ["", "x" * 129, "has space", "new\\nline", "<script>", "é"])
def test_an_insane_client_request_id_is_replaced(
    client: falcon.testing.TestClient, given: str
) -> None:
    result = client.simulate_get("/chain", headers={"X-Request-ID": given})
    assert _UUID_HEX.match(result.headers["X-Request-ID"])


def _completed(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == LogEvent.REQUEST_COMPLETED]


def test_each_request_is_logged_once_with_its_outcome(
    client: falcon.testing.TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="commerce.http"):
        client.simulate_get("/chain/999", headers={"X-Request-ID": "trace-1"})
    [record] = _completed(caplog)
    assert record.name == "commerce.http"
    assert record.levelno == logging.INFO
    fields = {k: getattr(record, k) for k in ("request_id", "method", "path", "status")}
    assert fields == {"request_id": "trace-1", "method": "GET", "path": "/chain/999", "status": 404}
    duration = record.duration_ms  # type: ignore[attr-defined]
    assert isinstance(duration, float)
    assert duration >= 0


def test_the_log_holds_neither_the_token_nor_the_query_string(
    client: falcon.testing.TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        client.simulate_get("/chain?api_key=s3cret-in-query&limit=1")
        client.simulate_get("/chain/abc?api_key=s3cret-in-query")
    assert _completed(caplog)
    for record in caplog.records:
        text = record.getMessage() + repr(vars(record))
        assert "s3cret-in-query" not in text
        assert READER_TOKEN not in text


def test_no_record_is_built_when_info_is_off(
    client: falcon.testing.TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="commerce.http"):
        assert client.simulate_get("/chain").status_code == 200
    assert _completed(caplog) == []


def _json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    flush_logs()
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_every_line_of_a_request_carries_its_bound_fields(
    client: falcon.testing.TestClient, anonymous: falcon.testing.TestClient
) -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    configure_logging("INFO", stream, log_format="json")
    try:
        client.simulate_get("/chain/999", headers={"X-Request-ID": "req-1"})
        anonymous.simulate_get("/chain", headers={"X-Request-ID": "req-2"})
        lines = _json_lines(stream)
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(level)
    [completed] = [x for x in lines if x["request_id"] == "req-1"]
    assert completed["event_id"] == "CM2001"
    assert completed["route"] == "/chain/{chain_id}"
    assert completed["tenant"] == "acme"
    assert completed["method"] == "GET"
    assert completed["status"] == 404
    refused = [x for x in lines if x["request_id"] == "req-2"]
    assert [x["event_id"] for x in refused] == ["CM5002", "CM2001"]
    assert refused[0]["reason"] == "no_credentials"
    assert refused[0]["route"] == "/chain"
    assert "tenant" not in refused[0]


def test_fields_bound_by_a_request_do_not_outlive_it(client: falcon.testing.TestClient) -> None:
    client.simulate_get("/chain", headers={"X-Request-ID": "req-3"})
    assert "request_id" not in context.current()


def test_a_slow_request_is_logged_as_such(seed: Seed, caplog: pytest.LogCaptureFixture) -> None:
    slow_client = client_for(
        create_app(seed.storage, [TokenAuthenticator(PRINCIPALS)], slow_request_ms=0)
    )
    with caplog.at_level(logging.INFO, logger="commerce.http"):
        slow_client.simulate_get("/chain")
    [slow] = [r for r in caplog.records if getattr(r, "event", None) == LogEvent.SLOW_REQUEST]
    assert slow.levelno == logging.WARNING
    assert slow.threshold_ms == 0  # type: ignore[attr-defined]
    assert slow.route == "/chain"  # type: ignore[attr-defined]


def test_a_role_refusal_is_logged_with_the_role_needed(
    client: falcon.testing.TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="commerce.http"):
        assert client.simulate_post("/chain", json={"name": "X"}).status_code == 403
    [refused] = [r for r in caplog.records if getattr(r, "event", None) == LogEvent.ROLE_REFUSED]
    assert refused.needed == "writer" or refused.needed == "admin"  # type: ignore[attr-defined]
    assert refused.role == "reader"  # type: ignore[attr-defined]
    assert READER_TOKEN not in refused.getMessage() + repr(vars(refused))


def test_a_stale_if_match_is_logged_as_a_compare_and_set_conflict(
    app: App, seed: Seed, caplog: pytest.LogCaptureFixture
) -> None:
    admin = client_for(app, ADMIN_TOKEN)
    url = f"/items/{seed.items[0].id}"
    stale = admin.simulate_get(url).headers["ETag"]
    admin.simulate_patch(url, json={"name": "First"})
    with caplog.at_level(logging.INFO, logger="commerce.http"):
        result = admin.simulate_patch(url, json={"name": "Second"}, headers={"If-Match": stale})
    assert result.status_code == 412
    [conflict] = [r for r in caplog.records if getattr(r, "event", None) == LogEvent.CAS_CONFLICT]
    assert conflict.conflict == "version"  # type: ignore[attr-defined]
    assert conflict.path == url  # type: ignore[attr-defined]


def test_generated_request_ids_are_unique_and_a_forked_process_draws_its_own() -> None:
    import multiprocessing

    from commerce.entrypoints.http.middleware import new_request_id

    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(_UUID_HEX.match(i) for i in ids)
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        child = pool.apply(_an_id_of_this_process)
    assert child.split("-")[0] != next(iter(ids)).split("-")[0]


def _an_id_of_this_process() -> str:
    from commerce.entrypoints.http.middleware import new_request_id

    return new_request_id()
