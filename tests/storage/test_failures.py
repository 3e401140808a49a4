"""A database that is down, hung or misnamed gives ``StorageUnavailable`` or ``Misconfigured``,
never a driver error or a hang, and the same storage works again once the database is back."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy.engine import make_url

from commerce.adapters.storage.sql import SqlOptions, SqlStorage, open_sql_storage, sql_storage
from commerce.adapters.storage.sql.engine import create_engine
from commerce.core.errors import Misconfigured, StorageUnavailable
from commerce.core.models import NewChain, NewItem, NewStore
from tests.storage.server import kill_pooled_connection
from tests.storage.tcpproxy import Blackhole, TcpProxy

FAST = SqlOptions(connect_timeout=2, statement_timeout=1, pool_timeout=2, retry_attempts=2)


def _via_port(url: str, port: int) -> str:
    return make_url(url).set(host="127.0.0.1", port=port).render_as_string(False)


@pytest.fixture
def proxy(pg_url: str) -> Iterator[TcpProxy]:
    target = make_url(pg_url)
    proxy = TcpProxy((target.host or "127.0.0.1", target.port or 5432))
    proxy.start()
    yield proxy
    proxy.cut()


def test_a_database_nobody_listens_on_is_unavailable_not_an_error(pg_url: str) -> None:
    blackhole = Blackhole()
    port = blackhole.port
    blackhole.close()
    storage = sql_storage(create_engine(_via_port(pg_url, port), FAST), FAST)
    try:
        with pytest.raises(StorageUnavailable, match="cannot be reached"):
            storage.check()
        with pytest.raises(StorageUnavailable):
            storage.catalogue.list_chains("t", after=None, limit=10)
        with pytest.raises(StorageUnavailable):
            storage.catalogue.create_tenant("t", "T")
    finally:
        storage.close()


def test_a_server_that_accepts_but_never_answers_times_out_as_unavailable(pg_url: str) -> None:
    blackhole = Blackhole()
    storage = sql_storage(create_engine(_via_port(pg_url, blackhole.port), FAST), FAST)
    try:
        with pytest.raises(StorageUnavailable):
            storage.check()
    finally:
        storage.close()
        blackhole.close()


def test_a_statement_stuck_behind_a_lock_is_cancelled_by_the_statement_timeout(
    pg_storage: SqlStorage,
) -> None:
    catalogue, inventory = pg_storage.catalogue, pg_storage.inventory
    catalogue.create_tenant("t", "T")
    chain = catalogue.create_chain("t", NewChain(name="C"))
    shop = catalogue.create_store("t", NewStore(chain_id=chain.id, name="S"))
    item = catalogue.create_item("t", NewItem(sku="A", name="A", cost=Decimal("1.00")))
    inventory.set_quantity("t", shop.id, item.id, 1, actor="test")
    impatient = sql_storage(
        create_engine(str(pg_storage.engine.url.render_as_string(False)), FAST), FAST
    )
    with pg_storage.engine.connect() as holder:
        holder.exec_driver_sql("SELECT * FROM inventory_levels FOR UPDATE")
        try:
            with pytest.raises(StorageUnavailable, match="did not answer in time"):
                impatient.inventory.set_quantity("t", shop.id, item.id, 2, actor="test")
        finally:
            holder.rollback()
            impatient.close()
    assert inventory.list_levels("t", shop.id, item_ids=None, after=None, limit=5)[0].quantity == 1


def test_the_storage_recovers_without_a_restart_when_the_database_comes_back(
    pg_storage: SqlStorage, proxy: TcpProxy
) -> None:
    url = _via_port(pg_storage.engine.url.render_as_string(False), proxy.port)
    storage = sql_storage(create_engine(url, FAST), FAST)
    try:
        storage.catalogue.create_tenant("t", "T")
        storage.check()
        proxy.cut()
        with pytest.raises(StorageUnavailable):
            storage.check()
        with pytest.raises(StorageUnavailable):
            storage.catalogue.get_tenant("t")
        proxy.start()
        storage.check()
        assert storage.catalogue.get_tenant("t") is not None
    finally:
        storage.close()


def test_pooled_connections_killed_by_the_server_are_replaced_unnoticed(
    pg_storage: SqlStorage,
) -> None:
    pg_storage.catalogue.create_tenant("t", "T")
    kill_pooled_connection(pg_storage.engine)
    assert pg_storage.catalogue.get_tenant("t") is not None


def test_an_sqlite_file_that_cannot_be_opened_is_unavailable(tmp_path: object) -> None:
    storage = open_sql_storage(f"sqlite:///{tmp_path}/no/such/dir/commerce.db")
    try:
        with pytest.raises(StorageUnavailable, match="cannot be reached"):
            storage.check()
    finally:
        storage.close()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://user@localhost:notaport/db",
        "postgresql+nosuchdriver://user@localhost/db",
        "sqlite:////tmp/x.db?check_same_thread=maybe&timeout=soon",
    ],
)
def test_a_url_that_cannot_work_is_misconfigured_with_one_line(url: str) -> None:
    with pytest.raises(Misconfigured) as caught:
        open_sql_storage(url).check()
    assert "\n" not in caught.value.detail


def test_the_password_never_appears_in_an_error(pg_url: str) -> None:
    url = make_url(_via_port(pg_url, 1)).set(password="s3cret-pw").render_as_string(False)
    storage = open_sql_storage(url, {"db_connect_timeout": "2"})
    try:
        with pytest.raises(StorageUnavailable) as caught:
            storage.check()
    finally:
        storage.close()
    assert "s3cret-pw" not in caught.value.detail


def test_a_bad_timeout_setting_is_misconfigured_and_names_the_variable() -> None:
    with pytest.raises(Misconfigured, match="COMMERCE_DB_STATEMENT_TIMEOUT"):
        SqlOptions.from_settings({"db_statement_timeout": "soon"})
    assert SqlOptions.from_settings({"db_statement_timeout": "2.5"}).statement_timeout == 2.5


def test_a_thread_waiting_for_a_pooled_connection_gives_up_as_unavailable(
    pg_storage: SqlStorage,
) -> None:
    tiny = SqlOptions(pool_size=1, max_overflow=0, pool_timeout=0.2)
    storage = sql_storage(create_engine(pg_storage.engine.url.render_as_string(False), tiny), tiny)
    try:
        with storage.engine.connect(), pytest.raises(StorageUnavailable, match="pool"):
            storage.catalogue.list_tenants()
    finally:
        storage.close()


def test_a_postgres_url_opens_postgresql_as_hosting_providers_spell_it(
    pg_storage: SqlStorage,
) -> None:
    pg_storage.catalogue.create_tenant("t", "T")
    url = pg_storage.engine.url.set(drivername="postgres").render_as_string(False)
    assert url.startswith("postgres://")
    storage = open_sql_storage(url)
    try:
        storage.check()
        assert storage.engine.url.drivername == "postgresql+psycopg"
        assert [t.id for t in storage.catalogue.list_tenants()] == ["t"]
    finally:
        storage.close()
