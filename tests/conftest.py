"""Shared fixtures: the storage backends every contract and property test runs on."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from commerce.core.ports import CommerceStore
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

_tenant_numbers = itertools.count(1)


@pytest.fixture(params=BACKENDS, ids=lambda b: b.id)
def backend(request: pytest.FixtureRequest) -> Backend:
    backend: Backend = request.param
    return backend


@pytest.fixture
def store(backend: Backend) -> Iterator[CommerceStore]:
    """A fresh, empty store of each backend in turn."""
    with opened(backend) as store:
        yield store


def new_tenant(store: CommerceStore, prefix: str = "t") -> str:
    """A tenant no other test or example uses, so examples share one store without sharing data."""
    tenant_id = f"{prefix}{os.getpid()}-{next(_tenant_numbers)}"
    store.create_tenant(tenant_id, f"Tenant {tenant_id}")
    return tenant_id
