"""``none``: every request acts as an admin of one tenant; for ``memory://`` and the demo only."""

from __future__ import annotations

from collections.abc import Mapping

from commerce.core.auth import Principal, Role
from commerce.core.models import DEFAULT_TENANT
from commerce.core.ports import CommerceStore
from commerce.plugins import hookimpl


class NoAuthentication:
    """Accepts every request, with or without a token, as ``admin`` of ``tenant``."""

    def __init__(self, tenant: str = DEFAULT_TENANT) -> None:
        self._principal = Principal(tenant=tenant, subject="anonymous", role=Role.admin)

    def authenticate(self, token: str | None) -> Principal | None:
        return self._principal


@hookimpl
def commerce_make_authenticator(
    name: str, settings: Mapping[str, str], store: CommerceStore
) -> NoAuthentication | None:
    if name != "none":
        return None
    return NoAuthentication(settings.get("tenant", DEFAULT_TENANT))


@hookimpl
def commerce_authenticator_names() -> list[str]:
    return ["none"]
