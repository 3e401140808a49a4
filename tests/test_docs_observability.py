"""docs/observability.md and the Grafana dashboard stay in step with what ships: every metric
they query is one the metrics plugin exposes, the documented metrics are all of them, and the
readiness reasons are the ones ``/readyz`` answers with."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from commerce.entrypoints.http import operations

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "observability.md").read_text(encoding="utf-8")
DASHBOARD: dict[str, Any] = json.loads(
    (ROOT / "deploy" / "grafana" / "commerce.json").read_text(encoding="utf-8")
)
_SERIES = re.compile(r"\bcommerce_[a-z_]+\b")
_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
}


def _families() -> dict[str, str]:
    metrics = pytest.importorskip("commerce.adapters.telemetry.metrics")
    registry = metrics.Metrics().registry
    return {f.name: f.type for f in registry.collect() if f.name.startswith("commerce_")}


def _series() -> set[str]:
    return {name + suffix for name, kind in _families().items() for suffix in _SUFFIXES[kind]}


def _exprs() -> list[str]:
    found = []
    for panel in DASHBOARD["panels"]:
        found.extend(target["expr"] for target in panel.get("targets", ()))
    for variable in DASHBOARD["templating"]["list"]:
        found.append(variable["definition"])
    return found


def test_every_series_the_dashboard_queries_is_one_the_metrics_plugin_exposes() -> None:
    series = _series()
    queried = {name for expr in _exprs() for name in _SERIES.findall(expr)}
    assert queried
    assert queried <= series, sorted(queried - series)


def test_every_series_the_doc_names_is_exposed_and_every_metric_is_documented() -> None:
    series = _series()
    named = set(_SERIES.findall(DOC))
    assert named <= series | set(_families()), sorted(named - series - set(_families()))
    table = re.findall(r"^\| `(commerce_[a-z_]+)` \| (\w+) \|", DOC, flags=re.MULTILINE)
    documented = {name.removesuffix("_total"): kind for name, kind in table}
    assert documented == _families()


def test_the_dashboard_panels_have_unique_ids_and_a_prometheus_source() -> None:
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    for panel in DASHBOARD["panels"]:
        for target in panel.get("targets", ()):
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
    inputs = {i["name"] for i in DASHBOARD["__inputs"]}
    assert inputs == {"DS_PROMETHEUS"}


def test_the_documented_readiness_reasons_are_the_ones_readyz_answers_with() -> None:
    section = DOC.split("## Is it healthy?", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE))
    reasons = {
        operations.NOT_READY_DRAINING,
        operations.NOT_READY_SCHEMA,
        operations.NOT_READY_STORAGE,
    }
    assert documented == reasons


def test_the_readme_links_the_doc() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/observability.md)" in readme
