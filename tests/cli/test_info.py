"""``commerce plugins`` and ``commerce openapi``."""

from __future__ import annotations

import json

import pytest

from commerce.entrypoints.cli import main


def test_plugins_lists_the_memory_store_with_its_scheme(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "memory  (commerce.adapters.storage.memory" in out
    assert "storage:        memory://" in out


def test_plugins_lists_auth_none_with_its_authenticator_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "auth-none  (commerce.adapters.auth.none" in out
    assert "authenticators: none" in out


def test_plugins_as_json_names_each_plugins_hooks_and_what_it_provides(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["plugins", "--json"]) == 0
    plugins = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    memory, auth = plugins["memory"], plugins["auth-none"]
    assert memory["module"] == "commerce.adapters.storage.memory"
    assert {"commerce_storage_backends"} <= set(memory["hooks"])
    assert memory["storage_schemes"] == ["memory"]
    assert memory["authenticators"] == []
    assert {"commerce_authenticators"} <= set(auth["hooks"])
    assert auth["authenticators"] == ["none"]
    assert auth["storage_schemes"] == []


def test_openapi_prints_an_indented_json_document_with_paths(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["openapi"]) == 0
    out = capsys.readouterr().out
    document = json.loads(out)
    assert document["openapi"].startswith("3.1")
    assert "/chain" in document["paths"]
    assert out.startswith("{\n  ")
