"""Wiring ports to adapters through the plugin manager."""

from __future__ import annotations

from collections.abc import Sequence

import pluggy

from commerce.core.errors import Misconfigured
from commerce.core.ports import Authenticator, CommerceStore
from commerce.entrypoints.config import Settings


def storage_schemes(pm: pluggy.PluginManager) -> list[str]:
    return sorted({s for schemes in pm.hook.commerce_storage_schemes() for s in schemes})


def open_store(pm: pluggy.PluginManager, settings: Settings) -> CommerceStore:
    """The store for ``settings.database_url``; ``Misconfigured`` if no plugin takes it."""
    url = settings.database_url
    store: CommerceStore | None = pm.hook.commerce_open_store(
        url=url, settings=settings.plugin_settings()
    )
    if store is None:
        scheme = url.split(":", 1)[0] if ":" in url else url
        known = ", ".join(f"{s}://" for s in storage_schemes(pm))
        raise Misconfigured(
            f"no storage plugin handles {scheme!r} URLs; use one of: {known} "
            "(or install a plugin for it, see docs/plugins.md)"
        )
    return store


def make_authenticators(
    pm: pluggy.PluginManager, settings: Settings, store: CommerceStore
) -> Sequence[Authenticator]:
    """One authenticator per name in ``settings.auth``, in order; ``Misconfigured`` if unknown."""
    check_no_auth_allowed(settings)
    built: list[Authenticator] = []
    for name in settings.auth:
        auth: Authenticator | None = pm.hook.commerce_make_authenticator(
            name=name, settings=settings.plugin_settings(), store=store
        )
        if auth is None:
            known = sorted({n for names in pm.hook.commerce_authenticator_names() for n in names})
            raise Misconfigured(
                f"no auth plugin provides {name!r}; COMMERCE_AUTH may name: {', '.join(known)}"
            )
        built.append(auth)
    return built


def check_no_auth_allowed(settings: Settings) -> None:
    """``Misconfigured`` if ``none`` is named outside ``memory://`` and ``serve --demo``.

    ``none`` makes every caller an admin; with data that outlives the process that would be
    an open door, so it is refused at start rather than merely warned about.
    """
    if "none" not in settings.auth or settings.demo:
        return
    if settings.database_url.split(":", 1)[0] == "memory":
        return
    raise Misconfigured(
        "COMMERCE_AUTH=none lets every request act as admin, so it is allowed only "
        "with COMMERCE_DATABASE_URL=memory:// or `commerce serve --demo`; set COMMERCE_AUTH to "
        "apikeys or jwt (see docs/security.md)"
    )
