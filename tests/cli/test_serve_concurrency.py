"""Many clients adjusting one hot level through a real waitress process lose no update."""

from __future__ import annotations

import json
import random
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_serve import WAIT, Server, serving

pytestmark = pytest.mark.http

CLIENTS = 8
REQUESTS_PER_CLIENT = 20
INITIAL = 30


def _call(server: Server, method: str, path: str, body: object = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 -- our own server on loopback
        server.base + path,
        data=data,
        method=method,
        headers={
            **server.headers,
            **({"Content-Type": "application/json"} if data is not None else {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:  # noqa: S310
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def _ledger_deltas(server: Server, store_id: int, item_id: int) -> list[int]:
    deltas: list[int] = []
    path: str | None = f"/stores/{store_id}/inventory/changes?item_id={item_id}&limit=1000"
    while path is not None:
        request = urllib.request.Request(server.base + path, headers=server.headers)  # noqa: S310
        with urllib.request.urlopen(request, timeout=WAIT) as response:  # noqa: S310
            deltas.extend(entry["delta"] for entry in json.loads(response.read()))
            link = response.headers.get("Link")
        path = link[link.index("<") + 1 : link.index(">")] if link else None
    return deltas


@pytest.mark.parametrize("database", ["memory://", "sqlite"])
def test_concurrent_adjustments_over_http_end_at_the_initial_plus_the_accepted_deltas(
    tmp_path: Path, database: str
) -> None:
    url = f"sqlite:///{tmp_path / 'hot.db'}" if database == "sqlite" else database
    # One tenant's eight clients on purpose: the per-tenant cap (half the threads) would
    # answer some with 429; this test is about lost updates, so the cap is off here
    # (tests/http/test_tenant_concurrency.py is about the cap).
    no_cap = {"COMMERCE_TENANT_CONCURRENCY": "0"}
    with serving(tmp_path, "--threads", "4", database=url, settings=no_cap) as server:
        _, chains = _call(server, "GET", "/chain")
        _, stores = _call(server, "GET", f"/chain/{chains[0]['id']}/stores")
        _, items = _call(server, "GET", "/items?limit=1")
        store_id, item_id = stores[0]["id"], items[0]["id"]
        status, _ = _call(
            server, "PUT", f"/stores/{store_id}/inventory/{item_id}", {"quantity": INITIAL}
        )
        assert status == 200
        accepted: list[int] = []
        statuses: list[int] = []
        lock = threading.Lock()

        def client(seed: int) -> None:
            rng = random.Random(seed)
            for _ in range(REQUESTS_PER_CLIENT):
                delta = rng.choice([-4, -3, -1, 1, 2])
                reason = "sold" if delta < 0 else "received"
                body = {"adjustments": [{"item_id": item_id, "delta": delta, "reason": reason}]}
                status, _ = _call(server, "POST", f"/stores/{store_id}/inventory/adjustments", body)
                with lock:
                    statuses.append(status)
                    if status == 200:
                        accepted.append(delta)

        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(client, range(CLIENTS)))

        assert set(statuses) <= {200, 409}, statuses
        _, level = _call(server, "GET", f"/stores/{store_id}/inventory/{item_id}")
        assert level["quantity"] == INITIAL + sum(accepted)
        assert level["quantity"] >= 0
        deltas = _ledger_deltas(server, store_id, item_id)
        assert sum(deltas) == level["quantity"]
        assert len(accepted) > CLIENTS
