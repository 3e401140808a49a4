"""The one error hierarchy: adapters raise these, the HTTP layer maps them to statuses once.

Each error that a client can meet owns its message and the facts it carries (``extra``).
``extensions`` declares those facts with their types, and the HTTP layer builds both the
problem document and the OpenAPI ``Problem`` schemas from it, so a fact cannot be sent
without being documented. Backends raise the typed errors (``SkuTaken``, not ``Conflict``
with a message of their own), so every backend says the same thing in the same words.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypedDict


class Shortage(TypedDict):
    """An item an adjustment batch would take below zero."""

    item_id: int
    quantity: int
    """What the store held before the batch."""
    delta: int
    """The batch's total change of this item."""


class CommerceError(Exception):
    """Base of every error the core and its adapters raise on purpose.

    ``extra`` holds facts a client can act on (the current quantity, the items short of
    stock); the HTTP layer adds them to the problem document as extension members. Every
    key of ``extra`` is declared, with its type, in the class's ``extensions``.
    """

    title: ClassVar[str] = "Error"
    extensions: ClassVar[Mapping[str, Any]] = {}
    """Extension member name -> its type, for the problem document and its schema."""

    def __init__(self, detail: str, **extra: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra: dict[str, object] = extra


class NotFound(CommerceError):
    """The resource does not exist, or belongs to another tenant (indistinguishable on purpose)."""

    title = "Not Found"

    def __init__(self, resource: str, key: object) -> None:
        super().__init__(f"{resource} {key} does not exist")
        self.resource = resource
        self.key = key


class FeatureDisabled(NotFound):
    """A feature behind a flag is off for the caller's tenant; the problem names the flag.

    The problem says that the feature is not enabled for this tenant, and nothing about any
    other tenant: whether the flag is on elsewhere cannot be learned from it.
    """

    title = "Feature Disabled"
    extensions: ClassVar[Mapping[str, Any]] = {"flag": str}

    def __init__(self, flag: str) -> None:
        CommerceError.__init__(
            self, f"the feature {flag!r} is not enabled for this tenant", flag=flag
        )
        self.resource = "feature"
        self.key = flag
        self.flag = flag


class InvalidInput(CommerceError):
    """A malformed id, query parameter or body field; ``field`` names it."""

    title = "Invalid Input"

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field


class Conflict(CommerceError):
    """The request contradicts the current state (a duplicate, a dependent row)."""

    title = "Conflict"


class TenantExists(Conflict):
    def __init__(self, tenant: str) -> None:
        super().__init__(f"tenant {tenant} already exists")
        self.tenant = tenant


class SkuTaken(Conflict):
    """Another item of the tenant has this ``sku``."""

    def __init__(self, sku: str) -> None:
        super().__init__(f"an item with sku {sku!r} already exists")
        self.sku = sku


class ApiKeyPrefixTaken(Conflict):
    def __init__(self) -> None:
        super().__init__("an API key with this prefix already exists")


class ChainHasStores(Conflict):
    """A chain cannot be deleted while it has stores."""

    def __init__(self, chain_id: int) -> None:
        super().__init__(f"chain {chain_id} still has stores; delete or move them first")
        self.chain_id = chain_id


class StockRemains(Conflict):
    """A store or an item cannot be deleted while some level of it is above zero."""


class StoreHasStock(StockRemains):
    extensions: ClassVar[Mapping[str, Any]] = {"item_ids": list[int]}

    def __init__(self, store_id: int, count: int, item_ids: list[int]) -> None:
        super().__init__(
            f"store {store_id} still holds stock of {count} item(s)", item_ids=item_ids[:100]
        )


class ItemHasStock(StockRemains):
    extensions: ClassVar[Mapping[str, Any]] = {"store_ids": list[int]}

    def __init__(self, item_id: int, count: int, store_ids: list[int]) -> None:
        super().__init__(
            f"item {item_id} is still in stock at {count} store(s)", store_ids=store_ids[:100]
        )


class QuantityMismatch(Conflict):
    """A compare-and-set named a quantity the level no longer holds."""

    extensions: ClassVar[Mapping[str, Any]] = {"current_quantity": int}

    def __init__(self, store_id: int, item_id: int, current: int, expected: int) -> None:
        super().__init__(
            f"item {item_id} at store {store_id} holds {current}, not {expected}",
            current_quantity=current,
        )
        self.current_quantity = current


class ConcurrentChange(Conflict):
    """A conditional write found its row changed by someone else between two statements."""

    def __init__(self, kind: str, key: object) -> None:
        super().__init__(f"{kind} {key} changed meanwhile; try again")


class IdempotencyInProgress(Conflict):
    def __init__(self) -> None:
        super().__init__("a request with this Idempotency-Key is still in progress")


class InsufficientStock(Conflict):
    """An adjustment would take one or more levels below zero; nothing was changed.

    ``shortages`` lists, per item, the quantity held and the delta that was refused.
    """

    title = "Insufficient Stock"
    extensions: ClassVar[Mapping[str, Any]] = {"items": list[Shortage]}

    def __init__(self, shortages: list[Shortage]) -> None:
        ids = ", ".join(str(s["item_id"]) for s in shortages)
        super().__init__(f"not enough stock of item {ids}; nothing was changed", items=shortages)
        self.shortages = shortages


class LevelTooHigh(Conflict):
    """An adjustment would take a level above the most a quantity may be; nothing changed."""

    extensions: ClassVar[Mapping[str, Any]] = {"item_id": int}

    def __init__(self, item_id: int, maximum: int) -> None:
        super().__init__(
            f"item {item_id} would hold more than {maximum}; nothing was changed",
            item_id=item_id,
        )


class PreconditionFailed(CommerceError):
    """The resource changed since the version the caller named (``If-Match``)."""

    title = "Precondition Failed"


class VersionMismatch(PreconditionFailed):
    def __init__(self, kind: str, key: object) -> None:
        super().__init__(f"{kind} {key} has changed since the version you named")


class LevelChanged(PreconditionFailed):
    """A counted set's ``If-Match`` named a version of the level it no longer has."""

    extensions: ClassVar[Mapping[str, Any]] = {"current_quantity": int}

    def __init__(self, store_id: int, item_id: int, current: int) -> None:
        super().__init__(
            f"the level of item {item_id} at store {store_id} has changed since "
            "the version If-Match names",
            current_quantity=current,
        )
        self.current_quantity = current


class IdempotencyMismatch(CommerceError):
    """An ``Idempotency-Key`` was used again for a different request."""

    title = "Idempotency Key Reused"

    def __init__(
        self, detail: str = "this Idempotency-Key was already used for a different request"
    ) -> None:
        super().__init__(detail)


class Unauthorized(CommerceError):
    """No credentials, or credentials that prove nothing."""

    title = "Unauthorized"


class Forbidden(CommerceError):
    """The caller is known but its role may not do this."""

    title = "Forbidden"


class StorageUnavailable(CommerceError):
    """The storage backend cannot answer now; the caller may retry after ``retry_after`` seconds."""

    title = "Storage Unavailable"

    def __init__(self, detail: str, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class SchemaBehind(StorageUnavailable):
    """Storage answers, but its schema is older than this version needs: `commerce db upgrade`."""


class Misconfigured(CommerceError):
    """The service cannot start as configured: a URL no plugin takes, an unknown authenticator."""

    title = "Misconfigured"


def error_classes() -> list[type[CommerceError]]:
    """Every error class, most general first: what the HTTP layer documents."""
    found: list[type[CommerceError]] = []
    pending: list[type[CommerceError]] = [CommerceError]
    while pending:
        cls = pending.pop(0)
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found
