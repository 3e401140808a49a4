"""HTTP fixtures: a real memory storage with two tenants' data, and an app that demands tokens."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import falcon
import falcon.testing
import pytest

from commerce.adapters.storage.memory import memory_storage
from commerce.core import usecases
from commerce.core.auth import Principal, Role
from commerce.core.errors import Unauthorized
from commerce.core.models import Chain, InventoryLevel, Item, NewChain, NewItem, NewStore, Store
from commerce.core.ports import Storage
from commerce.entrypoints.http.app import create_app

ACME = "acme"
GLOBEX = "globex"
READER_TOKEN = "acme-reader"
WRITER_TOKEN = "acme-writer"
ADMIN_TOKEN = "acme-admin"
GLOBEX_TOKEN = "globex-reader"
GLOBEX_ADMIN_TOKEN = "globex-admin"

PRINCIPALS = {
    READER_TOKEN: Principal(ACME, "alice", Role.reader),
    WRITER_TOKEN: Principal(ACME, "walter", Role.writer),
    ADMIN_TOKEN: Principal(ACME, "ada", Role.admin),
    GLOBEX_TOKEN: Principal(GLOBEX, "gina", Role.reader),
    GLOBEX_ADMIN_TOKEN: Principal(GLOBEX, "gordon", Role.admin),
}

App = falcon.App[falcon.Request, falcon.Response]

_LINK_NEXT = re.compile(r'^<([^>]*)>; rel="next"$')


class TokenAuthenticator:
    """Knows a fixed set of bearer tokens; with no token it has nothing to say."""

    def __init__(self, principals: dict[str, Principal]) -> None:
        self._principals = principals

    def authenticate(self, token: str | None) -> Principal | None:
        if token is None:
            return None
        try:
            return self._principals[token]
        except KeyError:
            raise Unauthorized("unknown token") from None


class TickingClock:
    """Each reading a second later than the last, so rows have distinct, known timestamps."""

    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@dataclass
class Seed:
    """What the storage holds. ACME has three chains (the last without stores), four stores,
    five items and levels; GLOBEX has one of each."""

    storage: Storage
    chains: list[Chain] = field(default_factory=list)
    stores: list[Store] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    levels: list[InventoryLevel] = field(default_factory=list)
    globex_chain: Chain | None = None
    globex_store: Store | None = None
    globex_item: Item | None = None


def seed_storage(storage: Storage) -> Seed:
    """Fill ``storage`` through the use cases, as a client of the API would."""
    seed = Seed(storage)
    catalogue, inventory = storage.catalogue, storage.inventory
    for tenant in (ACME, GLOBEX):
        usecases.create_tenant(catalogue, tenant, tenant.title())
    for name in ("North", "South", "Empty"):
        seed.chains.append(
            usecases.create_chain(catalogue, ACME, NewChain(f"{name} Foods", "+1 555 0100"))
        )
    north, south, _ = seed.chains
    for chain, city in ((north, "Boston"), (north, "Salem"), (north, "Lowell"), (south, "Austin")):
        seed.stores.append(
            usecases.create_store(
                catalogue,
                ACME,
                NewStore(chain.id, f"{chain.name} {city}", city=city, country="US"),
            )
        )
    for n, cost in enumerate(("12.50", "0.99", "3.00", "100.10", "7.25"), start=1):
        seed.items.append(
            usecases.create_item(catalogue, ACME, NewItem(f"SKU-{n}", f"Item {n}", Decimal(cost)))
        )
    first = seed.stores[0]
    for n, item in enumerate(seed.items, start=1):
        seed.levels.append(
            usecases.set_quantity(inventory, ACME, first.id, item.id, n * 10, actor="test")
        )
    for other in seed.stores[1:]:
        seed.levels.append(
            usecases.set_quantity(inventory, ACME, other.id, seed.items[0].id, 7, actor="test")
        )

    seed.globex_chain = usecases.create_chain(catalogue, GLOBEX, NewChain("Globex Mart"))
    seed.globex_store = usecases.create_store(
        catalogue, GLOBEX, NewStore(seed.globex_chain.id, "Globex One")
    )
    seed.globex_item = usecases.create_item(
        catalogue, GLOBEX, NewItem("G-1", "Gadget", Decimal("1.00"))
    )
    usecases.set_quantity(
        inventory, GLOBEX, seed.globex_store.id, seed.globex_item.id, 3, actor="test"
    )
    return seed


def client_for(app: App, token: str | None = READER_TOKEN) -> falcon.testing.TestClient:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else None
    return falcon.testing.TestClient(app, headers=headers)


def next_link(result: falcon.testing.Result) -> str | None:
    """The target of the ``Link: <...>; rel="next"`` header, or ``None`` on the last page."""
    header = result.headers.get("Link")
    if header is None:
        return None
    match = _LINK_NEXT.match(header)
    assert match, header
    return match.group(1)


def walk(client: falcon.testing.TestClient, url: str) -> tuple[list[dict[str, object]], list[str]]:
    """Every row of a list, following ``Link`` to the end; also the URLs it fetched."""
    rows: list[dict[str, object]] = []
    urls: list[str] = []
    next_url: str | None = url
    while next_url is not None:
        urls.append(next_url)
        result = client.simulate_get(next_url)
        assert result.status_code == 200, result.text
        rows.extend(result.json)
        next_url = next_link(result)
        assert len(urls) < 100, "pagination does not end"
    return rows, urls


@pytest.fixture
def seed() -> Iterator[Seed]:
    storage = memory_storage(clock=TickingClock())
    yield seed_storage(storage)
    storage.close()


@pytest.fixture
def app(seed: Seed) -> App:
    return create_app(seed.storage, [TokenAuthenticator(PRINCIPALS)])


@pytest.fixture
def client(app: App) -> falcon.testing.TestClient:
    """Acts as a reader of ACME."""
    return client_for(app)


@pytest.fixture
def anonymous(app: App) -> falcon.testing.TestClient:
    return client_for(app, token=None)


@pytest.fixture
def writer(app: App) -> falcon.testing.TestClient:
    """Acts as a writer of ACME: items, stores and inventory, but no chains, no deletes."""
    return client_for(app, WRITER_TOKEN)


@pytest.fixture
def admin(app: App) -> falcon.testing.TestClient:
    """Acts as an admin of ACME: may do everything."""
    return client_for(app, ADMIN_TOKEN)
