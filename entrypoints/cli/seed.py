"""``commerce seed``: the demo data set, or generated chains, stores, items and levels in bulk."""

from __future__ import annotations

import argparse
import contextlib
import random
import secrets
import time
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any, TypeVar

from tqdm import tqdm

from commerce.core.errors import Conflict, InvalidInput
from commerce.core.models import TENANT_ID_PATTERN, NewChain, NewItem, NewStore
from commerce.core.ports import BulkLoader, CommerceStore
from commerce.entrypoints.cli.context import CliContext
from commerce.entrypoints.demo import ensure_demo

T = TypeVar("T")

BATCH = 10_000
"""Rows per statement batch: large enough to amortise round trips, small enough to show progress."""

CITIES = (
    ("Lyon", "69002", "FR"),
    ("Porto", "4000-447", "PT"),
    ("Seattle", "98101", "US"),
    ("Osaka", "530-0001", "JP"),
    ("Leipzig", "04109", "DE"),
    ("Valparaíso", "2340000", "CL"),
)


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
    tenant = args.tenant or ctx.settings.tenant
    if not TENANT_ID_PATTERN.match(tenant):
        raise InvalidInput("tenant", "lower-case letters, digits, - and _, at most 63")
    store = ctx.store()
    store.check()
    if ctx.settings.database_url.startswith("memory:"):
        print("note: memory:// keeps nothing once this command exits")
    if args.demo:
        loaded = ensure_demo(store, tenant)
        if loaded is None:
            print(f"tenant {tenant} already has data: the demo was not loaded again")
        else:
            print(
                f"loaded the demo into tenant {tenant}: {len(loaded.chain_ids)} chains, "
                f"{len(loaded.store_ids)} stores, {len(loaded.item_ids)} items, "
                f"{loaded.levels} levels"
            )
        return 0

    with contextlib.suppress(Conflict):
        store.create_tenant(tenant, tenant)
    loader: BulkLoader | None = ctx.pm.hook.commerce_bulk_loader(store=store)
    generator = Generator(random.Random(args.seed), args.batch)
    started = time.perf_counter()
    counts = generator.load(
        loader or OneByOne(store), tenant, args.chains, args.stores_per_chain, args.items
    )
    seconds = max(time.perf_counter() - started, 1e-9)
    levels = counts["levels"]
    rows = sum(counts.values())
    print(
        f"seeded tenant {tenant}: {counts['chains']} chains, {counts['stores']} stores, "
        f"{counts['items']} items, {levels} levels in {seconds:.1f} s "
        f"({levels / seconds:,.0f} levels/s, {rows / seconds:,.0f} rows/s)"
    )
    return 0


def _batches(rows: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


class Generator:
    """Generated data with a fixed seed: the same arguments give the same costs and quantities.

    SKUs carry a random run tag, so that seeding a tenant twice adds a second catalogue
    instead of failing on the first duplicate.
    """

    def __init__(self, rng: random.Random, batch: int) -> None:
        self.rng = rng
        self.batch = batch
        self.run_tag = secrets.token_hex(3).upper()

    def load(
        self, loader: BulkLoader, tenant: str, chains: int, per_chain: int, item_count: int
    ) -> dict[str, int]:
        total = chains * per_chain * item_count
        with tqdm(total=total, unit=" levels", unit_scale=True, desc="seeding") as bar:
            chain_ids = self._add(
                loader.add_chains,
                tenant,
                [
                    NewChain(name=f"Chain {n:04d}", phone=f"+1 555-01{n % 100:02d}")
                    for n in range(chains)
                ],
            )
            new_stores = [
                self._store(chain_id, c, s)
                for c, chain_id in enumerate(chain_ids)
                for s in range(per_chain)
            ]
            store_ids = self._add(loader.add_stores, tenant, new_stores)
            new_items = [
                NewItem(
                    sku=f"GEN-{self.run_tag}-{k:07d}",
                    name=f"Generated item {k}",
                    cost=Decimal(self.rng.randint(50, 50_000)).scaleb(-2),
                )
                for k in range(item_count)
            ]
            item_ids = self._add(loader.add_items, tenant, new_items)
            levels = 0
            batch: list[tuple[int, int, int]] = []
            for store_id in store_ids:
                for item_id in item_ids:
                    batch.append((store_id, item_id, self.rng.randint(0, 500)))
                    if len(batch) >= self.batch:
                        levels += loader.add_levels(tenant, batch)
                        bar.update(len(batch))
                        batch = []
            if batch:
                levels += loader.add_levels(tenant, batch)
                bar.update(len(batch))
        loader.close()
        return {
            "chains": len(chain_ids),
            "stores": len(store_ids),
            "items": len(item_ids),
            "levels": levels,
        }

    def _add(self, add: Any, tenant: str, rows: Sequence[Any]) -> list[int]:
        ids: list[int] = []
        for part in _batches(rows, self.batch):
            ids += add(tenant, part)
        return ids

    @staticmethod
    def _store(chain_id: int, chain: int, n: int) -> NewStore:
        city, postal_code, country = CITIES[(chain + n) % len(CITIES)]
        return NewStore(
            chain_id=chain_id,
            name=f"{city} {chain:04d}-{n:04d}",
            phone=f"+1 555-01{n % 100:02d}",
            address=f"{n + 1} Main Street",
            postal_code=postal_code,
            city=city,
            country=country,
            active=n % 17 != 16,
        )


class OneByOne:
    """The fallback for a store with no bulk loader: the port's own methods, a row at a time."""

    def __init__(self, store: CommerceStore) -> None:
        self.store = store

    def add_chains(self, tenant: str, rows: Sequence[NewChain]) -> list[int]:
        return [self.store.create_chain(tenant, r).id for r in rows]

    def add_stores(self, tenant: str, rows: Sequence[NewStore]) -> list[int]:
        return [self.store.create_store(tenant, r).id for r in rows]

    def add_items(self, tenant: str, rows: Sequence[NewItem]) -> list[int]:
        return [self.store.create_item(tenant, r).id for r in rows]

    def add_levels(self, tenant: str, rows: Sequence[tuple[int, int, int]]) -> int:
        for store_id, item_id, quantity in rows:
            self.store.set_quantity(tenant, store_id, item_id, quantity, actor="seed")
        return len(rows)

    def close(self) -> None:
        return None
