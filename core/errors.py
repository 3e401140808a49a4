"""The one error hierarchy: adapters raise these, the HTTP layer maps them to statuses once."""

from __future__ import annotations


class CommerceError(Exception):
    """Base of every error the core and its adapters raise on purpose.

    ``extra`` holds facts a client can act on (the current quantity, the items short of
    stock); the HTTP layer adds them to the problem document as extension members.
    """

    title = "Error"

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


class InvalidInput(CommerceError):
    """A malformed id, query parameter or body field; ``field`` names it."""

    title = "Invalid Input"

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field


class Conflict(CommerceError):
    """The request contradicts the current state (a duplicate, a dependent row)."""

    title = "Conflict"


class InsufficientStock(Conflict):
    """An adjustment would take one or more levels below zero; nothing was changed.

    ``shortages`` lists, per item, the quantity held and the delta that was refused.
    """

    title = "Insufficient Stock"

    def __init__(self, shortages: list[dict[str, int]]) -> None:
        ids = ", ".join(str(s["item_id"]) for s in shortages)
        super().__init__(f"not enough stock of item {ids}; nothing was changed", items=shortages)
        self.shortages = shortages


class PreconditionFailed(CommerceError):
    """The resource changed since the version the caller named (``If-Match``)."""

    title = "Precondition Failed"


class IdempotencyMismatch(CommerceError):
    """An ``Idempotency-Key`` was used again for a different request."""

    title = "Idempotency Key Reused"


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


class Misconfigured(CommerceError):
    """The service cannot start as configured: a URL no plugin takes, an unknown authenticator."""

    title = "Misconfigured"
