"""End to end: a flag turns a real route on for one tenant and off for another on a running
``commerce serve``, and the flags file changed while it runs turns them around, no restart."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from commerce.entrypoints.cli import main
from tests.flags.conftest import Write

pytestmark = pytest.mark.http

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0
"""An upper bound on any wait, so a broken server fails the test instead of hanging it."""
SERVING = re.compile(r"^Serving on (http://127\.0\.0\.1:\d+)")
FEATURE_DISABLED = "https://commerce.example/problems/feature-disabled"

ALPHA_ONLY = """\
    flags:
      as-of-reads:
        default: off
        tenants:
          allow: [alpha]
    """
BETA_ONLY = ALPHA_ONLY.replace("alpha", "beta")


@dataclass
class Server:
    base: str
    stderr: Path

    def call(
        self, method: str, path: str, key: str, body: object = None
    ) -> tuple[int, dict[str, Any] | list[Any]]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - a server this test started
            self.base + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=WAIT) as response:  # noqa: S310
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def metrics(self) -> str:
        with urllib.request.urlopen(self.base + "/metrics", timeout=WAIT) as response:  # noqa: S310
            text: str = response.read().decode()
            return text

    def log_lines(self) -> list[dict[str, Any]]:
        text = self.stderr.read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _key(capsys: pytest.CaptureFixture[str], url: str, tenant: str) -> str:
    assert main(["--database", url, "tenants", "create", tenant]) == 0
    capsys.readouterr()
    assert main(["--database", url, "keys", "create", "--tenant", tenant, "--role", "admin"]) == 0
    return capsys.readouterr().out.strip()


@contextmanager
def serving(tmp_path: Path, url: str, flags_file: Path) -> Iterator[Server]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMMERCE_")}
    env.update(
        COMMERCE_DATABASE_URL=url,
        COMMERCE_AUTH="apikeys",
        COMMERCE_FLAGS_FILE=str(flags_file),
        COMMERCE_FLAGS_RELOAD_MS="100",
        COMMERCE_LOG_FORMAT="json",
        # The serve tests' own keys: the cache would delay nothing here, but say it plainly.
        COMMERCE_APIKEY_CACHE_SECONDS="0",
    )
    stderr_path = tmp_path / "serve.stderr"
    with stderr_path.open("w", encoding="utf-8") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "commerce.entrypoints.cli", "serve", "--port", "0"],
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
    try:
        while True:
            line = lines.get(timeout=WAIT)
            if line is None:
                pytest.fail(f"serve exited before listening:\n{stderr_path.read_text()}")
            match = SERVING.match(line)
            if match:
                break
        yield Server(match.group(1), stderr_path)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=WAIT)


def _eventually(check: Callable[[], bool]) -> None:
    """Until ``check()`` holds, polling; a failure after ``WAIT`` seconds (never a timing)."""
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            pytest.fail("the running server never took up the changed flags file")
        time.sleep(0.1)


def test_a_flag_turns_as_of_reads_on_for_one_tenant_and_off_for_another_while_the_file_changes(
    tmp_path: Path, write: Write, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'flags.db'}"
    assert main(["--database", url, "db", "upgrade"]) == 0
    keys = {tenant: _key(capsys, url, tenant) for tenant in ("alpha", "beta")}
    flags_file = write(ALPHA_ONLY)

    with serving(tmp_path, url, flags_file) as server:
        stores = {}
        for tenant, key in keys.items():
            status, chain = server.call("POST", "/chain", key, {"name": f"{tenant} foods"})
            assert status == 201, chain
            assert isinstance(chain, dict)
            status, store = server.call(
                "POST", f"/chain/{chain['id']}/stores", key, {"name": f"{tenant} one"}
            )
            assert status == 201, store
            assert isinstance(store, dict)
            status, item = server.call(
                "POST", "/items", key, {"sku": "T-1", "name": "Tea", "cost": "1.00"}
            )
            assert status == 201, item
            assert isinstance(item, dict)
            level_path = f"/stores/{store['id']}/inventory/{item['id']}"
            status, level = server.call("PUT", level_path, key, {"quantity": 5})
            assert status == 200, level
            stores[tenant] = store["id"]

        def as_of(tenant: str) -> tuple[int, Any]:
            # A moment after the count: the levels as they were then, from the ledger.
            path = f"/stores/{stores[tenant]}/inventory?as_of=2100-01-01T00:00:00Z"
            return server.call("GET", path, keys[tenant])

        status, levels = as_of("alpha")
        assert status == 200
        assert [lv["quantity"] for lv in levels] == [5]
        status, problem = as_of("beta")
        assert status == 404
        assert isinstance(problem, dict)
        assert (problem["type"], problem["flag"]) == (FEATURE_DISABLED, "as-of-reads")

        # The operator rolls the feature over to the other tenant; the server keeps running.
        write(BETA_ONLY)
        _eventually(lambda: as_of("beta")[0] == 200)
        assert as_of("alpha")[0] == 404

        # A bad edit is refused while running: the last good rules stay, and it is logged.
        # (The file is looked at by the evaluations that come along, so keep asking.)
        write("flags:\n  as-of-reads:\n    rollout: everyone\n")

        def refused_and_kept() -> bool:
            assert (as_of("alpha")[0], as_of("beta")[0]) == (404, 200)
            return any(line["event_id"] == "CM7005" for line in server.log_lines())

        _eventually(refused_and_kept)

        metrics = server.metrics()
        assert re.search(
            r'commerce_flag_evaluations_total\{flag="as-of-reads",result="off"\} ', metrics
        )
        assert re.search(
            r'commerce_flag_evaluations_total\{flag="as-of-reads",result="on"\} ', metrics
        )

    events = [line for line in server.log_lines() if line["event_id"].startswith("CM7")]
    loaded = [line for line in events if line["event"] == "FLAGS_LOADED"]
    assert len(loaded) == 2  # at the start, and after the good edit
    refused = [line for line in events if line["event"] == "FEATURE_DISABLED"]
    assert {line["tenant"] for line in refused} == {"alpha", "beta"}
    assert all(line["flag"] == "as-of-reads" for line in refused)
    [failed] = [line for line in events if line["event"] == "FLAGS_RELOAD_FAILED"]
    assert "flags.as-of-reads.rollout: must be a percentage" in failed["error"]
