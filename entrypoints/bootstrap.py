"""The composition root: settings, plugins, storage, authenticators and rate limiter, built once.

``get_app``, ``commerce serve`` and every CLI verb start here; nothing else reads the
environment or asks the plugin manager for adapters. Parts are built on first use, so a
verb that needs no storage (``commerce plugins``, ``commerce openapi``) opens none.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import cached_property

import pluggy

from commerce.core.errors import Misconfigured
from commerce.core.events import LogEvent
from commerce.core.ports import Authenticator, BulkLoader, SchemaManager, Storage
from commerce.entrypoints.config import Settings
from commerce.entrypoints.http.ratelimit import TokenBuckets, parse_policy
from commerce.plugins import check_hooks, get_plugin_manager
from commerce.plugins.registry import Registry, scheme_of

log = logging.getLogger("commerce.bootstrap")


class Runtime:
    """What the service runs with. ``close()`` releases the storage if it was opened."""

    def __init__(self, settings: Settings, pm: pluggy.PluginManager | None = None) -> None:
        self.settings = settings
        self.pm = get_plugin_manager() if pm is None else pm
        # A manager handed in may have had plugins registered since it was made.
        check_hooks(self.pm)
        self.registry = Registry(self.pm)
        self._opened = False

    @cached_property
    def storage(self) -> Storage:
        """The storage for ``settings.database_url``; ``Misconfigured`` if no plugin takes it."""
        url = self.settings.database_url
        backend = self.registry.backend_for(url)
        storage = backend.open(url, self.settings.plugin_settings())
        self._opened = True
        # Only the scheme: the rest of a database URL may hold a password.
        scheme = scheme_of(url)
        log.info(
            "storage opened: %s://",
            scheme,
            extra={"event": LogEvent.STORAGE_OPENED, "scheme": scheme},
        )
        return storage

    def schema_manager(self) -> SchemaManager | None:
        """The migrations of the configured storage; ``None`` if it keeps no schema."""
        url = self.settings.database_url
        backend = self.registry.backend_for(url)
        if backend.schema_manager is None:
            return None
        return backend.schema_manager(url, self.settings.plugin_settings())

    def bulk_loader(self) -> BulkLoader | None:
        """A fast loader into the storage, if its backend has one."""
        backend = self.registry.backend_for(self.settings.database_url)
        if backend.bulk_loader is None:
            return None
        return backend.bulk_loader(self.storage)

    @cached_property
    def authenticators(self) -> Sequence[Authenticator]:
        """One per name in ``settings.auth``, in order; ``Misconfigured`` if one is unknown."""
        check_no_auth_allowed(self.settings)
        built = [
            self.registry.authenticator(name).make(self.settings.plugin_settings(), self.storage)
            for name in self.settings.auth
        ]
        if "none" in self.settings.auth:
            log.warning(
                "authentication 'none' is in use: every request acts as admin of tenant %r",
                self.settings.tenant,
                extra={"event": LogEvent.AUTH_NONE_IN_USE, "tenant": self.settings.tenant},
            )
        return built

    @cached_property
    def rate_limiter(self) -> TokenBuckets | None:
        policy = parse_policy(self.settings.rate_limit, self.settings.rate_burst)
        return None if policy is None else TokenBuckets(policy)

    def close(self) -> None:
        if self._opened:
            self.storage.close()
            self._opened = False
            del self.__dict__["storage"]


def bootstrap(settings: Settings | None = None, pm: pluggy.PluginManager | None = None) -> Runtime:
    """The runtime for ``settings`` (default: from the environment)."""
    return Runtime(Settings.from_env() if settings is None else settings, pm)


def check_no_auth_allowed(settings: Settings) -> None:
    """``Misconfigured`` if ``none`` is named outside ``memory://`` and ``serve --demo``.

    ``none`` makes every caller an admin; with data that outlives the process that would be
    an open door, so it is refused at start rather than merely warned about.
    """
    if "none" not in settings.auth or settings.demo:
        return
    if scheme_of(settings.database_url) == "memory":
        return
    raise Misconfigured(
        "COMMERCE_AUTH=none lets every request act as admin, so it is allowed only "
        "with COMMERCE_DATABASE_URL=memory:// or `commerce serve --demo`; set COMMERCE_AUTH to "
        "apikeys or jwt (see docs/security.md)"
    )
