"""A storage backend from a third-party plugin serves the API like a built-in one."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import NamedTuple

import falcon.testing
import pytest

from commerce import plugins
from commerce.adapters.storage.memory import memory_storage
from commerce.core import usecases
from commerce.core.models import DEFAULT_TENANT, NewChain, NewItem, NewStore
from commerce.core.ports import Storage
from commerce.entrypoints.config import Settings
from commerce.entrypoints.http.app import get_app
from commerce.plugins import StorageBackend, get_plugin_manager
from commerce.plugins.registry import Registry

pytestmark = pytest.mark.http


def _test_storage() -> Storage:
    """What a plugin's own storage would be; it comes with data only it holds."""
    storage = memory_storage()
    catalogue, inventory = storage.catalogue, storage.inventory
    usecases.create_tenant(catalogue, DEFAULT_TENANT, "Demo")
    chain = usecases.create_chain(catalogue, DEFAULT_TENANT, NewChain("Served by teststore"))
    store = usecases.create_store(catalogue, DEFAULT_TENANT, NewStore(chain.id, "Plugin Store"))
    item = usecases.create_item(
        catalogue, DEFAULT_TENANT, NewItem("PLUG-1", "Plug", Decimal("2.50"))
    )
    usecases.set_quantity(inventory, DEFAULT_TENANT, store.id, item.id, 42, actor="test")
    return storage


class Opened(NamedTuple):
    url: str
    storage: Storage


class TestStoragePlugin:
    """A plugin as a third party would ship it: one backend, for ``teststore://`` only."""

    __test__ = False

    def __init__(self) -> None:
        self.opened: list[Opened] = []

    def _open(self, url: str, settings: Mapping[str, str]) -> Storage:
        storage = _test_storage()
        self.opened.append(Opened(url, storage))
        return storage

    @plugins.hookimpl
    def commerce_storage_backends(self) -> list[StorageBackend]:
        return [StorageBackend(name="teststore", schemes=("teststore",), open=self._open)]


def test_a_plugin_defined_storage_backend_serves_the_api() -> None:
    plugin = TestStoragePlugin()
    pm = get_plugin_manager()
    pm.register(plugin, name="teststore")
    assert "teststore" in Registry(pm).schemes()

    # Authentication "none" is refused outside memory:// unless, as here, in demo mode.
    app = get_app(Settings(database_url="teststore://x", auth=("none",), demo=True), pm=pm)
    client = falcon.testing.TestClient(app)

    [opened] = plugin.opened
    assert opened.url == "teststore://x"
    chains = client.simulate_get("/chain").json
    assert [c["name"] for c in chains] == ["Served by teststore"]
    stores = client.simulate_get(f"/chain/{chains[0]['id']}/stores").json
    levels = client.simulate_get(f"/stores/{stores[0]['id']}/inventory").json
    assert [lv["quantity"] for lv in levels] == [42]
    assert client.simulate_get("/readyz").status_code == 200


def test_the_plugin_leaves_other_schemes_to_the_built_ins() -> None:
    plugin = TestStoragePlugin()
    pm = get_plugin_manager()
    pm.register(plugin, name="teststore")
    client = falcon.testing.TestClient(
        get_app(Settings(database_url="memory://", auth=("none",)), pm=pm)
    )
    assert client.simulate_get("/chain").json == []
    assert plugin.opened == []
