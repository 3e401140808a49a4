"""The busiest write, a one-line adjustment, costs two statements and a commit: no store or
item lookups before it (a refusal explains itself afterwards), no lock taken up front for one
item, one ledger insert; and every statement it sends is one SQLAlchemy compiled before, so a
write pays neither for building nor for compiling its SQL."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.engine.interfaces import CacheStats

from commerce.adapters.storage.sql import SqlStorage
from commerce.adapters.storage.sql.inventory import SqlInventory
from commerce.core.errors import InsufficientStock, NotFound
from commerce.core.models import Adjustment, ChangeFilter, NewChain, NewItem, NewStore, Reason

SENT_BY_ONE_LINE = {
    # SQLite takes the write lock with the transaction's BEGIN; on the servers psycopg
    # sends BEGIN (and COMMIT) itself, not through a cursor, so no listener sees it.
    "sqlite": ["BEGIN IMMEDIATE", "UPDATE", "INSERT"],
    "postgresql": ["UPDATE", "INSERT"],
}


@pytest.fixture
def storage(sql_storage_each: SqlStorage) -> SqlStorage:
    return sql_storage_each


def _seed(storage: SqlStorage, items: int = 2) -> tuple[int, list[int]]:
    catalogue = storage.catalogue
    catalogue.create_tenant("t", "T")
    chain = catalogue.create_chain("t", NewChain(name="C")).id
    shop = catalogue.create_store("t", NewStore(chain_id=chain, name="S")).id
    ids = [
        catalogue.create_item("t", NewItem(sku=f"S{n}", name="I", cost=Decimal("1"))).id
        for n in range(items)
    ]
    for item in ids:
        storage.inventory.set_quantity("t", shop, item, 10, actor="test")
    return shop, ids


class Sent:
    """The statements sent on ``storage``'s engine, whether each was compiled before, and
    the commits."""

    def __init__(self, storage: SqlStorage) -> None:
        self.statements: list[str] = []
        self.compiled_anew: list[str] = []
        self.commits = 0
        event.listen(storage.engine, "before_cursor_execute", self._statement)
        event.listen(storage.engine, "commit", self._commit)

    def _statement(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        words = " ".join(statement.split())
        self.statements.append("BEGIN IMMEDIATE" if words == "BEGIN IMMEDIATE" else words[:6])
        compiled = isinstance(context, DefaultExecutionContext) and context.compiled is not None
        if compiled and context.cache_hit is not CacheStats.CACHE_HIT:
            self.compiled_anew.append(words)

    def _commit(self, conn: Any) -> None:
        self.commits += 1

    def kinds(self) -> list[str]:
        return [s.upper() for s in self.statements]


def _adjust(storage: SqlStorage, shop: int, item: int, delta: int) -> int:
    (level,) = storage.inventory.adjust(
        "t",
        shop,
        [Adjustment(item, delta, Reason.received if delta > 0 else Reason.sold)],
        actor="t",
    )
    return level.quantity


@pytest.mark.parametrize("delta", [1, -1])
def test_a_one_line_adjustment_is_two_statements_each_compiled_once(
    storage: SqlStorage, delta: int
) -> None:
    shop, [item, _] = _seed(storage)
    _adjust(storage, shop, item, delta)  # compiles (and caches) its statements
    sent = Sent(storage)
    assert _adjust(storage, shop, item, delta) == 10 + 2 * delta
    assert sent.kinds() == SENT_BY_ONE_LINE[storage.engine.dialect.name], sent.statements
    assert sent.commits == 1
    assert sent.compiled_anew == []
    # The ledger got the entry, with the level it left.
    entries = storage.inventory.list_changes("t", shop, ChangeFilter(), after=None, limit=10)
    assert [(e.delta, e.quantity_after) for e in entries[-2:]] == [
        (delta, 10 + delta),
        (delta, 10 + 2 * delta),
    ]


def test_a_batch_sends_one_ledger_insert_and_locks_its_levels_first_on_the_server(
    storage: SqlStorage,
) -> None:
    shop, [a, b] = _seed(storage)
    batch = [Adjustment(b, 2, Reason.received), Adjustment(a, -1, Reason.sold)]
    storage.inventory.adjust("t", shop, batch, actor="t")
    sent = Sent(storage)
    levels = storage.inventory.adjust("t", shop, batch, actor="t")
    assert [(lv.item_id, lv.quantity) for lv in levels] == [(a, 8), (b, 14)]
    if storage.engine.dialect.name == "sqlite":
        assert sent.kinds() == ["BEGIN IMMEDIATE", "UPDATE", "UPDATE", "INSERT"]
    else:  # the levels locked in item order (SELECT … FOR UPDATE), then the steps
        assert sent.kinds() == ["SELECT", "UPDATE", "UPDATE", "INSERT"]
    assert sent.compiled_anew == []


def test_an_increase_of_a_level_not_there_yet_creates_it(storage: SqlStorage) -> None:
    shop, [item, _] = _seed(storage)
    first = storage.catalogue.get_store("t", shop)
    assert first is not None
    other = storage.catalogue.create_store("t", NewStore(chain_id=first.chain_id, name="2")).id
    with pytest.raises(InsufficientStock):  # a decrease of a level not there: it holds 0
        _adjust(storage, other, item, -1)
    assert _adjust(storage, other, item, 3) == 3
    assert _adjust(storage, other, item, -3) == 0


def test_a_refusal_names_the_store_then_the_first_unknown_item_then_the_shortage(
    storage: SqlStorage,
) -> None:
    """With no lookups before the steps, a refusal is explained afterwards, in the order the
    lookups would have found it: the store, then the batch's items in its order, then the
    stock, and nothing of the batch is applied."""
    shop, [a, b] = _seed(storage)
    storage.catalogue.create_tenant("u", "U")
    theirs = storage.catalogue.create_item("u", NewItem(sku="X", name="I", cost=Decimal(1))).id
    unknown = 10**12
    inventory = storage.inventory
    too_many = Adjustment(a, -11, Reason.sold)
    for store, batch, expected in [
        (shop + 999, [Adjustment(a, 1, Reason.received)], ("store", shop + 999)),
        (shop + 999, [Adjustment(a, -1, Reason.sold)], ("store", shop + 999)),
        (shop, [too_many, Adjustment(unknown, 1, Reason.received)], ("item", unknown)),
        (shop, [too_many, Adjustment(unknown, -1, Reason.sold)], ("item", unknown)),
        (
            shop,
            [Adjustment(b, 1, Reason.received), Adjustment(theirs, 1, Reason.received)],
            ("item", theirs),
        ),
        (
            shop,
            [Adjustment(theirs, -1, Reason.sold), Adjustment(unknown, 1, Reason.sold)],
            ("item", theirs),
        ),
    ]:
        with pytest.raises(NotFound) as refused:
            inventory.adjust("t", store, batch, actor="t")
        assert (refused.value.resource, refused.value.key) == expected
    with pytest.raises(NotFound):  # another tenant's store is no store
        inventory.adjust("u", shop, [Adjustment(theirs, 1, Reason.received)], actor="t")
    with pytest.raises(InsufficientStock) as short:
        inventory.adjust("t", shop, [Adjustment(b, 1, Reason.received), too_many], actor="t")
    assert [s["item_id"] for s in short.value.shortages] == [a]
    levels = inventory.list_levels("t", shop, item_ids=None, after=None, limit=10)
    assert [level.quantity for level in levels] == [10, 10]
    assert len(inventory.list_changes("t", shop, ChangeFilter(), after=None, limit=10)) == 2


def test_a_refused_step_is_tried_again_under_the_level_lock(
    pg_storage: SqlStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A one-line step takes no lock before it runs, and a refused one takes none either: at
    READ COMMITTED, stock delivered between the refusal and its explanation would make the
    explanation disagree. So the level is locked and the step tried once more, and what
    decides is what the level holds under the lock."""
    shop, [item, _] = _seed(pg_storage)
    lock = SqlInventory._lock

    def delivery_first(conn: Any, tenant: str, store_id: int, wanted: list[int]) -> None:
        _adjust(pg_storage, shop, item, 5)  # another connection, committed
        lock(conn, tenant, store_id, wanted)

    monkeypatch.setattr(SqlInventory, "_lock", staticmethod(delivery_first))
    assert _adjust(pg_storage, shop, item, -12) == 3
    monkeypatch.setattr(SqlInventory, "_lock", staticmethod(lock))
    with pytest.raises(InsufficientStock):
        _adjust(pg_storage, shop, item, -4)
    entries = pg_storage.inventory.list_changes(
        "t", shop, ChangeFilter(item_id=item), after=None, limit=10
    )
    assert sum(e.delta for e in entries) == 3


def test_inside_a_request_transaction_a_call_adds_one_savepoint_and_a_refusal_undoes_it(
    storage: SqlStorage,
) -> None:
    """A call that joins the request's transaction (Idempotency-Key) runs after a savepoint,
    sent as it is (never compiled) and never released: one more statement, not two. A call
    refused after its first step goes back to its own savepoint, not further."""
    shop, [a, b] = _seed(storage)
    transaction = storage.idempotency.begin_transaction()
    try:
        _adjust(storage, shop, a, -1)
        sent = Sent(storage)
        _adjust(storage, shop, a, -1)
        assert sent.kinds() == ["SAVEPO", "UPDATE", "INSERT"]
        assert sent.compiled_anew == []
        with pytest.raises(InsufficientStock):
            storage.inventory.adjust(
                "t",
                shop,
                [Adjustment(b, -1, Reason.sold), Adjustment(a, -9, Reason.sold)],
                actor="t",
            )
        transaction.commit()
    finally:
        transaction.rollback()
    levels = storage.inventory.list_levels("t", shop, item_ids=None, after=None, limit=10)
    assert [level.quantity for level in levels] == [8, 10]
