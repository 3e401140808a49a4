"""Locust scenario: a read-heavy mix over the API's read routes, on ids found in the data.

Run it against ``commerce serve --demo`` (see docs/loadtesting.md)::

    locust -f loadtests/locustfile.py --headless -u 50 -r 10 -t 30s \
        --host http://127.0.0.1:8000 --only-summary

The weights follow what a store-facing client does most: ask for the levels of a handful
of items at one store. Ids are discovered from the API when the test starts, so the
scenario runs on any data set, not only the demo's.
"""

from __future__ import annotations

import json
import random
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from locust import FastHttpUser, between, events, task
from locust.env import Environment

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
PAGE = 1000


@dataclass
class Catalogue:
    chain_ids: list[int] = field(default_factory=list)
    store_ids: list[int] = field(default_factory=list)
    item_ids: list[int] = field(default_factory=list)


catalogue = Catalogue()


def _get_all(host: str, path: str) -> list[dict[str, object]]:
    """Every row of a list route, following the ``Link: rel="next"`` pages."""
    rows: list[dict[str, object]] = []
    url: str | None = f"{host}{path}?limit={PAGE}"
    while url:
        with urllib.request.urlopen(url, timeout=10) as response:
            rows.extend(json.loads(response.read()))
            url = _next_link(host, response.headers.get("Link"))
    return rows


def _next_link(host: str, header: str | None) -> str | None:
    for part in (header or "").split(","):
        target, _, params = part.partition(";")
        if 'rel="next"' in params:
            link = target.strip().strip("<>")
            return urllib.parse.urljoin(host + "/", link)
    return None


@events.test_start.add_listener
def discover(environment: Environment, **_: object) -> None:
    host = (environment.host or "").rstrip("/")
    hostname = urllib.parse.urlsplit(host).hostname
    if hostname not in LOOPBACK:
        # This scenario is for a server on this machine; it never loads anyone else's.
        environment.events.quitting.fire(environment=environment, reverse=True)
        raise SystemExit(f"refusing to load {host!r}: only 127.0.0.1 / localhost are targets")
    chains = _get_all(host, "/chain")
    catalogue.chain_ids = [int(str(c["id"])) for c in chains]
    catalogue.store_ids = [
        int(str(s["id"]))
        for chain_id in catalogue.chain_ids
        for s in _get_all(host, f"/chain/{chain_id}/stores")
    ]
    catalogue.item_ids = [int(str(i["id"])) for i in _get_all(host, "/items")]
    if not (catalogue.chain_ids and catalogue.store_ids and catalogue.item_ids):
        raise SystemExit(f"{host} has no data to read; start it with `commerce serve --demo`")


class StoreClerk(FastHttpUser):
    """One client of the API: reads with a short think time between requests."""

    wait_time = between(0.0, 0.02)

    @task(10)
    def levels_of_some_items(self) -> None:
        store_id = random.choice(catalogue.store_ids)
        items = random.sample(catalogue.item_ids, k=min(5, len(catalogue.item_ids)))
        self.client.get(
            f"/stores/{store_id}/inventory?items={','.join(map(str, sorted(items)))}",
            name="/stores/[id]/inventory?items=",
        )

    @task(3)
    def store_inventory(self) -> None:
        store_id = random.choice(catalogue.store_ids)
        self.client.get(f"/stores/{store_id}/inventory", name="/stores/[id]/inventory")

    @task(2)
    def chains(self) -> None:
        self.client.get("/chain", name="/chain")

    @task(2)
    def chain_stores(self) -> None:
        chain_id = random.choice(catalogue.chain_ids)
        self.client.get(f"/chain/{chain_id}/stores", name="/chain/[id]/stores")

    @task(2)
    def one_chain(self) -> None:
        chain_id = random.choice(catalogue.chain_ids)
        self.client.get(f"/chain/{chain_id}", name="/chain/[id]")

    @task(2)
    def one_store(self) -> None:
        store_id = random.choice(catalogue.store_ids)
        self.client.get(f"/stores/{store_id}", name="/stores/[id]")

    @task(2)
    def items(self) -> None:
        self.client.get("/items?limit=50", name="/items")

    @task(2)
    def one_item(self) -> None:
        item_id = random.choice(catalogue.item_ids)
        self.client.get(f"/items/{item_id}", name="/items/[id]")

    @task(1)
    def item_inventory(self) -> None:
        item_id = random.choice(catalogue.item_ids)
        self.client.get(f"/items/{item_id}/inventory", name="/items/[id]/inventory")
