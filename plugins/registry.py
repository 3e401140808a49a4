"""The registry: every plugin's backends collected once, by URL scheme and by name.

This is the one place a URL's scheme is looked up. Two plugins that claim the same scheme,
or the same authenticator name, are refused here with an error that names both.
"""

from __future__ import annotations

from typing import Any

import pluggy

from commerce.core.errors import Misconfigured
from commerce.plugins.hookspecs import AuthenticatorProvider, StorageBackend

SCHEME_ALIASES = {"postgres": "postgresql"}
"""Spellings that mean another scheme (``postgres://`` is what many providers hand out)."""


def scheme_of(url: str) -> str:
    """The lower-cased scheme of a storage URL (``sqlite`` of ``sqlite:///x.db``)."""
    scheme = url.split(":", 1)[0].strip().lower() if ":" in url else url.strip().lower()
    return SCHEME_ALIASES.get(scheme, scheme)


class Registry:
    """Storage backends by scheme and authenticators by name, from one plugin manager."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.backends: dict[str, tuple[str, StorageBackend]] = {}
        """scheme -> (plugin name, backend)"""
        self.authenticators: dict[str, tuple[str, AuthenticatorProvider]] = {}
        """name -> (plugin name, provider)"""
        for plugin, backend in _answers(pm, "commerce_storage_backends"):
            for scheme in backend.schemes:
                taken = self.backends.get(scheme)
                if taken is not None:
                    raise Misconfigured(
                        f"plugins {taken[0]!r} and {plugin!r} both open {scheme}:// URLs; "
                        "uninstall one of them"
                    )
                self.backends[scheme] = (plugin, backend)
        for plugin, provider in _answers(pm, "commerce_authenticators"):
            taken_auth = self.authenticators.get(provider.name)
            if taken_auth is not None:
                raise Misconfigured(
                    f"plugins {taken_auth[0]!r} and {plugin!r} both provide the authenticator "
                    f"{provider.name!r}; uninstall one of them"
                )
            self.authenticators[provider.name] = (plugin, provider)

    def schemes(self) -> list[str]:
        return sorted(self.backends)

    def backend_for(self, url: str) -> StorageBackend:
        """The backend that opens ``url``; ``Misconfigured`` naming the schemes there are."""
        found = self.backends.get(scheme_of(url))
        if found is None:
            known = ", ".join(f"{s}://" for s in self.schemes())
            raise Misconfigured(
                f"no storage plugin handles {scheme_of(url)!r} URLs; use one of: {known} "
                "(or install a plugin for it, see docs/plugins.md)"
            )
        return found[1]

    def authenticator(self, name: str) -> AuthenticatorProvider:
        found = self.authenticators.get(name)
        if found is None:
            known = ", ".join(sorted(self.authenticators))
            raise Misconfigured(
                f"no auth plugin provides {name!r}; COMMERCE_AUTH may name: {known}"
            )
        return found[1]


def _answers(pm: pluggy.PluginManager, hook: str) -> list[tuple[str, Any]]:
    """Each implementation's answer with its plugin's name, in registration order."""
    caller = getattr(pm.hook, hook)
    found: list[tuple[str, Any]] = []
    for impl in caller.get_hookimpls():
        for answer in impl.function() or []:
            found.append((impl.plugin_name, answer))
    return found
