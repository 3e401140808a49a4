"""What every verb shares: the settings and the runtime (``bootstrap``), built on first use."""

from __future__ import annotations

import sys

import pluggy

from commerce.core.ports import BulkLoader, SchemaManager, Storage
from commerce.entrypoints.bootstrap import Runtime, bootstrap
from commerce.entrypoints.config import Settings
from commerce.plugins.registry import scheme_of


class CliContext:
    """The verbs' way to the composition root. Nothing is built until a verb asks, so
    ``commerce openapi`` loads no plugin and ``commerce plugins`` opens no storage.

    ``pm`` is for tests that register a plugin of their own; normally the runtime makes it.
    """

    def __init__(self, settings: Settings, pm: pluggy.PluginManager | None = None) -> None:
        self._settings = settings
        self._pm = pm
        self._runtime: Runtime | None = None

    @property
    def settings(self) -> Settings:
        return self._settings

    def configure(self, settings: Settings) -> None:
        """Run with ``settings`` instead (``serve --demo`` changes some); only before the
        runtime is built, since what it built came from the settings it had."""
        if self._runtime is not None:
            raise RuntimeError("the runtime is built already; configure the context first")
        self._settings = settings

    @property
    def runtime(self) -> Runtime:
        """The one runtime of this command; ``Misconfigured`` if the plugins are not sound."""
        if self._runtime is None:
            self._runtime = bootstrap(self._settings, self._pm)
        return self._runtime

    def storage(self) -> Storage:
        """The storage for the configured URL, opened once; ``Misconfigured`` if none takes it."""
        return self.runtime.storage

    def ready_storage(self) -> Storage:
        """The storage, refused (one line, exit 2) unless it answers and its schema is current."""
        storage = self.storage()
        storage.check()
        if scheme_of(self._settings.database_url) == "memory":
            print("note: memory:// keeps nothing once this command exits", file=sys.stderr)
        return storage

    def schema_manager(self) -> SchemaManager | None:
        """The configured storage's migrations; ``None`` if it keeps no schema.
        ``Misconfigured`` if no plugin takes the URL at all."""
        return self.runtime.schema_manager()

    def bulk_loader(self) -> BulkLoader | None:
        return self.runtime.bulk_loader()

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()
