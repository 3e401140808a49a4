"""Shared fixtures: the storage backends every contract and property test runs on."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from commerce.core.ports import Storage
from tests.backends import BACKENDS, Backend, opened

settings.register_profile(
    "default",
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    parent=settings.get_profile("default"),
    max_examples=400,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(params=BACKENDS, ids=lambda b: b.id)
def backend(request: pytest.FixtureRequest) -> Backend:
    backend: Backend = request.param
    return backend


@pytest.fixture
def storage(backend: Backend) -> Iterator[Storage]:
    """A fresh, empty storage bundle of each backend in turn."""
    with opened(backend) as storage:
        yield storage
