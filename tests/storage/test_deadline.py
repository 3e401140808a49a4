"""Every storage call on a server has a deadline: a database that accepts connections and then
says nothing costs a request a 503 within the deadline, never a thread, and the service
recovers by itself when the database answers again (issue 9, item 3)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy.engine import make_url

from commerce.adapters.auth.none import NoAuthentication
from commerce.adapters.storage.sql import SqlOptions, SqlStorage, sql_storage
from commerce.adapters.storage.sql.deadline import Watchdog
from commerce.adapters.storage.sql.engine import create_engine
from commerce.core.errors import Misconfigured, StorageUnavailable
from commerce.entrypoints.http.app import create_app
from tests.storage.live import Client, serving
from tests.storage.tcpproxy import TcpProxy

DEADLINE = 2.0
MARGIN = 4.0
"""Generous on purpose: the machine is small and noisy; the point is seconds, not minutes."""

HUNG = SqlOptions(
    connect_timeout=2, statement_timeout=1, pool_timeout=2, retry_attempts=2, deadline=DEADLINE
)


def _via_proxy(url: str, proxy: TcpProxy) -> str:
    return make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(False)


@pytest.fixture
def proxy(pg_storage: SqlStorage) -> Iterator[TcpProxy]:
    target = make_url(pg_storage.engine.url)
    proxy = TcpProxy((target.host or "127.0.0.1", target.port or 5432))
    proxy.start()
    yield proxy
    proxy.resume()
    proxy.cut()


@pytest.fixture
def hung_able(pg_storage: SqlStorage, proxy: TcpProxy) -> Iterator[SqlStorage]:
    """A storage that reaches ``pg_storage``'s database through ``proxy``."""
    url = _via_proxy(pg_storage.engine.url.render_as_string(False), proxy)
    storage = sql_storage(create_engine(url, HUNG), HUNG)
    storage.catalogue.create_tenant("t", "T")
    yield storage
    storage.close()


def test_the_deadline_defaults_to_a_little_above_the_statement_timeout() -> None:
    assert SqlOptions().call_deadline == 7.0
    assert SqlOptions(statement_timeout=3).call_deadline == 5.0
    assert SqlOptions(statement_timeout=0).call_deadline == 0.0
    assert SqlOptions.from_settings({"db_deadline": "7.5"}).call_deadline == 7.5
    assert SqlOptions.from_settings({"db_deadline": "0"}).call_deadline == 0.0
    with pytest.raises(Misconfigured, match="COMMERCE_DB_DEADLINE"):
        SqlOptions.from_settings({"db_deadline": "soon"})


def test_a_pool_size_of_zero_is_refused_with_what_is_accepted() -> None:
    with pytest.raises(Misconfigured, match=r"COMMERCE_DB_POOL_SIZE must be a positive integer"):
        SqlOptions.from_settings({"db_pool_size": "0"})


def test_a_call_on_a_database_that_stopped_answering_is_unavailable_within_the_deadline(
    hung_able: SqlStorage, proxy: TcpProxy
) -> None:
    assert hung_able.catalogue.get_tenant("t") is not None
    proxy.stall()
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="deadline") as caught:
        hung_able.catalogue.get_tenant("t")
    assert time.monotonic() - started < DEADLINE + MARGIN
    assert caught.value.retry_after >= 1
    proxy.resume()
    assert hung_able.catalogue.get_tenant("t") is not None


def test_a_statement_that_runs_past_the_deadline_is_cut_and_its_connection_discarded(
    pg_storage: SqlStorage,
) -> None:
    # The server would let it run for 30 s; the deadline cuts it after one.
    patient = SqlOptions(statement_timeout=30, deadline=1)
    storage = sql_storage(pg_storage.engine, patient, owns_engine=False)
    before = storage.tx.read(lambda conn: conn.exec_driver_sql("SELECT pg_backend_pid()").scalar())
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="deadline"):
        storage.tx.read(lambda conn: conn.exec_driver_sql("SELECT pg_sleep(20)").all())
    assert time.monotonic() - started < 1 + MARGIN
    after = storage.tx.read(lambda conn: conn.exec_driver_sql("SELECT pg_backend_pid()").scalar())
    assert after != before  # the cut connection was not handed out again


def test_a_call_that_ends_in_time_is_never_cut_later() -> None:
    watchdog = Watchdog()
    watch = watchdog.watch(0.05)
    watch.close()
    time.sleep(0.2)
    assert not watch.fired
    late = watchdog.watch(0.05)
    time.sleep(0.3)
    assert late.fired


def test_a_hung_database_gets_503s_within_the_deadline_health_stays_up_and_it_recovers(
    hung_able: SqlStorage, proxy: TcpProxy
) -> None:
    app = create_app(hung_able, [NoAuthentication("t")])
    threads = 4
    with serving(app, threads=threads) as address:
        probe = Client(address)
        assert probe.request("GET", "/chain").status == 200
        proxy.stall()

        def hung_request(_: int) -> tuple[int, str | None, float]:
            client = Client(address)
            started = time.monotonic()
            try:
                answer = client.request("GET", "/chain")
            finally:
                client.close()
            return answer.status, answer.headers.get("retry-after"), time.monotonic() - started

        # Fewer than the threads at first, so that health can be asked while they hang...
        with ThreadPoolExecutor(threads * 3) as pool:
            first = [pool.submit(hung_request, n) for n in range(threads - 1)]
            time.sleep(DEADLINE / 4)
            started = time.monotonic()
            health = Client(address).request("GET", "/healthz")
            health_took = time.monotonic() - started
            # ...then three times as many as there are threads: they get their turn only
            # because the first ones gave their threads back.
            more = [pool.submit(hung_request, n) for n in range(threads * 2)]
            answers = [f.result() for f in first + more]

        assert health.status == 200
        assert health_took < 1.0
        for status, retry_after, took in answers:
            assert status == 503
            assert retry_after is not None
            assert int(retry_after) >= 1
            assert took < 3 * DEADLINE + MARGIN  # queued behind at most two rounds of hung calls
        assert max(took for _, _, took in answers[: threads - 1]) < DEADLINE + MARGIN

        proxy.resume()
        # No restart: the same server, the same storage, answering again at once.
        for _ in range(threads * 2):
            client = Client(address)
            try:
                assert client.request("GET", "/chain").status == 200
            finally:
                client.close()


def test_the_busiest_read_on_a_database_that_stopped_answering_is_unavailable_in_time(
    hung_able: SqlStorage, proxy: TcpProxy
) -> None:
    # The levels read by item ids runs on the pool's connection alone (driver_reads.py):
    # the checkout arms the same watch.
    from commerce.core.models import NewChain, NewStore

    chain = hung_able.catalogue.create_chain("t", NewChain(name="C")).id
    shop = hung_able.catalogue.create_store("t", NewStore(chain_id=chain, name="S")).id

    def read() -> object:
        return hung_able.inventory.list_levels("t", shop, item_ids=[1, 2], after=None, limit=10)

    assert read() == []
    proxy.stall()
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="deadline"):
        read()
    assert time.monotonic() - started < DEADLINE + MARGIN
    proxy.resume()
    assert read() == []
