"""Fixtures for SQL-specific tests: a PostgreSQL server (skipped or failed as in tests/backends.py),
throwaway databases on it, and migrated SQLite files."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from commerce.adapters.storage.sql import AlembicSchemaManager, SqlOptions, SqlStorage, sql_storage
from commerce.adapters.storage.sql.engine import create_engine
from tests.backends import postgres_required, postgres_url, with_driver

_reachable: dict[str, str | None] = {}


def _probe(url: str) -> str | None:
    if url not in _reachable:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            _reachable[url] = None
        except Exception as error:
            _reachable[url] = str(error).splitlines()[0]
        finally:
            engine.dispose()
    return _reachable[url]


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The PostgreSQL server's URL (psycopg 3 driver), once it has answered."""
    url = with_driver(postgres_url(), "postgresql+psycopg")
    problem = _probe(url)
    if problem is not None:
        message = f"PostgreSQL at {make_url(url)!r} cannot be reached: {problem}"
        if postgres_required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return url


@pytest.fixture
def new_pg_database(pg_url: str) -> Iterator[Callable[[str], str]]:
    """Makes empty databases on the server, each dropped after the test; takes a driver name."""
    made: list[str] = []
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")

    def make(drivername: str = "postgresql+psycopg") -> str:
        name = f"commerce_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        made.append(name)
        return make_url(pg_url).set(drivername=drivername, database=name).render_as_string(False)

    yield make
    with admin.connect() as conn:
        for name in made:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_storage_each(request: pytest.FixtureRequest) -> SqlStorage:
    """A migrated storage on SQLite, then one on PostgreSQL (``sqlite_storage``, ``pg_storage``)."""
    fixture = "sqlite_storage" if request.param == "sqlite" else "pg_storage"
    storage: SqlStorage = request.getfixturevalue(fixture)
    return storage


@pytest.fixture
def pg_storage(new_pg_database: Callable[[str], str]) -> Iterator[SqlStorage]:
    """A migrated storage on a database of its own."""
    url = new_pg_database("postgresql+psycopg")
    AlembicSchemaManager(url).upgrade()
    storage = sql_storage(create_engine(url, SqlOptions()))
    yield storage
    storage.close()


@pytest.fixture
def sqlite_url(tmp_path: object) -> str:
    return f"sqlite:///{tmp_path}/commerce.db"


@pytest.fixture
def sqlite_storage(sqlite_url: str) -> Iterator[SqlStorage]:
    AlembicSchemaManager(sqlite_url).upgrade()
    storage = sql_storage(create_engine(sqlite_url, SqlOptions()))
    yield storage
    storage.close()
