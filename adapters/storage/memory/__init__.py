"""``memory://``: thread-safe in-process storage, for trying out and as the reference in tests.

One ``MemoryState`` (a lock and plain dicts) is shared by one object per port; the rules
(versions, delete guards, the all-or-none adjustment) come from ``core.rules``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from commerce.adapters.storage.memory.api_keys import MemoryApiKeys
from commerce.adapters.storage.memory.catalogue import MemoryCatalogue
from commerce.adapters.storage.memory.idempotency import MemoryIdempotencyRecords
from commerce.adapters.storage.memory.inventory import MemoryInventory
from commerce.adapters.storage.memory.state import MemoryState, utcnow
from commerce.core.ports import Storage
from commerce.plugins import StorageBackend, hookimpl

__all__ = [
    "MemoryApiKeys",
    "MemoryCatalogue",
    "MemoryIdempotencyRecords",
    "MemoryInventory",
    "MemoryState",
    "memory_storage",
]


def _nothing() -> None:
    """Memory needs no health check and holds nothing to release."""


def memory_storage(clock: Callable[[], datetime] | None = None) -> Storage:
    """A fresh, empty storage; ``clock`` (default: UTC now) stamps every row and entry."""
    state = MemoryState(utcnow if clock is None else clock)
    return Storage(
        catalogue=MemoryCatalogue(state),
        inventory=MemoryInventory(state),
        idempotency=MemoryIdempotencyRecords(state),
        api_keys=MemoryApiKeys(state),
        check=_nothing,
        close=_nothing,
        name="memory",
    )


@hookimpl
def commerce_storage_backends() -> list[StorageBackend]:
    return [
        StorageBackend(
            name="memory",
            schemes=("memory",),
            open=lambda url, settings: memory_storage(),
            description="in-process dicts, lost on exit: for trying out and for tests",
        )
    ]
