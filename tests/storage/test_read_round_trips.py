"""The busiest read costs one statement: no store check when levels are found, no BEGIN on
SQLite, no ping of a connection that answered a moment ago; lists of item ids of any length
are answered alike by the statements built once per shape."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event

from commerce.adapters.storage.sql import SqlStorage
from commerce.core import usecases
from commerce.core.errors import NotFound
from commerce.core.models import InventoryLevel
from commerce.core.pagination import Page, PageRequest
from tests.storage.stock import stocked_store


@pytest.fixture
def storage(sql_storage_each: SqlStorage) -> SqlStorage:
    return sql_storage_each


class Statements:
    """Counts the statements sent and the pings made on ``storage``'s engine."""

    def __init__(self, storage: SqlStorage, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: list[str] = []
        self.pings = 0
        engine = storage.engine
        event.listen(engine, "before_cursor_execute", self._record)
        dialect = engine.dialect
        ping = dialect.do_ping

        def counted_ping(dbapi_connection: Any) -> bool:
            self.pings += 1
            return ping(dbapi_connection)

        monkeypatch.setattr(dialect, "do_ping", counted_ping)

    def _record(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.sent.append(statement)


def test_a_read_that_finds_levels_is_one_statement(
    storage: SqlStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop, ids = stocked_store(storage, 6, every=2)

    def read() -> Page[InventoryLevel]:
        return usecases.list_store_inventory(
            storage.catalogue, storage.inventory, "t", shop, PageRequest(limit=10), ids[:4]
        )

    read()  # the pool's connection has answered just now
    counted = Statements(storage, monkeypatch)
    page = read()
    assert [level.item_id for level in page.rows] == [ids[0], ids[2]]
    assert len(counted.sent) == 1, counted.sent
    assert counted.sent[0].lstrip().upper().startswith("SELECT")
    assert counted.pings == 0


def test_an_empty_answer_checks_the_store_and_an_unknown_store_is_not_found(
    storage: SqlStorage,
) -> None:
    shop, ids = stocked_store(storage, 3, every=2)
    inventory, catalogue = storage.inventory, storage.catalogue
    page = usecases.list_store_inventory(
        catalogue, inventory, "t", shop, PageRequest(limit=10), [ids[1]]
    )
    assert page.rows == []  # the store is there; the item has no level
    with pytest.raises(NotFound, match="store"):
        usecases.list_store_inventory(
            catalogue, inventory, "t", shop + 999, PageRequest(limit=10), [ids[0]]
        )
    catalogue.create_tenant("u", "U")
    with pytest.raises(NotFound, match="store"):  # another tenant's store is no store
        usecases.list_store_inventory(catalogue, inventory, "u", shop, PageRequest(limit=10))
    with pytest.raises(NotFound, match="store"):
        usecases.get_level(catalogue, inventory, "t", shop + 999, ids[0])
    with pytest.raises(NotFound, match="level"):
        usecases.get_level(catalogue, inventory, "t", shop, ids[1])


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 9, 17, 1000, 1500])
def test_lists_of_any_length_find_exactly_their_levels(
    sqlite_storage: SqlStorage, count: int
) -> None:
    shop, ids = stocked_store(sqlite_storage, 12, every=2)
    # Ids with and without levels, unknown ones, and repeats.
    asked = [ids[n % len(ids)] for n in range(count)] + [10**12 + n for n in range(count // 3)]
    expected = sorted({i for i in asked if i in ids[::2]})
    levels = sqlite_storage.inventory.list_levels("t", shop, item_ids=asked, after=None, limit=2000)
    assert [level.item_id for level in levels] == expected
    if expected:
        past_first = sqlite_storage.inventory.list_levels(
            "t", shop, item_ids=asked, after=expected[0], limit=1
        )
        assert [level.item_id for level in past_first] == expected[1:2]


def test_a_connection_idle_for_a_while_is_pinged_before_use(
    pg_storage: SqlStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    from commerce.adapters.storage.sql import engine as engine_module

    pg_storage.catalogue.create_tenant("t", "T")
    counted = Statements(pg_storage, monkeypatch)
    pg_storage.catalogue.get_tenant("t")
    assert counted.pings == 0  # it answered a moment ago
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE", 0.0)
    pg_storage.catalogue.get_tenant("t")
    assert counted.pings == 1
