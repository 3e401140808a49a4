"""Use cases of tenants and their API keys (re-exported by ``core.usecases``, the one way in):
creating and listing tenants, and making, listing and revoking keys, whose secret is shown
once and only its digest is stored."""

from __future__ import annotations

from collections.abc import Sequence

from commerce.core import spans, validation
from commerce.core.apikeys import ApiKey, new_api_key
from commerce.core.auth import Role
from commerce.core.errors import (
    ApiKeyPrefixTaken,
    InvalidInput,
    NotFound,
)
from commerce.core.events import LogEvent, event_log
from commerce.core.models import (
    Tenant,
)
from commerce.core.ports import ApiKeys, Catalogue

log = event_log("commerce.usecases")
"""The same logger as the other use cases'."""

API_KEY_ATTEMPTS = 3
"""New prefixes to try when one is already taken (about one chance in 10^12 each)."""


@spans.usecase
def create_tenant(catalogue: Catalogue, tenant_id: str, name: str | None = None) -> Tenant:
    """A new tenant; its id is also its name unless one is given."""
    tenant_id = validation.tenant_id("tenant", tenant_id)
    name = tenant_id if name is None else name
    return catalogue.create_tenant(tenant_id, validation.tenant_name("name", name))


@spans.usecase
def list_tenants(catalogue: Catalogue) -> Sequence[Tenant]:
    return catalogue.list_tenants()


@spans.usecase
def get_tenant(catalogue: Catalogue, tenant_id: str) -> Tenant:
    found = catalogue.get_tenant(validation.tenant_id("tenant", tenant_id))
    if found is None:
        raise NotFound("tenant", tenant_id)
    return found


@spans.usecase
def tenant_exists(catalogue: Catalogue, tenant_id: str) -> bool:
    """Whether ``tenant_id`` is a well-formed id of a tenant that exists: what the tenant of a
    principal must be. A malformed id (a NUL, 100 characters) is ``False`` without asking
    storage, where it could only fail."""
    try:
        validation.tenant_id("tenant", tenant_id)
    except InvalidInput:
        return False
    return catalogue.get_tenant(tenant_id) is not None


@spans.usecase
def create_api_key(api_keys: ApiKeys, tenant: str, role: Role) -> tuple[str, ApiKey]:
    """A new key of ``tenant``: the token, to be shown once, and the key as stored.

    Only the digest of the secret reaches the port. A taken prefix is retried with a new key.
    """
    tenant = validation.tenant_id("tenant", tenant)
    for _ in range(API_KEY_ATTEMPTS):
        made = new_api_key()
        try:
            key = api_keys.create_api_key(tenant, role, made.prefix, made.secret_hash)
        except ApiKeyPrefixTaken:
            continue
        # The key's id and role only: never the token, its secret or the secret's digest.
        log(
            LogEvent.API_KEY_CREATED,
            "API key %d created for tenant %s (%s)",
            key.id,
            key.tenant,
            key.role.name,
            key_id=key.id,
            tenant=key.tenant,
            role=key.role.name,
        )
        return made.token, key
    raise ApiKeyPrefixTaken()


@spans.usecase
def list_api_keys(catalogue: Catalogue, api_keys: ApiKeys, tenant: str) -> Sequence[ApiKey]:
    """The tenant's keys, revoked ones too; ``NotFound`` if there is no such tenant."""
    get_tenant(catalogue, tenant)
    return api_keys.list_api_keys(tenant)


@spans.usecase
def revoke_api_key(api_keys: ApiKeys, key_id: int) -> ApiKey:
    if key_id < 1:
        raise InvalidInput("key_id", "must be a positive integer")
    key = api_keys.revoke_api_key(key_id)
    log(
        LogEvent.API_KEY_REVOKED,
        "API key %d of tenant %s revoked",
        key.id,
        key.tenant,
        key_id=key.id,
        tenant=key.tenant,
    )
    return key
