"""The one helper every transaction runs through: bounded retries of serialization failures."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc

from commerce.adapters.storage.sql.engine import SqlOptions, is_retryable, translate
from commerce.core.errors import StorageUnavailable
from commerce.core.events import LogEvent

T = TypeVar("T")

log = logging.getLogger(__name__)


class Transactor:
    """Runs a callback in a transaction, again on a serialization failure, up to a bound.

    The callback may run more than once, so it must do nothing but talk to the database on
    the connection it is given. Backoff is exponential with full jitter, so that clients that
    collided once do not collide again in lockstep. When the attempts run out, the caller
    gets ``StorageUnavailable`` (a 503 with ``Retry-After``), never the driver's error.
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
        # Writes run SERIALIZABLE everywhere: CockroachDB's only level, PostgreSQL's strictest,
        # and what BEGIN IMMEDIATE gives on SQLite. Code written for one behaves the same on all.
        self._write_options: dict[str, Any] = (
            {"commerce_write": True} if sqlite else {"isolation_level": "SERIALIZABLE"}
        )
        # A read is one statement: on a server, autocommit saves the BEGIN and ROLLBACK trips.
        self._read_options: dict[str, Any] = {} if sqlite else {"isolation_level": "AUTOCOMMIT"}

    def write(self, work: Callable[[sa.Connection], T]) -> T:
        """Run ``work`` in a read-write transaction and commit it."""
        return self._run(work, self._write_options, transaction=True)

    def read(self, work: Callable[[sa.Connection], T]) -> T:
        """Run ``work``, which only reads; nothing is committed."""
        return self._run(work, self._read_options, transaction=False)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        ceiling: float = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return ceiling * self._jitter()

    def _run(
        self, work: Callable[[sa.Connection], T], options: dict[str, Any], *, transaction: bool
    ) -> T:
        attempt = 1
        while True:
            try:
                with self.engine.connect() as conn:
                    conn.execution_options(**options)
                    if not transaction:
                        return work(conn)
                    with conn.begin():
                        return work(conn)
            except (exc.DBAPIError, exc.TimeoutError, exc.DisconnectionError) as error:
                if is_retryable(error):
                    if attempt < self.attempts:
                        delay = self.backoff(attempt)
                        log.info(
                            "transaction conflicted, retrying",
                            extra={
                                "event": LogEvent.TRANSACTION_RETRIED,
                                "attempt": attempt,
                                "delay": delay,
                            },
                        )
                        self._sleep(delay)
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
