"""The benchmark's figures: each measurement (``Sample``) and the table of their medians
(``Row``), as ``bench.py`` prints them."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    backend: str
    route: str
    connections: int
    server: str
    """``service`` or ``bare``."""
    round: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


@dataclass(frozen=True)
class Row:
    """One line of the table: medians over the rounds."""

    backend: str
    route: str
    connections: int
    service_rps: float
    bare_rps: float
    ratio: float
    service_p50_ms: float
    service_p99_ms: float
    bare_p50_ms: float
    bare_p99_ms: float
    errors: int


def summarise(samples: Sequence[Sample]) -> list[Row]:
    rows = []
    keys = dict.fromkeys((s.backend, s.route, s.connections) for s in samples)
    for backend, route, connections in keys:
        mine = [
            s
            for s in samples
            if (s.backend, s.route, s.connections) == (backend, route, connections)
        ]
        service = [s for s in mine if s.server == "service"]
        bare = [s for s in mine if s.server == "bare"]
        by_round = {s.round: s for s in bare}
        ratios = [
            s.requests_per_second / by_round[s.round].requests_per_second
            for s in service
            if s.round in by_round and by_round[s.round].requests_per_second > 0
        ]
        rows.append(
            Row(
                backend=backend,
                route=route,
                connections=connections,
                service_rps=statistics.median(s.requests_per_second for s in service),
                bare_rps=statistics.median(s.requests_per_second for s in bare),
                ratio=statistics.median(ratios) if ratios else 0.0,
                service_p50_ms=statistics.median(s.p50_ms for s in service),
                service_p99_ms=statistics.median(s.p99_ms for s in service),
                bare_p50_ms=statistics.median(s.p50_ms for s in bare),
                bare_p99_ms=statistics.median(s.p99_ms for s in bare),
                errors=sum(s.errors for s in mine),
            )
        )
    return rows


def table(rows: Sequence[Row]) -> str:
    lines = [
        "| backend | route | conns | service req/s | bare req/s | ratio "
        "| service p50 / p99 ms | bare p50 / p99 ms | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r.backend} | {r.route} | {r.connections} | {r.service_rps:,.0f} "
            f"| {r.bare_rps:,.0f} | {r.ratio:.2f} "
            f"| {r.service_p50_ms:.2f} / {r.service_p99_ms:.2f} "
            f"| {r.bare_p50_ms:.2f} / {r.bare_p99_ms:.2f} | {r.errors} |"
        )
    return "\n".join(lines)
