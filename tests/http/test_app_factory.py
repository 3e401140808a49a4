"""``get_app`` builds the app from configuration, as any WSGI server loading it would."""

from __future__ import annotations

import logging

import falcon
import falcon.testing
import pytest

from commerce.core.errors import Misconfigured
from commerce.core.events import LogEvent
from commerce.entrypoints.config import Settings
from commerce.entrypoints.http.app import get_app
from commerce.plugins import get_plugin_manager

pytestmark = pytest.mark.http


def test_get_app_serves_memory_storage_from_settings() -> None:
    app = get_app(Settings(database_url="memory://", auth=("none",)), pm=get_plugin_manager())
    client = falcon.testing.TestClient(app)
    assert client.simulate_get("/readyz").status_code == 200
    assert client.simulate_get("/chain").json == []


def test_get_app_with_no_arguments_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COMMERCE_DATABASE_URL", "memory://")
    monkeypatch.setenv("COMMERCE_AUTH", "none")
    monkeypatch.setenv("COMMERCE_MAX_BODY_BYTES", "5")
    client = falcon.testing.TestClient(get_app())
    assert client.simulate_get("/chain").status_code == 200
    assert client.simulate_post("/chain", body=b"123456").status_code == 413


def test_by_default_a_request_needs_an_api_key() -> None:
    app = get_app(Settings(database_url="memory://"), pm=get_plugin_manager())
    client = falcon.testing.TestClient(app)
    assert client.simulate_get("/chain").status_code == 401
    assert client.simulate_get("/healthz").status_code == 200


def test_a_malformed_number_in_the_environment_is_misconfigured_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COMMERCE_MAX_BODY_BYTES", "1MB")
    with pytest.raises(Misconfigured, match="COMMERCE_MAX_BODY_BYTES"):
        Settings.from_env()


def test_a_url_no_plugin_handles_is_misconfigured() -> None:
    with pytest.raises(Misconfigured, match="nosuch"):
        get_app(Settings(database_url="nosuch://x"), pm=get_plugin_manager())


def test_an_unknown_authenticator_is_misconfigured() -> None:
    with pytest.raises(Misconfigured, match="nosuch"):
        get_app(Settings(auth=("nosuch",)), pm=get_plugin_manager())


def test_authentication_none_is_announced_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    # "commerce": the composition root (commerce.bootstrap) opens storage and announces it.
    with caplog.at_level(logging.INFO, logger="commerce"):
        get_app(Settings(database_url="memory://", auth=("none",)), pm=get_plugin_manager())
    events = {getattr(r, "event", None): r for r in caplog.records}
    assert events[LogEvent.AUTH_NONE_IN_USE].levelno == logging.WARNING
    assert LogEvent.STORAGE_OPENED in events


def test_the_storage_url_is_never_logged_in_full(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG), pytest.raises(Misconfigured):
        get_app(Settings(database_url="nosuch://user:hunter2@host/db"), pm=get_plugin_manager())
    assert all("hunter2" not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("raw", "hours"), [(None, 24), ("72", 72), ("1", 24)])
def test_the_idempotency_ttl_comes_from_the_environment_and_is_at_least_a_day(
    raw: str | None, hours: int
) -> None:
    env = {} if raw is None else {"COMMERCE_IDEMPOTENCY_TTL_HOURS": raw}
    assert Settings.from_env(env).idempotency_ttl_hours == hours
