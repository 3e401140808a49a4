"""The catalogue port's contract: tenants, chains, stores and items, their updates and deletes."""

from __future__ import annotations

from datetime import UTC, timedelta
from decimal import Decimal

import pytest

from commerce.core.errors import Conflict, NotFound, PreconditionFailed
from commerce.core.models import (
    ChainPatch,
    ItemPatch,
    NewChain,
    NewItem,
    NewStore,
    StorePatch,
)
from commerce.core.ports import Catalogue
from tests.contract.base import NewTenant, PortFixtures


def items(catalogue: Catalogue, tenant: str, count: int) -> list[int]:
    """``count`` new items of ``tenant``, with skus ``W0``, ``W1``, ..."""
    return [
        catalogue.create_item(tenant, NewItem(sku=f"W{n}", name=f"W{n}", cost=Decimal("1.00"))).id
        for n in range(count)
    ]


class CatalogueContract(PortFixtures):
    """Uses the fixtures ``catalogue`` and ``new_tenant``."""

    # -- tenants ---------------------------------------------------------------------
    def test_a_created_tenant_can_be_read_back_and_listed(self, catalogue: Catalogue) -> None:
        tenant = catalogue.create_tenant("acme-contract", "Acme Retail")
        assert catalogue.get_tenant("acme-contract") == tenant
        assert tenant.name == "Acme Retail"
        assert tenant.created_at.tzinfo is not None
        assert "acme-contract" in [t.id for t in catalogue.list_tenants()]

    def test_a_duplicate_tenant_is_a_conflict(self, catalogue: Catalogue) -> None:
        catalogue.create_tenant("dup-contract", "One")
        with pytest.raises(Conflict):
            catalogue.create_tenant("dup-contract", "Two")

    def test_an_unknown_tenant_reads_as_none(self, catalogue: Catalogue) -> None:
        assert catalogue.get_tenant("nobody-here") is None

    # -- chains ----------------------------------------------------------------------
    def test_a_created_chain_round_trips_with_utc_timestamps(
        self, catalogue: Catalogue, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        chain = catalogue.create_chain(
            tenant, NewChain(name="Maison Dupont", phone="+33 1 42 00 00 00")
        )
        assert chain.id > 0
        assert chain.name == "Maison Dupont"
        assert chain.phone == "+33 1 42 00 00 00"
        assert chain.created_at.utcoffset() == timedelta(0)
        assert chain.updated_at == chain.created_at
        assert catalogue.get_chain(tenant, chain.id) == chain

    def test_chains_list_in_id_order_and_page_by_key(
        self, catalogue: Catalogue, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        ids = [catalogue.create_chain(tenant, NewChain(name=f"Chain {n}")).id for n in range(5)]
        assert ids == sorted(ids)
        assert len(set(ids)) == 5
        assert [c.id for c in catalogue.list_chains(tenant, after=None, limit=100)] == ids
        assert [c.id for c in catalogue.list_chains(tenant, after=None, limit=2)] == ids[:2]
        assert [c.id for c in catalogue.list_chains(tenant, after=ids[1], limit=2)] == ids[2:4]
        assert catalogue.list_chains(tenant, after=ids[-1], limit=10) == []

    def test_creating_a_chain_for_an_unknown_tenant_is_not_found(
        self, catalogue: Catalogue
    ) -> None:
        with pytest.raises(NotFound):
            catalogue.create_chain("no-such-tenant", NewChain(name="Ghost"))

    def test_a_tenant_never_sees_another_tenants_chain(
        self, catalogue: Catalogue, new_tenant: NewTenant
    ) -> None:
        mine, theirs = new_tenant(), new_tenant()
        chain = catalogue.create_chain(theirs, NewChain(name="Theirs"))
        assert catalogue.get_chain(mine, chain.id) is None
        assert catalogue.list_chains(mine, after=None, limit=100) == []
        assert catalogue.list_stores(mine, chain.id, after=None, limit=100) == []

    def test_timestamps_come_back_in_utc(self, catalogue: Catalogue, new_tenant: NewTenant) -> None:
        tenant = new_tenant()
        chain = catalogue.create_chain(tenant, NewChain(name="Chain"))
        read = catalogue.get_chain(tenant, chain.id)
        assert read is not None
        assert read.created_at.tzinfo is not None
        assert read.created_at.astimezone(UTC) == read.created_at

    # -- stores ----------------------------------------------------------------------
    def test_a_created_store_round_trips_every_field(
        self, catalogue: Catalogue, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        chain = catalogue.create_chain(tenant, NewChain(name="Chain"))
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
        shop = catalogue.create_store(tenant, new)
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
        assert catalogue.get_store(tenant, shop.id) == shop

    def test_stores_list_by_chain_in_id_order(
        self, catalogue: Catalogue, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        first = catalogue.create_chain(tenant, NewChain(name="First"))
        second = catalogue.create_chain(tenant, NewChain(name="Second"))
        in_first = [
            catalogue.create_store(tenant, NewStore(first.id, f"F{n}")).id for n in range(3)
        ]
        in_second = [
            catalogue.create_store(tenant, NewStore(second.id, f"S{n}")).id for n in range(2)
        ]
        listed = catalogue.list_stores(tenant, first.id, after=None, limit=100)
        assert [s.id for s in listed] == in_first
        assert [
            s.id for s in catalogue.list_stores(tenant, second.id, after=None, limit=100)
        ] == in_second
        assert [
            s.id for s in catalogue.list_stores(tenant, first.id, after=in_first[0], limit=1)
        ] == in_first[1:2]

    def test_a_store_cannot_be_created_in_another_tenants_chain(
        self, catalogue: Catalogue, new_tenant: NewTenant
    ) -> None:
        mine, theirs = new_tenant(), new_tenant()
        chain = catalogue.create_chain(theirs, NewChain(name="Theirs"))
        with pytest.raises(NotFound):
            catalogue.create_store(mine, NewStore(chain_id=chain.id, name="Intruder"))
        assert catalogue.list_stores(theirs, chain.id, after=None, limit=10) == []

    # -- items -----------------------------------------------------------------------
    def test_an_item_keeps_its_cost_exactly(
        self, catalogue: Catalogue, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        item = catalogue.create_item(
            tenant, NewItem(sku="SKU-1", name="Espresso cup", cost=Decimal("12.50"))
        )
        cheap = catalogue.create_item(
            tenant, NewItem(sku="SKU-2", name="Napkin", cost=Decimal("0.10"))
        )
        big = catalogue.create_item(
            tenant, NewItem(sku="SKU-3", name="Oven", cost=Decimal("9999999.99"))
        )
        for made, expected in ((item, "12.50"), (cheap, "0.10"), (big, "9999999.99")):
            read = catalogue.get_item(tenant, made.id)
            assert read is not None
            assert isinstance(read.cost, Decimal)
            assert str(read.cost) == expected
            assert read == made

    def test_items_list_in_id_order_and_page_by_key(
        self, catalogue: Catalogue, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        ids = [
            catalogue.create_item(
                tenant, NewItem(sku=f"P-{n}", name=f"P {n}", cost=Decimal("1.00"))
            ).id
            for n in range(4)
        ]
        assert [i.id for i in catalogue.list_items(tenant, after=None, limit=100)] == ids
        assert [i.id for i in catalogue.list_items(tenant, after=ids[0], limit=2)] == ids[1:3]

    def test_a_duplicate_sku_within_a_tenant_is_a_conflict(
        self, catalogue: Catalogue, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        catalogue.create_item(tenant, NewItem(sku="DUP", name="One", cost=Decimal("1.00")))
        with pytest.raises(Conflict):
            catalogue.create_item(tenant, NewItem(sku="DUP", name="Two", cost=Decimal("2.00")))
        assert len(catalogue.list_items(tenant, after=None, limit=10)) == 1

    def test_two_tenants_may_use_the_same_sku(
        self, catalogue: Catalogue, new_tenant: NewTenant
    ) -> None:
        mine, theirs = new_tenant(), new_tenant()
        a = catalogue.create_item(mine, NewItem(sku="SAME", name="Mine", cost=Decimal("1.00")))
        b = catalogue.create_item(theirs, NewItem(sku="SAME", name="Theirs", cost=Decimal("1.00")))
        assert a.id != b.id
        assert catalogue.get_item(mine, b.id) is None
        assert [i.id for i in catalogue.list_items(mine, after=None, limit=10)] == [a.id]

    # -- updates and deletes ---------------------------------------------------------
    def test_updating_a_chain_changes_only_the_given_fields_and_moves_updated_at(
        self, catalogue: Catalogue, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        chain = catalogue.create_chain(tenant, NewChain(name="Old", phone="+1 555"))
        updated = catalogue.update_chain(tenant, chain.id, ChainPatch(name="New"))
        assert (updated.name, updated.phone, updated.created_at) == (
            "New",
            "+1 555",
            chain.created_at,
        )
        assert updated.updated_at > chain.updated_at
        assert catalogue.get_chain(tenant, chain.id) == updated
        again = catalogue.update_chain(tenant, chain.id, ChainPatch(phone="+1 556"))
        assert again.updated_at > updated.updated_at

    def test_an_update_naming_a_stale_version_is_refused_and_changes_nothing(
        self, catalogue: Catalogue, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        chain = catalogue.create_chain(tenant, NewChain(name="Old"))
        current = catalogue.update_chain(tenant, chain.id, ChainPatch(name="Current"))
        with pytest.raises(PreconditionFailed):
            catalogue.update_chain(
                tenant, chain.id, ChainPatch(name="Lost"), expected_updated_at=chain.updated_at
            )
        assert catalogue.get_chain(tenant, chain.id) == current
        fresh = catalogue.update_chain(
            tenant, chain.id, ChainPatch(name="Won"), expected_updated_at=current.updated_at
        )
        assert fresh.name == "Won"

    def test_writes_to_another_tenants_rows_are_not_found(
        self, catalogue: Catalogue, new_tenant: NewTenant
    ) -> None:
        mine, theirs = new_tenant(), new_tenant()
        chain = catalogue.create_chain(theirs, NewChain(name="Theirs"))
        shop = catalogue.create_store(theirs, NewStore(chain_id=chain.id, name="Shop"))
        item = catalogue.create_item(theirs, NewItem(sku="T", name="T", cost=Decimal("1.00")))
        with pytest.raises(NotFound):
            catalogue.update_chain(mine, chain.id, ChainPatch(name="Mine now"))
        with pytest.raises(NotFound):
            catalogue.update_store(mine, shop.id, StorePatch(name="Mine now"))
        with pytest.raises(NotFound):
            catalogue.update_item(mine, item.id, ItemPatch(name="Mine now"))
        with pytest.raises(NotFound):
            catalogue.delete_item(mine, item.id)
        with pytest.raises(NotFound):
            catalogue.delete_store(mine, shop.id)
        with pytest.raises(NotFound):
            catalogue.delete_chain(mine, chain.id)
        assert catalogue.get_chain(theirs, chain.id) == chain
        assert catalogue.get_store(theirs, shop.id) == shop
        assert catalogue.get_item(theirs, item.id) == item

    def test_a_chain_with_stores_cannot_be_deleted_until_they_are_gone(
        self, catalogue: Catalogue, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        chain = catalogue.create_chain(tenant, NewChain(name="Chain"))
        shop = catalogue.create_store(tenant, NewStore(chain_id=chain.id, name="Shop"))
        with pytest.raises(Conflict):
            catalogue.delete_chain(tenant, chain.id)
        assert catalogue.get_chain(tenant, chain.id) == chain
        catalogue.delete_store(tenant, shop.id)
        catalogue.delete_chain(tenant, chain.id)
        assert catalogue.get_chain(tenant, chain.id) is None
        assert catalogue.list_chains(tenant, after=None, limit=10) == []

    def test_updating_a_store_keeps_its_chain_and_other_fields(
        self, catalogue: Catalogue, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        chain = catalogue.create_chain(tenant, NewChain(name="Chain"))
        shop = catalogue.create_store(tenant, NewStore(chain_id=chain.id, name="Shop", city="Lyon"))
        updated = catalogue.update_store(tenant, shop.id, StorePatch(active=False, country="FR"))
        assert (updated.active, updated.country, updated.city, updated.chain_id) == (
            False,
            "FR",
            "Lyon",
            chain.id,
        )
        assert catalogue.list_stores(tenant, chain.id, after=None, limit=10) == [updated]

    def test_an_items_sku_may_change_but_not_to_another_items(
        self, catalogue: Catalogue, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        first, second = items(catalogue, tenant, 2)
        with pytest.raises(Conflict):
            catalogue.update_item(tenant, second, ItemPatch(sku="W0"))
        renamed = catalogue.update_item(tenant, first, ItemPatch(sku="NEW", cost=Decimal("3.10")))
        assert (renamed.sku, str(renamed.cost)) == ("NEW", "3.10")
        # The old sku is free again.
        catalogue.update_item(tenant, second, ItemPatch(sku="W0"))
        assert sorted(i.sku for i in catalogue.list_items(tenant, after=None, limit=10)) == [
            "NEW",
            "W0",
        ]

    def test_a_deleted_rows_version_check_is_not_found(
        self, catalogue: Catalogue, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        chain = catalogue.create_chain(tenant, NewChain(name="Chain"))
        catalogue.delete_chain(tenant, chain.id, expected_updated_at=chain.updated_at)
        with pytest.raises(NotFound):
            catalogue.update_chain(
                tenant, chain.id, ChainPatch(name="x"), expected_updated_at=chain.updated_at
            )
