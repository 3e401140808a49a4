"""``commerce db upgrade`` / ``commerce db current``: apply and show the schema's migrations."""

from __future__ import annotations

import argparse
from typing import Any

from commerce.core.ports import SchemaManager
from commerce.entrypoints.cli.context import CliContext


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "db",
        help="apply or show schema migrations",
        description=(
            "Manage the database schema of the configured storage URL. Both verbs are "
            "idempotent; stores that keep no schema (memory://) have nothing to migrate."
        ),
    )
    verbs = parser.add_subparsers(dest="db_verb", metavar="VERB", required=True)
    upgrade = verbs.add_parser(
        "upgrade",
        help="apply every pending migration",
        description="Apply every pending migration, then print the revision now current.",
    )
    upgrade.add_argument(
        "--sql",
        action="store_true",
        help="print the SQL an empty database would get, for this URL's dialect, and apply nothing",
    )
    upgrade.set_defaults(run=run_upgrade)
    current = verbs.add_parser(
        "current",
        help="show the revision the database is at",
        description="Print the database's revision, and whether this version needs a newer one.",
    )
    current.set_defaults(run=run_current)


def _manager(ctx: CliContext) -> SchemaManager | None:
    # Misconfigured if no plugin takes the URL at all; None if its backend keeps no schema.
    manager = ctx.schema_manager()
    if manager is None:
        scheme = ctx.settings.database_url.split(":", 1)[0]
        print(f"{scheme}:// keeps no schema: nothing to migrate")
    return manager


def run_upgrade(args: argparse.Namespace, ctx: CliContext) -> int:
    manager = _manager(ctx)
    if manager is None:
        return 0
    if args.sql:
        print(manager.upgrade_sql(), end="")
        return 0
    before = manager.current()
    after = manager.upgrade()
    if after != manager.head():
        print(
            f"{after}: the database is at a newer revision than this version knows "
            f"({manager.head()}); nothing to do (docs/deploy.md, rolling back)"
        )
    elif before == after:
        print(f"{after} (head): already up to date")
    else:
        print(f"{after} (head): upgraded from {before or 'an empty database'}")
    return 0


def run_current(args: argparse.Namespace, ctx: CliContext) -> int:
    manager = _manager(ctx)
    if manager is None:
        return 0
    current, head = manager.current(), manager.head()
    if current is None:
        print(f"none: the database is empty, this version needs {head}: run `commerce db upgrade`")
    elif current == head:
        print(f"{current} (head)")
    else:
        print(
            f"{current}: this version's head is {head}; `commerce db upgrade` applies what is due"
        )
    return 0
