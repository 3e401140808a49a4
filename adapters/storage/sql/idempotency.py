"""``SqlIdempotencyRecords``: the ``IdempotencyRecords`` port on SQL, race-free across replicas.

A claim is an insert-or-nothing, and taking over a stale claim is an UPDATE conditional on
the very claim that was seen, so of two replicas racing for one key exactly one wins.

``begin_transaction`` is the request's transaction (``ambient.py``), which the claim, the
request's writes and the completion all join. At READ COMMITTED (PostgreSQL, and CockroachDB
where the cluster allows it) a second request with the same key blocks in the claim's insert
on the key's unique index until the first commits or rolls back, then finds the completed
record (a replay) or inserts its own; on SQLite it waits for the write lock at BEGIN.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import sqlalchemy as sa

from commerce.adapters.storage.sql.ambient import AmbientTransaction
from commerce.adapters.storage.sql.common import SqlContext, execute
from commerce.adapters.storage.sql.tables import IDEMPOTENCY_STATES, idempotency_keys
from commerce.core.errors import ConcurrentChange, IdempotencyInProgress, IdempotencyMismatch
from commerce.core.models import StoredResponse

CLAIMED, COMPLETED = IDEMPOTENCY_STATES


class SqlIdempotencyRecords:
    def __init__(self, ctx: SqlContext) -> None:
        self._ctx = ctx

    def begin_transaction(self) -> AmbientTransaction:
        return self._ctx.tx.begin()

    def claim_idempotency_key(
        self, tenant: str, key: str, fingerprint: str, *, stale_after: timedelta
    ) -> StoredResponse | None:
        k = idempotency_keys.c
        this_key = (k.tenant_id == tenant, k.key == key)
        held = sa.select(
            k.fingerprint,
            k.state,
            k.response_status,
            k.response_headers,
            k.response_body,
            k.claimed_at,
        ).where(*this_key)

        def work(conn: sa.Connection) -> StoredResponse | None:
            now = self._ctx.clock()
            # Insert-or-nothing first: of two replicas claiming the same new key at once,
            # exactly one inserts; the other reads the winner's row below.
            claim = (
                self._ctx.insert(idempotency_keys)
                .values(
                    tenant_id=tenant,
                    key=key,
                    fingerprint=fingerprint,
                    state=CLAIMED,
                    claimed_at=now,
                )
                .on_conflict_do_nothing(index_elements=[k.tenant_id, k.key])
                .returning(k.key)
            )
            if conn.execute(claim).first() is not None:
                return None
            row = conn.execute(held).first()
            if row is None:
                # Released or purged between the insert and this read: a retry claims it.
                raise ConcurrentChange("Idempotency-Key", key)
            if row.fingerprint != fingerprint:
                raise IdempotencyMismatch()
            if row.state == COMPLETED:
                return _stored_response(row)
            if now - row.claimed_at < stale_after:
                raise IdempotencyInProgress()
            # The holder is presumed dead. Take over only the very claim seen above, so that
            # of two replicas taking over at once only one wins.
            take_over = (
                idempotency_keys.update()
                .where(*this_key, k.state == CLAIMED, k.claimed_at == row.claimed_at)
                .values(claimed_at=now)
            )
            if conn.execute(take_over).rowcount != 1:
                raise IdempotencyInProgress()
            return None

        return self._ctx.tx.write(work)

    def complete_idempotency_key(self, tenant: str, key: str, response: StoredResponse) -> None:
        k = idempotency_keys.c
        statement = (
            idempotency_keys.update()
            .where(k.tenant_id == tenant, k.key == key)
            .values(
                state=COMPLETED,
                response_status=response.status,
                response_headers=json.dumps([list(pair) for pair in response.headers]),
                response_body=response.body,
            )
        )
        self._ctx.tx.write(partial(execute, statement))

    def release_idempotency_key(self, tenant: str, key: str) -> None:
        k = idempotency_keys.c
        statement = idempotency_keys.delete().where(
            k.tenant_id == tenant, k.key == key, k.state == CLAIMED
        )
        self._ctx.tx.write(partial(execute, statement))

    def purge_idempotency_keys(self, older_than: datetime) -> int:
        statement = idempotency_keys.delete().where(idempotency_keys.c.claimed_at < older_than)
        return int(self._ctx.tx.write(lambda conn: conn.execute(statement).rowcount))


def _stored_response(row: sa.Row[Any]) -> StoredResponse:
    headers = json.loads(row.response_headers or "[]")
    return StoredResponse(
        status=int(row.response_status),
        headers=tuple((str(name), str(value)) for name, value in headers),
        body=bytes(row.response_body or b""),
    )
