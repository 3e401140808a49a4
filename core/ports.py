"""The ports: what the core needs from storage and authentication, as Protocols."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol, runtime_checkable

from core.auth import Principal
from core.models import (
    Chain,
    InventoryLevel,
    Item,
    NewChain,
    NewItem,
    NewStore,
    Store,
    Tenant,
)


@runtime_checkable
class CommerceStore(Protocol):
    """Storage for every tenant's chains, stores, items and inventory levels.

    Every read and write names the tenant first: a caller cannot reach data without saying
    whose it is, and a row of another tenant is treated exactly as a missing one.

    List methods are keyset-paginated: they return, ordered by key ascending, at most
    ``limit`` rows whose key is greater than ``after`` (``None`` means from the start).
    The key is the row's ``id``; for inventory levels of a store it is ``item_id`` and
    for the levels of an item across stores it is ``store_id``.
    """

    # -- lifecycle -------------------------------------------------------------------
    def check(self) -> None:
        """Raise ``StorageUnavailable`` unless the store can answer queries right now."""
        ...

    def close(self) -> None:
        """Release connections and other resources; the store is not used afterwards."""
        ...

    # -- tenants ---------------------------------------------------------------------
    def create_tenant(self, tenant_id: str, name: str) -> Tenant:
        """Create a tenant; ``Conflict`` if the id is taken."""
        ...

    def get_tenant(self, tenant_id: str) -> Tenant | None: ...

    def list_tenants(self) -> Sequence[Tenant]: ...

    # -- reads -----------------------------------------------------------------------
    def list_chains(self, tenant: str, *, after: int | None, limit: int) -> Sequence[Chain]: ...

    def get_chain(self, tenant: str, chain_id: int) -> Chain | None: ...

    def list_stores(
        self, tenant: str, chain_id: int, *, after: int | None, limit: int
    ) -> Sequence[Store]: ...

    def get_store(self, tenant: str, store_id: int) -> Store | None: ...

    def list_items(self, tenant: str, *, after: int | None, limit: int) -> Sequence[Item]: ...

    def get_item(self, tenant: str, item_id: int) -> Item | None: ...

    def list_levels(
        self,
        tenant: str,
        store_id: int,
        *,
        item_ids: Collection[int] | None,
        after: int | None,
        limit: int,
    ) -> Sequence[InventoryLevel]:
        """A store's levels ordered by ``item_id``; only those items when ``item_ids`` is given."""
        ...

    def list_item_levels(
        self, tenant: str, item_id: int, *, after: int | None, limit: int
    ) -> Sequence[InventoryLevel]:
        """One item's levels across the tenant's stores, ordered by ``store_id``."""
        ...

    # -- writes ----------------------------------------------------------------------
    def create_chain(self, tenant: str, new: NewChain) -> Chain:
        """``NotFound`` if the tenant does not exist."""
        ...

    def create_store(self, tenant: str, new: NewStore) -> Store:
        """``NotFound`` if the chain is not the tenant's."""
        ...

    def create_item(self, tenant: str, new: NewItem) -> Item:
        """``Conflict`` if the tenant already has an item with that ``sku``."""
        ...

    def set_quantity(
        self, tenant: str, store_id: int, item_id: int, quantity: int
    ) -> InventoryLevel:
        """Set a level, creating it if need be; ``NotFound`` unless both are the tenant's."""
        ...


@runtime_checkable
class Authenticator(Protocol):
    """Turns the credentials of a request into a ``Principal``."""

    def authenticate(self, token: str | None) -> Principal | None:
        """The caller's principal; ``None`` if the token is not of this authenticator's kind.

        Raise ``Unauthorized`` for a token of its kind that proves nothing (bad, expired,
        revoked): the next authenticator is then not tried.
        """
        ...


@runtime_checkable
class SchemaManager(Protocol):
    """Owns a database's schema: applies migrations and tells which one is current."""

    def upgrade(self) -> str:
        """Apply every pending migration; idempotent. Returns the revision now current."""
        ...

    def current(self) -> str | None:
        """The revision the database is at, ``None`` for an empty database."""
        ...

    def head(self) -> str:
        """The newest revision this version of the service knows."""
        ...

    def upgrade_sql(self) -> str:
        """The SQL ``upgrade`` would run on an empty database, for review or to run by hand."""
        ...


@runtime_checkable
class BulkLoader(Protocol):
    """Loads many rows per statement, for seeding and imports, never for a request.

    Ids come back in the order the rows were given. The database's constraints still hold
    (a batch that breaks one is refused whole); the per-row checks of ``CommerceStore``
    are not repeated, so the caller passes only chains, stores and items of ``tenant``.
    """

    def add_chains(self, tenant: str, rows: Sequence[NewChain]) -> list[int]: ...

    def add_stores(self, tenant: str, rows: Sequence[NewStore]) -> list[int]: ...

    def add_items(self, tenant: str, rows: Sequence[NewItem]) -> list[int]: ...

    def add_levels(self, tenant: str, rows: Sequence[tuple[int, int, int]]) -> int:
        """``(store_id, item_id, quantity)`` rows, none of them existing yet; returns the count."""
        ...

    def close(self) -> None: ...
