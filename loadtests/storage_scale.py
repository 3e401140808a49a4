"""Scale check of the SQL storage: a 10-item inventory lookup costs the same at 10 thousand and at
1 million levels, and listing a whole store pages by keyset, never OFFSET.

    python loadtests/storage_scale.py                          # a fresh SQLite file
    python loadtests/storage_scale.py --database postgresql+psycopg://postgres@127.0.0.1/scale

The database must be empty (it is migrated here). Requests go through the real WSGI app
(falcon's test client: routing, auth, JSON, the storage), without a network in between, so
the figures are the service's own cost. The script prints medians and their ratio; it
fails (exit status 1) if a page was read with OFFSET.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from falcon import testing
from sqlalchemy import event

from commerce.adapters.auth.none import NoAuthentication
from commerce.adapters.storage.sql import (
    AlembicSchemaManager,
    SqlBulkLoader,
    SqlStorage,
    open_sql_storage,
)
from commerce.core import seeding
from commerce.entrypoints.http.app import create_app

SMALL = "small"
LARGE = "large"


def seed(storage: SqlStorage, tenant: str, stores: int, items: int) -> None:
    plan = seeding.SeedPlan(chains=1, stores_per_chain=stores, items=items, seed=7, batch=10_000)
    seeding.seed_generated(
        storage.catalogue, storage.inventory, tenant, plan, loader=SqlBulkLoader(storage)
    )


def lookups(storage: SqlStorage, tenant: str, rng: random.Random) -> list[str]:
    catalogue = storage.catalogue
    [chain] = catalogue.list_chains(tenant, after=None, limit=1)
    shops = [s.id for s in catalogue.list_stores(tenant, chain.id, after=None, limit=1000)]
    items = [i.id for i in catalogue.list_items(tenant, after=None, limit=1000)]
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
        timings.append(time.perf_counter() - started)
        assert result.status_code == 200, result.text
        assert len(result.json) == 10
    return statistics.median(timings) * 1000


def skips_rows(statement: str, params: Any) -> bool:
    """Whether a query reads past rows with OFFSET; SQLite's compiler always writes a
    harmless ``OFFSET ?`` bound to 0, which skips nothing."""
    if " OFFSET " not in statement.upper():
        return False
    return not (isinstance(params, tuple | list) and params and params[-1] == 0)


def walk_store(
    client: testing.TestClient, storage: SqlStorage, store_id: int
) -> tuple[int, int, list[float], list[tuple[str, Any]]]:
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "inventory_levels" in statement:
            statements.append((" ".join(statement.split()), params))

    event.listen(storage.engine, "before_cursor_execute", capture)
    pages, rows, timings = 0, 0, []
    path, query = f"/stores/{store_id}/inventory", "limit=100"
    try:
        while True:
            started = time.perf_counter()
            result = client.simulate_get(path, query_string=query)
            timings.append(time.perf_counter() - started)
            pages += 1
            rows += len(result.json)
            link = result.headers.get("link")
            if not link:
                break
            target = link.split(">", 1)[0].lstrip("<")
            path, _, query = target.partition("?")
            path = "/" + path.split("/", 3)[3] if path.startswith("http") else path
    finally:
        event.remove(storage.engine, "before_cursor_execute", capture)
    return pages, rows, timings, statements


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", help="an empty database's URL (default: a temp SQLite file)")
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args(argv)
    url = args.database or f"sqlite:///{tempfile.mkdtemp(prefix='commerce-scale-')}/scale.db"
    AlembicSchemaManager(url).upgrade()
    storage = open_sql_storage(url)
    client = testing.TestClient(create_app(storage, [NoAuthentication(SMALL)]))
    rng = random.Random(1)
    say: Callable[[str], None] = lambda line: print(line, flush=True)  # noqa: E731

    say(f"database: {storage.engine.url.render_as_string(hide_password=True)}")
    seed(storage, SMALL, stores=10, items=1000)
    paths = lookups(storage, SMALL, rng)
    small = median_ms(client, paths, args.samples)
    say(f"10,000 levels:    GET /stores/{{id}}/inventory?items=<10 ids>  median {small:.3f} ms")

    seed(storage, LARGE, stores=990, items=1000)
    large = median_ms(client, paths, args.samples)
    say(f"1,000,000 levels: GET /stores/{{id}}/inventory?items=<10 ids>  median {large:.3f} ms")
    say(f"ratio (1M / 10k): {large / small:.2f}")

    [chain] = storage.catalogue.list_chains(SMALL, after=None, limit=1)
    shop = storage.catalogue.list_stores(SMALL, chain.id, after=None, limit=1)[0].id
    pages, rows, timings, statements = walk_store(client, storage, shop)
    offset = [s for s, params in statements if skips_rows(s, params)]
    say(f"whole store: {rows} levels in {pages} pages of 100, following Link rel=next")
    say(f"first page {timings[0] * 1000:.3f} ms, last page {timings[-1] * 1000:.3f} ms")
    say(f"a page's query: {statements[-1][0]}  {statements[-1][1]}")
    say(f"queries that skip rows with OFFSET: {len(offset)}")
    storage.close()
    return 1 if offset else 0


if __name__ == "__main__":
    raise SystemExit(main())
