"""What observability costs: requests per second of one route with logs, traces and metrics
on, against all of them off, on the same backend, in one run.

    .venv/bin/python loadtests/observability_cost.py                  # 5 rounds of 5 s each
    .venv/bin/python loadtests/observability_cost.py --seconds 10 --rounds 3
    .venv/bin/python loadtests/observability_cost.py --breakdown      # each of the three alone too
    .venv/bin/python loadtests/observability_cost.py --sdk-encoder    # "on" with the SDK encoder
    .venv/bin/python loadtests/observability_cost.py --in-process 3000  # µs per request and span

Two apps over one memory storage are served by in-process waitress servers (4 threads, as
``commerce serve``): "off" has no instrumentation and logs at WARNING (so no request line is
written); "on" has every instrumentation the installed plugins give with the settings below
(tracing with its exporter on and every request sampled, metrics), and JSON logs at INFO to a
file. The load is ``wrk`` when it is installed (``apt-get install -y wrk``), otherwise a
threaded keep-alive client in a separate process, so that it does not share the server's
GIL. They take turns (off, on, off, on, ...) so that a machine's drift hits all alike; the
script prints each round, the median requests per second of each, and its ratio to "off".
"""

from __future__ import annotations

import argparse
import gc
import http.client
import http.server
import importlib
import multiprocessing
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from _measure import run_wrk
from _servers import Served

from commerce.adapters.auth.none import NoAuthentication
from commerce.adapters.storage.memory import memory_storage
from commerce.core.models import NewChain, NewItem, NewStore
from commerce.core.ports import Storage
from commerce.entrypoints.bootstrap import bootstrap
from commerce.entrypoints.config import Settings
from commerce.entrypoints.http.app import create_app
from commerce.entrypoints.logs import configure_logging, flush_logs
from commerce.plugins import Instrumentation, get_plugin_manager

TENANT = "bench"
THREADS = 4
TELEMETRY_PLUGINS = ("commerce.adapters.telemetry.tracing", "commerce.adapters.telemetry.metrics")
"""Registered here if the installed entry points do not list them (yet)."""
ON_SETTINGS = {
    # Tracing: the standard OpenTelemetry variables; every request sampled, spans exported
    # over OTLP/HTTP to a sink in another process that answers 200 to every batch (see
    # ``otlp_sink``), so the export work (batching, protobuf, HTTP) is all paid.
    "OTEL_TRACES_SAMPLER": "always_on",
    "OTEL_TRACES_EXPORTER": "otlp",
    # Metrics: /metrics served by the app itself.
    "COMMERCE_METRICS": "on",
}
"""The environment the "on" app's instrumentations are configured from (``--set`` adds)."""


def open_storage(url: str) -> Storage:
    """``memory://``, or the SQL database at ``url``, migrated to the current schema."""
    if url == "memory://":
        return memory_storage()
    runtime = bootstrap(Settings(database_url=url))
    manager = runtime.schema_manager()
    if manager is not None:
        manager.upgrade()
    return runtime.storage


def seed(storage: Storage) -> str:
    """One store with 20 items in stock; the path of the route measured."""
    catalogue = storage.catalogue
    catalogue.create_tenant(TENANT, "Bench")
    chain = catalogue.create_chain(TENANT, NewChain(name="Chain"))
    store = catalogue.create_store(TENANT, NewStore(chain_id=chain.id, name="Store"))
    items = []
    for n in range(20):
        item = catalogue.create_item(
            TENANT, NewItem(sku=f"SKU-{n}", name=f"Item {n}", cost=Decimal("1.50"))
        )
        storage.inventory.set_quantity(TENANT, store.id, item.id, 100 + n, actor="bench")
        items.append(item.id)
    return f"/stores/{store.id}/inventory?items={','.join(map(str, items[:10]))}"


def _client_worker(port: int, path: str, until: float, counts: Any, index: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    done = 0
    while time.monotonic() < until:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"GET {path}: {response.status}")
        done += 1
    counts[index] = done
    connection.close()


def measure(port: int, path: str, seconds: int, connections: int, wrk: str | None) -> float:
    """Requests per second of GET ``path`` for ``seconds``."""
    if wrk is not None:
        result = run_wrk(
            f"http://127.0.0.1:{port}{path}",
            seconds=seconds,
            connections=connections,
            threads=2,
            wrk=wrk,
        )
        if result.non_2xx:
            raise SystemExit(f"wrk saw errors:\n{result.output}")
        return result.requests_per_second
    context = multiprocessing.get_context("spawn")
    reader, writer = context.Pipe(duplex=False)
    process = context.Process(
        target=_run_client, args=(writer, port, path, seconds, connections), daemon=True
    )
    process.start()
    total = reader.recv()
    process.join()
    return float(total) / seconds


def _run_client(writer: Any, port: int, path: str, seconds: int, connections: int) -> None:
    counts: list[int] = [0] * connections
    until = time.monotonic() + seconds
    threads = [
        threading.Thread(target=_client_worker, args=(port, path, until, counts, i))
        for i in range(connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.send(sum(counts))


class _Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def _run_sink(writer: Any) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    writer.send(server.server_address[1])
    server.serve_forever()


def otlp_sink() -> tuple[str, Any]:
    """An OTLP/HTTP endpoint in a process of its own that accepts and drops every batch."""
    context = multiprocessing.get_context("spawn")
    reader, writer = context.Pipe(duplex=False)
    process = context.Process(target=_run_sink, args=(writer,), daemon=True)
    process.start()
    return f"http://127.0.0.1:{reader.recv()}/v1/traces", process


def instrumentations(environ: Mapping[str, str]) -> Sequence[Instrumentation]:
    """What the plugins answer for ``environ`` (OTEL_* are read from os.environ)."""
    os.environ.update({k: v for k, v in environ.items() if k.startswith("OTEL_")})
    env = {"COMMERCE_DATABASE_URL": "memory://", "COMMERCE_AUTH": "none", **environ}
    pm = get_plugin_manager()
    for name in TELEMETRY_PLUGINS:
        module = importlib.import_module(name)
        if not pm.is_registered(module):
            pm.register(module, name=name)
    return bootstrap(Settings.from_env(env), pm).instrumentations


def sdk_encoder_tracing(environ: Mapping[str, str]) -> Instrumentation:
    """The tracing instrumentation of ``environ``, its spans sent by the OTLP exporter package's
    own ``OTLPSpanExporter`` (its encoder), in a batch processor set as the service's."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from commerce.adapters.telemetry import tracing

    config = tracing.TracingConfig.from_settings({}, environ)
    return tracing.instrumentation(config, processors=[tracing.batch_processor(OTLPSpanExporter())])


def _wsgi_loop(app: Any, path: str, requests: int) -> float:
    """CPU µs per request of ``requests`` calls of the WSGI callable ``app`` (GET ``path``):
    the CPU time of the process, so the export thread's too, and not other processes'."""
    route, _, query = path.partition("?")
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": route, "QUERY_STRING": query}
    environ.update(SERVER_NAME="127.0.0.1", SERVER_PORT="80", SERVER_PROTOCOL="HTTP/1.1")
    environ.update({"wsgi.url_scheme": "http", "wsgi.input": None, "wsgi.errors": None})

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        if not status.startswith("200"):
            raise SystemExit(f"GET {path}: {status}")

    _collecting[1] = 0.0
    start = time.process_time()
    for _ in range(requests):
        for _chunk in app(dict(environ), start_response):
            pass
    return (time.process_time() - start) / requests * 1e6


_collecting = [0.0, 0.0]
"""When the garbage collector's current pass began; CPU seconds in its passes since the last
``_wsgi_loop`` began."""


def _time_collections(phase: str, info: Mapping[str, int]) -> None:
    if phase == "start":
        _collecting[0] = time.process_time()
    else:
        _collecting[1] += time.process_time() - _collecting[0]


def in_process(
    apps: Mapping[str, Any], make_app: Any, path: str, requests: int, rounds: int
) -> None:
    """Each app's WSGI callable called in a loop, in turns; CPU µs per request (and, of it,
    in the garbage collector's passes), medians, and the tracing variants' extra µs per span
    (3 spans a request). Then the encoding of 600
    spans of this route, by the SDK's encoder and by the service's (CPU time too)."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from commerce.adapters.telemetry import tracing
    from commerce.adapters.telemetry.otlp_encoding import SpanEncoder

    for app in apps.values():
        _wsgi_loop(app, path, 200)
    figures: dict[str, list[float]] = {name: [] for name in apps}
    collections: dict[str, list[float]] = {name: [] for name in apps}
    gc.callbacks.append(_time_collections)
    try:
        for round_ in range(1, rounds + 1):
            for name, app in apps.items():
                figures[name].append(_wsgi_loop(app, path, requests))
                collections[name].append(_collecting[1] / requests * 1e6)
            print(f"round {round_}  " + "  ".join(f"{n} {f[-1]:.1f}" for n, f in figures.items()))
    finally:
        gc.callbacks.remove(_time_collections)
    off = statistics.median(figures["off"])
    for name, values in figures.items():
        median = statistics.median(values)
        extra = f"   +{(median - off) / 3:.1f} µs a span" if name != "off" else ""
        print(
            f"median {name:>8}: {median:7.1f} µs of CPU a request "
            f"({statistics.median(collections[name]):.1f} in garbage collection){extra}"
        )

    captured = InMemorySpanExporter()
    capture = tracing.instrumentation(
        tracing.TracingConfig(exporters=("otlp",), sampler="always_on"),
        processors=[SimpleSpanProcessor(captured)],
    )
    _wsgi_loop(make_app([capture]), path, 200)
    spans = captured.get_finished_spans()
    encoder = SpanEncoder()
    assert encoder.encode(spans) == encode_spans(spans).SerializePartialToString()
    timings: dict[str, list[float]] = {"SDK's encoder": [], "service's": []}
    for _ in range(rounds * 3):
        start = time.process_time()
        encode_spans(spans).SerializePartialToString()
        middle = time.process_time()
        encoder.encode(spans)
        timings["SDK's encoder"].append((middle - start) / len(spans) * 1e6)
        timings["service's"].append((time.process_time() - middle) / len(spans) * 1e6)
    for name, values in timings.items():
        print(
            f"encoding {len(spans)} spans, {name:>13}: {statistics.median(values):5.1f} µs a span"
        )
    assert capture.close is not None
    capture.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="length of a round (5)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each (5)")
    parser.add_argument("--connections", type=int, default=8, help="client connections (8)")
    parser.add_argument(
        "--client", choices=("auto", "wrk", "python"), default="auto", help="load generator"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for the 'on' instrumentations (repeatable)",
    )
    parser.add_argument(
        "--database",
        default="memory://",
        metavar="URL",
        help="the storage, migrated and seeded anew (memory://; an SQLite file or a "
        "PostgreSQL database must not hold the tenant 'bench' yet)",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also measure logs, tracing and metrics each alone",
    )
    parser.add_argument(
        "--in-process",
        type=int,
        default=0,
        metavar="N",
        help="instead of serving: call the apps off, tracing without export, tracing, and "
        "tracing with the SDK's encoder N times each per round, in this process; CPU µs per "
        "request",
    )
    parser.add_argument(
        "--sdk-encoder",
        action="store_true",
        help="also measure 'on' (and, with --breakdown, tracing) with the spans encoded by "
        "the OTLP exporter package's own encoder rather than the service's",
    )
    args = parser.parse_args(argv)
    if args.in_process:
        args.breakdown = args.sdk_encoder = True
    wrk = shutil.which("wrk") if args.client in ("auto", "wrk") else None
    if args.client == "wrk" and wrk is None:
        parser.error("wrk is not installed (apt-get install -y wrk)")

    on_env = dict(ON_SETTINGS)
    sink = None
    if on_env.get("OTEL_TRACES_EXPORTER") == "otlp":
        endpoint, sink = otlp_sink()
        on_env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = endpoint
    on_env.update(dict(item.split("=", 1) for item in args.set))
    storage = open_storage(args.database)
    path = seed(storage)
    auth = [NoAuthentication(TENANT)]
    on_instrumentations = instrumentations(on_env)
    by_name = {i.name: i for i in on_instrumentations}
    # name -> (instrumentations, log level): "off" and "on" always; with --breakdown, each
    # of the three alone too, so that the cost of each is known.
    variants: dict[str, tuple[Sequence[Instrumentation], str]] = {
        "off": ((), "WARNING"),
        "on": (on_instrumentations, "INFO"),
    }
    if args.breakdown:
        variants["logs"] = ((), "INFO")
        for name in ("tracing", "metrics"):
            if name in by_name:
                variants[name] = ((by_name[name],), "WARNING")
    if args.sdk_encoder and "tracing" in by_name:
        sdk_tracing = sdk_encoder_tracing(on_env)
        on_instrumentations = [*on_instrumentations, sdk_tracing]
        with_sdk = [sdk_tracing if i.name == "tracing" else i for i in variants["on"][0]]
        variants["on-sdk"] = (with_sdk, "INFO")
        if args.breakdown:
            variants["trc-sdk"] = ((sdk_tracing,), "WARNING")

    if args.in_process:
        configure_logging("WARNING", stream=open(os.devnull, "w"), log_format="json")  # noqa: SIM115
        from commerce.adapters.telemetry import tracing

        # "trc-none": the same spans, created and ended, but no processor: nothing queued,
        # encoded or sent.
        unsent = tracing.instrumentation(tracing.TracingConfig.from_settings({}), processors=[])
        on_instrumentations = [*on_instrumentations, unsent]
        apps = {
            "off": create_app(storage, auth),
            "trc-none": create_app(storage, auth, instrumentations=[unsent]),
        }
        apps.update(
            (name, create_app(storage, auth, instrumentations=used))
            for name, (used, _) in variants.items()
            if name in ("tracing", "trc-sdk")
        )
        try:
            in_process(
                apps,
                lambda used: create_app(storage, auth, instrumentations=used),
                path,
                args.in_process,
                args.rounds,
            )
        finally:
            for instrumentation in on_instrumentations:
                if instrumentation.close is not None:
                    instrumentation.close()
            if sink is not None:
                sink.terminate()
        return 0

    log_dir = Path(tempfile.mkdtemp(prefix="observability-cost-"))
    log_file = (log_dir / "serve.log").open("w", encoding="utf-8")
    servers = {
        name: Served(create_app(storage, auth, instrumentations=used), threads=THREADS)
        for name, (used, _) in variants.items()
    }
    print(
        f"GET {path} on {args.database.partition(':')[0]}, {THREADS} server threads, "
        f"{args.connections} connections, "
        f"client {'wrk' if wrk else 'python'}; 'on' instrumentations: "
        f"{sorted(by_name) or 'none installed'}; logs in {log_dir}"
    )
    figures: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for round_ in range(1, args.rounds + 1):
            for name, (_, level) in variants.items():
                configure_logging(level, stream=log_file, log_format="json")
                # A short warm-up, so that a round does not pay for the other's last requests.
                measure(servers[name].port, path, 1, args.connections, wrk)
                rps = measure(servers[name].port, path, args.seconds, args.connections, wrk)
                flush_logs()
                figures[name].append(rps)
                print(f"round {round_}  {name:>7}: {rps:9.1f} requests/s", flush=True)
    finally:
        for server in servers.values():
            server.close()
        for instrumentation in on_instrumentations:
            if instrumentation.close is not None:
                instrumentation.close()
        flush_logs()
        log_file.close()
        if sink is not None:
            sink.terminate()
    off = statistics.median(figures["off"])
    for name in variants:
        median = statistics.median(figures[name])
        print(f"median {name:>7}: {median:9.1f} requests/s   ratio to off: {median / off:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
