"""Fixtures for the CLI tests: a clean environment and the root logger put back after each test."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests say which storage and auth they use; the developer's shell does not."""
    for name in ("COMMERCE_DATABASE_URL", "COMMERCE_AUTH", "COMMERCE_TENANT", "COMMERCE_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COMMERCE_DATABASE_URL", "memory://")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """``serve`` installs a handler on the root logger; it must not outlive the test's stderr."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
