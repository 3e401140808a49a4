"""The load-test runner: a server on a chosen backend and data size, Locust headless against
it, reports, a plot, and a check of the data afterwards.

    .venv/bin/python loadtests/run.py                                  # SQLite, 2,000 levels, 30 s
    .venv/bin/python loadtests/run.py --backend postgresql --chains 10 --stores-per-chain 10 \
        --items 1000 --users 50 --run-time 2m --max-p99-ms 250
    .venv/bin/python loadtests/run.py --backend memory --run-time 10s  # the demo data set

Steps: (1) the data: SQLite (a temporary file, or ``--database``) and PostgreSQL (a database
created for the run and dropped after it, or ``--database``) are migrated, given a tenant,
seeded with ``commerce seed --tenant T --chains N --stores-per-chain M --items K`` and given a
``writer`` key with ``commerce keys create``; ``memory://`` lives in the server's process, so
it gets the demo data set and key of ``commerce serve --demo``. (2) ``commerce serve`` on a
free port. (3) ``locust -f loadtests/locustfile.py --headless`` with ``--csv`` and ``--html``
into ``--out``. (4) ``report.png``: throughput and p50/p95/p99 over time, from Locust's
``_stats_history.csv``. (5) The data check, over the HTTP API: no level below zero, every
level equal to the sum of its ledger's deltas and to its newest entry's ``quantity_after``.
(6) ``summary.json`` and a summary on stdout.

Exit status: 0 when every request succeeded, the data is consistent and the p99 (of all
requests) is within ``--max-p99-ms``; 1 otherwise; 2 when the run could not be made (a
server that does not start, Locust missing, a bad option).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _measure
import _servers
from _data import Api, ScratchDatabase, check_ledger, prepare_sql
from _servers import ServiceProcess, SetupFailed, positive

HERE = Path(__file__).resolve().parent
LOCUSTFILE = HERE / "locustfile.py"
BACKENDS = ("memory", "sqlite", "postgresql")
TENANT = "load"
DEFAULT_POSTGRES_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
EXPECTED_MARK = " [409 "
"""How the locustfile names the expected business outcomes (see its docstring)."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--backend", choices=BACKENDS, default="sqlite", help="storage (sqlite)")
    p.add_argument(
        "--database",
        metavar="URL",
        help="an existing SQL database to use (migrated, seeded into a new tenant) instead of "
        "a scratch one",
    )
    p.add_argument(
        "--postgres-admin",
        default=DEFAULT_POSTGRES_ADMIN,
        help="where the scratch PostgreSQL database <its name>_load_<pid> is created and dropped",
    )
    p.add_argument("--chains", type=positive, default=2, help="chains to seed (2)")
    p.add_argument("--stores-per-chain", type=positive, default=5, help="stores per chain (5)")
    p.add_argument("--items", type=positive, default=200, help="items, each at every store (200)")
    p.add_argument("--users", type=positive, default=20, help="Locust users (20)")
    p.add_argument("--spawn-rate", type=float, default=10, help="users started per second (10)")
    p.add_argument("--run-time", default="30s", help="how long Locust runs, e.g. 10s, 2m (30s)")
    p.add_argument("--max-p99-ms", type=float, help="fail if the p99 of all requests is above this")
    p.add_argument("--threads", type=positive, default=4, help="server threads (4)")
    p.add_argument("--workers", type=positive, default=1, help="`commerce serve --workers N` (1)")
    _servers.add_service_options(p)
    p.add_argument(
        "--out",
        type=Path,
        help="where the reports go (build/loadtest/<backend>-<time>)",
    )
    return p


@contextlib.contextmanager
def database(args: argparse.Namespace) -> Iterator[str]:
    if args.backend == "memory":
        yield "memory://"
    elif args.database:
        yield args.database
    elif args.backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="commerce-load-") as folder:
            yield f"sqlite:///{folder}/load.db"
    else:
        with ScratchDatabase(args.postgres_admin, "load") as url:
            yield url


def start(args: argparse.Namespace, url: str, out: Path) -> tuple[ServiceProcess, str, str, str]:
    """The server with data and a key: (server, key, tenant, how the data was made)."""
    settings = _servers.service_settings(args)
    log = out / "serve.log"
    if args.backend == "memory":
        settings["COMMERCE_TENANT"] = TENANT
        service = ServiceProcess(
            url, log=log, threads=args.threads, workers=args.workers, demo=True, settings=settings
        )
        return service, service.demo_key, TENANT, "the demo data set (serve --demo)"
    tenant = TENANT if not args.database else f"{TENANT}-{int(time.time())}"
    prepared = prepare_sql(
        url,
        tenant,
        chains=args.chains,
        stores_per_chain=args.stores_per_chain,
        items=args.items,
    )
    service = ServiceProcess(
        url, log=log, threads=args.threads, workers=args.workers, settings=settings
    )
    return service, prepared.key, tenant, prepared.seed_report


def run_locust(args: argparse.Namespace, url: str, key: str, tenant: str, out: Path) -> int:
    env = {
        **_servers.service_environment({}),
        "LOADTEST_HOST": url,
        "LOADTEST_API_KEY": key,
        "LOADTEST_TENANT": tenant,
    }
    if args.backend != "memory":  # the demo data set has sizes of its own
        env["LOADTEST_STORES"] = str(args.chains * args.stores_per_chain)
        env["LOADTEST_ITEMS"] = str(args.items)
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless"]
    argv += ["--users", str(args.users), "--spawn-rate", f"{args.spawn_rate:g}"]
    argv += ["--run-time", args.run_time, "--host", url, "--stop-timeout", "5"]
    argv += ["--csv", str(out / "locust"), "--html", str(out / "report.html")]
    argv += ["--only-summary", "--exit-code-on-error", "0"]
    with (out / "locust.log").open("w", encoding="utf-8") as log:
        return subprocess.run(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, check=False
        ).returncode


# -- reading Locust's CSV ---------------------------------------------------------------------


def _number(raw: str | None) -> float | None:
    try:
        return float(raw) if raw not in (None, "", "N/A") else None
    except ValueError:
        return None


def read_stats(out: Path) -> dict[str, Any]:
    """Per route and in all, from ``locust_stats.csv``; expected 409s apart."""
    with (out / "locust_stats.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    routes: list[dict[str, Any]] = []
    expected: dict[str, int] = {}
    total: dict[str, Any] = {}
    for row in rows:
        figures: dict[str, Any] = {
            "method": row["Type"],
            "name": row["Name"],
            "requests": int(row["Request Count"]),
            "failures": int(row["Failure Count"]),
            "rps": _number(row["Requests/s"]) or 0.0,
            "p50_ms": _number(row["50%"]),
            "p95_ms": _number(row["95%"]),
            "p99_ms": _number(row["99%"]),
        }
        if row["Name"] == "Aggregated":
            total = figures
        elif EXPECTED_MARK in row["Name"]:
            outcome = row["Name"].split(EXPECTED_MARK, 1)[1].rstrip("]")
            expected[outcome] = expected.get(outcome, 0) + int(row["Request Count"])
            routes.append(figures)
        else:
            routes.append(figures)
    failures = []
    failures_csv = out / "locust_failures.csv"
    if failures_csv.exists():
        with failures_csv.open(newline="", encoding="utf-8") as f:
            failures = [
                {
                    "method": r["Method"],
                    "name": r["Name"],
                    "error": r["Error"],
                    "count": int(r["Occurrences"]),
                }
                for r in csv.DictReader(f)
            ]
    return {"total": total, "routes": routes, "expected_409": expected, "failures": failures}


def plot(out: Path) -> Path | None:
    """``report.png``: requests/s (and failures/s, users) and p50/p95/p99 over time."""
    history = out / "locust_stats_history.csv"
    if not history.exists():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with history.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["Name"] == "Aggregated"]
    if not rows:
        return None
    start = int(rows[0]["Timestamp"])
    seconds = [int(r["Timestamp"]) - start for r in rows]

    def series(column: str) -> list[float]:
        return [v if (v := _number(r[column])) is not None else float("nan") for r in rows]

    figure, (upper, lower) = plt.subplots(2, 1, sharex=True, figsize=(10, 7))
    upper.plot(seconds, series("Requests/s"), label="requests/s")
    upper.plot(seconds, series("Failures/s"), label="failures/s", color="tab:red")
    upper.set_ylabel("per second")
    users = upper.twinx()
    users.plot(seconds, series("User Count"), label="users", color="tab:gray", linestyle=":")
    users.set_ylabel("users")
    upper.legend(loc="upper left")
    upper.set_title("Throughput")
    for column, label in (("50%", "p50"), ("95%", "p95"), ("99%", "p99")):
        lower.plot(seconds, series(column), label=label)
    lower.set_ylabel("ms")
    lower.set_xlabel("seconds since start")
    lower.set_title("Latency (Locust's rolling window of recent requests)")
    lower.legend(loc="upper left")
    figure.tight_layout()
    path = out / "report.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


# -- the run ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    for item in args.set:
        if "=" not in item or not item.startswith("COMMERCE_"):
            print(f"run.py: --set takes COMMERCE_NAME=VALUE, not {item!r}", file=sys.stderr)
            return 2
    if args.backend == "memory" and args.database:
        print("run.py: --database is for sqlite and postgresql", file=sys.stderr)
        return 2
    if args.workers > 1 and not _servers.serve_supports_workers():
        print("run.py: this `commerce serve` has no --workers option yet", file=sys.stderr)
        return 2
    try:
        import locust  # noqa: F401
    except ImportError:
        print("run.py: Locust is not installed: pip install -e '.[load]'", file=sys.stderr)
        return 2
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out: Path = args.out or HERE.parent / "build" / "loadtest" / f"{args.backend}-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {
        "backend": args.backend,
        "command": " ".join(["loadtests/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "out": str(out),
        "users": args.users,
        "run_time": args.run_time,
        "max_p99_ms": args.max_p99_ms,
    }
    try:
        with database(args) as url:
            service, key, tenant, data = start(args, url, out)
            summary["data"] = data
            print(f"run: {data}; server {service.url}; reports in {out}", flush=True)
            try:
                began = time.monotonic()
                summary["locust_exit"] = run_locust(args, service.url, key, tenant, out)
                summary["locust_seconds"] = round(time.monotonic() - began, 1)
                began = time.monotonic()
                api = Api(service.url, key)
                try:
                    checked = check_ledger(api)
                finally:
                    api.close()
                summary["data_check"] = checked.as_dict()
                summary["data_check_seconds"] = round(time.monotonic() - began, 1)
            finally:
                summary["server_exit"] = service.stop()
    except SetupFailed as exc:
        print(f"run.py: {exc}", file=sys.stderr)
        return 2
    if not (out / "locust_stats.csv").exists():
        print(
            f"run.py: Locust wrote no statistics (exit {summary['locust_exit']}); see "
            f"{out / 'locust.log'}:\n{(out / 'locust.log').read_text()[-2000:]}",
            file=sys.stderr,
        )
        return 2
    stats = read_stats(out)
    summary.update(stats)
    png = plot(out)
    summary["plot"] = str(png) if png else None
    problems = verdict(stats["total"], summary["data_check"], args.max_p99_ms)
    summary["problems"] = problems
    summary["passed"] = not problems
    _measure.write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")

    print(report(summary), flush=True)
    return 0 if not problems else 1


def verdict(
    total: dict[str, Any], data_check: dict[str, Any], max_p99_ms: float | None
) -> list[str]:
    """Why the run fails, if it does: failed requests, inconsistent data, a p99 too high."""
    problems = []
    if not total.get("requests"):
        problems.append("no request was made")
    if total.get("failures"):
        problems.append(f"{total['failures']} failed request(s)")
    if not data_check["consistent"]:
        problems.append(
            f"inconsistent data: {data_check['negative_count']} negative level(s), "
            f"{data_check['mismatched_count']} level(s) unlike their ledger"
        )
    p99 = total.get("p99_ms")
    if max_p99_ms is not None and (p99 is None or p99 > max_p99_ms):
        problems.append(f"p99 {p99} ms is over --max-p99-ms {max_p99_ms:g}")
    return problems


def report(summary: dict[str, Any]) -> str:
    total = summary["total"]
    check = summary["data_check"]
    lines = [
        f"requests {total['requests']:,}, failures {total['failures']:,}, "
        f"{total['rps']:.1f} req/s; p50 {total['p50_ms']} ms, p95 {total['p95_ms']} ms, "
        f"p99 {total['p99_ms']} ms",
        "expected 409s (not failures): "
        + (", ".join(f"{k} {v:,}" for k, v in sorted(summary["expected_409"].items())) or "none"),
        f"data: {check['levels']:,} levels at {check['stores']} stores, {check['entries']:,} "
        f"ledger entries; negative {check['negative_count']}, unlike their ledger "
        f"{check['mismatched_count']} ({'consistent' if check['consistent'] else 'INCONSISTENT'})",
        "",
        f"{'route':58} {'requests':>9} {'fail':>5} {'p50':>6} {'p95':>6} {'p99':>6}",
    ]
    for route in sorted(summary["routes"], key=lambda r: -r["requests"]):
        lines.append(
            f"{route['method'] + ' ' + route['name']:58.58} {route['requests']:9,} "
            f"{route['failures']:5} {route['p50_ms'] or 0:6.0f} {route['p95_ms'] or 0:6.0f} "
            f"{route['p99_ms'] or 0:6.0f}"
        )
    for failure in summary["failures"][:10]:
        lines.append(
            f"FAILED {failure['count']}x {failure['method']} {failure['name']}: {failure['error']}"
        )
    lines.append("")
    lines.append(f"reports: {summary['out']}/report.html, report.png, locust_*.csv, summary.json")
    lines.append("PASSED" if summary["passed"] else "FAILED: " + "; ".join(summary["problems"]))
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
