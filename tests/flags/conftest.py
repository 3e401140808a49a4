"""Fixtures for the feature flag tests: a flags file to write, the flags it makes, an app."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from commerce.adapters.flags import file_flags
from commerce.adapters.flags.client import OpenFeatureFlags

Write = Callable[[str], Path]


@pytest.fixture
def flags_file(tmp_path: Path) -> Path:
    return tmp_path / "flags.yaml"


@pytest.fixture
def write(flags_file: Path) -> Write:
    """Write the flags file whole, as an operator's tool does: a new file renamed over the
    old one, so that a reader sees the old or the new text, never half of one."""
    count = 0

    def write_text(text: str) -> Path:
        nonlocal count
        count += 1
        staged = flags_file.with_name(f".flags.{count}.tmp")
        staged.write_text(textwrap.dedent(text), encoding="utf-8")
        os.replace(staged, flags_file)
        return flags_file

    return write_text


@pytest.fixture
def make_flags() -> Iterator[Callable[..., OpenFeatureFlags]]:
    """``make_flags(**settings)``: the ``file`` provider's flags for those plugin settings,
    closed after the test."""
    made: list[OpenFeatureFlags] = []

    def make(**settings: str) -> OpenFeatureFlags:
        flags = file_flags(settings)
        made.append(flags)
        return flags

    yield make
    for flags in made:
        flags.close()
