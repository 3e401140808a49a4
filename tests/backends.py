"""Every storage backend the contract suite runs on: one entry each, a new adapter is one more.

Besides ``memory``: a SQLite file, PostgreSQL (``postgresql+psycopg://``) and the CockroachDB
dialect on the same PostgreSQL server (``cockroachdb+psycopg://``). The server's URL comes
from ``COMMERCE_TEST_POSTGRES_URL``; when it cannot be reached those backends are skipped,
except under CI (``CI`` set) or ``COMMERCE_TEST_REQUIRE_POSTGRES=1``, where they fail.
``COMMERCE_TEST_DATABASE_URLS`` (comma-separated) adds more URLs, for instance a real
CockroachDB cluster; those always fail rather than skip when unreachable.

Each run makes databases of its own on those servers (``<database>_run_<run id>``, the run
id from ``COMMERCE_TEST_RUN_ID`` or made up), migrates them once, empties their tables before
each test and drops them at exit, so any number of runs can share one server.
"""

from __future__ import annotations

import atexit
import os
import re
import secrets
import shutil
import sys
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


RUN_ID = re.sub(
    r"[^a-z0-9_]",
    "_",
    (os.environ.get("COMMERCE_TEST_RUN_ID") or f"{os.getpid()}_{secrets.token_hex(3)}").lower(),
)[:24]
"""Names this run's databases: any number of runs (clones, CI jobs, xdist workers) can share
one server, since each migrates and empties only databases of its own."""


def run_database_name(base: str | None, dialect: str = "") -> str:
    """``<base>_<dialect>_run_<run id>``: one database per run and per SQL dialect."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    parts = (base or "commerce", dialect, "run", RUN_ID, worker)
    return "_".join(part for part in parts if part)


def _run_database(url: str) -> str:
    """A database of this run's own on ``url``'s server, created now and dropped at exit."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return url
    name = run_database_name(parsed.database, parsed.get_backend_name())
    admin = sa.create_engine(parsed, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()
    # Registered before the run's engines are, so it runs after they are disposed (LIFO).
    atexit.register(drop_database, url, name)
    return parsed.set(database=name).render_as_string(hide_password=False)


def drop_database(url: str, name: str) -> None:
    """Drop ``name`` on ``url``'s server, closing whatever connections a test left open."""
    admin = sa.create_engine(make_url(url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            version = str(conn.exec_driver_sql("SELECT version()").scalar())
            force = " CASCADE" if "CockroachDB" in version else " WITH (FORCE)"
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"{force}')
    except sa.exc.SQLAlchemyError as error:
        print(f"warning: could not drop test database {name}: {error}", file=sys.stderr)
    finally:
        admin.dispose()


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
                url = _run_database(self.url)
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
