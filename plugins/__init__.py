"""Plugin wiring: the hook markers and the one function that builds a plugin manager."""

from __future__ import annotations

import importlib

import pluggy

from commerce.plugins import hookspecs
from commerce.plugins.hookspecs import PROJECT, hookimpl, hookspec

__all__ = ["BUILTIN_PLUGINS", "PROJECT", "get_plugin_manager", "hookimpl", "hookspec"]

BUILTIN_PLUGINS: dict[str, str] = {
    "memory": "commerce.adapters.storage.memory",
    "sql": "commerce.adapters.storage.sql",
    "auth-none": "commerce.adapters.auth.none",
    "auth-apikeys": "commerce.adapters.auth.apikeys",
    "auth-jwt": "commerce.adapters.auth.jwt",
}
"""Entry-point name -> module of every built-in plugin, as ``pyproject.toml`` lists them.

They are registered by module name so that this package never imports an outer ring, and
under their entry-point names so that an installed copy is not registered twice.
"""


def get_plugin_manager(*, entry_points: bool = True) -> pluggy.PluginManager:
    """A fresh manager: the hookspecs, the built-in plugins, then the ``commerce`` entry points."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    for name, module in BUILTIN_PLUGINS.items():
        pm.register(importlib.import_module(module), name=name)
    if entry_points:
        pm.load_setuptools_entrypoints(PROJECT)
    return pm
