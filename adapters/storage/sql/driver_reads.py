"""The busiest reads run on the driver's cursor, with SQL that SQLAlchemy compiled once.

``Connection.execute`` does a great deal per call that a statement built once does not need
again: the compiled cache's lookup, an execution context, the parameters' processing, the
events, a ``CursorResult`` and its ``Row`` objects. For the 10-item levels read on SQLite
that was more than half of the service's time for the request (docs/performance.md). So for
statements built once (``level_statements.py``), the SQL, the order of its parameters and
each column's result processor are found once per dialect (``prepare``), and a read runs the
SQL on the DBAPI cursor of the connection SQLAlchemy checked out (``fetch_all``): the pool,
the deadline's watch, the isolation level and the retries of ``Transactor`` are all as
before. A DBAPI error is wrapped as SQLAlchemy wraps it, and a connection it finds lost is
invalidated, so the transaction helper sees what it saw before.

Whenever something listens to the statements (a ``before_cursor_execute`` or
``after_cursor_execute`` listener: a tracer's SQL instrumentation, a test counting round
trips), the read goes through ``Connection.execute`` instead, so that it sees every
statement; the answer is the same either way (tests/storage/test_driver_reads.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Dialect


@dataclass(frozen=True, slots=True)
class DriverStatement:
    """A statement compiled for one dialect, ready for a DBAPI cursor."""

    query: sa.Select[Any]
    sql: str
    names: tuple[str, ...] | None
    """The parameters' names in order for a positional paramstyle; ``None``: by name."""
    defaults: dict[str, Any]
    """Parameters with a value of their own, which a caller need not give."""
    binds: tuple[tuple[str, Callable[[Any], Any]], ...]
    """Parameters whose type converts the value on the way in."""
    converting: tuple[tuple[int, Callable[[Any], Any]], ...]
    """The columns whose type converts the driver's value on the way out, by position."""


def prepare(query: sa.Select[Any], dialect: Dialect) -> DriverStatement | None:
    """``query`` compiled for ``dialect``; ``None`` if it needs SQLAlchemy at each execution
    (a list expanded into the SQL, a value rendered into it)."""
    compiled = query.compile(dialect=dialect)
    if any(bind.expanding or bind.literal_execute for bind in compiled.binds.values()):
        return None
    if compiled.positional:
        names: tuple[str, ...] | None = tuple(compiled.positiontup or ())
    elif dialect.paramstyle in ("named", "pyformat"):
        names = None
    else:
        return None
    bind_names = compiled.bind_names
    binds = tuple(
        (name, processor)
        for bind, name in bind_names.items()
        if (processor := bind.type._cached_bind_processor(dialect)) is not None
    )
    # Values the statement carries itself (``OFFSET 0`` on SQLite, say).
    defaults = {
        name: bind.effective_value for bind, name in bind_names.items() if not bind.required
    }
    converting = tuple(
        (index, processor)
        for index, column in enumerate(query.selected_columns)
        if (processor := column.type._cached_result_processor(dialect, None)) is not None
    )
    return DriverStatement(query, compiled.string, names, defaults, binds, converting)


def listened(engine: sa.Engine) -> bool:
    """Whether anything listens to ``engine``'s statements (then they go through SQLAlchemy)."""
    dispatch = engine.dispatch
    return bool(dispatch.before_cursor_execute or dispatch.after_cursor_execute)


def fetch_pooled(
    engine: sa.Engine, statement: DriverStatement, params: dict[str, Any]
) -> Sequence[tuple[Any, ...]]:
    """``fetch_all`` on a connection from ``engine``'s pool with no ``Connection`` around it:
    for SQLite, where a read needs neither an isolation level nor a deadline (engine.py).
    Any error is the driver's own, unwrapped: the caller runs the read again the usual way,
    which gives the error its meaning (or succeeds)."""
    pooled = engine.raw_connection()
    try:
        cursor = pooled.cursor()
        try:
            cursor.execute(statement.sql, _arguments(statement, params))
            rows = cursor.fetchall()
        finally:
            cursor.close()
    finally:
        pooled.close()
    return _converted(statement, rows)


def fetch_pooled_server(
    pooled: Any, dialect: Dialect, statement: DriverStatement, params: dict[str, Any]
) -> Sequence[tuple[Any, ...]]:
    """``fetch_all`` on ``pooled``, a connection of a server's pool with no ``Connection``
    around it (``Transactor.read_pooled``): autocommit is set on the driver for the one
    statement, as the ``AUTOCOMMIT`` isolation level of a read sets it, and unset before
    the connection goes back. A driver error is wrapped as ``fetch_all`` wraps it; a lost
    connection is invalidated."""
    dbapi_connection = pooled.dbapi_connection
    arguments = _arguments(statement, params)
    cursor = None
    try:
        dbapi_connection.autocommit = True
        try:
            cursor = dbapi_connection.cursor()
            cursor.execute(statement.sql, arguments)
            rows = cursor.fetchall()
        finally:
            if cursor is not None:
                cursor.close()
            dbapi_connection.autocommit = False
    except dialect.loaded_dbapi.Error as error:
        lost = dialect.is_disconnect(error, dbapi_connection, cursor)
        if lost and pooled.is_valid:
            pooled.invalidate(error)
        raise _instance(dialect, error, statement, arguments, lost) from error
    return _converted(statement, rows)


def fetch_all(
    conn: sa.Connection, statement: DriverStatement, params: dict[str, Any]
) -> Sequence[tuple[Any, ...]]:
    """The rows of ``statement`` with ``params``, each value converted as SQLAlchemy would."""
    dispatch = conn.dispatch
    if dispatch.before_cursor_execute or dispatch.after_cursor_execute:
        return [tuple(row) for row in conn.execute(statement.query, params).all()]
    arguments = _arguments(statement, params)
    dbapi_connection = conn.connection.dbapi_connection
    assert dbapi_connection is not None  # a checked-out connection has one
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(statement.sql, arguments)
        rows = cursor.fetchall()
    except conn.dialect.loaded_dbapi.Error as error:
        raise _wrapped(conn, error, statement, arguments, cursor) from error
    finally:
        cursor.close()
    return _converted(statement, rows)


def _arguments(statement: DriverStatement, params: dict[str, Any]) -> Any:
    """``params`` as the driver takes them: defaults added, converted, in order if positional."""
    if statement.defaults:
        params = {**statement.defaults, **params}
    if statement.binds:
        params = dict(params)
        for name, processor in statement.binds:
            if name in params:
                params[name] = processor(params[name])
    names = statement.names
    return params if names is None else tuple(params[name] for name in names)


def _converted(
    statement: DriverStatement, rows: Sequence[tuple[Any, ...]]
) -> Sequence[tuple[Any, ...]]:
    """Each row's values converted as the columns' types convert them on the way out."""
    converting = statement.converting
    if not converting:
        return rows
    converted = []
    for row in rows:
        values = list(row)
        for index, convert in converting:
            values[index] = convert(values[index])
        converted.append(tuple(values))
    return converted


def _wrapped(
    conn: sa.Connection,
    error: Any,
    statement: DriverStatement,
    arguments: Any,
    cursor: Any,
) -> exc.DBAPIError:
    """``error`` as ``Connection.execute`` would have raised it: a ``DBAPIError`` whose
    ``connection_invalidated`` says whether the connection was lost (and then it is
    invalidated, so the pool never hands it out again)."""
    dialect = conn.dialect
    lost = dialect.is_disconnect(error, conn.connection.dbapi_connection, cursor)
    if lost and not conn.invalidated:
        conn.invalidate(error)
    return _instance(dialect, error, statement, arguments, lost)


def _instance(
    dialect: Dialect, error: Any, statement: DriverStatement, arguments: Any, lost: bool
) -> exc.DBAPIError:
    wrapped = exc.DBAPIError.instance(
        statement.sql,
        arguments,
        error,
        dialect.loaded_dbapi.Error,
        connection_invalidated=lost,
        dialect=dialect,
    )
    assert isinstance(wrapped, exc.DBAPIError)  # the driver's error is always a DBAPI one
    return wrapped
