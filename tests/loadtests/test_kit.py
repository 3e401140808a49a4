"""The parts of the kit whose mistakes would not show in a green run: wrk's report read
right, the runner's verdict, the data check finding what is wrong, the benchmark's ratios."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from tests.loadtests.scripts import load

servers = load("_servers")
measure = load("_measure")
data = load("_data")
runner = load("run")
bench = load("bench")
bench_table = load("_bench_table")

WRK_REPORT = """Running 3s test @ http://127.0.0.1:8000/stores/1/inventory?items=1,2
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms    1.20ms  40.00ms   90.00%
    Req/Sec     3.80k   200.00     4.10k    70.00%
  Latency Distribution
     50%  850.00us
     75%    2.00ms
     90%    3.00ms
     99%    1.25s
  11400 requests in 3.00s, 9.80MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:   3799.50
Transfer/sec:      3.27MB
"""


def test_wrk_report_is_read_in_milliseconds_with_its_errors() -> None:
    result = measure.parse_wrk(WRK_REPORT)
    assert result.requests_per_second == pytest.approx(3799.5)
    assert result.p50_ms == pytest.approx(0.85)
    assert result.p99_ms == pytest.approx(1250.0)
    assert result.requests == 11400
    assert result.non_2xx == 7
    assert result.socket_errors == 3
    assert result.errors == 10


def test_wrk_report_without_latency_distribution_is_refused() -> None:
    without = WRK_REPORT.replace("     50%  850.00us\n", "")
    with pytest.raises(ValueError, match="latency distribution"):
        measure.parse_wrk(without)


CONSISTENT = {"consistent": True, "negative_count": 0, "mismatched_count": 0}


def test_verdict_passes_a_clean_run_and_names_each_problem() -> None:
    clean = {"requests": 100, "failures": 0, "p99_ms": 40.0}
    assert runner.verdict(clean, CONSISTENT, 50.0) == []
    assert runner.verdict(clean, CONSISTENT, None) == []
    failed = runner.verdict({**clean, "failures": 3}, CONSISTENT, None)
    assert failed == ["3 failed request(s)"]
    broken = {"consistent": False, "negative_count": 1, "mismatched_count": 2}
    [inconsistent] = runner.verdict(clean, broken, None)
    assert "1 negative level(s), 2 level(s) unlike their ledger" in inconsistent
    [slow] = runner.verdict(clean, CONSISTENT, 30.0)
    assert "p99 40.0 ms is over --max-p99-ms 30" in slow
    assert runner.verdict({"requests": 0, "failures": 0}, CONSISTENT, None) == [
        "no request was made"
    ]


def _api_app(routes: dict[str, list[dict[str, Any]]]) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        body = json.dumps(routes.get(path, [])).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]

    return app


def _entry(n: int, item: int, delta: int, after: int) -> dict[str, Any]:
    return {"id": n, "item_id": item, "delta": delta, "quantity_after": after}


def test_the_data_check_finds_negative_levels_and_levels_unlike_their_ledger() -> None:
    app = _api_app(
        {
            "/chain": [{"id": 1}],
            "/chain/1/stores": [{"id": 7}],
            "/stores/7/inventory": [
                {"item_id": 1, "quantity": 5},  # ledger 10 - 5: right
                {"item_id": 2, "quantity": 4},  # ledger 3: wrong
                {"item_id": 3, "quantity": -1},  # below zero
            ],
            "/stores/7/inventory/changes": [
                _entry(1, 1, 10, 10),
                _entry(2, 2, 3, 3),
                _entry(3, 1, -5, 5),
                _entry(4, 3, -1, -1),
                _entry(5, 4, 2, 2),  # no level, yet a ledger that does not sum to 0
            ],
        }
    )
    served = servers.Served(app, threads=1)
    api = data.Api(f"http://127.0.0.1:{served.port}")
    try:
        found = data.check_ledger(api)
    finally:
        api.close()
        served.close()
    assert (found.stores, found.levels, found.entries) == (1, 3, 5)
    assert [n["item_id"] for n in found.negative] == [3]
    assert sorted(m["item_id"] for m in found.mismatched) == [2, 4]
    assert found.consistent is False


def test_a_consistent_store_passes_the_data_check() -> None:
    app = _api_app(
        {
            "/chain": [{"id": 1}],
            "/chain/1/stores": [{"id": 7}],
            "/stores/7/inventory": [{"item_id": 1, "quantity": 5}],
            "/stores/7/inventory/changes": [_entry(1, 1, 10, 10), _entry(2, 1, -5, 5)],
        }
    )
    served = servers.Served(app, threads=1)
    api = data.Api(f"http://127.0.0.1:{served.port}")
    try:
        found = data.check_ledger(api)
    finally:
        api.close()
        served.close()
    assert found.consistent is True


def _sample(server: str, round_: int, rps: float) -> Any:
    return bench_table.Sample(
        backend="sqlite",
        route="read",
        connections=1,
        server=server,
        round=round_,
        requests_per_second=rps,
        p50_ms=1.0,
        p99_ms=2.0,
        requests=int(rps),
        errors=0,
    )


def test_the_benchmark_ratio_is_the_median_of_each_rounds_own_ratio() -> None:
    samples = [
        _sample("bare", 1, 1000.0),
        _sample("service", 1, 500.0),  # 0.5
        _sample("bare", 2, 2000.0),
        _sample("service", 2, 600.0),  # 0.3
        _sample("bare", 3, 1000.0),
        _sample("service", 3, 400.0),  # 0.4
    ]
    [row] = bench_table.summarise(samples)
    assert row.ratio == pytest.approx(0.4)
    assert row.service_rps == pytest.approx(500.0)
    assert row.bare_rps == pytest.approx(1000.0)
    assert "| sqlite | read | 1 | 500 | 1,000 | 0.40 |" in bench_table.table([row])


def test_the_in_process_cost_runs_the_busiest_read(capsys: pytest.CaptureFixture[str]) -> None:
    inprocess = load("inprocess")
    assert inprocess.main(["--requests", "20", "--rounds", "2"]) == 0
    out = capsys.readouterr().out
    assert "µs per request (CPU):" in out
    assert "min " in out


def test_the_in_process_read_answers_as_the_server_would() -> None:
    import tempfile

    inprocess = load("inprocess")
    args = inprocess.parse_args(["--database", "memory://"])
    with tempfile.TemporaryDirectory() as work:
        call = inprocess.make_call(args, f"{work}/serve.log")
        status, body = call()
    assert status == "200 OK"
    rows = json.loads(body)
    assert len(rows) == 10  # ten levels of one store, as the benchmark reads
    assert len({row["store_id"] for row in rows}) == 1


def test_the_benchmark_pins_both_servers_only_when_asked() -> None:
    assert bench.parser().parse_args([]).cpu_affinity is False
    args = bench.parser().parse_args(["--cpu-affinity", "--threads", "2"])
    assert args.cpu_affinity is True
    assert args.threads == 2
    with pytest.raises(SystemExit):
        bench.parser().parse_args(["--threads", "0"])
