"""``commerce serve`` refuses an unsafe or incomplete auth or rate-limit setup in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from commerce.entrypoints.cli import main


def _last_line(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().err.splitlines()[-1]


def test_serving_a_durable_database_without_authentication_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    assert main(["--database", url, "db", "upgrade"]) == 0
    monkeypatch.setenv("COMMERCE_AUTH", "none")
    assert main(["--database", url, "serve", "--port", "0"]) == 2
    last = _last_line(capsys)
    assert last.startswith("commerce: error:")
    assert "COMMERCE_AUTH" in last
    assert "--demo" in last


def test_jwt_without_a_key_is_refused_naming_the_settings_to_use(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMMERCE_AUTH", "jwt")
    assert main(["serve", "--port", "0"]) == 2
    last = _last_line(capsys)
    assert last.startswith("commerce: error:")
    assert "COMMERCE_JWT_SECRET" in last
    assert "COMMERCE_JWT_JWKS_FILE" in last


def test_a_malformed_rate_limit_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMMERCE_AUTH", "none")
    monkeypatch.setenv("COMMERCE_RATE_LIMIT", "lots")
    assert main(["serve", "--port", "0"]) == 2
    assert "COMMERCE_RATE_LIMIT" in _last_line(capsys)
