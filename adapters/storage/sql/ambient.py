"""The request's transaction: one connection, one transaction, that every SQL port call of a
request with an ``Idempotency-Key`` joins, so its writes and its idempotency record commit
together (``IdempotencyRecords.begin_transaction``).

``Transactor.begin`` opens it and binds it to the current context (a ``ContextVar``: one
thread, one request). While it is bound, ``Transactor.write`` and ``read`` on the same engine
run their callback here instead of on a connection of their own, each inside a savepoint, so
that a call that fails (an ``InsufficientStock``, an integrity error that the caller
explains) undoes its own statements only, as its own transaction would have. There is no
retry loop and no isolation level of a call's own in here: the transaction's level was set
when it began, and a serialization failure or a lost connection dooms the whole transaction,
since the statements before the failing one cannot be replayed from here. The caller gets
``StorageUnavailable`` (503, ``Retry-After``), rolls back, and nothing was committed, so the
client's retry is safe.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc

from commerce.adapters.storage.sql.deadline import WATCHDOG, DeadlinePassed, Watch, current_watch
from commerce.adapters.storage.sql.engine import is_retryable, translate
from commerce.core.errors import StorageUnavailable
from commerce.core.events import LogEvent, event_log

T = TypeVar("T")

log = event_log(__name__)

_DB_ERRORS = (exc.DBAPIError, exc.TimeoutError, exc.DisconnectionError)

_SAVEPOINT = "SAVEPOINT commerce_call"
_UNDO = "ROLLBACK TO SAVEPOINT commerce_call"

_current: ContextVar[AmbientTransaction | None] = ContextVar(
    "commerce_ambient_transaction", default=None
)


def joined(engine: sa.Engine) -> AmbientTransaction | None:
    """The transaction bound to this context on ``engine``'s database, if there is one."""
    ambient = _current.get()
    return ambient if ambient is not None and ambient.engine is engine else None


class AmbientTransaction:
    """One open transaction on one checked-out connection; ``commit`` or ``rollback`` ends it.

    Each call through it (``run``), and its commit, has the deadline a call of its own would
    have: the watchdog (``deadline.py``) cuts the connection of a call that runs past it.
    """

    def __init__(
        self,
        engine: sa.Engine,
        conn: sa.Connection,
        transaction: sa.RootTransaction,
        deadline: float,
    ) -> None:
        self.engine = engine
        self._conn = conn
        self._transaction = transaction
        self._deadline = deadline
        self._doomed: str | None = None
        self._cut = False
        self._ended = False

    @classmethod
    def open(
        cls,
        engine: sa.Engine,
        options: Callable[[sa.Connection], dict[str, Any]],
        deadline: float,
    ) -> AmbientTransaction:
        """Check out a connection, BEGIN with the execution ``options`` it is given (the
        isolation level) and bind the transaction to this context."""
        if _current.get() is not None:
            raise RuntimeError("a transaction is already open in this context")
        watch = WATCHDOG.watch(deadline) if deadline > 0 else None
        # The pool's checkout (engine.py) arms the watch on the connection it hands out.
        token = current_watch.set(watch)
        try:
            conn = engine.connect()
            try:
                conn.execution_options(**options(conn))
                transaction = conn.begin()
            except BaseException:
                if watch is not None and watch.fired:
                    conn.invalidate()
                conn.close()
                raise
        except DeadlinePassed as error:
            raise _too_late(deadline) from error
        except _DB_ERRORS as error:
            if watch is not None and watch.fired:
                raise _too_late(deadline) from error
            unavailable = translate(error)
            if unavailable is not None:
                raise unavailable from error
            raise
        finally:
            current_watch.reset(token)
            if watch is not None:
                watch.close()
        ambient = cls(engine, conn, transaction, deadline)
        _current.set(ambient)
        return ambient

    # -- the calls that join it ----------------------------------------------------------
    def run(self, work: Callable[[sa.Connection], T]) -> T:
        """Run one port call's ``work`` in a savepoint of this transaction, once."""
        if self._ended:
            raise RuntimeError("the transaction has ended")
        if self._doomed is not None:
            raise StorageUnavailable(self._doomed, retry_after=1)
        watch = self._watch()
        try:
            return self._in_savepoint(work)
        except _DB_ERRORS as error:
            failure = self._doom(error, watch)
            if failure is None:
                raise
            raise failure from error
        finally:
            if watch is not None:
                watch.close()

    # -- ending it -----------------------------------------------------------------------
    def commit(self) -> None:
        """Commit; ``StorageUnavailable`` if the transaction is doomed or the commit fails."""
        if self._ended:
            raise RuntimeError("the transaction has ended")
        watch = None
        try:
            if self._doomed is not None:
                raise StorageUnavailable(self._doomed, retry_after=1)
            watch = self._watch()
            try:
                self._transaction.commit()
            except _DB_ERRORS as error:
                failure = self._doom(error, watch)
                if failure is None:
                    raise
                raise failure from error
        finally:
            if watch is not None:
                watch.close()
            self._end()

    def rollback(self) -> None:
        """Roll back and end; a connection that cannot even do that is discarded."""
        if self._ended:
            return
        watch = self._watch()
        try:
            self._transaction.rollback()
        except Exception as error:
            log(
                LogEvent.STORAGE_UNAVAILABLE,
                "could not roll back a request's transaction: %s",
                type(error).__name__,
                error=type(error).__name__,
            )
            with contextlib.suppress(Exception):
                self._conn.invalidate()
        finally:
            if watch is not None:
                watch.close()
            self._end()

    # -- helpers -------------------------------------------------------------------------
    def _in_savepoint(self, work: Callable[[sa.Connection], T]) -> T:
        """``work`` after a savepoint, back to which it is undone if it raises.

        The savepoint is sent as it is, not through ``Connection.begin_nested()``, which
        compiles its statements again at every call; and it is not released: it goes with
        the transaction, and a call's ``ROLLBACK TO`` finds the newest savepoint of the
        name, its own. That saves a round trip per call.
        """
        conn = self._conn
        conn.exec_driver_sql(_SAVEPOINT)
        try:
            return work(conn)
        except BaseException:
            if not conn.invalidated:  # a lost connection has nothing left to undo
                conn.exec_driver_sql(_UNDO)
            raise

    def _watch(self) -> Watch | None:
        if self._deadline <= 0 or self._conn.invalidated:
            return None
        watch = WATCHDOG.watch(self._deadline)
        watch.arm(self._conn.connection.dbapi_connection)
        return watch

    def _doom(self, error: BaseException, watch: Watch | None) -> StorageUnavailable | None:
        """The ``StorageUnavailable`` a failed statement means, dooming the transaction; or
        ``None``: an error the caller may explain (an integrity error), which the savepoint
        has undone, and the transaction goes on.

        A serialization failure or deadlock, a lost connection, a timeout or a passed
        deadline leave nothing to go on with: every later call, and the commit, say so.
        """
        if watch is not None and watch.fired:
            self._cut = True
            self._doomed = f"the database did not answer within the deadline ({self._deadline:g} s)"
        elif is_retryable(error):
            self._doomed = (
                "the request's transaction conflicted with another one and was rolled back; "
                "nothing of it was applied, so it is safe to send again"
            )
        else:
            unavailable = translate(error)
            if unavailable is None:
                return None
            self._doomed = unavailable.detail
        return StorageUnavailable(self._doomed, retry_after=1)

    def _end(self) -> None:
        self._ended = True
        if _current.get() is self:
            _current.set(None)
        if self._cut and not self._conn.invalidated:
            # A cut connection is never handed to anyone again.
            with contextlib.suppress(Exception):
                self._conn.invalidate()
        with contextlib.suppress(Exception):
            self._conn.close()


def _too_late(deadline: float) -> StorageUnavailable:
    return StorageUnavailable(
        f"the database did not answer within the deadline ({deadline:g} s)", retry_after=1
    )
