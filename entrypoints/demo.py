"""The demo as ``commerce serve --demo`` runs it: the data set loaded once, a key, the banner.

The data set itself and how it is loaded are use cases (``commerce.core.seeding``); this
module only drives them from the runtime and says, on the terminal, what to try.
"""

from __future__ import annotations

from dataclasses import dataclass

from commerce.core import seeding, usecases
from commerce.core.auth import Role
from commerce.core.seeding import DemoSummary, TenantOverview
from commerce.entrypoints.bootstrap import Runtime


@dataclass(frozen=True, slots=True)
class DemoStart:
    """What starting the demo did: what it loaded (``None``: the tenant had data already),
    the admin key it made for the banner, and what the tenant now holds."""

    tenant: str
    loaded: DemoSummary | None
    key: str | None
    overview: TenantOverview


def start_demo(runtime: Runtime, *, with_key: bool) -> DemoStart:
    """Load the demo into ``settings.tenant`` unless it has data; make a key if asked.

    A new admin key is made on every start (when the API-key authenticator is on), so the
    banner can show a working one: keys are stored as digests and cannot be shown again.
    """
    storage = runtime.storage
    tenant = runtime.settings.tenant
    loaded = seeding.ensure_demo(storage.catalogue, storage.inventory, tenant)
    key = usecases.create_api_key(storage.api_keys, tenant, Role.admin)[0] if with_key else None
    return DemoStart(
        tenant=tenant,
        loaded=loaded,
        key=key,
        overview=seeding.overview(storage.catalogue, storage.inventory, tenant),
    )


def banner(start: DemoStart, base: str, scheme: str, auth: tuple[str, ...]) -> str:
    """What to paste into a shell to see the demo, with ids that exist in the data."""
    tenant, seen = start.tenant, start.overview
    chain_id = seen.chain_id or 1
    store_id = seen.store_id or 1
    item_ids = list(seen.item_ids) or [1, 2, 3]
    if start.loaded is not None:
        how = "loaded the demo data set"
    else:
        how = "the demo tenant already has data; nothing was loaded"
    lasting = (
        "it lives in memory and is gone when the server stops"
        if scheme == "memory"
        else f"it is kept by the {scheme}:// store"
    )
    lines = [
        f"commerce demo: {how} ({lasting}).",
        f'Tenant "{tenant}": {seen.chains} chains, {seen.stores} stores, {seen.items} items.',
    ]
    header = suffix = ""
    if start.key is not None:
        lines.append(
            f"Requests need an API key (COMMERCE_AUTH={','.join(auth)}). This one, an admin of "
            f"tenant {tenant!r}, was made for this demo and is shown only here:"
        )
        lines.append(f"  {start.key}")
        suffix = f" -H 'Authorization: Bearer {start.key}'"
    elif "none" in auth:
        lines.append(
            f'Authentication is off (COMMERCE_AUTH=none): requests act as tenant "{tenant}".'
        )
    else:
        lines.append(
            f"Requests need credentials of tenant {tenant!r} (COMMERCE_AUTH={','.join(auth)}); "
            "put one in COMMERCE_API_KEY for the lines below."
        )
        header = ' -H "Authorization: Bearer $COMMERCE_API_KEY"'
    paths = [
        "/chain",
        f"/chain/{chain_id}",
        f"/chain/{chain_id}/stores",
        f"/stores/{store_id}",
        f"/stores/{store_id}/inventory",
        f"/stores/{store_id}/inventory?items={','.join(map(str, item_ids))}",
        "/items?limit=5",
        f"/items/{item_ids[0]}",
        f"/items/{item_ids[0]}/inventory",
        "/healthz",
    ]
    lines += ["", "Try:"]
    lines += [f"  curl -s{header} '{base}{path}'{suffix}" for path in paths]
    lines.append("")
    return "\n".join(lines)
