"""The service's own cost of the busiest read, in-process: no server, no network, no client.

    .venv/bin/python loadtests/inprocess.py                                  # memory://, µs
    .venv/bin/python loadtests/inprocess.py --database sqlite:////tmp/ip.db --instructions
    .venv/bin/python loadtests/inprocess.py --log-level WARNING --metrics off --instructions
    .venv/bin/python loadtests/inprocess.py --profile tottime                # cProfile, top 40

The app is built as ``commerce serve`` builds it (``build_app`` over the plugins' storage,
authenticators and instrumentations, API keys, JSON logs to a file at ``--log-level``), the
demo data set is loaded (``--database`` must be ``memory://`` or a new or demo database), and
``GET /stores/{id}/inventory?items=<10 ids>`` with an admin key is called as a WSGI callable
``--requests`` times per round. It prints the microseconds per request of each round (CPU
time of the process: the figure a busy machine moves least) and their minimum.

``--instructions`` counts instead the instructions one request costs, with valgrind's
callgrind (``apt-get install -y valgrind``): the script runs itself under callgrind with
``--requests`` requests and with one, and prints the difference divided by the difference
in requests. The count does not depend on what else the machine is doing, so two versions of
the code can be compared one after the other on a busy machine. It is not a test and asserts
nothing.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from commerce.entrypoints.bootstrap import bootstrap
from commerce.entrypoints.cli.serve import Lifecycle, build_app
from commerce.entrypoints.config import Settings
from commerce.entrypoints.demo import start_demo
from commerce.entrypoints.logs import configure_logging, flush_logs


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--database", default="memory://", help="memory:// or a SQL URL")
    parser.add_argument("--requests", type=int, default=2000, help="requests per round (2000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (5)")
    parser.add_argument("--log-level", default="INFO", help="COMMERCE_LOG_LEVEL (INFO)")
    parser.add_argument("--metrics", choices=("on", "off"), default="on", help="(on)")
    parser.add_argument("--instructions", action="store_true", help="count with callgrind")
    parser.add_argument("--profile", metavar="SORT", help="cProfile one more round, sorted so")
    return parser.parse_args(argv)


def make_call(args: argparse.Namespace, log_file: str) -> Callable[[], tuple[str, bytes]]:
    """The read as a function of no arguments, on an app built as ``serve`` builds it."""
    settings = Settings.from_env(
        {
            "COMMERCE_DATABASE_URL": args.database,
            "COMMERCE_METRICS": args.metrics,
            "COMMERCE_AUTH": "apikeys",
        }
    )
    runtime = bootstrap(settings)
    manager = runtime.schema_manager()
    if manager is not None:
        manager.upgrade()
    demo = start_demo(runtime, with_key=True)
    app = build_app(runtime, threads=4, lifecycle=Lifecycle())
    configure_logging(args.log_level, stream=open(log_file, "w"), log_format="json")  # noqa: SIM115
    store = demo.overview.store_id
    levels = runtime.storage.inventory.list_levels(
        settings.tenant, store, item_ids=None, after=None, limit=10
    )
    query = "items=" + ",".join(str(level.item_id) for level in levels)
    base = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": f"/stores/{store}/inventory",
        "QUERY_STRING": query,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "localhost",
        "HTTP_AUTHORIZATION": f"Bearer {demo.key}",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
    }

    def call() -> tuple[str, bytes]:
        statuses: list[str] = []

        def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
            statuses.append(status)

        environ = {**base, "wsgi.input": io.BytesIO(b"")}
        body = b"".join(app(environ, start_response))
        return statuses[0], body

    return call


def count_instructions(args: argparse.Namespace, argv: list[str]) -> int:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("inprocess.py: --instructions needs valgrind (apt-get install -y valgrind)")
        return 2
    rest = [a for a in argv if a != "--instructions"]

    def run(requests: int) -> int:
        command = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null"]
        command += [sys.executable, __file__, *rest, "--rounds", "1"]
        command += ["--requests", str(requests)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
        if done.returncode != 0 or found is None:
            raise SystemExit(f"inprocess.py: callgrind failed:\n{done.stderr[-2000:]}")
        return int(found.group(1).replace(",", ""))

    # Once without callgrind first, so that a new database is migrated and given the demo
    # data before either counted run: both then find it ready and differ only in requests.
    subprocess.run(
        [sys.executable, __file__, *rest, "--rounds", "1", "--requests", "1"],
        capture_output=True,
        check=True,
    )
    many = max(args.requests, 2)
    total = run(many)
    one = run(1)
    per_request = (total - one) / (many - 1)
    print(
        f"{per_request:,.0f} instructions per request ({args.database}, logs {args.log_level}, "
        f"metrics {args.metrics}; callgrind, {many:,} requests against 1)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.instructions:
        return count_instructions(args, argv)
    with tempfile.TemporaryDirectory(prefix="commerce-inprocess-") as work:
        call = make_call(args, os.path.join(work, "serve.log"))
        status, body = call()
        if not status.startswith("200"):
            print(f"inprocess.py: the read answered {status}: {body[:300]!r}")
            return 1
        per_round = []
        for _ in range(args.rounds):
            started = time.process_time()
            for _ in range(args.requests):
                call()
            per_round.append((time.process_time() - started) / args.requests * 1e6)
        print(
            f"µs per request (CPU): {', '.join(f'{t:.0f}' for t in per_round)}; "
            f"min {min(per_round):.0f} ({len(body)}-byte answer)"
        )
        if args.profile:
            profile = cProfile.Profile()
            profile.enable()
            for _ in range(args.requests):
                call()
            profile.disable()
            pstats.Stats(profile).sort_stats(args.profile).print_stats(40)
        flush_logs()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
