"""``commerce keys create|list|revoke``: a tenant's API keys, shown once, stored hashed."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

from commerce.core.apikeys import ApiKey, new_api_key, redacted
from commerce.core.auth import Role
from commerce.core.errors import Conflict, NotFound
from commerce.entrypoints.cli.context import CliContext
from commerce.entrypoints.cli.tenants import current_store, valid_tenant

DEFAULT_ROLE = Role.reader
"""Least privilege: a key that should write or administer says so when it is made."""

PREFIX_ATTEMPTS = 3
"""New prefixes to try when one is already taken (about one chance in 10^12 each)."""


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
    tenant = valid_tenant(args.tenant)
    store = current_store(ctx)
    role = Role[args.role]
    for _ in range(PREFIX_ATTEMPTS):
        made = new_api_key()
        try:
            key = store.create_api_key(tenant, role, made.prefix, made.secret_hash)
        except Conflict:
            continue
        break
    else:
        raise Conflict("no free key prefix was found; try again")
    print(made.token, flush=True)
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
    tenant = valid_tenant(args.tenant)
    store = current_store(ctx)
    if store.get_tenant(tenant) is None:
        raise NotFound("tenant", tenant)
    rows: list[tuple[str, ...]] = [("ID", "PREFIX", "ROLE", "CREATED", "LAST USED", "REVOKED")]
    rows += [_row(key) for key in store.list_api_keys(tenant)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


def run_revoke(args: argparse.Namespace, ctx: CliContext) -> int:
    key = current_store(ctx).revoke_api_key(args.key_id)
    print(f"revoked API key {key.id} ({redacted(key.prefix)}) of tenant {key.tenant}")
    return 0
