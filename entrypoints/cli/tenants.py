"""``commerce tenants create NAME`` / ``commerce tenants list``: the units of data isolation."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from commerce.core.errors import InvalidInput
from commerce.core.models import TENANT_ID_PATTERN
from commerce.core.ports import CommerceStore
from commerce.entrypoints.cli.context import CliContext


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "tenants",
        help="create or list tenants",
        description="Tenants are the unit of data isolation: every chain and item has one.",
    )
    verbs = parser.add_subparsers(dest="tenants_verb", metavar="VERB", required=True)
    create = verbs.add_parser(
        "create",
        help="create a tenant",
        description=(
            "Create a tenant whose id is NAME: lower-case letters, digits, - and _, "
            "at most 63 characters, starting with a letter or digit."
        ),
    )
    create.add_argument("name", metavar="NAME")
    create.set_defaults(run=run_create)
    listing = verbs.add_parser("list", help="list every tenant", description="List every tenant.")
    listing.set_defaults(run=run_list)


def current_store(ctx: CliContext) -> CommerceStore:
    """The configured store, refused (one line, exit 2) unless its schema is current."""
    store = ctx.store()
    store.check()
    if ctx.settings.database_url.startswith("memory:"):
        print("note: memory:// keeps nothing once this command exits", file=sys.stderr)
    return store


def valid_tenant(name: str) -> str:
    if not TENANT_ID_PATTERN.match(name):
        raise InvalidInput(
            "tenant",
            f"{name!r} is not a tenant id: lower-case letters, digits, - and _, at most 63",
        )
    return name


def run_create(args: argparse.Namespace, ctx: CliContext) -> int:
    tenant = current_store(ctx).create_tenant(valid_tenant(args.name), args.name)
    print(f"created tenant {tenant.id}")
    return 0


def run_list(args: argparse.Namespace, ctx: CliContext) -> int:
    for tenant in current_store(ctx).list_tenants():
        print(f"{tenant.id}\t{tenant.created_at.isoformat()}")
    return 0
