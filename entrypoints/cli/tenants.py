"""``commerce tenants create NAME`` / ``commerce tenants list``: the units of data isolation."""

from __future__ import annotations

import argparse
from typing import Any

from commerce.core import usecases
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


def run_create(args: argparse.Namespace, ctx: CliContext) -> int:
    tenant = usecases.create_tenant(ctx.ready_storage().catalogue, args.name)
    print(f"created tenant {tenant.id}")
    return 0


def run_list(args: argparse.Namespace, ctx: CliContext) -> int:
    for tenant in usecases.list_tenants(ctx.ready_storage().catalogue):
        print(f"{tenant.id}\t{tenant.created_at.isoformat()}")
    return 0
