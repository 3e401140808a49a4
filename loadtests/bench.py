"""The benchmark: requests/s and p50/p99 of the main read and the main write, beside a bare
WSGI app on the same waitress settings, as ratios, for each storage backend.

    .venv/bin/python loadtests/bench.py                         # all three, 3 rounds of 5 s
    .venv/bin/python loadtests/bench.py --backends sqlite --seconds 3 --rounds 1
    .venv/bin/python loadtests/bench.py --json build/bench.json # figures for the docs
    .venv/bin/python loadtests/bench.py --backends sqlite --routes read --profile build/profiles

For each backend the script starts ``commerce serve`` (``--port 0``, ``--threads``, and
``--workers`` if asked) on data of its own: ``memory://`` loads the demo data set with
``serve --demo`` (it lives in the server's process); SQLite (a temporary file) and PostgreSQL
(a database created for the run and dropped after it) are migrated, given a tenant, seeded and
given a ``writer`` key with the ``commerce`` verbs. It then starts the bare app: a WSGI
callable that answers the same number of bytes as the measured route, served by the same
server class (``GracefulServer``), waitress options and threads as ``serve``, in as many
processes as ``--workers``.

Routes: ``read`` is ``GET /stores/{id}/inventory?items=<10 ids>``; ``write`` is a one-line
``POST /stores/{id}/inventory/adjustments`` (a wrk Lua script alternates +1 and -1 on one
item whose level was set high first, so stock never runs out). Both carry the API key.
Service and bare app take turns in every round (bare, service, for each route and number of
connections), each after a one-second warm-up, so that the machine's drift hits both; the
table shows medians over the rounds, and the ratio is the median of the rounds' own ratios.

The load is ``wrk --latency`` (one wrk thread unless ``--wrk-threads``). It is not a test:
figures depend on the machine and on what else runs on it. Compare ratios, taken in one run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _measure
import _servers
from _bench_table import Sample, summarise, table
from _data import Api, ScratchDatabase, prepare_sql
from _measure import WrkResult, run_wrk
from _profiles import profile
from _servers import BareProcess, ServiceProcess, SetupFailed, positive

BACKENDS = ("memory", "sqlite", "postgresql")
ROUTES = ("read", "write")
TENANT = "bench"
SEED: dict[str, Any] = {"chains": 1, "stores_per_chain": 10, "items": 1000}
"""The SQL backends' data: 10 stores of 1,000 items, 10,000 levels (the read's cost does not
depend on the size: see storage_scale.py)."""
DEFAULT_POSTGRES_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
START_QUANTITY = 1_000_000
"""The written item's level before the write rounds: far from zero whatever the order."""
WARM_UP_SECONDS = 1.0

LUA = """-- loadtests/bench.py: one-line adjustments, +1 then -1, so stock never runs out.
local bodies = {{
  [[{plus}]],
  [[{minus}]],
}}
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, bodies[2 - n % 2])
end
"""


@dataclass(frozen=True)
class Target:
    """What a backend's rounds request."""

    store_id: int
    item_ids: list[int]
    read_path: str
    write_path: str
    read_bytes: int
    write_bytes: int
    plus: dict[str, Any]
    minus: dict[str, Any]


def _csv(kind: type, choices: Sequence[str] | None = None) -> Any:
    def parse(raw: str) -> list[Any]:
        try:
            values = [kind(part.strip()) for part in raw.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a comma-separated list: {raw!r}") from None
        if not values:
            raise argparse.ArgumentTypeError("give at least one")
        if choices is not None and (bad := [v for v in values if v not in choices]):
            raise argparse.ArgumentTypeError(f"{bad[0]!r} is not one of {', '.join(choices)}")
        if kind is int and min(values) < 1:
            raise argparse.ArgumentTypeError("must be positive")
        return values

    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--backends",
        type=_csv(str, BACKENDS),
        default=list(BACKENDS),
        help="comma-separated, of memory, sqlite, postgresql (all)",
    )
    p.add_argument(
        "--routes", type=_csv(str, ROUTES), default=list(ROUTES), help="read, write (both)"
    )
    p.add_argument(
        "--connections", type=_csv(int), default=[1, 8], help="wrk connections, e.g. 1,8 (1,8)"
    )
    p.add_argument("--seconds", type=float, default=5.0, help="length of a measurement (5)")
    p.add_argument("--rounds", type=positive, default=3, help="rounds, each server in turn (3)")
    p.add_argument("--threads", type=positive, default=4, help="server threads, both apps (4)")
    p.add_argument(
        "--workers",
        type=positive,
        default=1,
        help="`commerce serve --workers N`, and N bare processes on one port (1)",
    )
    p.add_argument(
        "--cpu-affinity",
        action="store_true",
        help="`commerce serve --cpu-affinity`, and each bare process pinned the same way",
    )
    p.add_argument("--wrk-threads", type=positive, default=1, help="wrk threads (1)")
    _servers.add_service_options(p)
    p.add_argument(
        "--postgres-url",
        help="use this PostgreSQL database (migrated and seeded into a new tenant) instead "
        "of creating one",
    )
    p.add_argument(
        "--postgres-admin",
        default=DEFAULT_POSTGRES_ADMIN,
        help="where to create (and drop) the scratch database <its name>_bench_<pid> "
        f"({DEFAULT_POSTGRES_ADMIN})",
    )
    p.add_argument("--json", metavar="FILE", help="also write every figure as JSON ('-': stdout)")
    p.add_argument(
        "--profile",
        metavar="DIR",
        help="after the rounds, one more service run per route and connection count under "
        "py-spy, written to DIR (not counted in the table)",
    )
    p.add_argument(
        "--profile-format",
        choices=("flamegraph", "speedscope"),
        default="flamegraph",
        help="py-spy's output: an SVG flame graph or a speedscope JSON file (flamegraph)",
    )
    p.add_argument(
        "--keep-logs", action="store_true", help="keep the servers' logs and print where"
    )
    return p


# -- one backend -------------------------------------------------------------------------------


@contextlib.contextmanager
def storage_for(backend: str, args: argparse.Namespace, workdir: Path) -> Iterator[str]:
    """The database URL a backend's server runs on, made for this run and removed after it."""
    if backend == "memory":
        yield "memory://"
    elif backend == "sqlite":
        yield f"sqlite:///{workdir / 'bench.db'}"
    elif args.postgres_url:
        yield args.postgres_url
    else:
        with ScratchDatabase(args.postgres_admin, "bench") as url:
            yield url


def start_service(
    backend: str, url: str, args: argparse.Namespace, workdir: Path
) -> tuple[ServiceProcess, str, str]:
    """The server with data and a key: (server, key, how the data was made)."""
    settings = _servers.service_settings(args)
    log = workdir / f"serve-{backend}.log"
    if backend == "memory":
        settings["COMMERCE_TENANT"] = TENANT
        service = ServiceProcess(
            url,
            log=log,
            threads=args.threads,
            workers=args.workers,
            demo=True,
            settings=settings,
            cpu_affinity=args.cpu_affinity,
        )
        return service, service.demo_key, "the demo data set (serve --demo)"
    tenant = TENANT if not args.postgres_url else f"{TENANT}-{int(time.time())}"
    prepared = prepare_sql(url, tenant, **SEED)
    service = ServiceProcess(
        url,
        log=log,
        threads=args.threads,
        workers=args.workers,
        settings=settings,
        cpu_affinity=args.cpu_affinity,
    )
    return service, prepared.key, prepared.seed_report


def find_target(api: Api) -> Target:
    """A store with at least ten levels, its first ten items, and what the routes answer."""
    for chain in api.all("/chain?limit=1000"):
        for store in api.all(f"/chain/{chain['id']}/stores?limit=1000"):
            levels = api.json("GET", f"/stores/{store['id']}/inventory?limit=10")
            if len(levels) == 10:
                store_id = int(store["id"])
                items = [int(level["item_id"]) for level in levels]
                break
        else:
            continue
        break
    else:
        raise SetupFailed("no store has ten inventory levels to read")
    read_path = f"/stores/{store_id}/inventory?items={','.join(map(str, items))}"
    write_path = f"/stores/{store_id}/inventory/adjustments"
    written = items[0]
    api.json("PUT", f"/stores/{store_id}/inventory/{written}", {"quantity": START_QUANTITY})
    read = api.request("GET", read_path)
    if read.status != 200 or len(read.json()) != 10:
        raise SetupFailed(f"GET {read_path}: {read.status} {read.data[:200]!r}")

    def line(delta: int, reason: str) -> dict[str, Any]:
        return {"adjustments": [{"item_id": written, "delta": delta, "reason": reason}]}

    plus, minus = line(1, "received"), line(-1, "sold")
    wrote = api.request("POST", write_path, plus)
    undone = api.request("POST", write_path, minus)
    if wrote.status != 200 or undone.status != 200:
        raise SetupFailed(f"POST {write_path}: {wrote.status}/{undone.status} {wrote.data[:200]!r}")
    return Target(
        store_id=store_id,
        item_ids=items,
        read_path=read_path,
        write_path=write_path,
        read_bytes=len(read.data),
        write_bytes=len(wrote.data),
        plus=plus,
        minus=minus,
    )


def lua_script(target: Target, workdir: Path) -> Path:
    text = LUA.format(
        plus=json.dumps(target.plus, separators=(",", ":")),
        minus=json.dumps(target.minus, separators=(",", ":")),
    )
    return _measure.write_text(workdir / "write.lua", text)


def bench_backend(
    backend: str, args: argparse.Namespace, wrk: str, workdir: Path
) -> tuple[list[Sample], dict[str, Any]]:
    samples: list[Sample] = []
    about: dict[str, Any] = {"backend": backend}
    with storage_for(backend, args, workdir) as url, contextlib.ExitStack() as stack:
        service, key, data = start_service(backend, url, args, workdir)
        stack.callback(service.stop)
        api = Api(service.url, key)
        stack.callback(api.close)
        target = find_target(api)
        bare = BareProcess(
            log=workdir / f"bare-{backend}.log",
            threads=args.threads,
            workers=args.workers,
            get_bytes=target.read_bytes,
            post_bytes=target.write_bytes,
            cpu_affinity=args.cpu_affinity,
        )
        stack.callback(bare.stop)
        script = lua_script(target, workdir)
        headers = [f"Authorization: Bearer {key}"]
        paths = {"read": target.read_path, "write": target.write_path}
        scripts = {"read": None, "write": script}
        about.update(
            data=data,
            store_id=target.store_id,
            read=f"GET {target.read_path}",
            read_bytes=target.read_bytes,
            write=f"POST {target.write_path} {json.dumps(target.plus)} / delta -1",
            write_bytes=target.write_bytes,
        )
        print(f"\n== {backend}: {data}", flush=True)
        print(f"   read:  GET {target.read_path} ({target.read_bytes} bytes)", flush=True)
        print(f"   write: POST {target.write_path} ({target.write_bytes} bytes)", flush=True)

        def measure(route: str, connections: int, server_url: str, seconds: float) -> WrkResult:
            return run_wrk(
                server_url + paths[route],
                seconds=seconds,
                connections=connections,
                threads=args.wrk_threads,
                headers=headers,
                script=scripts[route],
                wrk=wrk,
            )

        servers = (("bare", bare.url), ("service", service.url))
        for round_ in range(1, args.rounds + 1):
            for route in args.routes:
                for connections in args.connections:
                    for name, server_url in servers:
                        measure(route, connections, server_url, min(WARM_UP_SECONDS, args.seconds))
                        result = measure(route, connections, server_url, args.seconds)
                        sample = Sample(
                            backend=backend,
                            route=route,
                            connections=connections,
                            server=name,
                            round=round_,
                            requests_per_second=result.requests_per_second,
                            p50_ms=result.p50_ms,
                            p99_ms=result.p99_ms,
                            requests=result.requests,
                            errors=result.errors,
                        )
                        samples.append(sample)
                        print(
                            f"   round {round_} {route:5} c={connections:<3} {name:7} "
                            f"{result.requests_per_second:9.1f} req/s  p50 {result.p50_ms:7.2f} ms"
                            f"  p99 {result.p99_ms:7.2f} ms"
                            + (f"  ERRORS {result.errors}" if result.errors else ""),
                            flush=True,
                        )
        if args.profile:
            try:
                about["profiles"] = profile(args, backend, service, measure)
            except SetupFailed as exc:  # the rounds' figures stand without it
                print(f"   profile failed: {exc}", file=sys.stderr, flush=True)
                about["profile_error"] = str(exc)
    return samples, about


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    wrk = _measure.find_wrk()
    if wrk is None:
        print(f"bench.py: {_measure.WRK_INSTALL}", file=sys.stderr)
        return 2
    for item in args.set:
        if "=" not in item or not item.startswith("COMMERCE_"):
            print(f"bench.py: --set takes COMMERCE_NAME=VALUE, not {item!r}", file=sys.stderr)
            return 2
    if args.workers > 1 and not _servers.serve_supports_workers():
        print(
            "bench.py: this version of `commerce serve` has no --workers option, so "
            f"--workers {args.workers} cannot be measured; leave --workers out (1 process)",
            file=sys.stderr,
        )
        return 2
    started = datetime.now(UTC)
    workdir = Path(tempfile.mkdtemp(prefix="commerce-bench-"))
    info = _measure.machine()
    print(
        f"bench: {info['cpus']} CPUs ({info['cpu'] or 'unknown'}), load {info['load_average']}, "
        f"Python {info['python']}, {info['versions']}, commit {info['commit']}\n"
        f"server: {args.threads} threads, {args.workers} process(es)"
        f"{', pinned to CPUs (--cpu-affinity)' if args.cpu_affinity else ''}, log level "
        f"{args.log_level}, metrics {args.metrics}; wrk -t{args.wrk_threads}, {args.seconds:g} s "
        f"per measurement, {args.rounds} round(s)",
        flush=True,
    )
    samples: list[Sample] = []
    backends: list[dict[str, Any]] = []
    status = 0
    try:
        for backend in args.backends:
            try:
                got, about = bench_backend(backend, args, wrk, workdir)
            except SetupFailed as exc:
                print(f"bench.py: {backend}: {exc}", file=sys.stderr)
                status = 2
                continue
            samples += got
            backends.append(about)
    except KeyboardInterrupt:
        status = 130
    rows = summarise(samples)
    if rows:
        print()
        print(table(rows))
    if any(r.errors for r in rows):
        print("\nsome requests failed (non-2xx or socket errors): see the rounds above")
        status = status or 1
    if args.json:
        document = {
            "started": started.isoformat(timespec="seconds"),
            "command": " ".join(
                ["loadtests/bench.py", *(argv if argv is not None else sys.argv[1:])]
            ),
            "machine": info,
            "settings": {
                "threads": args.threads,
                "workers": args.workers,
                "cpu_affinity": args.cpu_affinity,
                "log_level": args.log_level,
                "metrics": args.metrics,
                "seconds": args.seconds,
                "rounds": args.rounds,
                "wrk_threads": args.wrk_threads,
                "set": args.set,
            },
            "backends": backends,
            "rows": [asdict(r) for r in rows],
            "samples": [asdict(s) for s in samples],
        }
        text = json.dumps(document, indent=2)
        if args.json == "-":
            print(text)
        else:
            _measure.write_text(Path(args.json), text + "\n")
            print(f"\nfigures written to {args.json}")
    if args.keep_logs:
        print(f"server logs in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
