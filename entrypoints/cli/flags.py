"""``commerce flags list`` and ``commerce flags eval``: the feature flags, their rules, an answer.

Both read the flags as the server would (``COMMERCE_FLAGS_FILE``, ``COMMERCE_FLAG_*``), so a
file that cannot be used is the same one-line error here as at the server's start. Neither
opens storage.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from typing import Any

from commerce.core import validation
from commerce.core.auth import Role
from commerce.core.flags import KNOWN, FlagsReport, explain
from commerce.entrypoints.cli.context import CliContext


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "flags",
        help="list the feature flags, or explain one's value for a tenant",
        description="The feature flags this version knows, their defaults and rules "
        "(COMMERCE_FLAGS_FILE, COMMERCE_FLAG_<NAME>); see docs/flags.md.",
    )
    verbs = parser.add_subparsers(dest="flags_verb", metavar="VERB", required=True)

    listing = verbs.add_parser(
        "list",
        help="each flag with its default and its rules",
        description="Each flag this version knows: what it guards, its default, and its rules "
        "in the order they are tried; then the flags the configuration names that this "
        "version does not know (ignored).",
    )
    listing.add_argument("--json", action="store_true", help="print JSON instead of text")
    listing.set_defaults(run=run_list)

    evaluate = verbs.add_parser(
        "eval",
        help="a flag's value for a tenant (and role), and why",
        description="Evaluate FLAG as a request of TENANT would, and say which rule decided.",
    )
    evaluate.add_argument("flag", metavar="FLAG", help=f"one of: {', '.join(KNOWN)}")
    evaluate.add_argument("--tenant", required=True, help="the tenant id to evaluate for")
    evaluate.add_argument(
        "--role",
        choices=[role.name for role in Role],
        default=None,
        help="the caller's role (default: none, so role rules do not apply)",
    )
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of text")
    evaluate.set_defaults(run=run_eval)


def _word(value: bool) -> str:
    return "on" if value else "off"


@dataclass(frozen=True, slots=True)
class FlagListing:
    """One line of ``commerce flags list``: a flag, what it guards, its default, its rules."""

    flag: str
    description: str
    builtin_default: bool
    default: bool
    default_from: str
    """``built-in``, or ``file`` when the flags file sets the default."""
    rules: list[str]


def listing(report: FlagsReport) -> list[FlagListing]:
    found = []
    for key, flag in KNOWN.items():
        configured = report.defaults.get(key)
        found.append(
            FlagListing(
                flag=key,
                description=flag.description,
                builtin_default=flag.default,
                default=flag.default if configured is None else configured,
                default_from="built-in" if configured is None else "file",
                rules=list(report.rules.get(key, ())),
            )
        )
    return found


def run_list(args: argparse.Namespace, ctx: CliContext) -> int:
    report = ctx.runtime.flags.report()
    flags = listing(report)
    if args.json:
        document = {
            "source": report.source,
            "flags": [asdict(entry) for entry in flags],
            "unknown": list(report.unknown),
        }
        print(json.dumps(document, indent=2))
        return 0
    print(f"rules from: {report.source}")
    for entry in flags:
        print()
        print(f"{entry.flag}  default {_word(entry.default)} ({entry.default_from})")
        print(f"  {entry.description}")
        if entry.rules:
            print("  rules, the first that matches decides:")
            for line in entry.rules:
                print(f"    {line}")
        else:
            print("  rules: none, the default decides")
    if report.unknown:
        print()
        print(f"unknown to this version, ignored: {', '.join(report.unknown)}")
    return 0


def run_eval(args: argparse.Namespace, ctx: CliContext) -> int:
    tenant = validation.tenant_id("tenant", args.tenant)
    role = None if args.role is None else Role[args.role]
    result = explain(ctx.runtime.flags, args.flag, tenant, role)
    if args.json:
        print(json.dumps({**asdict(result), "tenant": tenant, "role": args.role}, indent=2))
        return 0
    who = f"tenant {tenant}" + (f", role {args.role}" if args.role else "")
    print(f"{result.flag}: {_word(result.value)} for {who}")
    print(f"  reason: {result.reason}")
    print(f"  rule:   {result.rule}")
    print(f"  why:    {result.detail}")
    return 0
