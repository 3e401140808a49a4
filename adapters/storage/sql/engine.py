"""Engines for every SQL URL the plugin takes, their timeouts, and driver errors in core's terms."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import StaticPool

from commerce.adapters.storage.sql.deadline import DeadlinePassed, current_watch
from commerce.core.errors import Misconfigured, StorageUnavailable

SCHEMES = (
    "sqlite",
    "postgresql",
    "postgresql+psycopg",
    "postgres",
    "cockroachdb",
    "cockroachdb+psycopg",
)
"""The URL schemes this plugin opens; ``postgresql://``, ``postgres://`` (what many hosting
providers hand out) and ``cockroachdb://`` mean psycopg 3."""

UPGRADE_HINT = "run `commerce db upgrade`"

# SQLSTATEs after which the whole transaction may simply run again: serialization failure
# (CockroachDB's everyday answer to contention, PostgreSQL's at SERIALIZABLE) and deadlock.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
# The database is there but cannot serve now: shutting down, out of resources, too slow.
UNAVAILABLE_SQLSTATES = frozenset({"57014", "57P01", "57P02", "57P03", "55P03", "53300"})
UNDEFINED_TABLE = "42P01"

SQLITE_LATER = "commerce_later"
"""SQLite function ``commerce_later(previous, now)``: see ``sqlite_later``."""

DEADLINE_MARGIN = 2.0
"""Seconds the default deadline leaves past ``statement_timeout``: the server's own timeout
answers first when the server is alive; the deadline is for when it is not."""

_SQLITE_TIMESTAMP = "%Y-%m-%d %H:%M:%S.%f"
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class SqlOptions:
    """Timeouts, pool and retry settings, from ``COMMERCE_DB_*`` variables (see docs/storage.md)."""

    connect_timeout: float = 5.0
    statement_timeout: float = 5.0
    pool_size: int = 10
    max_overflow: int = 10
    pool_timeout: float = 5.0
    retry_attempts: int = 6
    retry_base_delay: float = 0.01
    retry_max_delay: float = 0.5
    deadline: float | None = None
    """Seconds one storage call may take on a server before its connection is cut; ``None``:
    ``statement_timeout`` + 2 s (no deadline when that is 0); 0: no deadline."""

    @classmethod
    def from_settings(cls, settings: Mapping[str, str]) -> SqlOptions:
        values: dict[str, Any] = {}
        for name, field in cls.__dataclass_fields__.items():
            raw = settings.get(f"db_{name}")
            if raw is None or raw == "":
                continue
            kind = int if field.type == "int" else float
            try:
                value = kind(raw)
            except ValueError:
                value = -1
            # NaN and infinity are no number of seconds either.
            if not (1 if name in _AT_LEAST_ONE else 0) <= value < float("inf"):
                accepted = (
                    "a positive integer"
                    if name in _AT_LEAST_ONE
                    else f"a non-negative {'integer' if kind is int else 'number'}"
                )
                raise Misconfigured(f"COMMERCE_DB_{name.upper()} must be {accepted}, got {raw!r}")
            values[name] = value
        return cls(**values)

    @property
    def call_deadline(self) -> float:
        """The deadline that applies: ``deadline``, or ``statement_timeout`` + 2 s; 0: none."""
        if self.deadline is not None:
            return self.deadline
        return self.statement_timeout + DEADLINE_MARGIN if self.statement_timeout > 0 else 0.0


_AT_LEAST_ONE = frozenset({"retry_attempts", "pool_size"})


def normalize_url(url: str) -> URL:
    """The SQLAlchemy URL for ``url``: psycopg 3 for the PostgreSQL family (``postgres://``
    included, which SQLAlchemy no longer takes), absolute SQLite paths.

    A relative SQLite path is taken from the current directory when the store opens, so a
    later change of directory cannot point the service at another file.
    """
    try:
        parsed = make_url(url)
    except (exc.ArgumentError, ValueError) as e:
        raise Misconfigured(f"not a valid database URL: {_safe(url)} ({e})") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername == "cockroachdb":
        parsed = parsed.set(drivername="cockroachdb+psycopg")
    elif parsed.drivername == "sqlite":
        path = parsed.database
        if path and path != ":memory:" and not path.startswith("file:"):
            parsed = parsed.set(database=os.path.abspath(path))
    try:
        _ = parsed.port
    except ValueError as e:
        raise Misconfigured(f"not a valid database URL: {_safe(url)} ({e})") from None
    return parsed


def _safe(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1] if "@" in url else url


def display(url: URL) -> str:
    """The URL as it may appear in logs and messages: never the password."""
    return url.render_as_string(hide_password=True)


def create_engine(url: str, options: SqlOptions) -> Engine:
    """An engine that never waits forever and checks a pooled connection before using it."""
    parsed = normalize_url(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            return _sqlite_engine(parsed, options)
        return _postgres_engine(parsed, options)
    except exc.NoSuchModuleError as e:
        raise Misconfigured(f"no driver for {display(parsed)}: {e}") from None
    except (exc.ArgumentError, TypeError, ValueError) as e:
        raise Misconfigured(f"cannot use {display(parsed)}: {e}") from None


def _postgres_engine(url: URL, options: SqlOptions) -> Engine:
    statement_ms = int(options.statement_timeout * 1000)
    connect_args: dict[str, Any] = {
        # libpq counts whole seconds and treats anything below 2 as 2.
        "connect_timeout": max(2, round(options.connect_timeout)),
        "application_name": "commerce",
        # A server that stops answering mid-query is given up on, not waited for forever.
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "tcp_user_timeout": statement_ms + int(options.connect_timeout * 1000),
    }
    if statement_ms:
        connect_args["options"] = f"-c statement_timeout={statement_ms}"
    engine = sa.create_engine(
        url,
        connect_args=connect_args,
        # The ping is ours (``_on_checkout``): SQLAlchemy's runs before any checkout event, so
        # no deadline could cover it, and a ping to a hung server never returns.
        pool_pre_ping=False,
        pool_size=options.pool_size,
        max_overflow=options.max_overflow,
        pool_timeout=options.pool_timeout,
        pool_recycle=1800,
    )
    dialect = engine.dialect

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: object) -> None:
        # The storage call's watch (set by the Transactor) covers the connection from here
        # until it is back in the pool, the ping and the reset on return included.
        watch = current_watch.get()
        if watch is not None:
            if watch.fired:
                raise DeadlinePassed
            watch.arm(dbapi_connection)
            record.info[_WATCH] = watch
        if not record.info.get(_USED):
            record.info[_USED] = True  # a fresh connection: it has just answered
            return
        returned = record.info.get(_RETURNED)
        if returned is not None and time.monotonic() - returned < PING_AFTER_IDLE:
            # It answered a moment ago: a ping would be a round trip per storage call, as
            # much as a cached read's query. Should the server have dropped it meanwhile, a
            # read is tried again on a fresh connection (``Transactor``), a write fails 503.
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if watch is not None and watch.fired:
                raise DeadlinePassed from error
            if dialect.is_disconnect(error, dbapi_connection, None):
                # As SQLAlchemy's pre-ping does: this and every older pooled connection
                # go, and the pool connects afresh.
                raise exc.InvalidatePoolError() from error
            raise

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED] = time.monotonic()
        watch = record.info.pop(_WATCH, None)
        if watch is not None:
            watch.release(dbapi_connection)

    return engine


_USED = "commerce_used"
_WATCH = "commerce_watch"
_RETURNED = "commerce_returned"

PING_AFTER_IDLE = 2.0
"""Seconds a pooled server connection may have been idle and still be used without a ping."""


def read_committed_available(conn: sa.Connection) -> bool:
    """Whether a transaction that asks for READ COMMITTED runs at it.

    PostgreSQL always does. CockroachDB does only when the cluster setting
    ``sql.txn.read_committed_isolation.enabled`` is on; otherwise it quietly runs the
    transaction at SERIALIZABLE, so the answer is asked of the server, not assumed.
    """
    conn.execution_options(isolation_level="READ COMMITTED")
    with conn.begin():
        level = conn.exec_driver_sql("SHOW transaction_isolation").scalar()
    return str(level).strip().lower() == "read committed"


def _sqlite_engine(url: URL, options: SqlOptions) -> Engine:
    in_memory = url.database in (None, "", ":memory:")
    engine = sa.create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": options.statement_timeout},
        # An in-memory database lives as long as its one connection, so every thread shares it.
        poolclass=StaticPool if in_memory else None,
        # No pre-ping: a file on this machine has no peer that could have closed it, and the
        # ping was a statement per checkout, a third of a cached read's time.
        pool_pre_ping=False,
    )
    busy_ms = int(options.statement_timeout * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        # The driver's own transaction handling is switched off: ``_on_begin`` issues BEGIN,
        # so that writes can take the write lock up front (see there).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        dbapi_connection.create_function(SQLITE_LATER, 2, sqlite_later, deterministic=True)
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
        if not in_memory:
            # Readers no longer block the writer, nor the writer the readers.
            cursor.execute("PRAGMA journal_mode = WAL")
            # Every commit is on disk before it is acknowledged, power cut or not.
            cursor.execute("PRAGMA synchronous = FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # BEGIN IMMEDIATE takes the write lock before the first read, so two writers queue on
        # busy_timeout instead of one failing when it upgrades a read lock (SQLITE_BUSY).
        options = conn.get_execution_options()
        if options.get("commerce_read", False):
            # A read outside a request's transaction is one statement, which SQLite runs in
            # a read transaction of its own: a BEGIN (and ROLLBACK) would be a round trip
            # through SQLAlchemy and the driver for nothing, as autocommit is on a server.
            return
        write = options.get("commerce_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def sqlite_later(previous: str | None, now: str) -> str:
    """``now``, or one microsecond after ``previous`` if that is not earlier.

    PostgreSQL says ``GREATEST(now, previous + INTERVAL '1 microsecond')``; SQLite keeps
    timestamps as text (SQLAlchemy's fixed ``YYYY-MM-DD HH:MM:SS.ffffff``) and has no
    microsecond arithmetic, so the same rule is this function, registered on every
    connection. It keeps ``updated_at`` and the ledger's times strictly increasing per row
    even when the clock repeats a value or steps back.
    """
    if previous is None:
        return now
    later = datetime.fromisoformat(previous) + _TICK
    return max(now, later.strftime(_SQLITE_TIMESTAMP))


# -- errors ----------------------------------------------------------------------------


def sqlstate(error: BaseException) -> str | None:
    orig = getattr(error, "orig", error)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return str(code) if code else None


def is_retryable(error: BaseException) -> bool:
    """A failure after which the whole transaction can run again with no harm done."""
    if sqlstate(error) in RETRYABLE_SQLSTATES:
        return True
    orig = getattr(error, "orig", None)
    return isinstance(orig, sqlite3.OperationalError) and str(
        getattr(orig, "sqlite_errorname", "")
    ).startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))


def _first_line(error: BaseException) -> str:
    orig = getattr(error, "orig", None) or error
    text = " ".join(str(orig).split("\n", 1)[0].split())
    return text or type(orig).__name__


def _schema_missing(error: BaseException) -> bool:
    if sqlstate(error) == UNDEFINED_TABLE:
        return True
    orig = getattr(error, "orig", None)
    return isinstance(orig, sqlite3.OperationalError) and "no such table" in str(orig)


def translate(error: BaseException) -> StorageUnavailable | None:
    """The ``StorageUnavailable`` that ``error`` means, or ``None`` if it is not about availability.

    Integrity errors and the like are left to the caller, which knows which row it wrote.
    """
    if _schema_missing(error):
        return StorageUnavailable(f"the database has no schema yet: {UPGRADE_HINT}")
    code = sqlstate(error)
    if isinstance(error, exc.TimeoutError):
        return StorageUnavailable("no database connection was free in time (pool exhausted)")
    if code in UNAVAILABLE_SQLSTATES:
        return StorageUnavailable(f"the database did not answer in time: {_first_line(error)}")
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return StorageUnavailable(f"the database connection was lost: {_first_line(error)}")
    if isinstance(error, exc.OperationalError | exc.InterfaceError | exc.DisconnectionError):
        return StorageUnavailable(f"the database cannot be reached: {_first_line(error)}")
    if code is not None and code.startswith("08"):
        return StorageUnavailable(f"the database cannot be reached: {_first_line(error)}")
    return None
