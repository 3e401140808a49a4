"""``commerce plugins`` and ``commerce openapi``: what this installation is made of and offers."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Any

import pluggy

from commerce.entrypoints.cli.context import CliContext
from commerce.plugins.registry import Registry


def register(subparsers: Any) -> None:
    plugins = subparsers.add_parser(
        "plugins",
        help="list the loaded plugins and what each provides",
        description=(
            "List every loaded plugin, built-in or installed: its name, its module, the "
            "commerce_* hooks it implements, its storage backends with the URL schemes each "
            "opens, and the authenticators it provides."
        ),
    )
    plugins.add_argument("--json", action="store_true", help="print JSON instead of text")
    plugins.set_defaults(run=run_plugins)

    openapi = subparsers.add_parser(
        "openapi",
        help="print the OpenAPI document",
        description="Print the OpenAPI 3.1 document of the HTTP API, as served at /openapi.json.",
    )
    openapi.set_defaults(run=run_openapi)


@dataclass(frozen=True, slots=True)
class PluginInfo:
    name: str
    module: str
    distribution: str | None
    """``name version`` of the installed package that brought it, ``None`` for built-ins."""
    hooks: list[str]
    storage_schemes: list[str]
    """Every URL scheme its storage backends open."""
    storage_backends: dict[str, list[str]]
    """Its storage backends by name, each with the schemes it opens."""
    authenticators: list[str]


def describe_plugins(pm: pluggy.PluginManager, registry: Registry) -> list[PluginInfo]:
    """Every registered plugin, in registration order, with what the registry took from it."""
    dists = {
        id(plugin): f"{dist.project_name} {dist.version}"
        for plugin, dist in pm.list_plugin_distinfo()
    }
    described = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue  # blocked
        backends: dict[str, list[str]] = {}
        for scheme, (owner, backend) in registry.backends.items():
            if owner == name:
                backends.setdefault(backend.name, []).append(scheme)
        described.append(
            PluginInfo(
                name=name,
                module=_module_name(plugin),
                distribution=dists.get(id(plugin)),
                hooks=sorted(caller.name for caller in pm.get_hookcallers(plugin) or []),
                storage_schemes=sorted(s for schemes in backends.values() for s in schemes),
                storage_backends={b: sorted(schemes) for b, schemes in sorted(backends.items())},
                authenticators=sorted(
                    auth for auth, (owner, _) in registry.authenticators.items() if owner == name
                ),
            )
        )
    return described


def _module_name(plugin: object) -> str:
    if isinstance(plugin, ModuleType):
        return plugin.__name__
    return f"{type(plugin).__module__}.{type(plugin).__qualname__}"


def run_plugins(args: argparse.Namespace, ctx: CliContext) -> int:
    described = describe_plugins(ctx.runtime.pm, ctx.runtime.registry)
    if args.json:
        print(json.dumps([asdict(p) for p in described], indent=2))
        return 0
    for info in described:
        origin = info.distribution or "built-in"
        print(f"{info.name}  ({info.module}, {origin})")
        print(f"  hooks:          {', '.join(info.hooks) or '-'}")
        label = "  storage:        "
        for backend, schemes in info.storage_backends.items():
            print(f"{label}{', '.join(s + '://' for s in schemes)} (backend {backend!r})")
            label = " " * len(label)
        if info.authenticators:
            print(f"  authenticators: {', '.join(info.authenticators)}")
    return 0


def run_openapi(args: argparse.Namespace, ctx: CliContext) -> int:
    # Imported here so that the other verbs never pay for the HTTP layer.
    from commerce.entrypoints.http.openapi import openapi_document

    print(json.dumps(openapi_document(), indent=2, ensure_ascii=False))
    return 0
