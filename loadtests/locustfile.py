"""Locust scenario: store browsers and stock keepers, weighted like a retail day.

Run by ``loadtests/run.py`` (which starts a server, seeds it and checks the data afterwards),
or by hand against a server of your own::

    LOADTEST_API_KEY=cm_... locust -f loadtests/locustfile.py --headless -u 50 -r 10 -t 60s \
        --host http://127.0.0.1:8000

Two kinds of user, four browsers to one keeper:

- ``StoreBrowser`` (a shop front, a store's tablet): the levels of a few items at a store,
  an item's availability across stores, a store's whole inventory paged with the cursor of
  ``Link: rel="next"``, the item catalogue.
- ``StockKeeper`` (the back office): one-line to three-line adjustments of a few hot items at
  a few stores, so keepers contend for the same rows; counts, set with ``expected_quantity``
  (``PUT /stores/{id}/inventory/{item_id}``) from a quantity read just before; the ledger of
  recent changes.

Request names are route templates (``/stores/{store_id}/inventory?items=``), so the report
groups them by route. Two answers are expected business outcomes, not failures: 409
``insufficient-stock`` (a sale of more than is left) and the 409 of a count whose
``expected_quantity`` no longer holds (another keeper got there first). They are counted as
successes under the route's name plus ``[409 insufficient-stock]`` or
``[409 expected-quantity-mismatch]``; anything else that is not 2xx is a failure.

Configuration, from the environment:

| variable | meaning | default |
| --- | --- | --- |
| ``LOADTEST_HOST`` | the server, when ``--host`` is not given | ``http://127.0.0.1:8000`` |
| ``LOADTEST_API_KEY`` | the key every request carries (a ``writer`` key for the keepers) | none |
| ``LOADTEST_TENANT`` | the tenant the key belongs to, named in messages | ``-`` |
| ``LOADTEST_STORES`` | how many stores the users spread over (the first found) | 100 |
| ``LOADTEST_ITEMS`` | how many items the users spread over (the first found) | 1000 |
| ``LOADTEST_HOT_STORES`` | how many stores the keepers contend at | 2 |
| ``LOADTEST_HOT_ITEMS`` | how many items per hot store they contend for | 5 |
| ``LOADTEST_THINK_SECONDS`` | the most a user waits between two requests | 0.1 |
| ``LOADTEST_ALLOW_REMOTE`` | ``1`` to allow a host other than this machine | unset |
"""

from __future__ import annotations

import json
import os
import random
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from _data import next_link
from locust import FastHttpUser, between, events, task
from locust.env import Environment

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise SystemExit(f"{name} must be a positive whole number, not {raw!r}")
    return int(raw)


API_KEY = os.environ.get("LOADTEST_API_KEY", "").strip()
TENANT = os.environ.get("LOADTEST_TENANT", "-")
STORES = _env_int("LOADTEST_STORES", 100)
ITEMS = _env_int("LOADTEST_ITEMS", 1000)
HOT_STORES = _env_int("LOADTEST_HOT_STORES", 2)
HOT_ITEMS = _env_int("LOADTEST_HOT_ITEMS", 5)
THINK = float(os.environ.get("LOADTEST_THINK_SECONDS", "0.1") or 0)
HEADERS = {"Authorization": f"Bearer {API_KEY}"} if API_KEY else {}
PAGE = 100
"""Rows per page when a browser walks a store's inventory or the catalogue."""
MAX_PAGES = 5
"""The most pages one walk reads, as a person would before searching instead."""

INSUFFICIENT = "insufficient-stock"
MISMATCH = "expected-quantity-mismatch"


@dataclass
class Data:
    """Ids found in the data when the test starts."""

    chain_ids: list[int] = field(default_factory=list)
    store_ids: list[int] = field(default_factory=list)
    item_ids: list[int] = field(default_factory=list)
    hot: list[tuple[int, int]] = field(default_factory=list)
    """(store_id, item_id) pairs with a level, that every keeper adjusts and counts."""


data = Data()


# -- finding the data -------------------------------------------------------------------------


def _get(host: str, path: str) -> tuple[Any, str | None]:
    request = urllib.request.Request(host + path, headers=HEADERS)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read()), next_link(response.headers.get("Link"))


def _get_all(host: str, path: str, most: int) -> list[dict[str, Any]]:
    """The first ``most`` rows of a list route, following ``Link: rel="next"``."""
    rows: list[dict[str, Any]] = []
    target: str | None = path
    while target and len(rows) < most:
        page, target = _get(host, target)
        rows.extend(page)
    return rows[:most]


@events.test_start.add_listener  # type: ignore[untyped-decorator]
def discover(environment: Environment, **_: object) -> None:
    host = (environment.host or "").rstrip("/")
    hostname = urllib.parse.urlsplit(host).hostname
    if hostname not in LOOPBACK and os.environ.get("LOADTEST_ALLOW_REMOTE") != "1":
        # Load on someone else's server is a decision to make explicitly.
        raise SystemExit(
            f"refusing to load {host!r}: only this machine unless LOADTEST_ALLOW_REMOTE=1"
        )
    try:
        chains = _get_all(host, "/chain?limit=1000", 1000)
        data.chain_ids = [int(c["id"]) for c in chains]
        for chain_id in data.chain_ids:
            left = STORES - len(data.store_ids)
            if left <= 0:
                break
            stores = _get_all(host, f"/chain/{chain_id}/stores?limit=1000", left)
            data.store_ids += [int(s["id"]) for s in stores]
        data.item_ids = [int(i["id"]) for i in _get_all(host, "/items?limit=1000", ITEMS)]
        for store_id in data.store_ids[:HOT_STORES]:
            page, _next = _get(host, f"/stores/{store_id}/inventory?limit={HOT_ITEMS}")
            data.hot += [(store_id, int(level["item_id"])) for level in page]
    except OSError as exc:
        raise SystemExit(f"cannot read the data of tenant {TENANT} at {host}: {exc}") from None
    if not (data.store_ids and data.item_ids and data.hot):
        raise SystemExit(
            f"tenant {TENANT} at {host} has no stores, items or levels to load; "
            "seed it (commerce seed) or start the server with --demo"
        )


# -- outcomes ---------------------------------------------------------------------------------


def expected_conflict(response: Any) -> str | None:
    """Which expected business outcome a 409 is, if it is one."""
    if response.status_code != 409:
        return None
    try:
        problem = response.json()
    except ValueError:
        return None
    if str(problem.get("type", "")).endswith("/" + INSUFFICIENT):
        return INSUFFICIENT
    if "current_quantity" in problem:
        return MISMATCH
    return None


def settle(response: Any) -> None:
    """Inside ``catch_response``: 2xx and the expected 409s succeed (the latter under a name
    of their own), anything else fails with its status and the start of its body."""
    if 200 <= response.status_code < 300:
        response.success()
        return
    outcome = expected_conflict(response)
    if outcome is not None:
        response.request_meta["name"] = f"{response.request_meta['name']} [409 {outcome}]"
        response.success()
        return
    body = (response.text or "")[:200]
    response.failure(f"{response.status_code}: {body}")


def _recent() -> str:
    moment = datetime.now(UTC) - timedelta(seconds=30)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- the users --------------------------------------------------------------------------------


class StoreBrowser(FastHttpUser):
    """A shop front or a store's tablet: reads only."""

    weight = 4
    wait_time = between(0.0, THINK)
    default_headers = HEADERS

    @task(10)
    def levels_of_a_few_items(self) -> None:
        store_id = random.choice(data.store_ids)
        items = random.sample(data.item_ids, k=min(random.randint(3, 10), len(data.item_ids)))
        self.client.get(
            f"/stores/{store_id}/inventory?items={','.join(map(str, items))}",
            name="/stores/{store_id}/inventory?items=",
        )

    @task(4)
    def item_availability(self) -> None:
        item_id = random.choice(data.item_ids)
        self.client.get(f"/items/{item_id}/inventory", name="/items/{item_id}/inventory")

    @task(2)
    def page_a_store(self) -> None:
        store_id = random.choice(data.store_ids)
        self._walk(
            f"/stores/{store_id}/inventory?limit={PAGE}",
            "/stores/{store_id}/inventory",
            random.randint(1, MAX_PAGES),
        )

    @task(2)
    def catalogue(self) -> None:
        self._walk(f"/items?limit={PAGE}", "/items", random.randint(1, 2))

    @task(2)
    def one_item(self) -> None:
        item_id = random.choice(data.item_ids)
        self.client.get(f"/items/{item_id}", name="/items/{item_id}")

    @task(1)
    def one_store(self) -> None:
        store_id = random.choice(data.store_ids)
        self.client.get(f"/stores/{store_id}", name="/stores/{store_id}")

    @task(1)
    def chain_stores(self) -> None:
        chain_id = random.choice(data.chain_ids)
        self.client.get(f"/chain/{chain_id}/stores", name="/chain/{chain_id}/stores")

    def _walk(self, path: str, name: str, pages: int) -> None:
        """Up to ``pages`` pages, each next one by the cursor of ``Link: rel="next"``."""
        target: str | None = path
        for n in range(pages):
            if target is None:
                return
            response = self.client.get(target, name=name if n == 0 else f"{name}?cursor=")
            if not response.ok:
                return
            link = response.headers.get("Link") if response.headers else None
            target = next_link(link if isinstance(link, str) else None)


class StockKeeper(FastHttpUser):
    """The back office: sales and deliveries on hot items, counts, the ledger."""

    weight = 1
    wait_time = between(0.0, THINK)
    default_headers = HEADERS

    @task(6)
    def adjust_hot_items(self) -> None:
        store_id = random.choice([s for s, _ in data.hot])
        items = [i for s, i in data.hot if s == store_id]
        lines = []
        for item_id in random.sample(items, k=random.randint(1, min(3, len(items)))):
            if random.random() < 0.8:
                lines.append({"item_id": item_id, "delta": -random.randint(1, 3), "reason": "sold"})
            else:
                delta = random.randint(5, 20)
                lines.append({"item_id": item_id, "delta": delta, "reason": "received"})
        with self.client.post(
            f"/stores/{store_id}/inventory/adjustments",
            json={"adjustments": lines},
            name="/stores/{store_id}/inventory/adjustments",
            catch_response=True,
        ) as response:
            settle(response)

    @task(2)
    def count_and_set(self) -> None:
        store_id, item_id = random.choice(data.hot)
        path = f"/stores/{store_id}/inventory/{item_id}"
        name = "/stores/{store_id}/inventory/{item_id}"
        response = self.client.get(path, name=name)
        if not response.ok:
            return
        held = int(response.json()["quantity"])
        counted = max(0, held + random.choice((-2, -1, 0, 0, 1)))
        body = {"quantity": counted, "expected_quantity": held, "reference": "cycle count"}
        with self.client.put(path, json=body, name=name, catch_response=True) as answer:
            settle(answer)

    @task(2)
    def read_the_ledger(self) -> None:
        store_id, item_id = random.choice(data.hot)
        if random.random() < 0.5:
            since = urllib.parse.quote(_recent())
            self.client.get(
                f"/stores/{store_id}/inventory/changes?since={since}&limit=50",
                name="/stores/{store_id}/inventory/changes?since=",
            )
        else:
            self.client.get(
                f"/stores/{store_id}/inventory/changes?item_id={item_id}&limit=20",
                name="/stores/{store_id}/inventory/changes?item_id=",
            )
