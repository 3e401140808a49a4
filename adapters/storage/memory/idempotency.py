"""The in-memory idempotency-records port: what became of each request sent with a key,
and the request's transaction.

The transaction holds the state's lock from begin to end, so every other thread's call on the
storage waits for it (a second request with the same key then finds the completed claim). For
its time each dict of the state is replaced by a ``_Tracked`` view of it, which notes an
entry as it was the first time the entry is reached (copying a container held there, such
as one store's levels or ledger, since it may then change in place); a rollback puts back
what was noted. So a transaction costs in proportion to what it touches, not to the data
held, and the ports need not know: they keep using ``state.<dict>[key]`` under the lock.
Holding the lock is what makes putting entries back safe: nobody else changed them meanwhile.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from commerce.adapters.storage.memory.state import Claim, MemoryState
from commerce.core.errors import IdempotencyInProgress, IdempotencyMismatch
from commerce.core.models import StoredResponse


class MemoryIdempotencyRecords:
    """Implements ``core.ports.IdempotencyRecords`` over a ``MemoryState``."""

    def __init__(self, state: MemoryState) -> None:
        self.state = state

    def begin_transaction(self) -> MemoryTransaction:
        s = self.state
        s.lock.acquire()
        if s in _open:
            # The lock is re-entrant: only this thread can have got here with one open.
            s.lock.release()
            raise RuntimeError("a transaction is already open in this thread")
        transaction = _open[s] = MemoryTransaction(s)
        return transaction

    def claim_idempotency_key(
        self, tenant: str, key: str, fingerprint: str, *, stale_after: timedelta
    ) -> StoredResponse | None:
        s = self.state
        with s.lock:
            now = s.clock()
            claim = s.claims.get((tenant, key))
            if claim is None:
                s.claims[(tenant, key)] = Claim(fingerprint=fingerprint, claimed_at=now)
                return None
            if claim.fingerprint != fingerprint:
                raise IdempotencyMismatch()
            if claim.response is not None:
                return claim.response
            if now - claim.claimed_at < stale_after:
                raise IdempotencyInProgress()
            # Its holder is presumed dead: the claim is taken over.
            claim.claimed_at = now
            return None

    def complete_idempotency_key(self, tenant: str, key: str, response: StoredResponse) -> None:
        with self.state.lock:
            claim = self.state.claims.get((tenant, key))
            if claim is not None:
                claim.response = response

    def release_idempotency_key(self, tenant: str, key: str) -> None:
        s = self.state
        with s.lock:
            claim = s.claims.get((tenant, key))
            if claim is not None and claim.response is None:
                del s.claims[(tenant, key)]

    def purge_idempotency_keys(self, older_than: datetime) -> int:
        s = self.state
        with s.lock:
            old = [k for k, c in s.claims.items() if c.claimed_at < older_than]
            for k in old:
                del s.claims[k]
            return len(old)


class MemoryTransaction:
    """Implements ``core.ports.Transaction``: see the module's docstring."""

    def __init__(self, state: MemoryState) -> None:
        self._state = state
        self._tracked: dict[str, _Tracked] | None = {
            name: _Tracked(value) for name, value in vars(state).items() if isinstance(value, dict)
        }
        for name, tracked in self._tracked.items():
            setattr(state, name, tracked)

    def commit(self) -> None:
        if self._tracked is None:
            raise RuntimeError("the transaction has ended")
        self._end(undo=False)

    def rollback(self) -> None:
        if self._tracked is not None:
            self._end(undo=True)

    def _end(self, *, undo: bool) -> None:
        tracked, self._tracked = self._tracked, None
        assert tracked is not None
        try:
            for name, view in tracked.items():
                setattr(self._state, name, view.end(undo=undo))
        finally:
            del _open[self._state]
            self._state.lock.release()


_open: weakref.WeakKeyDictionary[MemoryState, MemoryTransaction] = weakref.WeakKeyDictionary()
"""The open transaction of each state (at most one: it holds the state's lock)."""

_ABSENT = object()


class _Tracked:
    """One dict of the state while a transaction runs: every operation the ports use passes
    through to the dict, and an entry is noted as it was the first time it is reached.

    Only the operations below exist, so one that the ports start using fails loudly (an
    ``AttributeError``) instead of changing the dict unnoticed.
    """

    __slots__ = ("_inner", "_was")

    def __init__(self, inner: dict[Any, Any]) -> None:
        self._inner = inner
        self._was: dict[Any, Any] = {}

    def end(self, *, undo: bool) -> dict[Any, Any]:
        """The dict itself, with every entry noted put back as it was if ``undo``."""
        inner = self._inner
        if undo:
            for key, value in self._was.items():
                if value is _ABSENT:
                    inner.pop(key, None)
                else:
                    inner[key] = value
        return inner

    def _note(self, key: Any) -> None:
        if key not in self._was:
            self._was[key] = _copy(self._inner.get(key, _ABSENT))

    # -- reads that hand out an entry, which the caller may then change in place ----------
    def __getitem__(self, key: Any) -> Any:
        self._note(key)
        return self._inner[key]

    def get(self, key: Any, default: Any = None) -> Any:
        self._note(key)
        return self._inner.get(key, default)

    def values(self) -> Iterator[Any]:
        return (value for _, value in self.items())

    def items(self) -> Iterator[tuple[Any, Any]]:
        for key in list(self._inner):
            self._note(key)
            yield key, self._inner[key]

    # -- writes ----------------------------------------------------------------------------
    def __setitem__(self, key: Any, value: Any) -> None:
        self._note(key)
        self._inner[key] = value

    def __delitem__(self, key: Any) -> None:
        self._note(key)
        del self._inner[key]

    def pop(self, key: Any, *default: Any) -> Any:
        self._note(key)
        return self._inner.pop(key, *default)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        self._note(key)
        return self._inner.setdefault(key, default)

    # -- reads of keys only ------------------------------------------------------------------
    def __contains__(self, key: object) -> bool:
        return key in self._inner

    def __len__(self) -> int:
        return len(self._inner)

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._inner))

    def keys(self) -> list[Any]:
        return list(self._inner)


def _copy(value: Any) -> Any:
    """``value`` as it is now: containers (a store's levels, a ledger) and claims change in
    place, so they are copied; rows are immutable."""
    if isinstance(value, dict | list):
        return value.copy()
    if isinstance(value, Claim):
        return dataclasses.replace(value)
    return value
