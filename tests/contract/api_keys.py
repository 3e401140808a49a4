"""The API-keys port's contract: create, list, find, revoke and touch, with only a digest kept."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from commerce.core.apikeys import ApiKey, new_api_key
from commerce.core.auth import Role
from commerce.core.errors import Conflict, NotFound
from commerce.core.ports import ApiKeys
from tests.contract.base import NewTenant, PortFixtures


def _create(api_keys: ApiKeys, tenant: str, role: Role = Role.reader) -> tuple[ApiKey, str]:
    made = new_api_key()
    return api_keys.create_api_key(tenant, role, made.prefix, made.secret_hash), made.secret_hash


class ApiKeysContract(PortFixtures):
    """Uses the fixtures ``api_keys`` and ``new_tenant`` (keys need a tenant that exists)."""

    def test_a_created_key_is_found_by_its_prefix_with_its_digest(
        self, api_keys: ApiKeys, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        key, digest = _create(api_keys, tenant, Role.writer)
        assert (key.tenant, key.role, key.revoked_at, key.last_used_at) == (
            tenant,
            Role.writer,
            None,
            None,
        )
        assert key.created_at.tzinfo is not None
        assert api_keys.find_api_key(key.prefix) == (key, digest)

    def test_a_key_record_never_carries_the_digest_of_its_secret(
        self, api_keys: ApiKeys, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        key, digest = _create(api_keys, tenant)
        for record in (key, *api_keys.list_api_keys(tenant), api_keys.revoke_api_key(key.id)):
            assert digest not in repr(record)
            assert all(value != digest for value in dataclasses.astuple(record))

    def test_an_unknown_prefix_is_not_found(self, api_keys: ApiKeys) -> None:
        assert api_keys.find_api_key("zzzzzzzz") is None

    def test_a_key_for_an_unknown_tenant_is_refused_as_not_found(self, api_keys: ApiKeys) -> None:
        made = new_api_key()
        with pytest.raises(NotFound):
            api_keys.create_api_key("no-such-tenant", Role.reader, made.prefix, made.secret_hash)
        assert api_keys.find_api_key(made.prefix) is None

    def test_a_prefix_already_taken_is_a_conflict_and_keeps_the_first_key(
        self, api_keys: ApiKeys, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        key, digest = _create(api_keys, tenant)
        with pytest.raises(Conflict):
            api_keys.create_api_key(tenant, Role.admin, key.prefix, new_api_key().secret_hash)
        assert api_keys.find_api_key(key.prefix) == (key, digest)

    def test_listing_gives_only_the_tenants_keys_in_id_order(
        self, api_keys: ApiKeys, new_tenant: NewTenant
    ) -> None:
        tenant, other = new_tenant(), new_tenant()
        mine = [
            _create(api_keys, tenant, role)[0] for role in (Role.reader, Role.admin, Role.writer)
        ]
        _create(api_keys, other)
        listed = api_keys.list_api_keys(tenant)
        assert listed == sorted(mine, key=lambda k: k.id)
        assert api_keys.list_api_keys("no-such-tenant") == []

    def test_revoking_marks_the_key_and_keeps_the_first_revocation_time(
        self, api_keys: ApiKeys, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        key, digest = _create(api_keys, tenant)
        revoked = api_keys.revoke_api_key(key.id)
        assert revoked.revoked_at is not None
        assert dataclasses.replace(revoked, revoked_at=None) == key
        assert api_keys.find_api_key(key.prefix) == (revoked, digest)
        assert api_keys.revoke_api_key(key.id).revoked_at == revoked.revoked_at
        assert api_keys.list_api_keys(tenant) == [revoked]

    def test_revoking_an_unknown_key_is_not_found(self, api_keys: ApiKeys) -> None:
        with pytest.raises(NotFound):
            api_keys.revoke_api_key(987654321)

    def test_touching_records_the_last_use_and_never_moves_it_back(
        self, api_keys: ApiKeys, new_tenant: NewTenant
    ) -> None:
        tenant = new_tenant()
        key, _ = _create(api_keys, tenant)
        used = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
        api_keys.touch_api_key(key.id, used)
        [listed] = api_keys.list_api_keys(tenant)
        assert listed.last_used_at == used
        api_keys.touch_api_key(key.id, used - timedelta(minutes=1))
        found = api_keys.find_api_key(key.prefix)
        assert found is not None
        assert found[0].last_used_at == used
        api_keys.touch_api_key(key.id, used + timedelta(seconds=1))
        [listed] = api_keys.list_api_keys(tenant)
        assert listed.last_used_at == used + timedelta(seconds=1)

    def test_touching_an_unknown_key_does_nothing(self, api_keys: ApiKeys) -> None:
        api_keys.touch_api_key(987654321, datetime.now(UTC))
