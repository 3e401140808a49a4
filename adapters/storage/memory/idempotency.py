"""The in-memory idempotency-records port: what became of each request sent with a key."""

from __future__ import annotations

from datetime import datetime, timedelta

from commerce.adapters.storage.memory.state import Claim, MemoryState
from commerce.core.errors import IdempotencyInProgress, IdempotencyMismatch
from commerce.core.models import StoredResponse


class MemoryIdempotencyRecords:
    """Implements ``core.ports.IdempotencyRecords`` over a ``MemoryState``."""

    def __init__(self, state: MemoryState) -> None:
        self.state = state

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
