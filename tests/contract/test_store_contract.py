"""The storage contract: every CommerceStore adapter must pass this suite unchanged."""

from __future__ import annotations

from datetime import UTC, timedelta
from decimal import Decimal

import pytest

from commerce.core.errors import Conflict, NotFound
from commerce.core.models import NewChain, NewItem, NewStore
from commerce.core.ports import CommerceStore
from tests.conftest import new_tenant

pytestmark = pytest.mark.contract


def _store_in(store: CommerceStore, tenant: str, city: str = "Lyon") -> tuple[int, int]:
    chain = store.create_chain(tenant, NewChain(name="Chain", phone="+33 1 23 45 67 89"))
    shop = store.create_store(
        tenant,
        NewStore(
            chain_id=chain.id,
            name=f"{city} Centre",
            phone="+33 4 00 00 00 00",
            address="1 Rue de la République",
            postal_code="69002",
            city=city,
            country="FR",
        ),
    )
    return chain.id, shop.id


def test_the_store_answers_its_health_check(store: CommerceStore) -> None:
    store.check()


def test_a_created_tenant_can_be_read_back_and_listed(store: CommerceStore) -> None:
    tenant = store.create_tenant("acme-contract", "Acme Retail")
    assert store.get_tenant("acme-contract") == tenant
    assert tenant.name == "Acme Retail"
    assert tenant.created_at.tzinfo is not None
    assert "acme-contract" in [t.id for t in store.list_tenants()]


def test_a_duplicate_tenant_is_a_conflict(store: CommerceStore) -> None:
    store.create_tenant("dup-contract", "One")
    with pytest.raises(Conflict):
        store.create_tenant("dup-contract", "Two")


def test_an_unknown_tenant_reads_as_none(store: CommerceStore) -> None:
    assert store.get_tenant("nobody-here") is None


def test_a_created_chain_round_trips_with_utc_timestamps(store: CommerceStore) -> None:
    tenant = new_tenant(store)
    chain = store.create_chain(tenant, NewChain(name="Maison Dupont", phone="+33 1 42 00 00 00"))
    assert chain.id > 0
    assert chain.name == "Maison Dupont"
    assert chain.phone == "+33 1 42 00 00 00"
    assert chain.created_at.utcoffset() == timedelta(0)
    assert chain.updated_at == chain.created_at
    assert store.get_chain(tenant, chain.id) == chain


def test_chains_list_in_id_order_and_page_by_key(store: CommerceStore) -> None:
    tenant = new_tenant(store)
    ids = [store.create_chain(tenant, NewChain(name=f"Chain {n}")).id for n in range(5)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5
    assert [c.id for c in store.list_chains(tenant, after=None, limit=100)] == ids
    assert [c.id for c in store.list_chains(tenant, after=None, limit=2)] == ids[:2]
    assert [c.id for c in store.list_chains(tenant, after=ids[1], limit=2)] == ids[2:4]
    assert store.list_chains(tenant, after=ids[-1], limit=10) == []


def test_creating_a_chain_for_an_unknown_tenant_is_not_found(store: CommerceStore) -> None:
    with pytest.raises(NotFound):
        store.create_chain("no-such-tenant", NewChain(name="Ghost"))


def test_a_tenant_never_sees_another_tenants_chain(store: CommerceStore) -> None:
    mine, theirs = new_tenant(store), new_tenant(store)
    chain = store.create_chain(theirs, NewChain(name="Theirs"))
    assert store.get_chain(mine, chain.id) is None
    assert store.list_chains(mine, after=None, limit=100) == []
    assert store.list_stores(mine, chain.id, after=None, limit=100) == []


def test_a_created_store_round_trips_every_field(store: CommerceStore) -> None:
    tenant = new_tenant(store)
    chain = store.create_chain(tenant, NewChain(name="Chain"))
    new = NewStore(
        chain_id=chain.id,
        name="Porto Baixa",
        phone="+351 22 000 0000",
        address="Rua de Santa Catarina 1",
        postal_code="4000-447",
        city="Porto",
        country="PT",
        active=False,
    )
    shop = store.create_store(tenant, new)
    assert (shop.chain_id, shop.name, shop.phone, shop.address) == (
        chain.id,
        "Porto Baixa",
        "+351 22 000 0000",
        "Rua de Santa Catarina 1",
    )
    assert (shop.postal_code, shop.city, shop.country, shop.active) == (
        "4000-447",
        "Porto",
        "PT",
        False,
    )
    assert shop.created_at.tzinfo is not None
    assert store.get_store(tenant, shop.id) == shop


def test_stores_list_by_chain_in_id_order(store: CommerceStore) -> None:
    tenant = new_tenant(store)
    first = store.create_chain(tenant, NewChain(name="First"))
    second = store.create_chain(tenant, NewChain(name="Second"))
    in_first = [store.create_store(tenant, NewStore(first.id, f"F{n}")).id for n in range(3)]
    in_second = [store.create_store(tenant, NewStore(second.id, f"S{n}")).id for n in range(2)]
    listed = store.list_stores(tenant, first.id, after=None, limit=100)
    assert [s.id for s in listed] == in_first
    assert [s.id for s in store.list_stores(tenant, second.id, after=None, limit=100)] == in_second
    assert [
        s.id for s in store.list_stores(tenant, first.id, after=in_first[0], limit=1)
    ] == in_first[1:2]


def test_a_store_cannot_be_created_in_another_tenants_chain(store: CommerceStore) -> None:
    mine, theirs = new_tenant(store), new_tenant(store)
    chain = store.create_chain(theirs, NewChain(name="Theirs"))
    with pytest.raises(NotFound):
        store.create_store(mine, NewStore(chain_id=chain.id, name="Intruder"))
    assert store.list_stores(theirs, chain.id, after=None, limit=10) == []


def test_a_tenant_never_sees_another_tenants_store(store: CommerceStore) -> None:
    mine, theirs = new_tenant(store), new_tenant(store)
    _, shop = _store_in(store, theirs)
    assert store.get_store(mine, shop) is None
    assert store.list_levels(mine, shop, item_ids=None, after=None, limit=10) == []


def test_an_item_keeps_its_cost_exactly(store: CommerceStore) -> None:
    tenant = new_tenant(store)
    item = store.create_item(
        tenant, NewItem(sku="SKU-1", name="Espresso cup", cost=Decimal("12.50"))
    )
    cheap = store.create_item(tenant, NewItem(sku="SKU-2", name="Napkin", cost=Decimal("0.10")))
    big = store.create_item(tenant, NewItem(sku="SKU-3", name="Oven", cost=Decimal("9999999.99")))
    for made, expected in ((item, "12.50"), (cheap, "0.10"), (big, "9999999.99")):
        read = store.get_item(tenant, made.id)
        assert read is not None
        assert isinstance(read.cost, Decimal)
        assert str(read.cost) == expected
        assert read == made


def test_items_list_in_id_order_and_page_by_key(store: CommerceStore) -> None:
    tenant = new_tenant(store)
    ids = [
        store.create_item(tenant, NewItem(sku=f"P-{n}", name=f"P {n}", cost=Decimal("1.00"))).id
        for n in range(4)
    ]
    assert [i.id for i in store.list_items(tenant, after=None, limit=100)] == ids
    assert [i.id for i in store.list_items(tenant, after=ids[0], limit=2)] == ids[1:3]


def test_a_duplicate_sku_within_a_tenant_is_a_conflict(store: CommerceStore) -> None:
    tenant = new_tenant(store)
    store.create_item(tenant, NewItem(sku="DUP", name="One", cost=Decimal("1.00")))
    with pytest.raises(Conflict):
        store.create_item(tenant, NewItem(sku="DUP", name="Two", cost=Decimal("2.00")))
    assert len(store.list_items(tenant, after=None, limit=10)) == 1


def test_two_tenants_may_use_the_same_sku(store: CommerceStore) -> None:
    mine, theirs = new_tenant(store), new_tenant(store)
    a = store.create_item(mine, NewItem(sku="SAME", name="Mine", cost=Decimal("1.00")))
    b = store.create_item(theirs, NewItem(sku="SAME", name="Theirs", cost=Decimal("1.00")))
    assert a.id != b.id
    assert store.get_item(mine, b.id) is None
    assert [i.id for i in store.list_items(mine, after=None, limit=10)] == [a.id]


def test_setting_a_quantity_creates_then_replaces_the_level(store: CommerceStore) -> None:
    tenant = new_tenant(store)
    _, shop = _store_in(store, tenant)
    item = store.create_item(tenant, NewItem(sku="A", name="A", cost=Decimal("1.00")))
    first = store.set_quantity(tenant, shop, item.id, 7, actor="test")
    assert (first.store_id, first.item_id, first.quantity) == (shop, item.id, 7)
    assert first.updated_at.utcoffset() == timedelta(0)
    second = store.set_quantity(tenant, shop, item.id, 0, actor="test")
    assert second.quantity == 0
    assert second.updated_at >= first.updated_at
    assert store.list_levels(tenant, shop, item_ids=None, after=None, limit=10) == [second]


def test_a_store_lists_its_levels_in_item_order(store: CommerceStore) -> None:
    tenant = new_tenant(store)
    _, shop = _store_in(store, tenant)
    items = [
        store.create_item(tenant, NewItem(sku=f"I{n}", name=f"I{n}", cost=Decimal("2.00"))).id
        for n in range(5)
    ]
    for n, item_id in enumerate(reversed(items)):
        store.set_quantity(tenant, shop, item_id, n, actor="test")
    levels = store.list_levels(tenant, shop, item_ids=None, after=None, limit=100)
    assert [lv.item_id for lv in levels] == items
    assert {lv.item_id: lv.quantity for lv in levels} == {
        item_id: n for n, item_id in enumerate(reversed(items))
    }
    page = store.list_levels(tenant, shop, item_ids=None, after=items[1], limit=2)
    assert [lv.item_id for lv in page] == items[2:4]


def test_levels_for_chosen_items_leave_out_items_without_a_level(store: CommerceStore) -> None:
    tenant = new_tenant(store)
    _, shop = _store_in(store, tenant)
    items = [
        store.create_item(tenant, NewItem(sku=f"I{n}", name=f"I{n}", cost=Decimal("2.00"))).id
        for n in range(4)
    ]
    store.set_quantity(tenant, shop, items[0], 3, actor="test")
    store.set_quantity(tenant, shop, items[2], 0, actor="test")
    chosen = [items[2], items[1], items[0], 999_999_999]
    levels = store.list_levels(tenant, shop, item_ids=chosen, after=None, limit=100)
    assert [(lv.item_id, lv.quantity) for lv in levels] == [(items[0], 3), (items[2], 0)]
    after_first = store.list_levels(tenant, shop, item_ids=chosen, after=items[0], limit=100)
    assert [lv.item_id for lv in after_first] == [items[2]]
    assert store.list_levels(tenant, shop, item_ids=[], after=None, limit=100) == []


def test_an_item_lists_its_levels_across_stores_in_store_order(store: CommerceStore) -> None:
    tenant = new_tenant(store)
    _, lyon = _store_in(store, tenant, "Lyon")
    _, nice = _store_in(store, tenant, "Nice")
    item = store.create_item(tenant, NewItem(sku="X", name="X", cost=Decimal("5.00")))
    store.set_quantity(tenant, nice, item.id, 4, actor="test")
    store.set_quantity(tenant, lyon, item.id, 9, actor="test")
    levels = store.list_item_levels(tenant, item.id, after=None, limit=100)
    assert [(lv.store_id, lv.quantity) for lv in levels] == sorted([(lyon, 9), (nice, 4)])
    assert len(store.list_item_levels(tenant, item.id, after=levels[0].store_id, limit=5)) == 1


def test_levels_cannot_be_set_across_tenants(store: CommerceStore) -> None:
    mine, theirs = new_tenant(store), new_tenant(store)
    _, my_shop = _store_in(store, mine)
    _, their_shop = _store_in(store, theirs)
    my_item = store.create_item(mine, NewItem(sku="M", name="M", cost=Decimal("1.00")))
    their_item = store.create_item(theirs, NewItem(sku="T", name="T", cost=Decimal("1.00")))
    with pytest.raises(NotFound):
        store.set_quantity(mine, their_shop, my_item.id, 1, actor="test")
    with pytest.raises(NotFound):
        store.set_quantity(mine, my_shop, their_item.id, 1, actor="test")
    assert store.list_levels(mine, my_shop, item_ids=None, after=None, limit=10) == []
    assert store.list_item_levels(mine, their_item.id, after=None, limit=10) == []
    assert store.list_item_levels(theirs, their_item.id, after=None, limit=10) == []


def test_setting_a_level_on_a_missing_store_or_item_is_not_found(store: CommerceStore) -> None:
    tenant = new_tenant(store)
    _, shop = _store_in(store, tenant)
    item = store.create_item(tenant, NewItem(sku="A", name="A", cost=Decimal("1.00")))
    with pytest.raises(NotFound):
        store.set_quantity(tenant, 987_654_321, item.id, 1, actor="test")
    with pytest.raises(NotFound):
        store.set_quantity(tenant, shop, 987_654_321, 1, actor="test")


def test_timestamps_come_back_in_utc(store: CommerceStore) -> None:
    tenant = new_tenant(store)
    chain = store.create_chain(tenant, NewChain(name="Chain"))
    read = store.get_chain(tenant, chain.id)
    assert read is not None
    assert read.created_at.tzinfo is not None
    assert read.created_at.astimezone(UTC) == read.created_at
