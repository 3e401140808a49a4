"""``none``: every request acts as an admin of one tenant; for ``memory://`` and the demo only."""

from __future__ import annotations

from collections.abc import Mapping

from commerce.core.auth import Principal, Role
from commerce.core.models import DEFAULT_TENANT
from commerce.core.ports import Storage
from commerce.plugins import AuthenticatorProvider, hookimpl

NAME = "none"


class NoAuthentication:
    """Accepts every request, with or without a token, as ``admin`` of ``tenant``."""

    def __init__(self, tenant: str = DEFAULT_TENANT) -> None:
        self._principal = Principal(tenant=tenant, subject="anonymous", role=Role.admin)

    def authenticate(self, token: str | None) -> Principal | None:
        return self._principal


def make_authenticator(settings: Mapping[str, str], storage: Storage) -> NoAuthentication:
    """Every request as admin of ``COMMERCE_TENANT``; ``bootstrap`` allows it only where safe."""
    return NoAuthentication(settings.get("tenant", DEFAULT_TENANT))


@hookimpl
def commerce_authenticators() -> list[AuthenticatorProvider]:
    return [
        AuthenticatorProvider(
            name=NAME,
            make=make_authenticator,
            description="no authentication: admin of one tenant (memory:// and --demo only)",
        )
    ]
