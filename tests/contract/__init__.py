"""The storage contract, one reusable suite per port, for every backend including plugins'.

Suites (classes, not collected by themselves since their names do not start with ``Test``):

- ``tests.contract.catalogue.CatalogueContract``: tenants, chains, stores, items.
- ``tests.contract.inventory.InventoryContract``: levels, sets, adjustments, the ledger,
  levels as-of, and the deletes that stock prevents (it uses the catalogue too).
- ``tests.contract.idempotency.IdempotencyContract``: idempotency records.
- ``tests.contract.api_keys.ApiKeysContract``: API keys.
- ``tests.contract.base.StorageContract``: the bundle's ``check``.

Each suite asks for the port fixtures it uses (``catalogue``, ``inventory``, ``idempotency``,
``api_keys``) and ``new_tenant``, a callable that returns the id of a fresh tenant. By default
(``base.PortFixtures``) each port is taken from a ``storage`` fixture, the ``Storage``
bundle, and ``new_tenant`` creates the tenant in the catalogue. The ``test_*_contract.py``
modules here run every suite over every backend of ``tests/backends.py``.

A plugin author runs the suites of the ports the plugin provides, from a checkout of this
repository on ``sys.path`` (the tests are not installed with the package)::

    from collections.abc import Iterator

    import pytest
    from commerce.core.ports import Storage
    from tests.contract.catalogue import CatalogueContract
    from tests.contract.inventory import InventoryContract

    @pytest.fixture
    def storage() -> Iterator[Storage]:
        storage = open_my_storage()          # a fresh, empty bundle
        yield storage
        storage.close()

    class TestMyCatalogue(CatalogueContract): ...
    class TestMyInventory(InventoryContract): ...

A plugin that provides only some ports, say idempotency records kept in Redis, overrides the
port fixture instead of ``storage``, and ``new_tenant`` where the suite needs a tenant::

    import uuid

    from commerce.core.ports import IdempotencyRecords
    from tests.contract.base import NewTenant
    from tests.contract.idempotency import IdempotencyContract

    class TestRedisIdempotency(IdempotencyContract):
        @pytest.fixture
        def idempotency(self) -> IdempotencyRecords:
            return RedisIdempotencyRecords(fresh_redis())

        @pytest.fixture
        def new_tenant(self) -> NewTenant:
            return lambda: f"tenant-{uuid.uuid4()}"  # records need no tenant row

The suites assume only what the port Protocols in ``commerce.core.ports`` promise.
"""
