"""Authentication ``none`` makes every caller an admin: allowed only in memory and demo mode."""

from __future__ import annotations

from pathlib import Path

import falcon.testing
import pytest

from commerce.core.errors import Misconfigured
from commerce.entrypoints.bootstrap import bootstrap
from commerce.entrypoints.config import Settings
from commerce.entrypoints.http.app import get_app
from commerce.plugins import get_plugin_manager

pytestmark = pytest.mark.http


def test_none_with_a_durable_database_stops_the_start_naming_what_to_set(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/c.db", auth=("none",))
    with pytest.raises(Misconfigured) as raised:
        get_app(settings, pm=get_plugin_manager())
    message = str(raised.value)
    assert "COMMERCE_AUTH" in message
    assert "memory://" in message
    assert "--demo" in message


def test_none_anywhere_in_the_list_is_refused_outside_memory(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/c.db", auth=("jwt", "none"))
    with pytest.raises(Misconfigured, match="COMMERCE_AUTH=none"):
        get_app(settings, pm=get_plugin_manager())


def test_none_is_allowed_with_memory_storage() -> None:
    app = get_app(Settings(database_url="memory://", auth=("none",)), pm=get_plugin_manager())
    assert falcon.testing.TestClient(app).simulate_get("/chain").status_code == 200


def test_none_is_allowed_in_demo_mode_with_a_durable_database(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/c.db", auth=("none",), demo=True)
    manager = bootstrap(settings, get_plugin_manager()).schema_manager()
    assert manager is not None
    manager.upgrade()
    app = get_app(settings, pm=get_plugin_manager())
    assert falcon.testing.TestClient(app).simulate_get("/chain").status_code == 200
