"""Row ids made by the service: time-ordered, unique across replicas, exact in JavaScript.

An id is 53 bits, so every JSON client reads it exactly (``Number.MAX_SAFE_INTEGER`` is
2^53 - 1): 41 bits of milliseconds since 2025-01-01 UTC (enough until 2094), then a 12-bit
sequence that starts at a random point each millisecond and counts up within it. See
docs/storage.md for why not SERIAL, IDENTITY or CockroachDB's ``unique_rowid()``.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable

EPOCH_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
SEQUENCE_BITS = 12
TIME_BITS = 41
MAX_ID = 2**53 - 1

# The random start stays in the lower half, so at least 2048 ids fit in a millisecond
# before the sequence borrows from the next one.
_START_RANGE = 1 << (SEQUENCE_BITS - 1)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class IdGenerator:
    """Strictly increasing ids within a process; distinct across processes with high probability.

    Two replicas collide only if they mint ids in the same millisecond from overlapping
    random starts; the insert then fails on the primary key and is retried with a new id.
    A clock that steps back never makes ids go back: the sequence goes on from the last one.
    """

    def __init__(
        self,
        clock_ms: Callable[[], int] = _now_ms,
        random_start: Callable[[int], int] = secrets.randbelow,
    ) -> None:
        self._clock_ms = clock_ms
        self._random_start = random_start
        self._lock = threading.Lock()
        self._last = 0

    def next(self) -> int:
        return self.take(1)[0]

    def take(self, count: int) -> list[int]:
        """``count`` fresh ids in increasing order."""
        with self._lock:
            tick = (self._clock_ms() - EPOCH_MS) << SEQUENCE_BITS
            first = tick | self._random_start(_START_RANGE) if tick > self._last else self._last + 1
            last = first + count - 1
            if last > MAX_ID:
                raise OverflowError("the id space is exhausted (the clock is past 2094)")
            self._last = last
            return list(range(first, last + 1))


default_ids = IdGenerator()
"""One generator per process, shared by every store, so ids never repeat within it."""
