"""``commerce keys create|list|revoke``: a tenant's API keys, shown once, stored hashed."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

from commerce.core import usecases
from commerce.core.apikeys import ApiKey, redacted
from commerce.core.auth import Role
from commerce.entrypoints.cli.context import CliContext

DEFAULT_ROLE = Role.reader
"""Least privilege: a key that should write or administer says so when it is made."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "keys",
        help="create, list or revoke a tenant's API keys",
        description=(
            "API keys authenticate requests as one tenant with one role "
            "(Authorization: Bearer <key>, with COMMERCE_AUTH including apikeys)."
        ),
    )
    verbs = parser.add_subparsers(dest="keys_verb", metavar="VERB", required=True)
    create = verbs.add_parser(
        "create",
        help="create a key and print it",
        description=(
            "Create a key and print it alone on stdout. It is shown this once: only a digest "
            "of its secret is stored, so it cannot be shown again."
        ),
    )
    create.add_argument("--tenant", required=True, metavar="NAME")
    create.add_argument(
        "--role",
        choices=[role.name for role in Role],
        default=DEFAULT_ROLE.name,
        help="what the key may do (%(default)s)",
    )
    create.set_defaults(run=run_create)
    listing = verbs.add_parser(
        "list",
        help="list a tenant's keys",
        description="List a tenant's keys, revoked ones too; never their secrets.",
    )
    listing.add_argument("--tenant", required=True, metavar="NAME")
    listing.set_defaults(run=run_list)
    revoke = verbs.add_parser(
        "revoke",
        help="revoke a key for good",
        description=(
            "Revoke a key. Servers refuse it within their key cache's lifetime "
            "(COMMERCE_APIKEY_CACHE_SECONDS, 5 by default)."
        ),
    )
    revoke.add_argument("key_id", metavar="KEY_ID", type=_key_id)
    revoke.set_defaults(run=run_revoke)


def _key_id(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a key id: {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a key id: {raw!r}")
    return value


def run_create(args: argparse.Namespace, ctx: CliContext) -> int:
    storage = ctx.ready_storage()
    # The catalogue only says whether the tenant exists; the key goes to the API-key port.
    tenant = usecases.get_tenant(storage.catalogue, args.tenant).id
    token, key = usecases.create_api_key(storage.api_keys, tenant, Role[args.role])
    print(token, flush=True)
    print(
        f"created API key {key.id} ({redacted(key.prefix)}, {key.role.name}) for tenant "
        f"{tenant}; it is shown only this once, so keep it now",
        file=sys.stderr,
    )
    return 0


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.isoformat(timespec="seconds")


def _row(key: ApiKey) -> tuple[str, ...]:
    return (
        str(key.id),
        key.prefix,
        key.role.name,
        _when(key.created_at),
        _when(key.last_used_at),
        _when(key.revoked_at),
    )


def run_list(args: argparse.Namespace, ctx: CliContext) -> int:
    storage = ctx.ready_storage()
    keys = usecases.list_api_keys(storage.catalogue, storage.api_keys, args.tenant)
    rows: list[tuple[str, ...]] = [("ID", "PREFIX", "ROLE", "CREATED", "LAST USED", "REVOKED")]
    rows += [_row(key) for key in keys]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


def run_revoke(args: argparse.Namespace, ctx: CliContext) -> int:
    key = usecases.revoke_api_key(ctx.ready_storage().api_keys, args.key_id)
    print(f"revoked API key {key.id} ({redacted(key.prefix)}) of tenant {key.tenant}")
    return 0
