"""A storage backend from a third-party plugin serves the API like a built-in one."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import falcon.testing
import pytest

from commerce import plugins
from commerce.adapters.storage.memory import MemoryStore
from commerce.core.models import DEFAULT_TENANT, NewChain, NewItem, NewStore
from commerce.entrypoints.config import Settings
from commerce.entrypoints.http.app import get_app
from commerce.entrypoints.wiring import storage_schemes
from commerce.plugins import get_plugin_manager

pytestmark = pytest.mark.http


class TestStore(MemoryStore):
    """What a plugin's own store would be; it comes with data only it holds."""

    __test__ = False

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.create_tenant(DEFAULT_TENANT, "Demo")
        chain = self.create_chain(DEFAULT_TENANT, NewChain("Served by teststore"))
        store = self.create_store(DEFAULT_TENANT, NewStore(chain.id, "Plugin Store"))
        item = self.create_item(DEFAULT_TENANT, NewItem("PLUG-1", "Plug", Decimal("2.50")))
        self.set_quantity(DEFAULT_TENANT, store.id, item.id, 42, actor="test")


class TestStoragePlugin:
    """A plugin as a third party would ship it: it answers only for ``teststore://``."""

    __test__ = False

    def __init__(self) -> None:
        self.opened: list[TestStore] = []

    @plugins.hookimpl
    def commerce_open_store(self, url: str, settings: Mapping[str, str]) -> TestStore | None:
        if not url.startswith("teststore://"):
            return None
        store = TestStore(url)
        self.opened.append(store)
        return store

    @plugins.hookimpl
    def commerce_storage_schemes(self) -> list[str]:
        return ["teststore"]


def test_a_plugin_defined_storage_backend_serves_the_api() -> None:
    plugin = TestStoragePlugin()
    pm = get_plugin_manager()
    pm.register(plugin, name="teststore")
    assert "teststore" in storage_schemes(pm)

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
