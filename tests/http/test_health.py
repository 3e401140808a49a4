"""Health that tells the truth: ``/healthz`` while the process serves, ``/readyz`` 503 with a
reason while storage is unreachable, the schema is behind, or the server is draining.

The drain of a real ``commerce serve`` process is in ``tests/cli/test_serve_drain.py``.
"""

from __future__ import annotations

import dataclasses
import logging

import falcon.testing
import pytest

from commerce.adapters.auth.none import NoAuthentication
from commerce.adapters.storage.memory import memory_storage
from commerce.core.errors import SchemaBehind, StorageUnavailable
from commerce.core.ports import Storage
from commerce.entrypoints.http.app import create_app
from commerce.entrypoints.http.context import Lifecycle
from commerce.plugins import PROBE_PATHS

TENANT = "acme"


def _client(storage: Storage, lifecycle: Lifecycle | None = None) -> falcon.testing.TestClient:
    storage.catalogue.create_tenant(TENANT, "Acme")
    app = create_app(storage, [NoAuthentication(TENANT)], lifecycle=lifecycle)
    return falcon.testing.TestClient(app)


def _failing(error: StorageUnavailable) -> Storage:
    def check() -> None:
        raise error

    return dataclasses.replace(memory_storage(), check=check)


def test_both_probes_answer_ok_without_credentials() -> None:
    client = _client(memory_storage())
    for path in ("/healthz", "/readyz"):
        result = client.simulate_get(path)
        assert result.status_code == 200, path
        assert result.json == {"status": "ok"}


def test_readiness_is_503_draining_once_a_stop_begins_and_liveness_stays_200() -> None:
    lifecycle = Lifecycle()
    client = _client(memory_storage(), lifecycle)
    lifecycle.draining = True
    ready = client.simulate_get("/readyz")
    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    assert ready.json["reason"] == "draining"
    assert ready.json["status"] == 503
    assert int(ready.headers["retry-after"]) >= 1
    assert client.simulate_get("/healthz").status_code == 200


def test_readiness_is_503_storage_unreachable_while_storage_cannot_answer() -> None:
    client = _client(_failing(StorageUnavailable("connection refused", retry_after=3)))
    ready = client.simulate_get("/readyz")
    assert ready.status_code == 503
    assert ready.json["reason"] == "storage_unreachable"
    assert ready.json["detail"] == "connection refused"
    assert ready.headers["retry-after"] == "3"
    # Liveness touches no storage: the process can still serve, so it is not restarted.
    assert client.simulate_get("/healthz").status_code == 200


def test_readiness_is_503_schema_behind_when_the_database_needs_an_upgrade() -> None:
    detail = "database schema is at 0001, this version needs 0002: run `commerce db upgrade`"
    client = _client(_failing(SchemaBehind(detail)))
    ready = client.simulate_get("/readyz")
    assert ready.status_code == 503
    assert ready.json["reason"] == "schema_behind"
    assert "commerce db upgrade" in ready.json["detail"]


def test_draining_is_reported_before_storage_is_asked() -> None:
    lifecycle = Lifecycle()
    client = _client(_failing(StorageUnavailable("down")), lifecycle)
    lifecycle.draining = True
    assert client.simulate_get("/readyz").json["reason"] == "draining"


def test_probes_stay_out_of_the_access_log_but_other_requests_do_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = _client(memory_storage())
    caplog.set_level(logging.INFO, logger="commerce")
    for path in (*sorted(PROBE_PATHS), "/chain"):
        assert client.simulate_get(path).status_code == 200
    paths = [getattr(r, "path", None) for r in caplog.records]
    assert "/chain" in paths
    assert not PROBE_PATHS & set(paths)
