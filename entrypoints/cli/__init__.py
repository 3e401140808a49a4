"""The ``commerce`` command line: global options, then one verb per module of this package."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from types import ModuleType

from commerce.core.errors import CommerceError
from commerce.entrypoints.cli.context import CliContext
from commerce.entrypoints.config import Settings

EXIT_ERROR = 2


def _command_modules() -> list[ModuleType]:
    """Each module adds its verb with ``register(subparsers)``; the parser calls ``run``."""
    from commerce.entrypoints.cli import db, info, keys, seed, serve, tenants

    return [serve, db, seed, tenants, keys, info]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="commerce",
        description="Inventory service for retail store chains.",
    )
    parser.add_argument(
        "--database",
        metavar="URL",
        default=None,
        help="storage URL (default: $COMMERCE_DATABASE_URL, else the embedded default)",
    )
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for module in _command_modules():
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one verb; any ``CommerceError`` becomes one line on stderr and exit status 2."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except CommerceError as exc:
        print(f"commerce: error: {exc.detail}", file=sys.stderr)
        return EXIT_ERROR
    if args.database:
        settings = replace(settings, database_url=args.database)
    ctx = CliContext(settings=settings)
    try:
        status: int = args.run(args, ctx)
    except CommerceError as exc:
        print(f"commerce: error: {exc.detail}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    finally:
        ctx.close()
    return status
