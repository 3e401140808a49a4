"""End to end: ``commerce serve --demo`` as a real waitress process, reached over HTTP."""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.http

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0
"""An upper bound on any wait, so a broken server fails the test instead of hanging it."""

SERVING = re.compile(r"^Serving on (http://127\.0\.0\.1:(\d+))")
DEMO_KEY = re.compile(r"^  (cm_\S+)$")


@dataclass
class Server:
    process: subprocess.Popen[str]
    base: str
    port: int
    stdout: list[str] = field(default_factory=list)
    stderr_path: Path | None = None

    @property
    def key(self) -> str | None:
        """The demo API key the banner printed, if it printed one."""
        found = [m.group(1) for line in self.stdout if (m := DEMO_KEY.match(line))]
        return found[0] if found else None

    @property
    def headers(self) -> dict[str, str]:
        """The credentials to send: the banner's key, or none when authentication is off."""
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def get(self, path: str) -> tuple[int, dict[str, str], Any]:
        request = urllib.request.Request(self.base + path, headers=self.headers)  # noqa: S310
        with urllib.request.urlopen(request, timeout=WAIT) as response:  # noqa: S310
            return response.status, dict(response.headers), json.loads(response.read())

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=WAIT)

    def log_lines(self) -> list[dict[str, Any]]:
        assert self.stderr_path is not None
        text = self.stderr_path.read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@contextmanager
def serving(
    tmp_path: Path,
    *args: str,
    database: str = "memory://",
    auth: str | None = None,
    settings: Mapping[str, str] | None = None,
) -> Iterator[Server]:
    """Start ``serve --demo --port 0``, wait for the line that names its port, stop it after.

    ``auth`` is ``COMMERCE_AUTH``; unset by default, so the demo makes and prints a key.
    ``settings`` are more environment variables for the server.
    """
    env = {**os.environ, "COMMERCE_DATABASE_URL": database}
    env.pop("COMMERCE_TENANT", None)
    env.pop("COMMERCE_AUTH", None)
    if auth is not None:
        env["COMMERCE_AUTH"] = auth
    env.update(settings or {})
    stderr_path = tmp_path / "serve.stderr"
    with stderr_path.open("w", encoding="utf-8") as stderr:
        process = subprocess.Popen(  # noqa: S603 -- our own interpreter and module
            [
                sys.executable,
                "-m",
                "commerce.entrypoints.cli",
                "serve",
                "--demo",
                "--port",
                "0",
                *args,
            ],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    try:
        while True:
            line = lines.get(timeout=WAIT)
            if line is None:
                pytest.fail(
                    f"serve exited before listening:\n{''.join(seen)}\n{stderr_path.read_text()}"
                )
            seen.append(line)
            match = SERVING.match(line)
            if match:
                break
        yield Server(process, match.group(1), int(match.group(2)), seen, stderr_path)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=WAIT)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with serving(tmp_path) as running:
        yield running


def test_serve_with_port_zero_listens_on_a_free_port_and_prints_it(server: Server) -> None:
    assert server.port > 0
    status, _, _ = server.get("/healthz")
    assert status == 200


def test_the_demo_server_lists_the_three_demo_chains(server: Server) -> None:
    status, headers, chains = server.get("/chain")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert [c["name"] for c in chains] == [
        "Northwind Grocers",
        "Maple & Birch Hardware",
        "Alpenhof Markt",
    ]


def test_the_demo_server_answers_an_inventory_query_for_some_items(server: Server) -> None:
    status, _, levels = server.get("/stores/1/inventory?items=1,2")
    assert status == 200
    assert levels
    assert {lv["item_id"] for lv in levels} <= {1, 2}
    assert all(lv["store_id"] == 1 and lv["quantity"] >= 0 for lv in levels)


def test_every_response_carries_a_request_id(server: Server) -> None:
    for path in ("/chain", "/stores/1/inventory?items=1,2", "/healthz"):
        _, headers, _ = server.get(path)
        assert headers.get("X-Request-ID") or headers.get("X-Request-Id"), path


def test_the_demo_banner_gives_curl_lines_that_work(server: Server) -> None:
    urls = [m.group(1) for line in server.stdout if (m := re.search(r"curl -s '([^']+)'", line))]
    assert any(url.endswith("/chain") for url in urls)
    assert any("/inventory?items=" in url for url in urls)
    assert server.key is not None
    assert all(
        f"-H 'Authorization: Bearer {server.key}'" in line
        for line in server.stdout
        if "curl -s" in line
    )
    for url in urls:
        status, _, _ = server.get(url.removeprefix(server.base))
        assert status == 200, url


def test_sigterm_stops_the_server_with_exit_status_zero(server: Server) -> None:
    server.get("/chain")
    assert server.stop(signal.SIGTERM) == 0


def test_sigint_stops_the_server_with_exit_status_zero(server: Server) -> None:
    assert server.stop(signal.SIGINT) == 0


def test_a_stop_closes_an_idle_keep_alive_connection_and_refuses_new_ones(server: Server) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT)
    try:
        connection.request("GET", "/chain", headers=server.headers)
        response = connection.getresponse()
        response.read()
        assert response.status == 200
        assert server.stop() == 0
        # The server closed the connection it held open, rather than leaving it dangling.
        assert connection.sock is not None
        assert connection.sock.recv(1) == b""
    finally:
        connection.close()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(server.base + "/healthz", timeout=WAIT)  # noqa: S310


def test_serve_logs_json_lines_with_event_ids_to_stderr(server: Server) -> None:
    server.get("/healthz")
    assert server.stop() == 0
    records = server.log_lines()
    assert records
    assert all({"time", "level", "logger", "event_id", "message"} <= set(r) for r in records)
    ids = [r["event_id"] for r in records]
    assert "CM1002" in ids  # listening
    assert ids[-1] == "CM1003"  # stopped
    stopped = records[-1]
    assert stopped["signal"] == "SIGTERM"
    assert stopped["drained"] is True


def test_the_demo_key_is_needed_and_no_key_is_a_401(server: Server) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(server.base + "/chain", timeout=WAIT)  # noqa: S310
    assert refused.value.code == 401
    assert refused.value.headers["WWW-Authenticate"].startswith("Bearer")
    status, _, chains = server.get("/chain")
    assert status == 200
    assert len(chains) == 3


def test_with_commerce_auth_none_the_demo_says_authentication_is_off(tmp_path: Path) -> None:
    with serving(tmp_path, auth="none") as server:
        assert server.key is None
        assert any('act as tenant "demo"' in line for line in server.stdout)
        status, _, chains = server.get("/chain")
        assert status == 200
        assert len(chains) == 3


def test_a_request_line_carries_the_route_template_tenant_and_request_id(
    tmp_path: Path,
) -> None:
    with serving(tmp_path) as server:
        server.get("/chain")
        assert server.stop() == 0
        records = server.log_lines()
    [completed] = [r for r in records if r["event_id"] == "CM2001" and r["path"] == "/chain"]
    assert completed["route"] == "/chain"
    assert completed["tenant"] == "demo"
    assert completed["method"] == "GET"
    assert re.fullmatch(r"[0-9a-f]{16}-[0-9a-f]+", completed["request_id"])
    assert server.key is not None
    assert server.key not in (tmp_path / "serve.stderr").read_text(encoding="utf-8")


def test_log_format_console_writes_lines_for_a_person(tmp_path: Path) -> None:
    with serving(tmp_path, "--log-format", "console") as server:
        server.get("/chain")
        assert server.stop() == 0
        text = (tmp_path / "serve.stderr").read_text(encoding="utf-8")
    assert server.log_lines() == []  # no JSON
    assert re.search(r"^\S+ INFO +CM1002 SERVICE_LISTENING listening on ", text, re.M)
    [line] = [x for x in text.splitlines() if "CM2001 REQUEST_COMPLETED GET /chain " in x]
    assert "route=/chain" in line
    assert "tenant=demo" in line
