"""A real drain: SIGTERM to ``commerce serve`` while a request is in progress.

The request in progress is a POST whose body is sent in two parts: waitress holds it as a
request being read until the rest arrives, so it is in flight for as long as the test likes.
During the drain ``/readyz`` answers 503 with the reason ``draining`` (while the grace period
keeps the port open), ``/healthz`` still answers 200, and the request in progress is answered
once its body is complete, after the port has closed.
"""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.cli.test_serve import WAIT, Server, serving

pytestmark = pytest.mark.http

GRACE = "5"
"""Long enough for the probes below to be answered on a loaded machine before the port closes."""


def _probe(server: Server, path: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(server.base + path, timeout=WAIT) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def _refused(server: Server) -> bool:
    try:
        socket.create_connection(("127.0.0.1", server.port), timeout=WAIT).close()
    except ConnectionRefusedError:
        return True
    return False


def _until(condition: object, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.02)
    pytest.fail(f"never: {what}")


def test_readyz_is_503_draining_during_a_real_drain_while_the_request_in_flight_finishes(
    tmp_path: Path,
) -> None:
    with serving(tmp_path, settings={"COMMERCE_DRAIN_GRACE_SECONDS": GRACE}) as server:
        assert _probe(server, "/readyz") == (200, {"status": "ok"})
        body = json.dumps({"name": "Opened during the drain"}).encode()
        slow = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
        try:
            head = (
                "POST /chain HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                f"Authorization: Bearer {server.key}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            )
            slow.sendall(head.encode() + body[:5])
            time.sleep(0.2)  # the server has read the head: the request is in progress

            server.process.send_signal(signal.SIGTERM)
            _until(lambda: _probe(server, "/readyz")[0] == 503, "/readyz 503 after SIGTERM")
            status, problem = _probe(server, "/readyz")
            assert status == 503
            assert problem["reason"] == "draining"
            assert _probe(server, "/healthz")[0] == 200

            # After the grace period the port closes; the request in progress is still owed.
            _until(lambda: _refused(server), "the listening socket closed")
            assert server.process.poll() is None
            slow.sendall(body[5:])
            answer = b""
            while chunk := slow.recv(65536):
                answer += chunk
        finally:
            slow.close()
        assert answer.startswith(b"HTTP/1.1 201"), answer[:200]
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["name"] == "Opened during the drain"
        assert server.process.wait(timeout=WAIT) == 0
        records = server.log_lines()
    events = [r["event_id"] for r in records]
    assert "CM1004" in events  # draining
    stopped = records[-1]
    assert stopped["event_id"] == "CM1003"
    assert stopped["drained"] is True
    # The probes polled during the drain left no access-log lines; the POST did.
    paths = {r.get("path") for r in records if r["event_id"] == "CM2001"}
    assert "/chain" in paths
    assert not {"/readyz", "/healthz"} & paths


def test_a_drain_grace_that_is_not_a_number_of_seconds_stops_the_start(tmp_path: Path) -> None:
    with (
        pytest.raises(pytest.fail.Exception, match="COMMERCE_DRAIN_GRACE_SECONDS"),
        serving(tmp_path, settings={"COMMERCE_DRAIN_GRACE_SECONDS": "soon"}),
    ):
        pass


def test_the_default_storage_deadline_fits_in_the_drain() -> None:
    # A request in a storage call when SIGTERM arrives is answered before the drain gives up.
    from commerce.adapters.storage.sql.engine import SqlOptions
    from commerce.entrypoints.cli.serve import DRAIN_SECONDS

    assert 0 < SqlOptions().call_deadline <= DRAIN_SECONDS
    assert SqlOptions.from_settings({}).call_deadline == SqlOptions().call_deadline
