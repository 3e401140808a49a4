"""The ``commerce`` command line: global options, then one verb per module of this package."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from importlib import metadata
from types import ModuleType
from typing import NoReturn

from commerce.core.errors import CommerceError
from commerce.entrypoints.cli.context import CliContext
from commerce.entrypoints.config import Settings

EXIT_ERROR = 2


def _command_modules() -> list[ModuleType]:
    """Each module adds its verb with ``register(subparsers)``; the parser calls ``run``."""
    from commerce.entrypoints.cli import db, flags, info, keys, seed, serve, tenants

    return [serve, db, seed, tenants, keys, flags, info]


class _Parser(argparse.ArgumentParser):
    """A parser whose every refusal is one line: what is wrong, and where the help is.

    argparse would print the usage first, several lines for a verb with many options, which
    buries the one line that says what to change.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _version() -> str:
    try:
        return metadata.version("commerce")
    except metadata.PackageNotFoundError:  # pragma: no cover -- run from a bare checkout
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="commerce",
        description="Inventory service for retail store chains.",
    )
    parser.add_argument("--version", action="version", version=f"commerce {_version()}")
    parser.add_argument(
        "--database",
        metavar="URL",
        default=None,
        help="storage URL (default: $COMMERCE_DATABASE_URL, else the embedded default)",
    )
    parser.add_argument(
        "--log-format",
        choices=("json", "console", "auto"),
        default=None,
        help="log lines as JSON or for a person (default: $COMMERCE_LOG_FORMAT, else auto: "
        "console on a terminal, JSON otherwise)",
    )
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for module in _command_modules():
        module.register(subparsers)
    _accept_global_options_after_the_verb(parser)
    return parser


def _accept_global_options_after_the_verb(parser: argparse.ArgumentParser) -> None:
    """``commerce serve --database URL`` means ``commerce --database URL serve``.

    Every verb (and every verb of a verb) takes ``--database`` and ``--log-format`` too; left
    out, it sets nothing, so the one given before the verb, or none, stands.
    """
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.add_argument(
                    "--database",
                    metavar="URL",
                    default=argparse.SUPPRESS,
                    help="storage URL, as `commerce --database URL` gives it",
                )
                sub.add_argument(
                    "--log-format",
                    choices=("json", "console", "auto"),
                    default=argparse.SUPPRESS,
                    help="log lines as JSON or for a person, as `commerce --log-format` gives it",
                )
                _accept_global_options_after_the_verb(sub)


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
    if args.log_format:
        settings = replace(settings, log_format=args.log_format)
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
