"""A seam for tracing the use cases, without the core knowing any tracing library.

Every use case is decorated with ``usecase``. While nothing is traced the decorator costs one
context-variable read. A tracing plugin, for the duration of a traced request, installs an
*opener* with ``open_spans_with``: a function that takes a span name (``usecase.adjust_inventory``)
and returns a context manager, the span. The opener lives in a context variable, so it belongs
to the request's thread and to the app that installed it: two apps in one process, or a CLI
call beside a server, never share one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from contextvars import ContextVar, Token
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

Opener = Callable[[str], AbstractContextManager[object]]
"""Opens the span of one use case call, named ``usecase.<function>``."""

_OPENER: ContextVar[Opener | None] = ContextVar("commerce_span_opener", default=None)


def usecase(function: Callable[P, R]) -> Callable[P, R]:
    """Run ``function`` inside a span of the current opener, if one is installed (and no
    other use case's span is open: then it is part of that one)."""
    name = f"usecase.{function.__name__}"

    @functools.wraps(function)
    def traced(*args: P.args, **kwargs: P.kwargs) -> R:
        opener = _OPENER.get()
        if opener is None:
            return function(*args, **kwargs)
        # A use case that calls another is one span: the inner call opens none.
        token = _OPENER.set(None)
        try:
            with opener(name):
                return function(*args, **kwargs)
        finally:
            _OPENER.reset(token)

    return traced


def open_spans_with(opener: Opener | None) -> Token[Opener | None]:
    """Install ``opener`` for the current context; ``close_spans`` with the token undoes it."""
    return _OPENER.set(opener)


def close_spans(token: Token[Opener | None]) -> None:
    """Put back the opener that was installed before ``open_spans_with`` gave ``token``."""
    _OPENER.reset(token)
