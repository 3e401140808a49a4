"""What every port suite shares: the port fixtures, a fresh-tenant factory, the bundle's own checks.

Each port fixture defaults to that port of the ``storage`` bundle, which the caller provides
(``tests/conftest.py`` gives one per backend of ``tests/backends.py``). A plugin that provides
only some ports overrides the fixtures it needs instead and never needs a whole bundle.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable

import pytest

from commerce.core.ports import ApiKeys, Catalogue, IdempotencyRecords, Inventory, Storage

NewTenant = Callable[[], str]
"""Makes a tenant no other test or example uses and returns its id."""

_tenant_numbers = itertools.count(1)


def unique_tenant(catalogue: Catalogue, prefix: str = "t") -> str:
    """A new tenant no other test or example uses, so examples that share one storage (as
    Hypothesis's do) never share data. The process id keeps parallel workers apart."""
    tenant_id = f"{prefix}{os.getpid()}-{next(_tenant_numbers)}"
    catalogue.create_tenant(tenant_id, f"Tenant {tenant_id}")
    return tenant_id


class PortFixtures:
    """The fixtures the port suites use; override any of them in a subclass."""

    @pytest.fixture
    def catalogue(self, storage: Storage) -> Catalogue:
        return storage.catalogue

    @pytest.fixture
    def inventory(self, storage: Storage) -> Inventory:
        return storage.inventory

    @pytest.fixture
    def idempotency(self, storage: Storage) -> IdempotencyRecords:
        return storage.idempotency

    @pytest.fixture
    def api_keys(self, storage: Storage) -> ApiKeys:
        return storage.api_keys

    @pytest.fixture
    def new_tenant(self, catalogue: Catalogue) -> NewTenant:
        """Tenants are made in the catalogue; a plugin without one overrides this fixture
        (for idempotency records any unused string will do; API keys need a real tenant)."""
        return lambda: unique_tenant(catalogue)


class StorageContract(PortFixtures):
    """The bundle itself: what ``check`` and ``close`` promise."""

    def test_the_storage_answers_its_health_check(self, storage: Storage) -> None:
        storage.check()
