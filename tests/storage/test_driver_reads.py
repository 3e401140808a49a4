"""The busiest read runs on the driver's cursor (``driver_reads.py``): the same rows as
SQLAlchemy's ``Connection.execute`` gives, errors wrapped as it wraps them, and the usual
path whenever something listens to the statements."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from commerce.adapters.storage.sql import SqlStorage
from commerce.adapters.storage.sql.driver_reads import fetch_all, prepare
from commerce.adapters.storage.sql.level_statements import ITEM_PARAMS, levels_query
from commerce.adapters.storage.sql.tables import UtcDateTime
from tests.storage.server import backend_pid, kill_pooled_connection
from tests.storage.stock import stocked_store


@pytest.fixture
def storage(sql_storage_each: SqlStorage) -> SqlStorage:
    return sql_storage_each


def _params(shop: int, wanted: list[int], size: int, **more: Any) -> dict[str, Any]:
    padded = wanted + wanted[-1:] * (size - len(wanted))
    return {
        "store_id": shop,
        "tenant": "t",
        "limit": 100,
        **dict(zip(ITEM_PARAMS, padded, strict=False)),
        **more,
    }


@pytest.mark.parametrize(("paged", "size", "count"), [(False, 4, 3), (False, 16, 10), (True, 8, 7)])
def test_the_driver_gives_the_rows_sqlalchemy_gives(
    storage: SqlStorage, paged: bool, size: int, count: int
) -> None:
    shop, ids = stocked_store(storage, 12)
    query = levels_query(paged, size)
    params = _params(shop, ids[:count], size, **({"after": ids[1]} if paged else {}))
    prepared = prepare(query, storage.engine.dialect)
    assert prepared is not None
    with storage.engine.connect() as conn:
        ours = fetch_all(conn, prepared, params)
        theirs = [tuple(row) for row in conn.execute(query, params).all()]
    assert ours == theirs
    assert len(ours) == (count - 2 if paged else count)
    for store_id, item_id, quantity, updated_at in ours:
        assert type(store_id) is int
        assert type(item_id) is int
        assert type(quantity) is int
        assert updated_at.tzinfo is not None
        assert updated_at.utcoffset() == UTC.utcoffset(None)


def test_a_statement_with_an_expanded_list_is_left_to_sqlalchemy(storage: SqlStorage) -> None:
    assert prepare(levels_query(False, -1), storage.engine.dialect) is None


def test_the_read_skips_connection_execute_unless_something_listens(
    storage: SqlStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop, ids = stocked_store(storage, 5)
    executed: list[object] = []
    original = sa.Connection.execute

    def counting(self: sa.Connection, statement: Any, *args: Any, **kwargs: Any) -> Any:
        executed.append(statement)
        return original(self, statement, *args, **kwargs)

    monkeypatch.setattr(sa.Connection, "execute", counting)

    def read() -> list[int]:
        levels = storage.inventory.list_levels("t", shop, item_ids=ids[:3], after=None, limit=10)
        return [level.quantity for level in levels]

    assert read() == [1, 2, 3]
    assert executed == []  # the driver's cursor ran it
    seen: list[str] = []

    def listener(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(storage.engine, "before_cursor_execute", listener)
    try:
        assert read() == [1, 2, 3]
    finally:
        event.remove(storage.engine, "before_cursor_execute", listener)
    assert len(executed) == 1
    assert len(seen) == 1


def test_a_driver_error_is_wrapped_as_sqlalchemy_wraps_it(storage: SqlStorage) -> None:
    prepared = prepare(levels_query(False, 4), storage.engine.dialect)
    assert prepared is not None
    with storage.engine.connect() as conn, pytest.raises(sa.exc.DBAPIError) as caught:
        # A value the driver cannot send: it refuses it with an error of its own.
        fetch_all(conn, prepared, {**_params(1, [1], 4), "tenant": object()})
    assert not caught.value.connection_invalidated
    assert isinstance(caught.value.orig, storage.engine.dialect.loaded_dbapi.Error)


def test_a_connection_the_server_dropped_is_replaced_and_the_read_answers(
    pg_storage: SqlStorage,
) -> None:
    shop, ids = stocked_store(pg_storage, 3)

    def read() -> list[int]:
        levels = pg_storage.inventory.list_levels("t", shop, item_ids=ids, after=None, limit=10)
        return [level.quantity for level in levels]

    assert read() == [1, 2, 3]
    pid = kill_pooled_connection(pg_storage.engine)
    assert read() == [1, 2, 3]  # run again on a fresh connection, unnoticed
    assert backend_pid(pg_storage.engine) != pid


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),  # no microseconds: stored as .000000
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))),  # given in +02:00
    ],
)
def test_a_timestamp_comes_back_as_the_same_moment_in_utc(
    sqlite_storage: SqlStorage, moment: datetime
) -> None:
    table = sa.Table("moments", sa.MetaData(), sa.Column("at", UtcDateTime()))
    with sqlite_storage.engine.begin() as conn:
        table.create(conn)
        conn.execute(table.insert(), {"at": moment})
        conn.exec_driver_sql("INSERT INTO moments VALUES ('2026-01-02 03:04:05')")  # no fraction
        back = conn.execute(sa.select(table.c.at)).scalars().all()
    assert back[0] == moment
    assert back[0].utcoffset() == timedelta(0)
    assert back[1] == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[sa.Engine]:
    """Every SQLAlchemy ``Connection`` made from now on, by its engine."""
    made: list[sa.Engine] = []
    original = sa.Engine.connect

    def counting(self: sa.Engine) -> sa.Connection:
        made.append(self)
        return original(self)

    monkeypatch.setattr(sa.Engine, "connect", counting)
    return made


def test_on_sqlite_the_read_takes_the_pools_connection_alone(
    sqlite_storage: SqlStorage, connects: list[sa.Engine]
) -> None:
    shop, ids = stocked_store(sqlite_storage, 4)
    connects.clear()  # those of the stocking
    levels = sqlite_storage.inventory.list_levels("t", shop, item_ids=ids, after=None, limit=10)
    assert [level.quantity for level in levels] == [1, 2, 3, 4]
    assert connects == []  # no SQLAlchemy Connection: the pool's connection, on its cursor


def test_a_failure_on_the_pools_connection_is_read_again_the_usual_way(
    sqlite_storage: SqlStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from commerce.adapters.storage.sql import common

    shop, ids = stocked_store(sqlite_storage, 3)
    failures: list[object] = []

    def failing(*args: Any) -> Any:
        failures.append(args)
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(common, "fetch_pooled", failing)
    levels = sqlite_storage.inventory.list_levels("t", shop, item_ids=ids, after=None, limit=10)
    assert [level.quantity for level in levels] == [1, 2, 3]
    assert len(failures) == 1


def test_on_a_server_the_read_takes_the_pools_connection_alone_and_leaves_it_as_it_was(
    pg_storage: SqlStorage, connects: list[sa.Engine]
) -> None:
    shop, ids = stocked_store(pg_storage, 4)
    pid = backend_pid(pg_storage.engine)
    autocommit: list[bool] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        autocommit.append(conn.connection.dbapi_connection.autocommit)

    connects.clear()  # those of the stocking
    levels = pg_storage.inventory.list_levels("t", shop, item_ids=ids, after=None, limit=10)
    assert [level.quantity for level in levels] == [1, 2, 3, 4]
    assert connects == []  # no SQLAlchemy Connection: the pool's connection, on its cursor
    # The same pooled connection (one was ever opened) is back as the pool keeps it:
    # autocommit off, no transaction left open.
    raw = pg_storage.engine.raw_connection()
    try:
        dbapi = raw.dbapi_connection
        assert dbapi is not None
        assert dbapi.info.backend_pid == pid
        assert dbapi.autocommit is False
        assert dbapi.info.transaction_status == dbapi.info.transaction_status.IDLE
    finally:
        raw.close()
    # With a listener, the usual way: the listener sees the read run in autocommit.
    event.listen(pg_storage.engine, "before_cursor_execute", seen)
    try:
        pg_storage.inventory.list_levels("t", shop, item_ids=ids, after=None, limit=10)
    finally:
        event.remove(pg_storage.engine, "before_cursor_execute", seen)
    assert autocommit == [True]


def test_a_driver_error_on_a_servers_pooled_connection_is_wrapped_and_leaves_it_usable(
    pg_storage: SqlStorage,
) -> None:
    from commerce.adapters.storage.sql.driver_reads import fetch_pooled_server

    dialect = pg_storage.engine.dialect
    prepared = prepare(levels_query(False, 4), dialect)
    assert prepared is not None
    raw = pg_storage.engine.raw_connection()
    try:
        with pytest.raises(sa.exc.DBAPIError) as caught:
            # A value the driver cannot send: it refuses it with an error of its own.
            fetch_pooled_server(raw, dialect, prepared, {**_params(1, [1], 4), "tenant": object()})
        assert not caught.value.connection_invalidated
        assert raw.is_valid
        dbapi = raw.dbapi_connection
        assert dbapi is not None
        assert dbapi.autocommit is False
        assert fetch_pooled_server(raw, dialect, prepared, _params(1, [1], 4)) == []
    finally:
        raw.close()
