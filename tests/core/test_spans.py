"""The use case seam: no opener, no span; an opener opens one span per outermost use case."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from commerce.core import spans


@spans.usecase
def inner(x: int) -> int:
    return x + 1


@spans.usecase
def outer(x: int) -> int:
    return inner(x) * 2


@spans.usecase
def failing() -> None:
    raise ValueError("boom")


class Recorder:
    def __init__(self) -> None:
        self.opened: list[str] = []
        self.closed: list[tuple[str, type[BaseException] | None]] = []

    @contextmanager
    def open(self, name: str) -> Iterator[None]:
        self.opened.append(name)
        try:
            yield
        except BaseException as error:
            self.closed.append((name, type(error)))
            raise
        self.closed.append((name, None))


def test_without_an_opener_a_use_case_just_runs() -> None:
    assert outer(1) == 4
    assert inner.__name__ == "inner"  # the decorator keeps the function's identity


def test_an_opener_opens_one_span_per_outermost_use_case() -> None:
    recorder = Recorder()
    token = spans.open_spans_with(recorder.open)
    try:
        assert outer(1) == 4
        assert inner(1) == 2
    finally:
        spans.close_spans(token)
    # ``outer`` calls ``inner``: one span, the outer one; a direct call of ``inner`` has its own.
    assert recorder.opened == ["usecase.outer", "usecase.inner"]
    assert recorder.closed == [("usecase.outer", None), ("usecase.inner", None)]
    assert outer(1) == 4
    assert recorder.opened == ["usecase.outer", "usecase.inner"]  # closed: no more spans


def test_an_error_passes_through_the_span() -> None:
    recorder = Recorder()
    token = spans.open_spans_with(recorder.open)
    try:
        with pytest.raises(ValueError, match="boom"):
            failing()
        assert outer(2) == 6  # the inner-call guard was put back after the failure
    finally:
        spans.close_spans(token)
    assert recorder.closed == [("usecase.failing", ValueError), ("usecase.outer", None)]


def test_an_opener_belongs_to_its_thread() -> None:
    recorder = Recorder()
    token = spans.open_spans_with(recorder.open)
    try:
        other = threading.Thread(target=outer, args=(1,))
        other.start()
        other.join()
    finally:
        spans.close_spans(token)
    assert recorder.opened == []
