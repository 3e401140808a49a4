"""What every log line of a request carries: its fields, bound once, read by the log formatter.

The HTTP layer binds the request id, method, route, tenant; ``providers`` add fields that
change while the request runs (a tracing plugin's current trace and span ids). The log
formatter merges ``current()`` into each line. Plain ``contextvars``: one context per thread
or task, so concurrent requests never see each other's fields.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType

_NONE: Mapping[str, object] = MappingProxyType({})
_FIELDS: ContextVar[Mapping[str, object]] = ContextVar("commerce_log_fields", default=_NONE)

providers: list[Callable[[], Mapping[str, object]]] = []
"""Called for every line; each returns fields to add (``{}`` when it has nothing). Register
once at start-up; a provider must be cheap and must not log."""


@contextmanager
def bound(**fields: object) -> Iterator[None]:
    """Add ``fields`` to every line logged inside the ``with`` block (nested blocks add more)."""
    token = _FIELDS.set({**_FIELDS.get(), **fields})
    try:
        yield
    finally:
        _FIELDS.reset(token)


def bind(**fields: object) -> None:
    """Add ``fields`` to the rest of the current context (a request's thread, until reset)."""
    _FIELDS.set({**_FIELDS.get(), **fields})


def clear() -> None:
    """Forget every bound field: called when a request ends, as threads are reused."""
    _FIELDS.set(_NONE)


def current() -> dict[str, object]:
    """The bound fields and every provider's, for one log line."""
    fields = dict(_FIELDS.get())
    for provide in providers:
        fields.update(provide())
    return fields
