"""Every query a route runs is answered from an index: no sequential scan, no sort, on any route."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event

from adapters.storage.sql import SqlStore
from core.models import NewChain, NewItem, NewStore


def _route_calls(store: SqlStore) -> dict[str, Callable[[], object]]:
    store.create_tenant("t", "T")
    chain = store.create_chain("t", NewChain(name="C")).id
    shop = store.create_store("t", NewStore(chain_id=chain, name="S")).id
    item = store.create_item("t", NewItem(sku="A", name="A", cost=Decimal("1.00"))).id
    store.set_quantity("t", shop, item, 3)
    return {
        "GET /chain": lambda: store.list_chains("t", after=chain, limit=101),
        "GET /chain/{id}": lambda: store.get_chain("t", chain),
        "GET /chain/{id}/stores": lambda: store.list_stores("t", chain, after=shop, limit=101),
        "GET /stores/{id}": lambda: store.get_store("t", shop),
        "GET /stores/{id}/inventory": lambda: store.list_levels(
            "t", shop, item_ids=None, after=item, limit=101
        ),
        "GET /stores/{id}/inventory?items=": lambda: store.list_levels(
            "t", shop, item_ids=[item, item + 1, item + 2], after=None, limit=101
        ),
        "GET /items": lambda: store.list_items("t", after=item, limit=101),
        "GET /items/{id}": lambda: store.get_item("t", item),
        "GET /items/{id}/inventory": lambda: store.list_item_levels(
            "t", item, after=shop, limit=101
        ),
        "PUT /stores/{id}/inventory/{item_id}": lambda: store.set_quantity("t", shop, item, 4),
        "tenant lookup": lambda: store.get_tenant("t"),
    }


def _captured(store: SqlStore, call: Callable[[], object]) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []

    def capture(conn: object, cursor: object, statement: str, params: Any, *_: object) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE")):
            seen.append((statement, params))

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        call()
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)
    assert seen
    return seen


def plans(store: SqlStore) -> dict[str, list[str]]:
    """Route -> the plan lines of every statement it runs, in the database's own words."""
    postgres = store.engine.dialect.name != "sqlite"
    result: dict[str, list[str]] = {}
    for route, call in _route_calls(store).items():
        lines: list[str] = []
        for statement, params in _captured(store, call):
            with store.engine.connect() as conn:
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


# Sorting the levels of the ids a client named costs at most 1000 rows, however big the
# store: the one sort allowed. Every list proper must come off its index already in order.
SORT_ALLOWED = "GET /stores/{id}/inventory?items="


def _assert_indexed(found: dict[str, list[str]], scan: str, sort: str) -> None:
    offenders = {
        route: lines
        for route, lines in found.items()
        if any(scan in line or (sort in line and route != SORT_ALLOWED) for line in lines)
    }
    assert offenders == {}


def test_every_route_query_uses_an_index_on_sqlite(sqlite_store: SqlStore) -> None:
    found = plans(sqlite_store)
    # SQLite says SCAN for a full pass over a table or index, TEMP B-TREE for a sort.
    _assert_indexed(found, scan="SCAN ", sort="TEMP B-TREE")


def test_every_route_query_uses_an_index_on_postgresql(pg_store: SqlStore) -> None:
    _assert_indexed(plans(pg_store), scan="Seq Scan", sort="Sort")


@pytest.mark.parametrize("statement", ["SELECT * FROM inventory_levels WHERE quantity = 3"])
def test_the_plan_check_does_catch_a_sequential_scan(pg_store: SqlStore, statement: str) -> None:
    with pg_store.engine.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")
        plan = " ".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {statement}"))
    assert "Seq Scan" in plan
