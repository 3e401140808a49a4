"""The one helper every transaction runs through: bounded retries of serialization failures."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc

from commerce.adapters.storage.sql.ambient import AmbientTransaction, joined
from commerce.adapters.storage.sql.deadline import WATCHDOG, DeadlinePassed, Watch, current_watch
from commerce.adapters.storage.sql.engine import (
    SqlOptions,
    is_retryable,
    read_committed_available,
    translate,
)
from commerce.core.errors import StorageUnavailable
from commerce.core.events import LogEvent, event_log

T = TypeVar("T")

log = event_log(__name__)

_READ, _WRITE, _LOCKING = "read", "write", "locking"
_POOLED = "pooled"
"""A read on the pool's DBAPI connection alone (``read_pooled``)."""


class Transactor:
    """Runs a callback in a transaction, again on a serialization failure, up to a bound.

    The callback may run more than once, so it must do nothing but talk to the database on
    the connection it is given. Backoff is exponential with full jitter, so that clients that
    collided once do not collide again in lockstep. When the attempts run out, the caller
    gets ``StorageUnavailable`` (a 503 with ``Retry-After``), never the driver's error.

    On a server every call has a deadline (``SqlOptions.call_deadline``), attempts and
    backoff included: past it the watchdog cuts the connection (see ``deadline.py``) and
    the caller gets ``StorageUnavailable`` too.
    """

    def __init__(
        self,
        engine: sa.Engine,
        options: SqlOptions,
        *,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.engine = engine
        self.attempts = options.retry_attempts
        self.base_delay = options.retry_base_delay
        self.max_delay = options.retry_max_delay
        self._sleep = sleep
        self._jitter = jitter
        sqlite = engine.dialect.name == "sqlite"
        cockroachdb = engine.dialect.name == "cockroachdb"
        # SQLite is a local file: a call there cannot hang on a network peer.
        self.deadline = 0.0 if sqlite else options.call_deadline
        # Writes run SERIALIZABLE everywhere: CockroachDB's default level, PostgreSQL's
        # strictest, and what BEGIN IMMEDIATE gives on SQLite. Code written for one behaves
        # the same on all. The exception is writes that lock what they change (the levels):
        # at READ COMMITTED a contended row is waited for instead of failing with 40001.
        # CockroachDB offers READ COMMITTED only where the cluster enables it: the first
        # connection asks (``read_committed_available``); until then, and without it,
        # SERIALIZABLE, where CockroachDB queues on the row locks (FOR UPDATE) too.
        serializable: dict[str, Any] = {"isolation_level": "SERIALIZABLE"}
        self._options: dict[str, dict[str, Any]] = {
            # A read is one statement: on a server, autocommit saves the BEGIN and ROLLBACK.
            _READ: {"commerce_read": True} if sqlite else {"isolation_level": "AUTOCOMMIT"},
            _WRITE: {"commerce_write": True} if sqlite else serializable,
            _LOCKING: (
                {"commerce_write": True}
                if sqlite
                else serializable
                if cockroachdb
                else {"isolation_level": "READ COMMITTED"}
            ),
        }
        self._detect_pending = cockroachdb

    def write(self, work: Callable[[sa.Connection], T], *, locks_rows: bool = False) -> T:
        """Run ``work`` in a read-write transaction and commit it.

        ``locks_rows`` says that ``work`` is right at READ COMMITTED: it locks the rows it
        reads before deciding (``FOR UPDATE``), or decides in the writing statement itself
        (``UPDATE … WHERE quantity + :d >= 0``). It then runs at the level that queues
        writers of one row instead of failing all but one (see ``__init__``).
        """
        return self._run(work, _LOCKING if locks_rows else _WRITE)

    def read(self, work: Callable[[sa.Connection], T]) -> T:
        """Run ``work``, which only reads; nothing is committed."""
        return self._run(work, _READ)

    @property
    def reads_pooled(self) -> bool:
        """Whether ``read_pooled`` may run now: on a server, outside the request's
        transaction, once CockroachDB's isolation level is known."""
        return self.deadline > 0 and not self._detect_pending and joined(self.engine) is None

    def read_pooled(self, work: Callable[[Any], T]) -> T:
        """``read`` for ``work`` that needs only the pool's connection (``driver_reads``'s
        ``fetch_pooled_server``): no SQLAlchemy ``Connection`` is made around it, and the
        work sets autocommit on the driver itself. The deadline, the checkout's ping, the
        retry of a connection the server had dropped and the errors' meaning are ``read``'s.
        Only where ``reads_pooled``."""
        return self._run(work, _POOLED)

    @property
    def locking_isolation(self) -> str:
        """The isolation level of ``write(…, locks_rows=True)`` (as known so far)."""
        options = self._options[_LOCKING]
        return str(options.get("isolation_level", "SERIALIZABLE"))

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        ceiling: float = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return ceiling * self._jitter()

    def begin(self) -> AmbientTransaction:
        """Open the request's transaction (``ambient.py``): until it ends, every ``write``
        and ``read`` on this engine in this context joins it, with no retries and no
        isolation level of its own. It runs at the level of the writes that lock what they
        change (``locking_isolation``; BEGIN IMMEDIATE on SQLite): at READ COMMITTED a
        concurrent request claiming the same idempotency key waits on the key's unique
        index and then sees the outcome, where SERIALIZABLE would fail it; the other writes
        decide in their own statement, so they are right there too (docs/http.md)."""

        def options(conn: sa.Connection) -> dict[str, Any]:
            if self._detect_pending:
                self._detect(conn)  # may change the level of the locking writes
            return self._options[_LOCKING]

        return AmbientTransaction.open(self.engine, options, self.deadline)

    def _run(self, work: Callable[[sa.Connection], T], kind: str) -> T:
        ambient = joined(self.engine)
        if ambient is not None:
            # Inside the request's transaction: no retry loop, no isolation change (see there).
            return ambient.run(work)
        watch = WATCHDOG.watch(self.deadline) if self.deadline > 0 else None
        # The pool's checkout (engine.py) arms the watch on whichever connection it hands out.
        token = current_watch.set(watch)
        try:
            return self._attempts(work, kind, watch)
        except DeadlinePassed as error:
            raise self._too_late() from error
        finally:
            current_watch.reset(token)
            if watch is not None:
                watch.close()

    def _too_late(self) -> StorageUnavailable:
        return StorageUnavailable(
            f"the database did not answer within the deadline ({self.deadline:g} s)",
            retry_after=1,
        )

    def _attempts(self, work: Callable[[sa.Connection], T], kind: str, watch: Watch | None) -> T:
        attempt = 1
        reconnected = False
        while True:
            try:
                if kind == _POOLED:
                    return self._pooled(work, watch)
                with self.engine.connect() as conn:
                    try:
                        if self._detect_pending:
                            self._detect(conn)
                        conn.execution_options(**self._options[kind])
                        if kind == _READ:
                            return work(conn)
                        with conn.begin():
                            return work(conn)
                    finally:
                        # A cut connection is never handed to anyone again.
                        if watch is not None and watch.fired and not conn.invalidated:
                            conn.invalidate()
            except (exc.DBAPIError, exc.TimeoutError, exc.DisconnectionError) as error:
                if watch is not None and watch.fired:
                    raise self._too_late() from error
                if kind in (_READ, _POOLED) and not reconnected and _dropped(error):
                    # A pooled connection the server had closed (it is used unpinged for a
                    # moment after its last use, engine.py): a read is safe to run again.
                    reconnected = True
                    continue
                if is_retryable(error):
                    if attempt < self.attempts:
                        delay = self.backoff(attempt)
                        log(
                            LogEvent.TRANSACTION_RETRIED,
                            "transaction conflicted, retrying",
                            attempt=attempt,
                            delay=delay,
                        )
                        self._sleep(delay)
                        if watch is not None and watch.fired:
                            raise self._too_late() from error
                        attempt += 1
                        continue
                    raise StorageUnavailable(
                        f"the database is too busy: gave up after {attempt} conflicting attempts",
                        retry_after=1,
                    ) from error
                unavailable = translate(error)
                if unavailable is not None:
                    raise unavailable from error
                raise

    def _pooled(self, work: Callable[[Any], T], watch: Watch | None) -> T:
        pooled = self.engine.raw_connection()  # the checkout arms the watch and pings
        try:
            return work(pooled)
        finally:
            # A cut connection is never handed to anyone again.
            if watch is not None and watch.fired and pooled.is_valid:
                pooled.invalidate()
            pooled.close()

    def _detect(self, conn: sa.Connection) -> None:
        """Ask the server (CockroachDB) whether READ COMMITTED is on, once."""
        if read_committed_available(conn):
            self._options[_LOCKING] = {"isolation_level": "READ COMMITTED"}
        self._detect_pending = False
        log(
            LogEvent.STORAGE_OPENED,
            "level writes run at %s",
            self.locking_isolation,
            isolation=self.locking_isolation,
        )


def _dropped(error: Exception) -> bool:
    """Whether ``error`` is the connection's loss (SQLAlchemy has invalidated it)."""
    return bool(getattr(error, "connection_invalidated", False))
