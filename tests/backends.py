"""Every storage backend the contract suite runs on: one entry each, a new adapter is one more.

Besides ``memory``: a SQLite file, PostgreSQL (``postgresql+psycopg://``) and the CockroachDB
dialect on the same PostgreSQL server (``cockroachdb+psycopg://``). The server's URL comes
from ``COMMERCE_TEST_POSTGRES_URL``; when it cannot be reached those backends are skipped,
except under CI (``CI`` set) or ``COMMERCE_TEST_REQUIRE_POSTGRES=1``, where they fail.
``COMMERCE_TEST_DATABASE_URLS`` (comma-separated) adds more URLs, for instance a real
CockroachDB cluster; those always fail rather than skip when unreachable.

Each SQL database is migrated once per session; every test then starts from emptied tables.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NoReturn

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from commerce.adapters.storage.memory import memory_storage
from commerce.adapters.storage.sql import AlembicSchemaManager, SqlOptions, sql_storage
from commerce.adapters.storage.sql.engine import create_engine
from commerce.adapters.storage.sql.tables import metadata
from commerce.core.ports import Storage

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class Backend:
    id: str
    open: Callable[[], Storage]
    """A fresh, empty, migrated storage bundle; the suite closes it after the test."""


def postgres_required() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("COMMERCE_TEST_REQUIRE_POSTGRES") == "1"


def postgres_url() -> str:
    return os.environ.get("COMMERCE_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL


def with_driver(url: str, drivername: str) -> str:
    return make_url(url).set(drivername=drivername).render_as_string(hide_password=False)


def _per_worker(url: str) -> str:
    """Under pytest-xdist each worker gets its own database, as tests empty the tables."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    parsed = make_url(url)
    if not worker or parsed.get_backend_name() == "sqlite":
        return url
    name = f"{parsed.database}_{worker}"
    engine = sa.create_engine(parsed, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            ).first()
            if exists is None:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        engine.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


@dataclass
class SqlDatabase:
    """One migrated database, shared by the tests of a session and emptied before each."""

    url: str
    required: bool
    _engine: sa.Engine | None = field(default=None, repr=False)
    _failure: str | None = None

    def open(self) -> Storage:
        engine = self._ready()
        with engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())
        return sql_storage(engine, owns_engine=False)

    def _ready(self) -> sa.Engine:
        if self._failure is not None:
            self._give_up(self._failure)
        if self._engine is None:
            try:
                url = _per_worker(self.url)
                AlembicSchemaManager(url).upgrade()
                self._engine = create_engine(url, SqlOptions())
                atexit.register(self._engine.dispose)
            except Exception as error:
                self._failure = f"{make_url(self.url)!r} is not usable: {error}"
                self._give_up(self._failure)
        return self._engine

    def _give_up(self, reason: str) -> NoReturn:
        if self.required:
            pytest.fail(reason, pytrace=False)
        pytest.skip(f"{reason} (set COMMERCE_TEST_POSTGRES_URL, or CI=1 to make this fail)")


def _sqlite_file() -> SqlDatabase:
    folder = tempfile.mkdtemp(prefix="commerce-test-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return SqlDatabase(f"sqlite:///{folder}/commerce.db", required=True)


def _backend_id(url: str, taken: set[str]) -> str:
    base = make_url(url).get_backend_name()
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}{n}"
    taken.add(name)
    return name


def _sql_backends() -> list[Backend]:
    server = postgres_url()
    databases = [
        ("sqlite", _sqlite_file()),
        ("postgresql", SqlDatabase(with_driver(server, "postgresql+psycopg"), postgres_required())),
        (
            "cockroachdb",
            SqlDatabase(with_driver(server, "cockroachdb+psycopg"), postgres_required()),
        ),
    ]
    taken = {name for name, _ in databases}
    extra = os.environ.get("COMMERCE_TEST_DATABASE_URLS", "")
    for url in (u.strip() for u in extra.split(",")):
        if url:
            databases.append((f"{_backend_id(url, taken)}-extra", SqlDatabase(url, required=True)))
    return [Backend(name, database.open) for name, database in databases]


BACKENDS: list[Backend] = [Backend("memory", memory_storage), *_sql_backends()]


@contextmanager
def opened(backend: Backend) -> Iterator[Storage]:
    storage = backend.open()
    try:
        yield storage
    finally:
        storage.close()
