"""The use cases: input is checked before any storage port sees it, and the steps that moved
into the core (tenants, API keys and their prefix retry) behave as the backends once did.

The checks of names, money and quantities used to live in the SQL backend too; they are
asserted here, through the use cases, with a port that fails the test if it is reached.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import pytest

from commerce.adapters.storage.memory import memory_storage
from commerce.core import usecases
from commerce.core.apikeys import ApiKey, hash_secret, parse_api_key
from commerce.core.auth import Role
from commerce.core.errors import (
    ApiKeyPrefixTaken,
    Conflict,
    InvalidInput,
    NotFound,
    TenantExists,
)
from commerce.core.models import (
    Adjustment,
    ChangeFilter,
    ItemPatch,
    NewChain,
    NewItem,
    NewStore,
    Reason,
    StorePatch,
)
from commerce.core.pagination import PageRequest
from commerce.core.ports import ApiKeys, Catalogue, Inventory, Storage


class Unreachable:
    """A port that fails the test as soon as a use case calls it."""

    def __getattr__(self, name: str) -> Any:
        def reached(*args: object, **kwargs: object) -> None:
            raise AssertionError(f"the use case called {name} of the storage with bad input")

        return reached


CATALOGUE = cast(Catalogue, Unreachable())
INVENTORY = cast(Inventory, Unreachable())
API_KEYS = cast(ApiKeys, Unreachable())


@pytest.fixture
def storage() -> Storage:
    return memory_storage()


def _shop_and_item(storage: Storage, tenant: str = "acme") -> tuple[int, int]:
    usecases.create_tenant(storage.catalogue, tenant)
    chain = usecases.create_chain(storage.catalogue, tenant, NewChain(name="Chain"))
    shop = usecases.create_store(storage.catalogue, tenant, NewStore(chain.id, "Shop"))
    item = usecases.create_item(
        storage.catalogue, tenant, NewItem(sku="A", name="A", cost=Decimal("1.00"))
    )
    return shop.id, item.id


# -- checked before any port sees it (once also checked by the SQL backend) -----------------


@pytest.mark.parametrize("cost", ["1.005", "NaN", "Infinity", "10000000000.00"])
def test_a_cost_that_numeric_12_2_cannot_hold_exactly_is_refused(cost: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        usecases.create_item(CATALOGUE, "t", NewItem(sku="A", name="A", cost=Decimal(cost)))
    assert caught.value.field == "cost"
    with pytest.raises(InvalidInput) as caught:
        usecases.update_item(CATALOGUE, "t", 1, ItemPatch(cost=Decimal(cost)))
    assert caught.value.field == "cost"


def test_text_with_a_nul_character_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidInput) as caught:
        usecases.create_chain(CATALOGUE, "t", NewChain(name="bad\x00name"))
    assert caught.value.field == "name"
    with pytest.raises(InvalidInput) as caught:
        usecases.update_store(CATALOGUE, "t", 1, StorePatch(city="x\x00"))
    assert caught.value.field == "city"


def test_a_negative_quantity_never_reaches_the_storage() -> None:
    with pytest.raises(InvalidInput) as caught:
        usecases.set_quantity(INVENTORY, "t", 1, 1, -1, actor="test")
    assert caught.value.field == "quantity"
    with pytest.raises(InvalidInput) as caught:
        usecases.set_quantity(INVENTORY, "t", 1, 1, 1, actor="test", expected_quantity=-1)
    assert caught.value.field == "expected_quantity"


def test_a_batch_with_no_adjustment_or_a_zero_delta_never_reaches_the_storage() -> None:
    with pytest.raises(InvalidInput) as caught:
        usecases.adjust_inventory(INVENTORY, "t", 1, [], actor="test")
    assert caught.value.field == "adjustments"
    batch = [Adjustment(1, 2, Reason.received), Adjustment(1, 0, Reason.sold)]
    with pytest.raises(InvalidInput) as caught:
        usecases.adjust_inventory(INVENTORY, "t", 1, batch, actor="test")
    assert caught.value.field == "adjustments[1].delta"


def test_a_cost_is_kept_with_exactly_two_places(storage: Storage) -> None:
    usecases.create_tenant(storage.catalogue, "acme")
    item = usecases.create_item(
        storage.catalogue, "acme", NewItem(sku="A", name="A", cost=Decimal("3"))
    )
    assert str(item.cost) == "3.00"


# -- tenants --------------------------------------------------------------------------------


def test_a_tenant_is_named_after_its_id_unless_given_a_name(storage: Storage) -> None:
    assert usecases.create_tenant(storage.catalogue, "acme").name == "acme"
    assert usecases.create_tenant(storage.catalogue, "globex", "Globex Corp").name == "Globex Corp"
    assert [t.id for t in usecases.list_tenants(storage.catalogue)] == ["acme", "globex"]
    assert usecases.get_tenant(storage.catalogue, "globex").name == "Globex Corp"


@pytest.mark.parametrize("tenant_id", ["Acme", "", "-acme", "a" * 64, "acme corp", "acme\x00"])
def test_a_tenant_id_that_is_not_plain_is_refused_before_the_storage(tenant_id: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        usecases.create_tenant(CATALOGUE, tenant_id)
    assert caught.value.field == "tenant"


@pytest.mark.parametrize("name", ["", "   ", "bad\x00name", "n" * 201])
def test_a_tenant_name_that_is_empty_or_not_plain_text_is_refused(name: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        usecases.create_tenant(CATALOGUE, "acme", name)
    assert caught.value.field == "name"


def test_a_second_tenant_with_the_same_id_is_a_conflict(storage: Storage) -> None:
    usecases.create_tenant(storage.catalogue, "acme")
    with pytest.raises(TenantExists) as caught:
        usecases.create_tenant(storage.catalogue, "acme", "Again")
    assert caught.value.detail == "tenant acme already exists"


def test_an_unknown_tenant_is_not_found(storage: Storage) -> None:
    with pytest.raises(NotFound):
        usecases.get_tenant(storage.catalogue, "nobody")
    with pytest.raises(NotFound):
        usecases.list_api_keys(storage.catalogue, storage.api_keys, "nobody")


# -- API keys -------------------------------------------------------------------------------


def test_a_new_key_returns_its_token_once_and_the_storage_keeps_only_its_digest(
    storage: Storage,
) -> None:
    usecases.create_tenant(storage.catalogue, "acme")
    token, key = usecases.create_api_key(storage.api_keys, "acme", Role.writer)
    parsed = parse_api_key(token)
    assert parsed is not None
    prefix, secret = parsed
    assert (key.prefix, key.tenant, key.role) == (prefix, "acme", Role.writer)
    assert storage.api_keys.find_api_key(prefix) == (key, hash_secret(secret))
    assert usecases.list_api_keys(storage.catalogue, storage.api_keys, "acme") == [key]
    revoked = usecases.revoke_api_key(storage.api_keys, key.id)
    assert revoked.revoked_at is not None


class PrefixesTaken:
    """The API-keys port of a storage where the first ``taken`` prefixes tried are in use."""

    def __init__(self, real: ApiKeys, taken: int) -> None:
        self.real, self.taken, self.tried = real, taken, 0

    def create_api_key(self, tenant: str, role: Role, prefix: str, secret_hash: str) -> ApiKey:
        self.tried += 1
        if self.tried <= self.taken:
            raise ApiKeyPrefixTaken()
        return self.real.create_api_key(tenant, role, prefix, secret_hash)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_a_taken_prefix_is_retried_with_a_new_key(storage: Storage) -> None:
    usecases.create_tenant(storage.catalogue, "acme")
    port = PrefixesTaken(storage.api_keys, taken=usecases.API_KEY_ATTEMPTS - 1)
    token, key = usecases.create_api_key(cast(ApiKeys, port), "acme", Role.reader)
    assert port.tried == usecases.API_KEY_ATTEMPTS
    assert token.startswith(f"cm_{key.prefix}_")


def test_creating_a_key_gives_up_when_every_prefix_tried_is_taken(storage: Storage) -> None:
    usecases.create_tenant(storage.catalogue, "acme")
    port = PrefixesTaken(storage.api_keys, taken=usecases.API_KEY_ATTEMPTS)
    with pytest.raises(ApiKeyPrefixTaken):
        usecases.create_api_key(cast(ApiKeys, port), "acme", Role.reader)
    assert port.tried == usecases.API_KEY_ATTEMPTS
    assert storage.api_keys.list_api_keys("acme") == []


def test_a_key_for_a_malformed_tenant_or_a_key_id_below_one_never_reaches_the_storage() -> None:
    with pytest.raises(InvalidInput) as caught:
        usecases.create_api_key(API_KEYS, "Not A Tenant", Role.admin)
    assert caught.value.field == "tenant"
    with pytest.raises(InvalidInput) as caught:
        usecases.revoke_api_key(API_KEYS, 0)
    assert caught.value.field == "key_id"


# -- reads ----------------------------------------------------------------------------------


def test_a_change_range_that_ends_before_it_starts_is_refused_naming_until() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    for until in (now, now - timedelta(seconds=1)):
        with pytest.raises(InvalidInput) as caught:
            usecases.list_changes(
                CATALOGUE, INVENTORY, "t", 1, ChangeFilter(since=now, until=until), PageRequest()
            )
        assert caught.value.field == "until"


def test_a_level_is_found_only_for_the_tenants_store_and_item(storage: Storage) -> None:
    shop, item = _shop_and_item(storage)
    _, foreign = _shop_and_item(storage, "globex")
    ports = (storage.catalogue, storage.inventory)
    assert usecases.find_level(*ports, "acme", shop, item) is None
    usecases.set_quantity(storage.inventory, "acme", shop, item, 4, actor="test")
    found = usecases.find_level(*ports, "acme", shop, item)
    assert found is not None
    assert found.quantity == 4
    with pytest.raises(NotFound):
        usecases.find_level(*ports, "acme", shop, foreign)
    with pytest.raises(NotFound):
        usecases.get_level(*ports, "globex", shop, item)


def test_a_deleted_item_still_has_its_level_at_an_earlier_moment(storage: Storage) -> None:
    shop, item = _shop_and_item(storage)
    ports = (storage.catalogue, storage.inventory)
    level = usecases.set_quantity(storage.inventory, "acme", shop, item, 3, actor="test")
    usecases.adjust_inventory(
        storage.inventory, "acme", shop, [Adjustment(item, -3, Reason.sold)], actor="test"
    )
    usecases.delete_item(storage.catalogue, "acme", item)
    page = usecases.list_store_inventory(
        *ports, "acme", shop, PageRequest(limit=10), as_of=level.updated_at
    )
    assert [(lv.item_id, lv.quantity) for lv in page.rows] == [(item, 3)]
    assert usecases.list_store_inventory(*ports, "acme", shop, PageRequest()).rows == []


def test_a_conflict_from_the_storage_reaches_the_caller_unchanged(storage: Storage) -> None:
    usecases.create_tenant(storage.catalogue, "acme")
    new = NewItem(sku="DUP", name="One", cost=Decimal("1.00"))
    usecases.create_item(storage.catalogue, "acme", new)
    with pytest.raises(Conflict) as caught:
        usecases.create_item(storage.catalogue, "acme", new)
    assert caught.value.detail == "an item with sku 'DUP' already exists"
