"""The idempotency-records port's contract: claim, complete, release, take over, purge, and
the request's transaction that the claim, the writes and the kept response commit in."""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from commerce.core.apikeys import new_api_key
from commerce.core.auth import Role
from commerce.core.errors import Conflict, IdempotencyMismatch, InsufficientStock, SkuTaken
from commerce.core.models import (
    Adjustment,
    ChainPatch,
    ChangeFilter,
    ItemPatch,
    NewChain,
    NewItem,
    NewStore,
    Reason,
    StoredResponse,
    StorePatch,
)
from commerce.core.ports import ApiKeys, Catalogue, IdempotencyRecords, Inventory
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


WAIT = 30.0
"""Seconds a test waits for another thread before calling it stuck (never reached when right)."""
STILL_WAITING = 0.3
"""How long a claim must be seen waiting for an open transaction; any wait proves the point."""


def _stocked_item(catalogue: Catalogue, inventory: Inventory, tenant: str) -> tuple[int, int]:
    """A store holding 10 of one item: (store id, item id)."""
    chain = catalogue.create_chain(tenant, NewChain(name="Chain"))
    shop = catalogue.create_store(tenant, NewStore(chain_id=chain.id, name="Shop"))
    item = catalogue.create_item(tenant, NewItem(sku="SKU-1", name="Item", cost=Decimal("1.00")))
    inventory.set_quantity(tenant, shop.id, item.id, 10, actor="test")
    return shop.id, item.id


def _sale(item_id: int, delta: int = -3) -> list[Adjustment]:
    return [Adjustment(item_id=item_id, delta=delta, reason=Reason.sold)]


def _state(inventory: Inventory, tenant: str, shop: int, item: int) -> tuple[int, int]:
    """(quantity, number of ledger entries) of one level."""
    [level] = inventory.list_levels(tenant, shop, item_ids=[item], after=None, limit=1)
    entries = inventory.list_changes(
        tenant, shop, ChangeFilter(item_id=item), after=None, limit=100
    )
    return level.quantity, len(entries)


class IdempotencyTransactionContract(PortFixtures):
    """``begin_transaction``: the claim, the writes of every port and the kept response
    commit together or not at all. Uses ``idempotency``, ``catalogue``, ``inventory`` and
    ``new_tenant``: the transaction is the whole storage's, so it needs the other ports."""

    def test_a_committed_transaction_keeps_the_claim_the_writes_and_the_response(
        self,
        idempotency: IdempotencyRecords,
        catalogue: Catalogue,
        inventory: Inventory,
        new_tenant: NewTenant,
    ) -> None:
        tenant = new_tenant()
        shop, item = _stocked_item(catalogue, inventory, tenant)
        transaction = idempotency.begin_transaction()
        assert idempotency.claim_idempotency_key(tenant, "k", "fp", stale_after=_MINUTE) is None
        inventory.adjust(tenant, shop, _sale(item), actor="test")
        chain = catalogue.create_chain(tenant, NewChain(name="Made Inside"))
        # What the transaction wrote, it reads back before committing.
        assert catalogue.get_chain(tenant, chain.id) == chain
        idempotency.complete_idempotency_key(tenant, "k", _RESPONSE)
        transaction.commit()
        transaction.rollback()  # a no-op once ended, so a caller may always call it last

        assert _state(inventory, tenant, shop, item) == (7, 2)
        assert catalogue.get_chain(tenant, chain.id) == chain
        assert idempotency.claim_idempotency_key(tenant, "k", "fp", stale_after=_MINUTE) == (
            _RESPONSE
        )

    def test_a_rolled_back_transaction_leaves_neither_claim_nor_writes(
        self,
        idempotency: IdempotencyRecords,
        catalogue: Catalogue,
        inventory: Inventory,
        new_tenant: NewTenant,
    ) -> None:
        tenant = new_tenant()
        shop, item = _stocked_item(catalogue, inventory, tenant)
        chains = catalogue.list_chains(tenant, after=None, limit=100)
        transaction = idempotency.begin_transaction()
        assert idempotency.claim_idempotency_key(tenant, "k", "fp", stale_after=_MINUTE) is None
        inventory.adjust(tenant, shop, _sale(item), actor="test")
        catalogue.create_chain(tenant, NewChain(name="Undone"))
        idempotency.complete_idempotency_key(tenant, "k", _RESPONSE)
        transaction.rollback()

        assert _state(inventory, tenant, shop, item) == (10, 1)
        assert catalogue.list_chains(tenant, after=None, limit=100) == chains
        # The key is free again: the request that claimed it left no trace.
        assert idempotency.claim_idempotency_key(tenant, "k", "fp-2", stale_after=_MINUTE) is None

    def test_a_rollback_undoes_every_kind_of_write_of_every_port(
        self,
        idempotency: IdempotencyRecords,
        catalogue: Catalogue,
        inventory: Inventory,
        api_keys: ApiKeys,
        new_tenant: NewTenant,
    ) -> None:
        tenant = new_tenant()
        shop, item = _stocked_item(catalogue, inventory, tenant)
        chain_id = catalogue.get_store(tenant, shop).chain_id  # type: ignore[union-attr]
        empty_chain = catalogue.create_chain(tenant, NewChain(name="Empty"))
        idle_store = catalogue.create_store(tenant, NewStore(chain_id=chain_id, name="Idle"))
        idle_item = catalogue.create_item(tenant, NewItem(sku="IDLE", name="I", cost=Decimal(2)))
        spare_item = catalogue.create_item(tenant, NewItem(sku="SPARE", name="S", cost=Decimal(3)))
        inventory.set_quantity(tenant, idle_store.id, item, 0, actor="test")
        made = new_api_key()
        key = api_keys.create_api_key(tenant, Role.reader, made.prefix, made.secret_hash)
        idempotency.claim_idempotency_key(tenant, "old", "fp", stale_after=_MINUTE)
        idempotency.complete_idempotency_key(tenant, "old", _RESPONSE)

        def everything() -> object:
            stores = [
                (s, inventory.list_levels(tenant, s.id, item_ids=None, after=None, limit=100))
                for s in catalogue.list_stores(tenant, chain_id, after=None, limit=100)
            ]
            return (
                catalogue.list_chains(tenant, after=None, limit=100),
                stores,
                catalogue.list_items(tenant, after=None, limit=100),
                inventory.list_item_levels(tenant, item, after=None, limit=100),
                inventory.list_changes(tenant, shop, ChangeFilter(), after=None, limit=100),
                api_keys.list_api_keys(tenant),
                api_keys.find_api_key(made.prefix),
            )

        before = everything()
        transaction = idempotency.begin_transaction()
        new_chain = catalogue.create_chain(tenant, NewChain(name="New"))
        new_store = catalogue.create_store(tenant, NewStore(chain_id=new_chain.id, name="New"))
        new_item = catalogue.create_item(tenant, NewItem(sku="NEW", name="N", cost=Decimal(1)))
        inventory.set_quantity(tenant, new_store.id, new_item.id, 5, actor="test")
        catalogue.update_chain(tenant, chain_id, ChainPatch(name="Renamed"))
        catalogue.update_store(tenant, shop, StorePatch(city="Elsewhere"))
        catalogue.update_item(tenant, item, ItemPatch(sku="RENAMED"))
        inventory.adjust(tenant, shop, _sale(item), actor="test")
        inventory.set_quantity(tenant, shop, idle_item.id, 4, actor="test")
        catalogue.delete_chain(tenant, empty_chain.id)
        catalogue.delete_store(tenant, idle_store.id)
        catalogue.delete_item(tenant, spare_item.id)
        other = new_api_key()
        api_keys.create_api_key(tenant, Role.admin, other.prefix, other.secret_hash)
        api_keys.revoke_api_key(key.id)
        api_keys.touch_api_key(key.id, datetime.now(UTC))
        idempotency.claim_idempotency_key(tenant, "new", "fp", stale_after=_MINUTE)
        idempotency.complete_idempotency_key(tenant, "new", _RESPONSE)
        idempotency.purge_idempotency_keys(datetime.now(UTC) + timedelta(hours=1))
        transaction.rollback()

        assert everything() == before
        assert api_keys.find_api_key(other.prefix) is None
        # The indexes went back too: the old SKU is taken again, the new ones are free.
        with pytest.raises(SkuTaken):
            catalogue.create_item(tenant, NewItem(sku="SKU-1", name="Twin", cost=Decimal(1)))
        catalogue.create_item(tenant, NewItem(sku="RENAMED", name="R", cost=Decimal(1)))
        catalogue.create_item(tenant, NewItem(sku="NEW", name="N", cost=Decimal(1)))
        assert idempotency.claim_idempotency_key(tenant, "old", "fp", stale_after=_MINUTE) == (
            _RESPONSE
        )
        assert idempotency.claim_idempotency_key(tenant, "new", "fp", stale_after=_MINUTE) is None

    def test_a_refused_call_inside_undoes_only_itself_and_the_rest_commits(
        self,
        idempotency: IdempotencyRecords,
        catalogue: Catalogue,
        inventory: Inventory,
        new_tenant: NewTenant,
    ) -> None:
        tenant = new_tenant()
        shop, item = _stocked_item(catalogue, inventory, tenant)
        transaction = idempotency.begin_transaction()
        idempotency.claim_idempotency_key(tenant, "k", "fp", stale_after=_MINUTE)
        inventory.adjust(tenant, shop, _sale(item), actor="test")
        with pytest.raises(InsufficientStock):
            # A batch whose first step applies and whose second is refused: all of it goes.
            inventory.adjust(
                tenant,
                shop,
                [*_sale(item, -1), *_sale(item, -100)],
                actor="test",
            )
        with pytest.raises(SkuTaken):
            catalogue.create_item(tenant, NewItem(sku="SKU-1", name="Twin", cost=Decimal("1")))
        idempotency.complete_idempotency_key(tenant, "k", _RESPONSE)
        transaction.commit()

        assert _state(inventory, tenant, shop, item) == (7, 2)
        assert idempotency.claim_idempotency_key(tenant, "k", "fp", stale_after=_MINUTE) == (
            _RESPONSE
        )

    @pytest.mark.parametrize("outcome", ["commit", "rollback"])
    def test_a_claim_of_a_key_held_by_an_open_transaction_waits_for_its_outcome(
        self,
        idempotency: IdempotencyRecords,
        catalogue: Catalogue,
        inventory: Inventory,
        new_tenant: NewTenant,
        outcome: str,
    ) -> None:
        tenant = new_tenant()
        shop, item = _stocked_item(catalogue, inventory, tenant)
        first = idempotency.begin_transaction()
        idempotency.claim_idempotency_key(tenant, "k", "fp", stale_after=_MINUTE)
        inventory.adjust(tenant, shop, _sale(item), actor="test")
        idempotency.complete_idempotency_key(tenant, "k", _RESPONSE)

        def retry() -> tuple[StoredResponse | None, int]:
            # What the HTTP layer does for the client's retry, in a thread of its own.
            second = idempotency.begin_transaction()
            try:
                found = idempotency.claim_idempotency_key(tenant, "k", "fp", stale_after=_MINUTE)
                if found is None:
                    inventory.adjust(tenant, shop, _sale(item), actor="test")
                    idempotency.complete_idempotency_key(tenant, "k", _RESPONSE)
                    second.commit()
                return found, _state(inventory, tenant, shop, item)[0]
            finally:
                second.rollback()

        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(retry)
            with pytest.raises(FutureTimeout):
                waiting.result(timeout=STILL_WAITING)
            first.commit() if outcome == "commit" else first.rollback()
            found, quantity = waiting.result(timeout=WAIT)

        if outcome == "commit":
            assert (found, quantity) == (_RESPONSE, 7), "the retry replayed, applying nothing"
        else:
            assert (found, quantity) == (None, 7), "the retry ran, once"
        assert _state(inventory, tenant, shop, item) == (7, 2)

    def test_other_threads_never_see_what_an_open_transaction_wrote(
        self,
        idempotency: IdempotencyRecords,
        catalogue: Catalogue,
        inventory: Inventory,
        new_tenant: NewTenant,
    ) -> None:
        tenant = new_tenant()
        shop, item = _stocked_item(catalogue, inventory, tenant)
        transaction = idempotency.begin_transaction()
        inventory.adjust(tenant, shop, _sale(item), actor="test")
        with ThreadPoolExecutor(1) as pool:
            # The reader sees the level as it was, or waits until the rollback (memory).
            seen = pool.submit(_state, inventory, tenant, shop, item)
            with contextlib.suppress(FutureTimeout):
                seen.result(timeout=STILL_WAITING)
            transaction.rollback()
            assert seen.result(timeout=WAIT) == (10, 1)

    def test_one_transaction_at_a_time_per_thread(
        self,
        idempotency: IdempotencyRecords,
        catalogue: Catalogue,
        inventory: Inventory,
        new_tenant: NewTenant,
    ) -> None:
        tenant = new_tenant()
        transaction = idempotency.begin_transaction()
        with pytest.raises(RuntimeError):
            idempotency.begin_transaction()
        transaction.rollback()
        with pytest.raises(RuntimeError):
            transaction.commit()
        again = idempotency.begin_transaction()
        catalogue.create_chain(tenant, NewChain(name="After"))
        again.commit()
        assert [c.name for c in catalogue.list_chains(tenant, after=None, limit=10)] == ["After"]
