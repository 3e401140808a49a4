"""Plugin wiring: the hook markers and the one function that builds a plugin manager."""

from __future__ import annotations

import importlib

import pluggy

from plugins import hookspecs
from plugins.hookspecs import PROJECT, hookimpl, hookspec

__all__ = ["BUILTIN_PLUGINS", "PROJECT", "get_plugin_manager", "hookimpl", "hookspec"]

BUILTIN_PLUGINS: dict[str, str] = {
    "memory": "adapters.storage.memory",
    "sql": "adapters.storage.sql",
    "auth-none": "adapters.auth.none",
    "auth-apikeys": "adapters.auth.apikeys",
    "auth-jwt": "adapters.auth.jwt",
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
