"""The ports: what the core needs from storage and authentication, as small Protocols.

Storage is split by concern (``Catalogue``, ``Inventory``, ``IdempotencyRecords``,
``ApiKeys``); a backend hands back one ``Storage`` bundle of them. Adapters satisfy a
Protocol without inheriting from it; mypy and the contract suites check that they conform.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from commerce.core.apikeys import ApiKey
from commerce.core.auth import Principal, Role
from commerce.core.models import (
    Adjustment,
    Chain,
    ChainPatch,
    ChangeFilter,
    InventoryLevel,
    Item,
    ItemPatch,
    LedgerEntry,
    NewChain,
    NewItem,
    NewStore,
    Store,
    StoredResponse,
    StorePatch,
    Tenant,
)
from commerce.core.pagination import TimeKey


@runtime_checkable
class Catalogue(Protocol):
    """Tenants, and every tenant's chains, stores and items.

    Every read and write names the tenant first: a caller cannot reach data without saying
    whose it is, and a row of another tenant is treated exactly as a missing one.

    List methods are keyset-paginated: they return, ordered by ``id`` ascending, at most
    ``limit`` rows whose key is greater than ``after`` (``None`` means from the start).
    Rows arrive valid (the use cases check them with ``core.validation``); the business
    rules (versions, delete guards) come from ``core.rules``.
    """

    # -- tenants ---------------------------------------------------------------------
    def create_tenant(self, tenant_id: str, name: str) -> Tenant:
        """Create a tenant; ``TenantExists`` if the id is taken."""
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

    # -- writes ----------------------------------------------------------------------
    def create_chain(self, tenant: str, new: NewChain) -> Chain:
        """``NotFound`` if the tenant does not exist."""
        ...

    def create_store(self, tenant: str, new: NewStore) -> Store:
        """``NotFound`` if the chain is not the tenant's."""
        ...

    def create_item(self, tenant: str, new: NewItem) -> Item:
        """``SkuTaken`` if the tenant already has an item with that ``sku``."""
        ...

    def update_chain(
        self,
        tenant: str,
        chain_id: int,
        patch: ChainPatch,
        *,
        expected_updated_at: datetime | None = None,
    ) -> Chain:
        """Apply the patch's non-``None`` fields; ``updated_at`` moves strictly forward.

        ``NotFound`` unless the chain is the tenant's; ``VersionMismatch`` when
        ``expected_updated_at`` is given and the row's differs (it changed meanwhile).
        Every ``update_*`` and ``delete_*`` method below follows the same two rules.
        """
        ...

    def delete_chain(
        self, tenant: str, chain_id: int, *, expected_updated_at: datetime | None = None
    ) -> None:
        """``ChainHasStores`` while the chain still has stores (``rules.chain_delete_guard``)."""
        ...

    def update_store(
        self,
        tenant: str,
        store_id: int,
        patch: StorePatch,
        *,
        expected_updated_at: datetime | None = None,
    ) -> Store: ...

    def delete_store(
        self, tenant: str, store_id: int, *, expected_updated_at: datetime | None = None
    ) -> None:
        """``StoreHasStock`` while any level at the store is above zero.

        Its levels (all zero) go with it; its ledger entries stay, as history.
        """
        ...

    def update_item(
        self,
        tenant: str,
        item_id: int,
        patch: ItemPatch,
        *,
        expected_updated_at: datetime | None = None,
    ) -> Item:
        """``SkuTaken`` if the new ``sku`` is another item's."""
        ...

    def delete_item(
        self, tenant: str, item_id: int, *, expected_updated_at: datetime | None = None
    ) -> None:
        """``ItemHasStock`` while any level of the item is above zero; zero levels go with it."""
        ...


@runtime_checkable
class Inventory(Protocol):
    """Inventory levels, their atomic set and adjust, the change ledger, and levels as of a time.

    Keyset-paginated like ``Catalogue``: for the levels of a store the key is ``item_id``,
    for the levels of an item across stores it is ``store_id``, for the ledger ``id``.
    """

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

    # -- inventory -------------------------------------------------------------------
    def set_quantity(
        self,
        tenant: str,
        store_id: int,
        item_id: int,
        quantity: int,
        *,
        actor: str,
        expected_quantity: int | None = None,
        reference: str | None = None,
    ) -> InventoryLevel:
        """Set a level, as a physical count does, and append the difference to the ledger.

        One transaction: the level (created if missing; a missing level holds 0) and a ledger
        entry with ``delta = quantity - before`` and reason ``count``, even when the delta is 0.
        ``QuantityMismatch`` (``rules.check_expected_quantity``) when ``expected_quantity``
        is given and differs from ``before``. ``NotFound`` unless store and item are the tenant's.
        """
        ...

    def adjust(
        self, tenant: str, store_id: int, adjustments: Sequence[Adjustment], *, actor: str
    ) -> Sequence[InventoryLevel]:
        """Apply every adjustment in order, all or none, in one transaction.

        Each adjustment appends one ledger entry. No level may go below zero at any step:
        otherwise ``InsufficientStock`` names every item short (its quantity before the batch
        and the batch's total delta for it) and nothing changes. ``NotFound`` unless the store
        and every item are the tenant's. Returns the resulting levels ordered by ``item_id``.
        Where the backend allows it, each step is one conditional UPDATE (no read first).
        """
        ...

    def list_changes(
        self,
        tenant: str,
        store_id: int,
        where: ChangeFilter,
        *,
        after: int | TimeKey | None,
        limit: int,
    ) -> Sequence[LedgerEntry]:
        """A store's ledger entries matching ``where``, oldest first, at most ``limit``.

        Ordered by ``id`` (the keyset key; ``after`` is an id), or, when ``where.by_time``
        (``since`` or ``until`` is given), by ``(created_at, id)``, with ``after`` the
        ``TimeKey`` of the last entry seen: only the entries of that time range are read,
        however long the history around it. A ``TypeError`` if ``after`` is the other kind
        of key.
        """
        ...

    def list_levels_as_of(
        self,
        tenant: str,
        store_id: int,
        as_of: datetime,
        *,
        item_ids: Collection[int] | None,
        after: int | None,
        limit: int,
    ) -> Sequence[InventoryLevel]:
        """A store's levels as they were at ``as_of``, derived from the ledger alone.

        Per item, the ``quantity_after`` of its last entry created at or before ``as_of``
        (ties broken by ``id``), with that entry's time as ``updated_at``; items with no entry
        by then are left out. Ordered by ``item_id``, paginated like ``list_levels``.
        """
        ...


class Transaction(Protocol):
    """The unit of work ``IdempotencyRecords.begin_transaction`` opens: it ends with one of
    these two, exactly once."""

    def commit(self) -> None:
        """Keep everything done in the transaction, all at once, and end it.

        ``StorageUnavailable`` if it cannot be kept: then none of it is (except when the
        connection is lost during the commit itself, when all of it may be; never a part).
        """
        ...

    def rollback(self) -> None:
        """Undo everything done in the transaction and end it. Never raises."""
        ...


@runtime_checkable
class IdempotencyRecords(Protocol):
    """What became of each request sent with an ``Idempotency-Key``, per tenant."""

    # -- the request's transaction -----------------------------------------------------
    def begin_transaction(self) -> Transaction:
        """Open the one transaction a request with a key runs in, in this thread.

        Until it ends, every call this thread makes on the ports of the same storage (these
        records, the catalogue, the inventory, the API keys) joins it, so the key's claim,
        the request's writes and the response kept for replay are committed together or
        not at all: no failure can leave a write without its record, or a record without
        its write. A call that fails inside it undoes its own changes only, as its own
        transaction would have, and the transaction goes on (a refusal is kept too); after
        a call that raised ``StorageUnavailable`` only ``rollback`` remains, since a
        serialization failure or a lost connection cannot be retried call by call.

        Claiming a key that another open transaction claimed waits until that one ends,
        then answers as usual (the response it kept, or the key is free again). Other
        threads never see the transaction's changes before it commits (they read what was
        there, or wait). One transaction per thread at a time: a second is a
        ``RuntimeError``.
        """
        ...

    # -- idempotency keys --------------------------------------------------------------
    def claim_idempotency_key(
        self, tenant: str, key: str, fingerprint: str, *, stale_after: timedelta
    ) -> StoredResponse | None:
        """Reserve ``key`` for one request, or say what became of the request that holds it.

        ``None``: the caller now holds the key and runs the request, then calls
        ``complete_idempotency_key`` or ``release_idempotency_key``. A ``StoredResponse``:
        the same request (same ``fingerprint``) already finished; replay it.
        ``IdempotencyMismatch``: the key was used for a different request.
        ``IdempotencyInProgress``: the
        same request is still running (claimed less than ``stale_after`` ago); a claim
        older than that is taken over, as its holder is presumed dead.

        Made inside ``begin_transaction``'s transaction (as the HTTP layer does), the claim
        is completed in it too and nobody ever sees it held: a concurrent claim waits for
        the outcome instead. ``IdempotencyInProgress`` then only answers claims committed on
        their own, such as those of a process of an earlier version during an upgrade.
        """
        ...

    def complete_idempotency_key(self, tenant: str, key: str, response: StoredResponse) -> None:
        """Keep ``response`` for replay under the claimed key."""
        ...

    def release_idempotency_key(self, tenant: str, key: str) -> None:
        """Drop a claim whose request changed nothing (it failed), so a retry runs again."""
        ...

    def purge_idempotency_keys(self, older_than: datetime) -> int:
        """Forget keys claimed before ``older_than``; returns how many went."""
        ...


@runtime_checkable
class ApiKeys(Protocol):
    """API keys: only the digest of a key's secret is ever given to or kept by the port."""

    # -- API keys --------------------------------------------------------------------
    def create_api_key(self, tenant: str, role: Role, prefix: str, secret_hash: str) -> ApiKey:
        """Keep a new key; only the digest of its secret is given, and never returned.

        ``NotFound`` if the tenant does not exist; ``ApiKeyPrefixTaken`` if the prefix is taken.
        """
        ...

    def list_api_keys(self, tenant: str) -> Sequence[ApiKey]:
        """The tenant's keys, revoked ones too, ordered by ``id``."""
        ...

    def revoke_api_key(self, key_id: int) -> ApiKey:
        """Revoke a key for good; ``NotFound`` if there is none. Revoking twice keeps the
        first ``revoked_at``."""
        ...

    def find_api_key(self, prefix: str) -> tuple[ApiKey, str] | None:
        """The key with ``prefix`` and its stored secret digest, revoked or not, for an
        authenticator to verify; ``None`` if no key has that prefix."""
        ...

    def touch_api_key(self, key_id: int, at: datetime) -> None:
        """Record a use at ``at``; ``last_used_at`` never moves back. Unknown ids are ignored."""
        ...


@dataclass(frozen=True, eq=False)
class Storage:
    """What a storage backend hands back: one object per port, plus ``check`` and ``close``.

    Each consumer is given only the port it uses: the use cases the catalogue and inventory,
    the idempotency layer ``idempotency``, the API-key authenticator ``api_keys``.
    ``check()`` raises ``StorageUnavailable`` unless the storage can answer queries right
    now (reachable, schema current); ``close()`` releases connections and other resources.
    """

    catalogue: Catalogue
    inventory: Inventory
    idempotency: IdempotencyRecords
    api_keys: ApiKeys
    check: Callable[[], None]
    close: Callable[[], None]
    name: str = "storage"
    """How logs and ``repr`` name it; never a password."""
    stats: Callable[[], Mapping[str, float]] | None = None
    """Gauges of the backend's resources for metrics (a pool's size, checked-out connections,
    overflow), or ``None``; cheap, never raises."""

    def __repr__(self) -> str:
        return f"Storage({self.name})"


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
    (a batch that breaks one is refused whole); the per-row checks of the use cases
    are not repeated, so the caller passes only chains, stores and items of ``tenant``.
    """

    def add_chains(self, tenant: str, rows: Sequence[NewChain]) -> list[int]: ...

    def add_stores(self, tenant: str, rows: Sequence[NewStore]) -> list[int]: ...

    def add_items(self, tenant: str, rows: Sequence[NewItem]) -> list[int]: ...

    def add_levels(self, tenant: str, rows: Sequence[tuple[int, int, int]]) -> int:
        """``(store_id, item_id, quantity)`` rows, none of them existing yet; returns the count."""
        ...

    def close(self) -> None: ...
