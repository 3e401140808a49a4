"""The plugin contract: every hook a storage or auth backend, built-in or not, may implement."""

from __future__ import annotations

from collections.abc import Mapping

import pluggy

from commerce.core.ports import Authenticator, BulkLoader, CommerceStore, SchemaManager

PROJECT = "commerce"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec(firstresult=True)
def commerce_open_store(url: str, settings: Mapping[str, str]) -> CommerceStore | None:
    """Open a store for ``url`` if its scheme is this plugin's; return ``None`` otherwise.

    The first non-``None`` answer wins; plugins registered later are asked first, so an
    installed plugin can take over a scheme from a built-in one. ``settings`` holds the
    service's configuration (timeouts, pool sizes) as strings. Raise
    ``commerce.core.errors.StorageUnavailable`` if the URL is this plugin's but cannot be opened.
    """


@hookspec
def commerce_storage_schemes() -> list[str]:
    """The URL schemes this plugin opens (``"memory"``, ``"sqlite"``...).

    All answers are concatenated; they feed ``commerce plugins`` and the error that names the
    schemes a URL could have used.
    """
    return []


@hookspec(firstresult=True)
def commerce_schema_manager(url: str, settings: Mapping[str, str]) -> SchemaManager | None:
    """The schema manager for ``url`` if this plugin's store keeps a schema; else ``None``.

    The first non-``None`` answer wins. Stores without a schema (``memory://``) answer nothing,
    and ``commerce db upgrade`` then says there is nothing to migrate.
    """


@hookspec(firstresult=True)
def commerce_bulk_loader(store: CommerceStore) -> BulkLoader | None:
    """A fast loader into ``store`` if it is this plugin's and has one; else ``None``.

    The first non-``None`` answer wins. ``commerce seed`` falls back to the store's own
    create methods, one row at a time, when no plugin answers.
    """


@hookspec(firstresult=True)
def commerce_make_authenticator(
    name: str, settings: Mapping[str, str], store: CommerceStore
) -> Authenticator | None:
    """Build the authenticator called ``name`` (one entry of ``COMMERCE_AUTH``), or ``None``.

    The first non-``None`` answer wins. ``store`` is the open store, for authenticators that
    keep their credentials there.
    """


@hookspec
def commerce_authenticator_names() -> list[str]:
    """The authenticator names this plugin builds. All answers are concatenated."""
    return []
