"""The composition root: settings, plugins, storage, authenticators and rate limiter, built once.

``get_app``, ``commerce serve`` and every CLI verb start here; nothing else reads the
environment or asks the plugin manager for adapters. Parts are built on first use, so a
verb that needs no storage (``commerce plugins``, ``commerce openapi``) opens none.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from functools import cached_property

import pluggy

from commerce.core import usecases
from commerce.core.auth import Principal
from commerce.core.errors import Misconfigured, Unauthorized
from commerce.core.events import LogEvent, event_log
from commerce.core.flags import Flags
from commerce.core.ports import Authenticator, BulkLoader, SchemaManager, Storage
from commerce.core.ratelimit import RateLimiter
from commerce.entrypoints.config import Settings
from commerce.entrypoints.http.ratelimit import parse_policy
from commerce.plugins import Instrumentation, check_hooks, get_plugin_manager
from commerce.plugins.hookspecs import FlagsProvider, RateLimitStore
from commerce.plugins.registry import Registry, scheme_of

log = event_log("commerce.bootstrap")

UNCHECKED_AUTHENTICATORS = frozenset({"none"})
"""Authenticators whose principals' tenant is not checked: ``none`` acts for
``COMMERCE_TENANT``, which ``serve --demo`` creates and ``memory://`` need not have."""

TENANT_CACHE_SECONDS = 5.0
"""How long a tenant found to exist is trusted without asking storage again: a tenant
removed from the database is refused by every process within this time."""

TENANT_CACHE_LIMIT = 10_000
"""Tenants remembered at most; past it the cache starts again empty, which only costs lookups."""

REFUSED = "the bearer token was not accepted"
"""The words of every refused token, whichever authenticator refused it and why."""

DEFAULT_FLAGS_PROVIDER = "file"
"""The feature flags provider used unless ``COMMERCE_FLAGS_PROVIDER`` names another."""


class Runtime:
    """What the service runs with. ``close()`` releases the storage if it was opened."""

    def __init__(self, settings: Settings, pm: pluggy.PluginManager | None = None) -> None:
        self.settings = settings
        self.pm = get_plugin_manager() if pm is None else pm
        # A manager handed in may have had plugins registered since it was made.
        check_hooks(self.pm)
        self.registry = Registry(self.pm)
        self._opened = False
        if log.enabled(LogEvent.PLUGIN_LOADED):
            for name, _ in self.pm.list_name_plugin():
                log(LogEvent.PLUGIN_LOADED, "plugin loaded: %s", name, plugin=name)

    @cached_property
    def storage(self) -> Storage:
        """The storage for ``settings.database_url``; ``Misconfigured`` if no plugin takes it."""
        url = self.settings.database_url
        check_not_per_process(url)
        backend = self.registry.backend_for(url)
        storage = backend.open(url, self.settings.plugin_settings())
        self._opened = True
        # Only the scheme: the rest of a database URL may hold a password.
        scheme = scheme_of(url)
        log(LogEvent.STORAGE_OPENED, "storage opened: %s://", scheme, scheme=scheme)
        return storage

    def schema_manager(self) -> SchemaManager | None:
        """The migrations of the configured storage; ``None`` if it keeps no schema."""
        url = self.settings.database_url
        check_not_per_process(url)
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
        catalogue = self.storage.catalogue
        checked = TenantCheck(lambda tenant: usecases.tenant_exists(catalogue, tenant))
        built: list[Authenticator] = []
        for name in self.settings.auth:
            made = self.registry.authenticator(name).make(
                self.settings.plugin_settings(), self.storage
            )
            built.append(made if name in UNCHECKED_AUTHENTICATORS else checked.around(made))
        if "none" in self.settings.auth:
            log(
                LogEvent.AUTH_NONE_IN_USE,
                "authentication 'none' is in use: every request acts as admin of tenant %r",
                self.settings.tenant,
                tenant=self.settings.tenant,
            )
        return built

    @cached_property
    def instrumentations(self) -> Sequence[Instrumentation]:
        """What the plugins observe the service with (tracing, metrics), as configured."""
        answers = self.pm.hook.commerce_instrumentations(settings=self.settings.plugin_settings())
        return [instrumentation for answer in answers for instrumentation in answer]

    @cached_property
    def flags(self) -> Flags:
        """The feature flags, from the provider ``COMMERCE_FLAGS_PROVIDER`` names (``file``:
        the built-in one, which reads ``COMMERCE_FLAGS_FILE``); ``Misconfigured`` if unknown
        or if its configuration is unusable."""
        name = self.settings.extra.get("flags_provider", "").strip() or DEFAULT_FLAGS_PROVIDER
        providers: dict[str, FlagsProvider] = {}
        for answer in self.pm.hook.commerce_flag_providers():
            for provider in answer:
                if provider.name in providers:
                    raise Misconfigured(
                        f"two plugins provide the feature flags provider {provider.name!r}; "
                        "uninstall one of them"
                    )
                providers[provider.name] = provider
        if name not in providers:
            raise Misconfigured(
                f"no plugin provides the feature flags provider {name!r}; "
                f"COMMERCE_FLAGS_PROVIDER may name: {', '.join(sorted(providers)) or 'none'}"
            )
        return providers[name].make(self.settings.plugin_settings())

    @cached_property
    def rate_limiter(self) -> RateLimiter | None:
        """The per-tenant rate limit (``None``: off), its buckets in the store whose scheme
        ``COMMERCE_RATE_LIMIT_STORE`` names; ``Misconfigured`` if no plugin keeps that one."""
        policy = parse_policy(self.settings.rate_limit, self.settings.rate_burst)
        if policy is None:
            return None
        url = self.settings.rate_limit_store
        stores: dict[str, RateLimitStore] = {}
        for answer in self.pm.hook.commerce_rate_limit_stores():
            for store in answer:
                for scheme in store.schemes:
                    if scheme in stores:
                        raise Misconfigured(
                            f"two plugins keep rate limits at {scheme}:// URLs; uninstall one"
                        )
                    stores[scheme] = store
        found = stores.get(scheme_of(url))
        if found is None:
            raise Misconfigured(
                f"COMMERCE_RATE_LIMIT_STORE: no plugin keeps rate limits at {scheme_of(url)}:// "
                f"URLs; use one of: {', '.join(f'{s}://' for s in sorted(stores))}"
            )
        return found.open(url, policy, self.settings.plugin_settings())

    def close(self) -> None:
        # Flush and stop what the instrumentation started (exporters, a metrics server).
        for instrumentation in self.__dict__.pop("instrumentations", ()):
            if instrumentation.close is not None:
                instrumentation.close()
        flags = self.__dict__.pop("flags", None)
        if flags is not None:
            flags.close()
        limiter = self.__dict__.pop("rate_limiter", None)
        if limiter is not None:
            limiter.close()
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


def check_not_per_process(url: str) -> None:
    """``Misconfigured`` for an SQLite database that lives in memory (``sqlite:///:memory:``).

    Such a database is new and empty in every process, so the schema ``commerce db upgrade``
    gives it is gone when that command exits; the message says what to use instead rather
    than to run the upgrade that cannot help.
    """
    scheme, _, rest = url.partition("://")
    if not scheme.lower().startswith("sqlite"):
        return
    path, _, query = rest.partition("?")
    if path in ("", "/:memory:") or path.startswith("/file::memory:") or "mode=memory" in query:
        raise Misconfigured(
            f"{url.split('?')[0]} is an SQLite database in memory, new and empty in every "
            "process, so no `commerce db upgrade` can prepare it; use memory:// for data that "
            "lasts as long as the process, or a file such as sqlite:///commerce.db"
        )


class TenantCheck:
    """Refuses a principal whose tenant is malformed or does not exist, whoever made it.

    An authenticator vouches for a token, not for the tenant the token names: a JWT signed
    by the right key may carry a tenant claim of 100 characters, a NUL, or a tenant that was
    never created or has been removed. Each such principal is refused with the same 401 as
    any other refused token, and never reaches storage with an id it could not hold.
    Tenants found to exist are remembered for ``cache_seconds`` (at most ``TENANT_CACHE_LIMIT``
    of them), so a busy tenant costs one lookup per process per interval.
    """

    def __init__(
        self,
        exists: Callable[[str], bool],
        *,
        cache_seconds: float = TENANT_CACHE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._exists = exists
        self._cache_seconds = cache_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._known: dict[str, float] = {}

    def around(self, inner: Authenticator) -> TenantChecked:
        """``inner``, its principals checked by this (one cache for every authenticator)."""
        return TenantChecked(inner, self)

    def check(self, principal: Principal) -> Principal:
        """``principal``, if its tenant exists; ``Unauthorized`` otherwise."""
        tenant = principal.tenant
        now = self._monotonic()
        with self._lock:
            until = self._known.get(tenant)
        if until is not None and now < until:
            return principal
        if not self._exists(tenant):
            # The tenant is not logged: it may be anything a token's issuer put there.
            log(
                LogEvent.TOKEN_REJECTED,
                "refused a principal of a tenant that does not exist",
                reason="unknown_tenant",
            )
            raise Unauthorized(REFUSED)
        if self._cache_seconds > 0:
            with self._lock:
                if len(self._known) >= TENANT_CACHE_LIMIT:
                    self._known.clear()
                self._known[tenant] = now + self._cache_seconds
        return principal


class TenantChecked:
    """An authenticator whose principals ``TenantCheck`` vets; ``inner`` is the one wrapped."""

    def __init__(self, inner: Authenticator, check: TenantCheck) -> None:
        self.inner = inner
        self._check = check

    def authenticate(self, token: str | None) -> Principal | None:
        principal = self.inner.authenticate(token)
        return None if principal is None else self._check.check(principal)
