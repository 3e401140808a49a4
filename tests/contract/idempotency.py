"""The idempotency-records port's contract: claim, complete, release, take over, purge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from commerce.core.errors import Conflict, IdempotencyMismatch
from commerce.core.models import StoredResponse
from commerce.core.ports import IdempotencyRecords
from tests.contract.base import NewTenant, PortFixtures

_RESPONSE = StoredResponse(
    status=201,
    headers=(("Content-Type", "application/json"), ("Location", "/chain/7")),
    body=b'{"id": 7}',
)
_MINUTE = timedelta(minutes=1)


class IdempotencyContract(PortFixtures):
    """Uses the fixtures ``idempotency`` and ``new_tenant``."""

    def test_a_claimed_key_is_held_until_completed_then_replays_its_response(
        self, idempotency: IdempotencyRecords, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        assert idempotency.claim_idempotency_key(tenant, "k-1", "fp", stale_after=_MINUTE) is None
        with pytest.raises(Conflict):
            idempotency.claim_idempotency_key(tenant, "k-1", "fp", stale_after=_MINUTE)
        idempotency.complete_idempotency_key(tenant, "k-1", _RESPONSE)
        assert (
            idempotency.claim_idempotency_key(tenant, "k-1", "fp", stale_after=_MINUTE) == _RESPONSE
        )
        assert (
            idempotency.claim_idempotency_key(tenant, "k-1", "fp", stale_after=_MINUTE) == _RESPONSE
        )

    def test_a_key_reused_for_another_request_is_a_mismatch(
        self, idempotency: IdempotencyRecords, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        idempotency.claim_idempotency_key(tenant, "k-2", "fp-a", stale_after=_MINUTE)
        with pytest.raises(IdempotencyMismatch):
            idempotency.claim_idempotency_key(tenant, "k-2", "fp-b", stale_after=_MINUTE)
        idempotency.complete_idempotency_key(tenant, "k-2", _RESPONSE)
        with pytest.raises(IdempotencyMismatch):
            idempotency.claim_idempotency_key(tenant, "k-2", "fp-b", stale_after=_MINUTE)

    def test_a_released_or_stale_claim_can_be_taken_again(
        self, idempotency: IdempotencyRecords, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        idempotency.claim_idempotency_key(tenant, "k-3", "fp", stale_after=_MINUTE)
        idempotency.release_idempotency_key(tenant, "k-3")
        assert idempotency.claim_idempotency_key(tenant, "k-3", "fp", stale_after=_MINUTE) is None
        assert (
            idempotency.claim_idempotency_key(tenant, "k-3", "fp", stale_after=timedelta(0)) is None
        )

    def test_idempotency_keys_belong_to_one_tenant(
        self, idempotency: IdempotencyRecords, new_tenant: NewTenant
    ) -> None:
        mine, theirs = new_tenant(), new_tenant()
        idempotency.claim_idempotency_key(theirs, "shared", "fp-theirs", stale_after=_MINUTE)
        idempotency.complete_idempotency_key(theirs, "shared", _RESPONSE)
        assert (
            idempotency.claim_idempotency_key(mine, "shared", "fp-mine", stale_after=_MINUTE)
            is None
        )

    def test_purging_forgets_keys_claimed_before_the_cutoff(
        self, idempotency: IdempotencyRecords, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        idempotency.claim_idempotency_key(tenant, "old", "fp", stale_after=_MINUTE)
        idempotency.complete_idempotency_key(tenant, "old", _RESPONSE)
        assert idempotency.purge_idempotency_keys(datetime.now(UTC) - timedelta(hours=1)) == 0
        assert idempotency.purge_idempotency_keys(datetime.now(UTC) + timedelta(hours=1)) >= 1
        assert (
            idempotency.claim_idempotency_key(tenant, "old", "other", stale_after=_MINUTE) is None
        )
