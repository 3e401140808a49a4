"""What every verb shares: the settings, and the plugin manager and store, made on first use."""

from __future__ import annotations

from dataclasses import dataclass, field

import pluggy

from commerce.core.ports import CommerceStore, SchemaManager
from commerce.entrypoints.config import Settings
from commerce.entrypoints.wiring import open_store
from commerce.plugins import get_plugin_manager


@dataclass
class CliContext:
    settings: Settings
    _pm: pluggy.PluginManager | None = field(default=None, repr=False)
    _store: CommerceStore | None = field(default=None, repr=False)

    @property
    def pm(self) -> pluggy.PluginManager:
        if self._pm is None:
            self._pm = get_plugin_manager()
        return self._pm

    def store(self) -> CommerceStore:
        """The store for the configured URL, opened once; ``Misconfigured`` if none takes it."""
        if self._store is None:
            self._store = open_store(self.pm, self.settings)
        return self._store

    def schema_manager(self) -> SchemaManager | None:
        manager: SchemaManager | None = self.pm.hook.commerce_schema_manager(
            url=self.settings.database_url, settings=self.settings.plugin_settings()
        )
        return manager

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
