"""Scale check of the SQL storage: a 10-item inventory read, a one-line adjustment and a read
of recent ledger entries cost the same at 10 thousand and at 1 million levels (and on a long
history), listing a whole store pages by keyset, never OFFSET, and seeding a million levels
into a new database keeps above 50,000 levels/s.

    python loadtests/storage_scale.py                          # a fresh SQLite file
    python loadtests/storage_scale.py --database postgresql+psycopg://postgres@127.0.0.1/scale

The database must be empty (it is migrated here). Requests go through the real WSGI app
(falcon's test client: routing, auth, JSON, the storage), without a network in between, so
the figures are the service's own cost. Steps:

0. A million levels (tenant "million": 1,000 stores of 1,000 items) loaded into the empty
   tables as ``commerce seed`` loads them into a new database: levels/s, the figure
   ``--min-seed-rate`` checks. Then every row is removed, so that the steps below start
   from empty tables again.
1. 10,000 levels (tenant "small": 10 stores of 1,000 items): the medians of the read and of
   the write, and of ``GET /stores/{id}/inventory/changes?since=<a moment>`` at one store
   whose history is short (its seed entries and a few recent adjustments).
2. 990,000 more levels (tenant "large"), bulk-loaded as ``commerce seed`` does into a
   database that holds data (a transaction per batch): levels/s, for information.
3. The same read and write again, on the same levels of "small".
4. ``--history`` old entries (30 days back) appended to that one store's ledger, then the same
   ``changes?since=`` again, and its query plan (``EXPLAIN QUERY PLAN`` on SQLite, ``EXPLAIN
   ANALYZE`` on PostgreSQL): a read of recent entries must not cost more with a long past.
5. A whole store's inventory, following ``Link: rel="next"``: no query skips rows with OFFSET.

The script prints each figure and its ratio, and exits 1 if a ratio is over ``--max-ratio``
(3 by default: figures are medians, but the machine may be busy), the seed is slower than
``--min-seed-rate`` (step 0), or a page was read with OFFSET.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from falcon import testing
from sqlalchemy import event

from commerce.adapters.auth.none import NoAuthentication
from commerce.adapters.storage.sql import (
    AlembicSchemaManager,
    SqlBulkLoader,
    SqlStorage,
    open_sql_storage,
)
from commerce.adapters.storage.sql.ids import EPOCH_MS, SEQUENCE_BITS
from commerce.adapters.storage.sql.tables import inventory_changes, metadata
from commerce.core import seeding
from commerce.entrypoints.http.app import create_app

SMALL = "small"
LARGE = "large"
MILLION = "million"
HISTORY_DAYS = 30
say: Callable[[str], None] = lambda line: print(line, flush=True)  # noqa: E731


def seed(storage: SqlStorage, tenant: str, stores: int, items: int) -> float:
    """Levels per second of the bulk load (the path ``commerce seed`` takes)."""
    plan = seeding.SeedPlan(chains=1, stores_per_chain=stores, items=items, seed=7, batch=10_000)
    started = time.perf_counter()
    seeding.seed_generated(
        storage.catalogue, storage.inventory, tenant, plan, loader=SqlBulkLoader(storage)
    )
    return plan.levels / (time.perf_counter() - started)


def empty_every_table(storage: SqlStorage) -> None:
    """Remove every row (the schema stays, migrated): a new database again."""
    names = [table.name for table in reversed(metadata.sorted_tables)]
    with storage.engine.begin() as conn:
        if storage.engine.dialect.name == "sqlite":
            for name in names:
                conn.exec_driver_sql(f"DELETE FROM {name}")
        else:
            conn.exec_driver_sql(f"TRUNCATE {', '.join(names)} CASCADE")


def ids_of(storage: SqlStorage, tenant: str) -> tuple[list[int], list[int]]:
    catalogue = storage.catalogue
    [chain] = catalogue.list_chains(tenant, after=None, limit=1)
    shops = [s.id for s in catalogue.list_stores(tenant, chain.id, after=None, limit=1000)]
    items = [i.id for i in catalogue.list_items(tenant, after=None, limit=1000)]
    return shops, items


def lookups(shops: list[int], items: list[int], rng: random.Random) -> list[str]:
    paths = []
    for _ in range(200):
        wanted = ",".join(str(i) for i in rng.sample(items, 10))
        paths.append(f"/stores/{rng.choice(shops)}/inventory?items={wanted}")
    return paths


def median_ms(client: testing.TestClient, paths: list[str], samples: int) -> float:
    for path in paths[:50]:  # warm caches and the connection pool
        client.simulate_get(path)
    timings = []
    for n in range(samples):
        path, _, query = paths[n % len(paths)].partition("?")
        started = time.perf_counter()
        result = client.simulate_get(path, query_string=query)
        seconds = time.perf_counter() - started
        timings.append(seconds)
        assert result.status_code == 200, result.text
        assert len(result.json) == 10
    return statistics.median(timings) * 1000


def write_median_ms(
    client: testing.TestClient, pairs: list[tuple[int, int]], samples: int
) -> float:
    """One-line adjustments: +1 then -1 on each (store, item) in turn, so no level drops."""
    timings = []
    for n in range(samples + 50):
        store_id, item_id = pairs[(n // 2) % len(pairs)]
        delta, reason = (1, "received") if n % 2 == 0 else (-1, "sold")
        body = {"adjustments": [{"item_id": item_id, "delta": delta, "reason": reason}]}
        path = f"/stores/{store_id}/inventory/adjustments"
        started = time.perf_counter()
        result = client.simulate_post(path, json=body)
        seconds = time.perf_counter() - started
        assert result.status_code == 200, result.text
        if n >= 50:  # the first ones warm up
            timings.append(seconds)
    return statistics.median(timings) * 1000


def since_median_ms(
    client: testing.TestClient, store_id: int, query: str, expected: int, samples: int
) -> float:
    path = f"/stores/{store_id}/inventory/changes"
    timings = []
    for n in range(samples + 20):
        started = time.perf_counter()
        result = client.simulate_get(path, query_string=query)
        seconds = time.perf_counter() - started
        assert result.status_code == 200, result.text
        assert len(result.json) == expected, (len(result.json), expected)
        if n >= 20:
            timings.append(seconds)
    return statistics.median(timings) * 1000


def add_old_history(storage: SqlStorage, store_id: int, item_id: int, entries: int) -> None:
    """``entries`` ledger entries of one item at one store, 30 days back, one a millisecond:
    pairs of +1 and -1 (so the ledger still sums to the level), with the time-ordered ids
    the service would have minted then."""
    start = datetime.now(UTC) - timedelta(days=HISTORY_DAYS)
    start_ms = int(start.timestamp() * 1000)
    rows = []
    with storage.engine.begin() as conn:
        for n in range(entries):
            moment_ms = start_ms + n
            rows.append(
                {
                    "store_id": store_id,
                    "id": (moment_ms - EPOCH_MS) << SEQUENCE_BITS,
                    "tenant_id": SMALL,
                    "item_id": item_id,
                    "delta": 1 if n % 2 == 0 else -1,
                    "quantity_after": 1 if n % 2 == 0 else 0,
                    "reason": "received" if n % 2 == 0 else "sold",
                    "reference": None,
                    "actor": "scale",
                    "created_at": datetime.fromtimestamp(moment_ms / 1000, UTC),
                }
            )
            if len(rows) == 1000:
                conn.execute(sa.insert(inventory_changes).values(rows))
                rows = []
        if rows:
            conn.execute(sa.insert(inventory_changes).values(rows))


@contextmanager
def captured(storage: SqlStorage, table: str) -> Iterator[list[tuple[str, Any]]]:
    """The statements (and their parameters) that touch ``table`` while inside."""
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if table in statement:
            statements.append((statement, params))

    event.listen(storage.engine, "before_cursor_execute", capture)
    try:
        yield statements
    finally:
        event.remove(storage.engine, "before_cursor_execute", capture)


def explain(storage: SqlStorage, statement: str, params: Any) -> list[str]:
    """The plan of one captured statement, as the database prints it."""
    sqlite = storage.engine.dialect.name == "sqlite"
    prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN (ANALYZE, BUFFERS) "
    with storage.engine.connect() as conn:
        rows = conn.exec_driver_sql(prefix + statement, params).all()
    if sqlite:
        return [f"{'  ' * (row[1] != 0)}{row[-1]}" for row in rows]
    return [str(row[0]) for row in rows]


def skips_rows(statement: str, params: Any) -> bool:
    """Whether a query reads past rows with OFFSET; SQLite's compiler always writes a
    harmless ``OFFSET ?`` bound to 0, which skips nothing."""
    if " OFFSET " not in statement.upper():
        return False
    return not (isinstance(params, tuple | list) and params and params[-1] == 0)


def walk_store(
    client: testing.TestClient, storage: SqlStorage, store_id: int
) -> tuple[int, int, list[float], list[tuple[str, Any]]]:
    pages, rows, timings = 0, 0, []
    path, query = f"/stores/{store_id}/inventory", "limit=100"
    with captured(storage, "inventory_levels") as raw:
        while True:
            started = time.perf_counter()
            result = client.simulate_get(path, query_string=query)
            seconds = time.perf_counter() - started
            timings.append(seconds)
            pages += 1
            rows += len(result.json)
            link = result.headers.get("link")
            if not link:
                break
            target = link.split(">", 1)[0].lstrip("<")
            path, _, query = target.partition("?")
            path = "/" + path.split("/", 3)[3] if path.startswith("http") else path
    statements = [(" ".join(s.split()), p) for s, p in raw]
    return pages, rows, timings, statements


def verdict(ratio: float, limit: float) -> str:
    return f"{ratio:.2f} ({'flat' if ratio <= limit else f'NOT FLAT: over {limit:g}'})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--database", help="an empty database's URL (default: a temp SQLite file)")
    parser.add_argument("--samples", type=int, default=2000, help="reads per median (2000)")
    parser.add_argument("--write-samples", type=int, default=500, help="writes per median (500)")
    parser.add_argument(
        "--history", type=int, default=300_000, help="old ledger entries at one store (300,000)"
    )
    parser.add_argument("--max-ratio", type=float, default=3.0, help="flat means at most (3)")
    parser.add_argument(
        "--min-seed-rate",
        type=float,
        default=50_000,
        help="levels/s of the 1M seed into a new database (50,000)",
    )
    args = parser.parse_args(argv)
    url = args.database or f"sqlite:///{tempfile.mkdtemp(prefix='commerce-scale-')}/scale.db"
    AlembicSchemaManager(url).upgrade()
    storage = open_sql_storage(url)
    client = testing.TestClient(create_app(storage, [NoAuthentication(SMALL)]))
    rng = random.Random(1)
    failed: list[str] = []

    say(f"database: {storage.engine.url.render_as_string(hide_password=True)}")
    fresh_rate = seed(storage, MILLION, stores=1000, items=1000)
    say(f"seeded 1,000,000 levels into a new database at {fresh_rate:,.0f} levels/s")
    if fresh_rate < args.min_seed_rate:
        failed.append(f"seed {fresh_rate:,.0f} levels/s is under {args.min_seed_rate:,.0f}")
    empty_every_table(storage)
    seed(storage, SMALL, stores=10, items=1000)
    shops, items = ids_of(storage, SMALL)
    paths = lookups(shops, items, rng)
    pairs = [(rng.choice(shops[1:]), rng.choice(items)) for _ in range(100)]
    ledger_store, ledger_item = shops[0], items[0]

    small_read = median_ms(client, paths, args.samples)
    say(
        f"10,000 levels:    GET /stores/{{id}}/inventory?items=<10 ids>  median {small_read:.3f} ms"
    )
    small_write = write_median_ms(client, pairs, args.write_samples)
    say(
        f"10,000 levels:    POST …/inventory/adjustments (one line)     median {small_write:.3f} ms"
    )

    # A few recent changes at the ledger store, after a moment that splits old from new.
    since = datetime.now(UTC)
    time.sleep(0.01)
    recent = 20
    for n in range(recent):
        delta, reason = (1, "received") if n % 2 == 0 else (-1, "sold")
        line = {"item_id": ledger_item, "delta": delta, "reason": reason}
        done = client.simulate_post(
            f"/stores/{ledger_store}/inventory/adjustments", json={"adjustments": [line]}
        )
        assert done.status_code == 200, done.text
    moment = quote(since.isoformat())
    ledger_reads = {
        "changes?since=<recent>": f"since={moment}&limit=100",
        "changes?item_id=<id>&since=<recent>": f"item_id={ledger_item}&since={moment}&limit=100",
    }
    short_since = {}
    for name, query in ledger_reads.items():
        short_since[name] = since_median_ms(client, ledger_store, query, recent, args.samples // 4)
        say(
            f"short history:    GET …/inventory/{name:36} median "
            f"{short_since[name]:.3f} ms ({recent} entries since)"
        )

    rate = seed(storage, LARGE, stores=990, items=1000)
    say(
        f"seeded 990,000 more levels at {rate:,.0f} levels/s (bulk loader, as `commerce seed`, "
        "into tables that hold data: a transaction per batch)"
    )

    large_read = median_ms(client, paths, args.samples)
    say(
        f"1,000,000 levels: GET /stores/{{id}}/inventory?items=<10 ids>  median {large_read:.3f} ms"
    )
    large_write = write_median_ms(client, pairs, args.write_samples)
    say(
        f"1,000,000 levels: POST …/inventory/adjustments (one line)     median {large_write:.3f} ms"
    )
    read_ratio, write_ratio = large_read / small_read, large_write / small_write
    say(f"read ratio (1M / 10k):  {verdict(read_ratio, args.max_ratio)}")
    say(f"write ratio (1M / 10k): {verdict(write_ratio, args.max_ratio)}")
    if read_ratio > args.max_ratio:
        failed.append(f"the read costs {read_ratio:.2f}x at 1M levels")
    if write_ratio > args.max_ratio:
        failed.append(f"the write costs {write_ratio:.2f}x at 1M levels")

    add_old_history(storage, ledger_store, ledger_item, args.history)
    for name, query in ledger_reads.items():
        with captured(storage, "inventory_changes") as statements:
            long_since = since_median_ms(client, ledger_store, query, recent, args.samples // 4)
        ratio = long_since / short_since[name]
        say(
            f"long history:     GET …/inventory/{name:36} median {long_since:.3f} ms "
            f"({args.history:,} older entries at the store); ratio {verdict(ratio, args.max_ratio)}"
        )
        statement, params = statements[-1]
        say(f"  its query: {' '.join(statement.split())}")
        say(f"  parameters: {params}")
        say("  plan:")
        for step in explain(storage, statement, params):
            say(f"    {step}")
        if ratio > args.max_ratio:
            failed.append(
                f"{name} costs {ratio:.2f}x with {args.history:,} older entries: it reads the "
                "old entries before the recent ones (see the plan)"
            )

    pages, rows, timings, walked = walk_store(client, storage, shops[0])
    offset = [s for s, p in walked if skips_rows(s, p)]
    say(f"whole store: {rows} levels in {pages} pages of 100, following Link rel=next")
    say(f"first page {timings[0] * 1000:.3f} ms, last page {timings[-1] * 1000:.3f} ms")
    say(f"a page's query: {walked[-1][0]}  {walked[-1][1]}")
    say(f"queries that skip rows with OFFSET: {len(offset)}")
    if offset:
        failed.append(f"{len(offset)} page queries skip rows with OFFSET")
    storage.close()
    for reason in failed:
        say(f"FAILED: {reason}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
