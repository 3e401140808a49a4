"""``commerce plugins`` and ``commerce openapi``: what this installation is made of and offers."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Any

import pluggy

from commerce.entrypoints.cli.context import CliContext


def register(subparsers: Any) -> None:
    plugins = subparsers.add_parser(
        "plugins",
        help="list the loaded plugins and what each provides",
        description=(
            "List every loaded plugin, built-in or installed: its name, its module, the "
            "commerce_* hooks it implements, and the storage schemes and authenticators it "
            "provides."
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
    authenticators: list[str]


def describe_plugins(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """Every registered plugin, in registration order, with what its own hooks answer."""
    dists = {
        id(plugin): f"{dist.project_name} {dist.version}"
        for plugin, dist in pm.list_plugin_distinfo()
    }
    registered = [(name, plugin) for name, plugin in pm.list_name_plugin() if plugin is not None]
    described = []
    for name, plugin in registered:
        others = [p for _, p in registered if p is not plugin]
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        described.append(
            PluginInfo(
                name=name,
                module=_module_name(plugin),
                distribution=dists.get(id(plugin)),
                hooks=hooks,
                storage_schemes=_answers(pm, "commerce_storage_schemes", others, hooks),
                authenticators=_answers(pm, "commerce_authenticator_names", others, hooks),
            )
        )
    return described


def _answers(
    pm: pluggy.PluginManager, hook: str, others: list[object], implemented: list[str]
) -> list[str]:
    """What this one plugin answers to a list-valued hook (the others are left out)."""
    if hook not in implemented:
        return []
    # A subset caller runs the hook through pluggy as usual (wrappers included), asking only
    # the one plugin; calling its function directly would bypass that.
    results: list[list[str]] = pm.subset_hook_caller(hook, remove_plugins=others)()
    return sorted({value for answer in results for value in answer})


def _module_name(plugin: object) -> str:
    if isinstance(plugin, ModuleType):
        return plugin.__name__
    return f"{type(plugin).__module__}.{type(plugin).__qualname__}"


def run_plugins(args: argparse.Namespace, ctx: CliContext) -> int:
    described = describe_plugins(ctx.pm)
    if args.json:
        print(json.dumps([asdict(p) for p in described], indent=2))
        return 0
    for info in described:
        origin = info.distribution or "built-in"
        print(f"{info.name}  ({info.module}, {origin})")
        print(f"  hooks:          {', '.join(info.hooks) or '-'}")
        if info.storage_schemes:
            print(f"  storage:        {', '.join(s + '://' for s in info.storage_schemes)}")
        if info.authenticators:
            print(f"  authenticators: {', '.join(info.authenticators)}")
    return 0


def run_openapi(args: argparse.Namespace, ctx: CliContext) -> int:
    # Imported here so that the other verbs never pay for the HTTP layer.
    from commerce.entrypoints.http.openapi import openapi_document

    print(json.dumps(openapi_document(), indent=2, ensure_ascii=False))
    return 0
