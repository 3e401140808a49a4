"""The plugin contract: the hooks, and what a storage or auth backend describes itself with.

A plugin provides backends by answering ``commerce_storage_backends`` or
``commerce_authenticators`` with descriptions. The plugin manager's caller
(``commerce.plugins.registry``) collects every answer once, builds the scheme and name maps,
and refuses two plugins that claim the same scheme or name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pluggy

from commerce.core.flags import Flags
from commerce.core.ports import Authenticator, BulkLoader, SchemaManager, Storage
from commerce.core.ratelimit import RateLimiter, RatePolicy

PROJECT = "commerce"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Settings = Mapping[str, str]
"""The service's configuration as plugins see it: every ``COMMERCE_*`` variable, lower-cased
and without the prefix (``db_pool_size``), plus ``database_url`` and ``tenant``."""


@dataclass(frozen=True)
class StorageBackend:
    """A storage backend: the URL schemes it opens and how.

    ``open(url, settings)`` returns the ``Storage`` bundle without connecting (a database
    that is down at start becomes usable later; ``Storage.check`` says why not meanwhile).
    ``schema_manager(url, settings)``, if the backend keeps a schema, migrates it.
    ``bulk_loader(storage)``, if the backend has one, loads many rows per statement for
    ``commerce seed``; it returns ``None`` for a ``Storage`` that is not its own.
    """

    name: str
    schemes: tuple[str, ...]
    open: Callable[[str, Settings], Storage]
    schema_manager: Callable[[str, Settings], SchemaManager] | None = None
    bulk_loader: Callable[[Storage], BulkLoader | None] | None = None
    description: str = ""


@dataclass(frozen=True)
class AuthenticatorProvider:
    """An authenticator that ``COMMERCE_AUTH`` may name.

    ``make(settings, storage)`` builds it; an authenticator that keeps its credentials in
    storage takes only the port it needs (``storage.api_keys``). Raise
    ``core.errors.Misconfigured`` when the settings it needs are missing or unsafe.
    """

    name: str
    make: Callable[[Settings, Storage], Authenticator]
    description: str = ""


@dataclass(frozen=True)
class Instrumentation:
    """Something that observes the service (tracing, metrics), switched on by its settings.

    ``middleware``: Falcon middleware objects, run outside the service's own (they see a
    request first and its response last). ``routes``: extra ``(uri_template, resource)``
    pairs, such as ``/metrics``; they are public unless the resource checks credentials
    itself. ``wrap_storage(storage)`` returns the bundle with its ports wrapped (spans or
    timings around each call); it must hand back a ``Storage`` that behaves the same.
    ``close()`` flushes and stops whatever it started (exporters, servers).
    """

    name: str
    middleware: tuple[object, ...] = ()
    routes: tuple[tuple[str, object], ...] = ()
    wrap_storage: Callable[[Storage], Storage] | None = None
    close: Callable[[], None] | None = None


@dataclass(frozen=True)
class FlagsProvider:
    """Feature flags that ``COMMERCE_FLAGS_PROVIDER`` may name (``file`` by default).

    ``make(settings)`` builds the ``core.flags.Flags`` port; it reads its configuration now
    and raises ``core.errors.Misconfigured`` (one line, exit 2) when that is unusable.
    """

    name: str
    make: Callable[[Settings], Flags]
    description: str = ""


@dataclass(frozen=True)
class RateLimitStore:
    """Where the per-tenant rate limit keeps its buckets, for ``COMMERCE_RATE_LIMIT_STORE``.

    ``open(url, policy, settings)`` returns the ``core.ratelimit.RateLimiter`` for a URL of
    one of ``schemes``; it connects lazily, so a store that is down at start does not stop
    the service (the limiter decides what to do meanwhile). ``shared``: whether processes
    and hosts that use the same URL count into the same buckets.
    """

    name: str
    schemes: tuple[str, ...]
    open: Callable[[str, RatePolicy, Settings], RateLimiter]
    shared: bool = False
    description: str = ""


PROBE_PATHS: frozenset[str] = frozenset({"/healthz", "/readyz"})
"""The health probes, polled every few seconds by supervisors and load balancers. They stay
out of the access log, metrics and traces by default: an instrumentation skips a request
whose path is one of these unless its settings ask otherwise."""


@hookspec
def commerce_instrumentations(settings: Settings) -> list[Instrumentation]:
    """The instrumentation this plugin provides, given the service's settings. All answers
    are concatenated, in plugin registration order; answer ``[]`` when switched off."""
    return []


@hookspec
def commerce_storage_backends() -> list[StorageBackend]:
    """The storage backends this plugin provides. All answers are concatenated.

    A URL scheme claimed by two backends stops the service at start with an error that
    names both plugins.
    """
    return []


@hookspec
def commerce_flag_providers() -> list[FlagsProvider]:
    """The feature flag providers this plugin provides. All answers are concatenated; the
    service uses the one ``COMMERCE_FLAGS_PROVIDER`` names (default ``file``)."""
    return []


@hookspec
def commerce_rate_limit_stores() -> list[RateLimitStore]:
    """The rate limit stores this plugin provides. All answers are concatenated; the service
    uses the one whose scheme ``COMMERCE_RATE_LIMIT_STORE`` names (default ``memory://``)."""
    return []


@hookspec
def commerce_worker_exited(pid: int) -> None:
    """``commerce serve --workers N``: the worker process ``pid`` has exited (called in the
    supervising process). A plugin that keeps a process's share outside the process (the
    metrics' files) lets go of it here."""


@hookspec
def commerce_authenticators() -> list[AuthenticatorProvider]:
    """The authenticators this plugin provides. All answers are concatenated.

    A name provided by two plugins stops the service at start with an error naming both.
    """
    return []
