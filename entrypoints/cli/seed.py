"""``commerce seed``: the demo data set, or generated chains, stores, items and levels in bulk."""

from __future__ import annotations

import argparse
import time
from typing import Any

from tqdm import tqdm

from commerce.core import seeding, validation
from commerce.core.errors import InvalidInput
from commerce.core.seeding import BATCH, SeedPlan
from commerce.entrypoints.cli.context import CliContext


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "seed",
        help="load the demo data set, or generated data in bulk",
        description=(
            "Either --demo (a small realistic data set for the tenant, once), or generated data: "
            "--chains N chains of --stores-per-chain M stores each, --items K items, and a level "
            "for every item at every store (N*M*K levels), bulk-loaded with a progress bar."
        ),
    )
    parser.add_argument("--demo", action="store_true", help="load the demo data set")
    parser.add_argument("--tenant", help="the tenant to load into, created if missing")
    parser.add_argument("--chains", type=_count, metavar="N")
    parser.add_argument("--stores-per-chain", type=_count, metavar="M")
    parser.add_argument("--items", type=_count, metavar="K")
    parser.add_argument(
        "--seed", type=int, default=1, help="random seed for costs and quantities (%(default)s)"
    )
    parser.add_argument("--batch", type=_count, default=BATCH, help="rows per batch (%(default)s)")
    parser.set_defaults(run=run)


def _count(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a positive integer: {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive integer: {raw!r}")
    return value


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    sizes = (args.chains, args.stores_per_chain, args.items)
    if args.demo == any(s is not None for s in sizes):
        raise InvalidInput(
            "seed", "give either --demo or --tenant with --chains, --stores-per-chain and --items"
        )
    if not args.demo and (args.tenant is None or None in sizes):
        raise InvalidInput("seed", "--tenant, --chains, --stores-per-chain and --items go together")
    # Checked before anything is opened, so a typo costs no connection.
    tenant = validation.tenant_id("tenant", args.tenant or ctx.settings.tenant)
    storage = ctx.ready_storage()
    if args.demo:
        loaded = seeding.ensure_demo(storage.catalogue, storage.inventory, tenant)
        if loaded is None:
            print(f"tenant {tenant} already has data: the demo was not loaded again")
        else:
            print(
                f"loaded the demo into tenant {tenant}: {len(loaded.chain_ids)} chains, "
                f"{len(loaded.store_ids)} stores, {len(loaded.item_ids)} items, "
                f"{loaded.levels} levels"
            )
        return 0

    plan = SeedPlan(args.chains, args.stores_per_chain, args.items, args.seed, args.batch)
    started = time.perf_counter()
    with tqdm(total=plan.levels, unit=" levels", unit_scale=True, desc="seeding") as bar:
        counts = seeding.seed_generated(
            storage.catalogue,
            storage.inventory,
            tenant,
            plan,
            loader=ctx.bulk_loader(),
            progress=bar.update,
        )
    seconds = max(time.perf_counter() - started, 1e-9)
    print(
        f"seeded tenant {tenant}: {counts.chains} chains, {counts.stores} stores, "
        f"{counts.items} items, {counts.levels} levels in {seconds:.1f} s "
        f"({counts.levels / seconds:,.0f} levels/s, {counts.rows / seconds:,.0f} rows/s)"
    )
    return 0
