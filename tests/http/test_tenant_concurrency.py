"""The per-tenant cap on requests in progress: a tenant at its cap gets 429, the others do not."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import falcon
import falcon.testing
import pytest

from commerce.core.errors import Misconfigured
from commerce.core.models import Chain
from commerce.core.ports import Catalogue
from commerce.entrypoints.config import Settings
from commerce.entrypoints.http import app as app_module
from commerce.entrypoints.http.app import create_app, get_app
from commerce.entrypoints.http.concurrency import TenantConcurrency
from commerce.entrypoints.http.problems import MEDIA_PROBLEM, PROBLEM_BASE
from commerce.plugins import get_plugin_manager
from tests.http.conftest import (
    ACME,
    ADMIN_TOKEN,
    GLOBEX_TOKEN,
    PRINCIPALS,
    READER_TOKEN,
    App,
    Seed,
    TokenAuthenticator,
    client_for,
)

pytestmark = pytest.mark.http

WAIT = 10.0
"""Seconds a test waits for a thread to reach a point: generous, never reached when it works."""


class BlockingCatalogue:
    """The catalogue, but listing one tenant's chains waits until the test lets it go."""

    def __init__(self, inner: Catalogue, tenant: str) -> None:
        self._inner = inner
        self._tenant = tenant
        self.release = threading.Event()
        self._entered = threading.Semaphore(0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def list_chains(self, tenant: str, *, after: int | None, limit: int) -> Sequence[Chain]:
        if tenant == self._tenant:
            self._entered.release()
            assert self.release.wait(WAIT), "the test never released the blocked request"
        return self._inner.list_chains(tenant, after=after, limit=limit)

    def wait_until_entered(self, count: int) -> None:
        for _ in range(count):
            assert self._entered.acquire(timeout=WAIT), "a request never reached storage"


@pytest.fixture
def blocking(seed: Seed) -> BlockingCatalogue:
    return BlockingCatalogue(seed.storage.catalogue, ACME)


@pytest.fixture
def capped(seed: Seed, blocking: BlockingCatalogue) -> App:
    storage = dataclasses.replace(seed.storage, catalogue=blocking)
    return create_app(storage, [TokenAuthenticator(PRINCIPALS)], tenant_concurrency=2)


@pytest.fixture
def two_in_progress(capped: App, blocking: BlockingCatalogue) -> Iterator[list[int]]:
    """Two of ACME's requests blocked in storage; their statuses once the test ends."""
    statuses: list[int] = []

    def slow() -> None:
        statuses.append(client_for(capped, READER_TOKEN).simulate_get("/chain").status_code)

    threads = [threading.Thread(target=slow) for _ in range(2)]
    for thread in threads:
        thread.start()
    blocking.wait_until_entered(2)
    try:
        yield statuses
    finally:
        blocking.release.set()
        for thread in threads:
            thread.join(WAIT)


def test_a_tenants_request_past_its_cap_is_a_429_problem_with_retry_after(
    capped: App, two_in_progress: list[int]
) -> None:
    third = client_for(capped, READER_TOKEN).simulate_get("/chain")
    assert third.status_code == 429
    assert third.headers["Content-Type"] == MEDIA_PROBLEM
    assert third.json["type"] == PROBLEM_BASE + "too-many-requests"
    assert "2 requests in progress" in third.json["detail"]
    assert int(third.headers["Retry-After"]) >= 1
    assert third.headers["X-Request-ID"]


def test_another_tenant_is_answered_at_once_while_one_is_at_its_cap(
    capped: App, two_in_progress: list[int]
) -> None:
    other = client_for(capped, GLOBEX_TOKEN).simulate_get("/chain")
    assert other.status_code == 200
    assert [chain["name"] for chain in other.json] == ["Globex Mart"]


def test_probes_and_the_document_are_never_capped(capped: App, two_in_progress: list[int]) -> None:
    client = client_for(capped, READER_TOKEN)
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert client.simulate_get(path).status_code == 200, path
        assert client.simulate_head(path).status_code == 200, path


def test_the_slots_come_back_when_the_requests_end(
    capped: App, blocking: BlockingCatalogue
) -> None:
    statuses: list[int] = []

    def slow() -> None:
        statuses.append(client_for(capped, READER_TOKEN).simulate_get("/chain").status_code)

    threads = [threading.Thread(target=slow) for _ in range(2)]
    for thread in threads:
        thread.start()
    blocking.wait_until_entered(2)
    assert client_for(capped, READER_TOKEN).simulate_get("/items").status_code == 429
    blocking.release.set()
    for thread in threads:
        thread.join(WAIT)
    assert statuses == [200, 200]
    client = client_for(capped, READER_TOKEN)
    assert [client.simulate_get("/items").status_code for _ in range(3)] == [200, 200, 200]


def test_a_request_that_fails_gives_its_slot_back(seed: Seed) -> None:
    app = create_app(seed.storage, [TokenAuthenticator(PRINCIPALS)], tenant_concurrency=1)
    client = client_for(app, ADMIN_TOKEN)
    assert client.simulate_get("/chain/999999").status_code == 404
    assert client.simulate_get("/chain", params={"limit": "0"}).status_code == 400
    assert client.simulate_post("/chain", json={"name": "\x00"}).status_code == 400
    assert client.simulate_post("/chain", json={"name": "Kept"}).status_code == 201
    assert client.simulate_get("/chain").status_code == 200


def test_a_request_that_crashes_gives_its_slot_back(
    seed: Seed, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("CRITICAL")

    class Broken(BlockingCatalogue):
        def list_chains(self, tenant: str, *, after: int | None, limit: int) -> Sequence[Chain]:
            raise RuntimeError("a bug")

    storage = dataclasses.replace(seed.storage, catalogue=Broken(seed.storage.catalogue, ACME))
    app = create_app(storage, [TokenAuthenticator(PRINCIPALS)], tenant_concurrency=1)
    client = client_for(app)
    assert [client.simulate_get("/chain").status_code for _ in range(2)] == [500, 500]
    assert client.simulate_get("/items").status_code == 200


def test_the_middleware_keeps_no_entry_for_an_idle_tenant(seed: Seed) -> None:
    cap = TenantConcurrency(1)
    app = falcon.App(middleware=[_Principal(), cap])
    app.add_route("/", _Counting(cap))
    assert falcon.testing.TestClient(app).simulate_get("/").json == {"during": 1}
    assert cap.in_progress(ACME) == 0
    assert cap._in_progress == {}


def test_a_cap_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        TenantConcurrency(0)


class _Principal:
    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.principal = PRINCIPALS[READER_TOKEN]


class _Counting:
    def __init__(self, cap: TenantConcurrency) -> None:
        self._cap = cap

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"during": self._cap.in_progress(ACME)}


# -- the setting -------------------------------------------------------------------------------


def test_by_default_a_tenant_may_hold_half_the_threads_rounded_up() -> None:
    settings = Settings.from_env({})
    assert settings.tenant_concurrency is None
    assert [settings.tenant_concurrency_for(n) for n in (1, 2, 3, 4, 8, 9)] == [1, 1, 2, 2, 4, 5]


def test_a_configured_cap_is_taken_as_given_and_zero_turns_it_off() -> None:
    assert Settings.from_env({"COMMERCE_TENANT_CONCURRENCY": "3"}).tenant_concurrency_for(8) == 3
    assert (
        Settings.from_env({"COMMERCE_TENANT_CONCURRENCY": " 0 "}).tenant_concurrency_for(8) is None
    )
    assert Settings.from_env({"COMMERCE_TENANT_CONCURRENCY": ""}).tenant_concurrency_for(8) == 4


@pytest.mark.parametrize("raw", ["-1", "two", "1.5", "٣", "9" * 40])
def test_a_malformed_cap_is_misconfigured_naming_the_variable(raw: str) -> None:
    with pytest.raises(Misconfigured, match="COMMERCE_TENANT_CONCURRENCY") as caught:
        Settings.from_env({"COMMERCE_TENANT_CONCURRENCY": raw})
    assert "0 for no cap" in str(caught.value)


def test_get_app_shares_out_waitress_default_four_threads_unless_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    given: list[int | None] = []
    real = app_module.create_app

    def spy(*args: Any, **kwargs: Any) -> App:
        given.append(kwargs["tenant_concurrency"])
        return real(*args, **kwargs)

    monkeypatch.setattr(app_module, "create_app", spy)
    settings = Settings(database_url="memory://", auth=("none",))
    pm = get_plugin_manager()
    get_app(settings, pm)
    get_app(settings, pm, threads=8)
    get_app(dataclasses.replace(settings, tenant_concurrency=0), pm, threads=8)
    assert given == [2, 4, None]


def test_a_request_over_the_cap_waits_for_a_slot_freed_within_the_wait() -> None:
    cap = TenantConcurrency(1, wait=5.0)
    assert cap._take("acme")
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(cap._take("acme")))
    waiter.start()
    while cap._waiting.get("acme", 0) == 0:
        threading.Event().wait(0.001)
    assert got == []
    _give_back(cap, "acme")
    waiter.join(timeout=5)
    assert got == [True]
    assert cap.in_progress("acme") == 1


def test_a_request_over_the_cap_is_refused_once_the_wait_runs_out() -> None:
    cap = TenantConcurrency(1, wait=0.05)
    assert cap._take("acme")
    assert cap._take("acme") is False
    assert cap.in_progress("acme") == 1
    assert cap._waiting == {}


def test_no_more_requests_of_a_tenant_wait_than_its_cap_and_with_no_wait_none_do() -> None:
    cap = TenantConcurrency(1, wait=5.0)
    assert cap._take("acme")
    waiter = threading.Thread(target=cap._take, args=("acme",))
    waiter.start()
    while cap._waiting.get("acme", 0) == 0:
        threading.Event().wait(0.001)
    assert cap._take("acme") is False  # refused at once: one is already waiting
    _give_back(cap, "acme")
    waiter.join(timeout=5)
    impatient = TenantConcurrency(1, wait=0)
    assert impatient._take("acme")
    assert impatient._take("acme") is False


def _give_back(cap: TenantConcurrency, tenant: str) -> None:
    req = falcon.testing.create_req()
    req.context.concurrency_slot = tenant
    cap.process_response(req, falcon.Response(), None, True)
