"""Fixtures for the CLI tests: a clean environment, the root logger put back, installed plugins."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.installed import Site


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


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """A folder on ``sys.path`` to install plugin packages into; its modules are forgotten
    after the test, and the folder leaves ``sys.path``."""
    root = tmp_path / "site-packages"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    before = set(sys.modules)
    yield Site(root)
    for name in set(sys.modules) - before:
        if str(root) in str(getattr(sys.modules[name], "__file__", None) or ""):
            del sys.modules[name]
