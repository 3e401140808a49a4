"""Request ids on every response, and one log record per request that holds no secrets."""

from __future__ import annotations

import logging
import re

import falcon
import falcon.testing
import pytest

from commerce.core.events import LogEvent
from tests.http.conftest import READER_TOKEN

pytestmark = pytest.mark.http

_UUID_HEX = re.compile(r"^[0-9a-f]{32}$")


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
