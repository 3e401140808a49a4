"""Every storage backend the contract suite runs on: one entry each, a new adapter is one more.

``COMMERCE_TEST_DATABASE_URLS`` (comma-separated) adds more URLs, for instance a real
CockroachDB cluster; each is opened through the plugin manager like the service does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from adapters.storage.memory import MemoryStore
from core.ports import CommerceStore


@dataclass(frozen=True)
class Backend:
    id: str
    open: Callable[[], CommerceStore]
    """A fresh, empty, migrated store; the suite closes it after the test."""


def _memory() -> CommerceStore:
    return MemoryStore()


BACKENDS: list[Backend] = [Backend("memory", _memory)]


@contextmanager
def opened(backend: Backend) -> Iterator[CommerceStore]:
    store = backend.open()
    try:
        yield store
    finally:
        store.close()
