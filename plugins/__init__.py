"""Plugin wiring: the hook markers, the one function that builds a plugin manager, the registry.

The built-in plugins are the ``commerce`` entry points of this distribution, listed once in
``pyproject.toml``; a third party's are the same group's entry points of other packages.
"""

from __future__ import annotations

import importlib
from importlib import metadata

import pluggy

from commerce.core.errors import Misconfigured
from commerce.plugins import hookspecs
from commerce.plugins.hookspecs import (
    PROBE_PATHS,
    PROJECT,
    AuthenticatorProvider,
    Instrumentation,
    StorageBackend,
    hookimpl,
    hookspec,
)

__all__ = [
    "PROBE_PATHS",
    "PROJECT",
    "AuthenticatorProvider",
    "Instrumentation",
    "StorageBackend",
    "builtin_plugins",
    "check_hooks",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
]

DISTRIBUTION = "commerce"


def builtin_plugins() -> dict[str, str]:
    """Entry-point name -> module of every built-in plugin, read from this distribution."""
    try:
        found = metadata.distribution(DISTRIBUTION).entry_points.select(group=PROJECT)
    except metadata.PackageNotFoundError:
        raise Misconfigured(
            "the commerce package is not installed; run `pip install -e .` in its checkout"
        ) from None
    return {ep.name: ep.value for ep in found}


def get_plugin_manager(*, entry_points: bool = True) -> pluggy.PluginManager:
    """A fresh manager: the hookspecs, the built-in plugins, then (unless told not to) every
    other package's ``commerce`` entry points; then ``check_hooks``, so a misspelled hook
    stops the start instead of being silently ignored."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    for name, module in builtin_plugins().items():
        # By module name, so that this ring never imports an outer one; under the
        # entry-point name, so that loading the entry points does not register it twice.
        pm.register(importlib.import_module(module), name=name)
    if entry_points:
        pm.load_setuptools_entrypoints(PROJECT)
    check_hooks(pm)
    return pm


def check_hooks(pm: pluggy.PluginManager) -> None:
    """``Misconfigured`` naming the hook and its plugin if any plugin implements a hook that
    no spec declares (a misspelling such as ``commerce_storage_backend``)."""
    known = sorted(name for name in dir(hookspecs) if name.startswith(f"{PROJECT}_"))
    for name in sorted(pm.hook.__dict__):
        caller = getattr(pm.hook, name)
        if not isinstance(caller, pluggy.HookCaller) or caller.spec is not None:
            continue
        for impl in caller.get_hookimpls():
            if impl.optionalhook:
                continue
            raise Misconfigured(
                f"plugin {impl.plugin_name!r} implements {name!r}, which is not a commerce hook "
                f"(misspelled?); the hooks are: {', '.join(known)}"
            )
