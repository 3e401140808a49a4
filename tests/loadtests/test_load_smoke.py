"""The load smoke: the Locust runner for ten seconds on SQLite, a small data set, six users.

It asserts what a load test must never show (a failed request, a level unlike its ledger) and
that the run did what it says (requests made, writes among them, every report written); it
asserts nothing about speed, which depends on the machine.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.loadtests.scripts import LOADTESTS

# Looked up, never imported: importing Locust monkey-patches this process with gevent.
_missing = [name for name in ("locust", "matplotlib") if importlib.util.find_spec(name) is None]
# The test extra installs both; a developer's narrower environment skips, CI never does.
pytestmark = pytest.mark.skipif(
    bool(_missing) and not os.environ.get("CI"),
    reason=f"the load extra is not installed here (no {', '.join(_missing)})",
)

CHAINS, STORES_PER_CHAIN, ITEMS = 1, 3, 40


def test_a_short_load_on_sqlite_fails_nothing_and_keeps_the_ledger(tmp_path: Path) -> None:
    out = tmp_path / "report"
    done = subprocess.run(  # noqa: S603 -- this interpreter, the runner of this repository
        [
            sys.executable,
            str(LOADTESTS / "run.py"),
            "--backend",
            "sqlite",
            "--chains",
            str(CHAINS),
            "--stores-per-chain",
            str(STORES_PER_CHAIN),
            "--items",
            str(ITEMS),
            "--users",
            "6",
            "--spawn-rate",
            "6",
            "--run-time",
            "10s",
            "--log-level",
            "WARNING",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["passed"] is True
    assert summary["problems"] == []
    assert summary["total"]["requests"] > 0
    assert summary["total"]["failures"] == 0
    assert summary["failures"] == []
    # The keepers wrote, so the check below is about data that changed under load.
    writes = [r for r in summary["routes"] if r["method"] in ("POST", "PUT")]
    assert sum(r["requests"] for r in writes) > 0
    check = summary["data_check"]
    assert check["consistent"] is True
    assert check["levels"] == CHAINS * STORES_PER_CHAIN * ITEMS
    assert check["negative_count"] == 0
    assert check["mismatched_count"] == 0
    assert check["entries"] > check["levels"]  # the seed's entries and the load's
    for report in ("report.html", "report.png", "locust_stats.csv", "locust_stats_history.csv"):
        assert (out / report).stat().st_size > 0, report
