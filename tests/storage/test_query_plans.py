"""Every query a route runs is answered from an index: no sequential scan, no sort, on any route."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event

from commerce.adapters.storage.sql import SqlStorage
from commerce.adapters.storage.sql.tables import metadata
from commerce.core.models import (
    Adjustment,
    ChainPatch,
    ChangeFilter,
    ItemPatch,
    NewChain,
    NewItem,
    NewStore,
    Reason,
    StoredResponse,
    StorePatch,
)
from commerce.core.pagination import TimeKey

MINUTE = timedelta(minutes=1)


def _route_calls(storage: SqlStorage) -> dict[str, Callable[[], object]]:
    catalogue, inventory, records = storage.catalogue, storage.inventory, storage.idempotency
    catalogue.create_tenant("t", "T")
    chain = catalogue.create_chain("t", NewChain(name="C")).id
    shop = catalogue.create_store("t", NewStore(chain_id=chain, name="S")).id
    item = catalogue.create_item("t", NewItem(sku="A", name="A", cost=Decimal("1.00"))).id
    other = catalogue.create_item("t", NewItem(sku="B", name="B", cost=Decimal("1.00"))).id
    inventory.set_quantity("t", shop, item, 3, actor="test")
    # Rows for the deletes, which must find nothing in their way.
    spare_chain = catalogue.create_chain("t", NewChain(name="Spare")).id
    spare_shop = catalogue.create_store("t", NewStore(chain_id=chain, name="Spare")).id
    spare_item = catalogue.create_item("t", NewItem(sku="C", name="C", cost=Decimal("1.00"))).id
    inventory.set_quantity("t", spare_shop, spare_item, 0, actor="test")
    now = datetime.now(UTC)
    batch = [Adjustment(item, 2, Reason.received), Adjustment(other, -1, Reason.sold)]
    response = StoredResponse(status=201, headers=(), body=b"{}")

    def replay() -> object:
        records.complete_idempotency_key("t", "k", response)
        return records.claim_idempotency_key("t", "k", "fp", stale_after=MINUTE)

    return {
        "GET /chain": lambda: catalogue.list_chains("t", after=chain, limit=101),
        "GET /chain/{id}": lambda: catalogue.get_chain("t", chain),
        "GET /chain/{id}/stores": lambda: catalogue.list_stores("t", chain, after=shop, limit=101),
        "GET /stores/{id}": lambda: catalogue.get_store("t", shop),
        "GET /stores/{id}/inventory": lambda: inventory.list_levels(
            "t", shop, item_ids=None, after=item, limit=101
        ),
        "GET /stores/{id}/inventory?items=": lambda: inventory.list_levels(
            "t", shop, item_ids=[item, item + 1, item + 2], after=None, limit=101
        ),
        "GET /items": lambda: catalogue.list_items("t", after=item, limit=101),
        "GET /items/{id}": lambda: catalogue.get_item("t", item),
        "GET /items/{id}/inventory": lambda: inventory.list_item_levels(
            "t", item, after=shop, limit=101
        ),
        "PUT /stores/{id}/inventory/{item_id}": lambda: inventory.set_quantity(
            "t", shop, item, 4, actor="test"
        ),
        "PUT /stores/{id}/inventory/{item_id} (new level)": lambda: inventory.set_quantity(
            "t", shop, other, 1, actor="test", expected_quantity=0
        ),
        # An increase (upsert), then a decrease (conditional UPDATE), then the ledger rows.
        "POST /stores/{id}/inventory/adjustments": lambda: inventory.adjust(
            "t", shop, batch, actor="test"
        ),
        "GET /stores/{id}/inventory/changes": lambda: inventory.list_changes(
            "t", shop, ChangeFilter(), after=1, limit=101
        ),
        # The first page: without a cursor SQLite once preferred the primary key here.
        "GET /stores/{id}/inventory/changes?item_id=": lambda: inventory.list_changes(
            "t", shop, ChangeFilter(item_id=item), after=None, limit=101
        ),
        # With a time filter, in (created_at, id) order: first pages, and pages after a cursor.
        SINCE: lambda: inventory.list_changes(
            "t", shop, ChangeFilter(since=now - MINUTE), after=None, limit=101
        ),
        UNTIL: lambda: inventory.list_changes(
            "t", shop, ChangeFilter(until=now + MINUTE), after=None, limit=101
        ),
        "GET /stores/{id}/inventory/changes?since=&until= (cursor)": lambda: inventory.list_changes(
            "t",
            shop,
            ChangeFilter(since=now - MINUTE, until=now + MINUTE),
            after=TimeKey(now - MINUTE, 1),
            limit=101,
        ),
        ITEM_SINCE: lambda: inventory.list_changes(
            "t", shop, ChangeFilter(item_id=item, since=now - MINUTE), after=None, limit=101
        ),
        "GET /stores/{id}/inventory/changes?item_id=&since= (cursor)": lambda: (
            inventory.list_changes(
                "t",
                shop,
                ChangeFilter(item_id=item, since=now - MINUTE),
                after=TimeKey(now - MINUTE, 1),
                limit=101,
            )
        ),
        "GET /stores/{id}/inventory?as_of=": lambda: inventory.list_levels_as_of(
            "t", shop, now, item_ids=None, after=None, limit=101
        ),
        "GET /stores/{id}/inventory?as_of=&items=": lambda: inventory.list_levels_as_of(
            "t", shop, now, item_ids=[item, other, other + 1], after=None, limit=101
        ),
        "PATCH /chain/{id}": lambda: catalogue.update_chain("t", chain, ChainPatch(name="D")),
        "PATCH /stores/{id}": lambda: catalogue.update_store("t", shop, StorePatch(city="Nice")),
        "PATCH /items/{id}": lambda: catalogue.update_item("t", item, ItemPatch(sku="A2")),
        "DELETE /stores/{id}": lambda: catalogue.delete_store("t", spare_shop),
        "DELETE /items/{id}": lambda: catalogue.delete_item("t", spare_item),
        "DELETE /chain/{id}": lambda: catalogue.delete_chain("t", spare_chain),
        "Idempotency-Key: claim": lambda: records.claim_idempotency_key(
            "t", "k", "fp", stale_after=MINUTE
        ),
        "Idempotency-Key: replay": replay,
        "Idempotency-Key: release": lambda: records.release_idempotency_key("t", "k"),
        "Idempotency-Key: purge": lambda: records.purge_idempotency_keys(now - MINUTE),
        "tenant lookup": lambda: catalogue.get_tenant("t"),
    }


def _captured(storage: SqlStorage, call: Callable[[], object]) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []

    def capture(conn: object, cursor: object, statement: str, params: Any, *_: object) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")):
            seen.append((statement, params))

    event.listen(storage.engine, "before_cursor_execute", capture)
    try:
        call()
    finally:
        event.remove(storage.engine, "before_cursor_execute", capture)
    assert seen
    return seen


def plans(storage: SqlStorage) -> dict[str, list[str]]:
    """Route -> the plan lines of every statement it runs, in the database's own words."""
    postgres = storage.engine.dialect.name != "sqlite"
    result: dict[str, list[str]] = {}
    for route, call in _route_calls(storage).items():
        lines: list[str] = []
        for statement, params in _captured(storage, call):
            with storage.engine.connect() as conn:
                if postgres:
                    # Tiny tables make a sequential scan the cheapest plan; this asks instead
                    # whether an index *can* answer, which is what holds at any size.
                    conn.exec_driver_sql("SET enable_seqscan = off")
                    rows = conn.exec_driver_sql(f"EXPLAIN {statement}", params).all()
                    lines += [row[0] for row in rows]
                else:
                    rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params).all()
                    lines += [row[-1] for row in rows]
                conn.rollback()
        result[route] = lines
    return result


# The only sorts allowed are of rows a bound already limits, however big the store: the
# levels of the at most 1000 ids a client named, and the as-of levels, where the query
# finds at most `limit` items (or the named ones), each with one seek, before ordering
# them; and an adjustment's levels, locked in item order (at most the batch's items).
# Every list proper must come off its index already in order.
SORT_ALLOWED = frozenset(
    {
        "POST /stores/{id}/inventory/adjustments",
        "GET /stores/{id}/inventory?items=",
        "GET /stores/{id}/inventory?as_of=",
        "GET /stores/{id}/inventory?as_of=&items=",
    }
)
TABLES = frozenset(metadata.tables) | {"last"}  # `last`: the as-of query's alias of the ledger


def _assert_indexed(found: dict[str, list[str]], scan: re.Pattern[str], sort: str) -> None:
    offenders = {
        route: lines
        for route, lines in found.items()
        if any(
            ((m := scan.search(line)) and m.group(1) in TABLES)
            or (sort in line and route not in SORT_ALLOWED)
            for line in lines
        )
    }
    assert offenders == {}


ITEM_HISTORY = "GET /stores/{id}/inventory/changes?item_id="
ITEM_HISTORY_INDEX = "ix_inventory_changes_store_id_item_id_id"
SINCE = "GET /stores/{id}/inventory/changes?since="
ITEM_SINCE = "GET /stores/{id}/inventory/changes?item_id=&since="
UNTIL = "GET /stores/{id}/inventory/changes?until="
# With a time filter, the history is a range of an index by time, never walked from its first
# entry with the time as a filter (the cost would grow with the store's history around it).
SINCE_INDEX = {
    SINCE: "ix_inventory_changes_store_id_created_at_id",
    UNTIL: "ix_inventory_changes_store_id_created_at_id",
    f"{SINCE}&until= (cursor)": "ix_inventory_changes_store_id_created_at_id",
    ITEM_SINCE: "ix_inventory_changes_store_id_item_id_created_at_id",
    f"{ITEM_SINCE} (cursor)": "ix_inventory_changes_store_id_item_id_created_at_id",
}


def test_every_route_query_uses_an_index_on_sqlite(sqlite_storage: SqlStorage) -> None:
    found = plans(sqlite_storage)
    # Not just any index: the store's whole history is an index range too.
    assert any(ITEM_HISTORY_INDEX in line for line in found[ITEM_HISTORY])
    for route, index in SINCE_INDEX.items():
        # "SEARCH inventory_changes USING INDEX … (store_id=? AND created_at>?)", or for
        # until alone "(store_id=? AND created_at<?)"
        scan = [line for line in found[route] if "inventory_changes" in line]
        assert len(scan) == 1, (route, found[route])
        assert f"USING INDEX {index} (" in scan[0], (route, scan)
        assert ("created_at<" if route == UNTIL else "created_at>") in scan[0], (route, scan)
    # SQLite says SCAN for a full pass over a table or index, TEMP B-TREE for a sort. A
    # SCAN of the as-of query's own bounded CTE or of a VALUES list reads no table.
    _assert_indexed(found, scan=re.compile(r"\bSCAN (\w+)"), sort="TEMP B-TREE")


def test_every_route_query_uses_an_index_on_postgresql(pg_storage: SqlStorage) -> None:
    found = plans(pg_storage)
    assert any(ITEM_HISTORY_INDEX in line for line in found[ITEM_HISTORY])
    by_time = set(SINCE_INDEX.values())
    for route in SINCE_INDEX:
        # "Index Scan using … on inventory_changes" then "Index Cond: (… AND (created_at >= …))".
        # On these few rows either index by time will do for an item: with statistics, the
        # planner takes the item's (docs/storage.md shows it on a million levels).
        lines = found[route]
        at = next(n for n, line in enumerate(lines) if "on inventory_changes" in line)
        used = re.search(r"Index Scan using (\w+) on inventory_changes", lines[at])
        assert used, (route, lines)
        assert used.group(1) in by_time, (route, lines)
        if ITEM_SINCE not in route:
            assert used.group(1) == SINCE_INDEX[route], (route, lines)
        assert "Index Cond:" in lines[at + 1], (route, lines)
        bound = "created_at <" if route == UNTIL else "created_at >="
        assert bound in lines[at + 1], (route, lines)
    _assert_indexed(found, scan=re.compile(r"Seq Scan on (\w+)"), sort="Sort")


@pytest.mark.parametrize("statement", ["SELECT * FROM inventory_levels WHERE quantity = 3"])
def test_the_plan_check_does_catch_a_sequential_scan(
    pg_storage: SqlStorage, statement: str
) -> None:
    with pg_storage.engine.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")
        plan = " ".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {statement}"))
    assert "Seq Scan" in plan
