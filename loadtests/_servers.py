"""What the measuring scripts share: the servers they measure and the clients that drive them.

- ``ServiceProcess``: ``commerce serve`` in a subprocess, on a free port, stopped by SIGTERM.
- ``prepare_sql``: a migrated database with generated data and an API key, made by the
  ``commerce`` verbs themselves (``db upgrade``, ``tenants create``, ``seed``, ``keys create``).
- ``BareProcess``: a bare WSGI app that answers a fixed body, served by the same waitress
  server class, options and thread count as ``commerce serve`` (``python _servers.py bare``).
- ``Served``: a waitress server in a thread of this process (``observability_cost.py``).
- ``run_wrk``: one run of ``wrk --latency``, parsed.
- ``Api``: a small keep-alive JSON client that follows ``Link: rel="next"`` pages.
- ``ScratchDatabase``: a PostgreSQL database created for a run and dropped after it.
- ``check_ledger``: no negative level, and every level equals the sum of its ledger.

The scripts in this folder import it as a sibling module (``import _servers``): each is run as
``python loadtests/NAME.py``, which puts this folder first on ``sys.path``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LOOPBACK = "127.0.0.1"
COMMERCE = [sys.executable, "-m", "commerce.entrypoints.cli"]
"""The ``commerce`` command, run by this interpreter (no console script on PATH needed)."""
START_TIMEOUT = 90.0
STOP_TIMEOUT = 20.0
SERVING = re.compile(r"Serving on (http://\S+?)[,\s]")
BEARER = re.compile(r"Authorization: Bearer ([A-Za-z0-9_.~+/=-]+)")
WRK_INSTALL = (
    "wrk is not installed: it generates the load. Debian/Ubuntu: `apt-get install -y wrk`; "
    "macOS: `brew install wrk`; elsewhere build it from https://github.com/wg/wrk."
)


class SetupFailed(Exception):
    """A server did not start, or the data could not be prepared; the message says why."""


# -- processes that print "Serving on URL" ------------------------------------------------------


class _Child:
    """A subprocess that prints ``Serving on http://…`` once it accepts connections.

    Its stdout is read by a thread (kept in ``lines``); its stderr goes to ``log`` (a file:
    the server's JSON log lines are written and paid for, but never fill a pipe).
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log: Path,
        timeout: float = START_TIMEOUT,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log
        self._log = log.open("ab")
        self.lines: list[str] = []
        self._ready = threading.Event()
        self.url = ""
        self.process = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            env=dict(env),
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SetupFailed(
                    f"{' '.join(self.argv[-12:])} did not start (exit {self.process.returncode}); "
                    f"its output:\n{''.join(self.lines)[-2000:]}{self.log_tail()}"
                )

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            found = SERVING.search(line + " ")
            if found and not self._ready.is_set():
                self.url = found.group(1)
                self._ready.set()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def port(self) -> int:
        return int(urllib.parse.urlsplit(self.url).port or 80)

    def log_tail(self, chars: int = 2000) -> str:
        if not self._log.closed:
            self._log.flush()
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> int | None:
        """SIGTERM (``serve`` drains and exits 0), then SIGKILL if it does not end in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(5)
        self._log.close()
        return self.process.returncode


def service_environment(settings: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any ``COMMERCE_*`` (a run is configured by its
    options, not by the developer's shell), plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMMERCE_")}
    env.update(settings)
    return env


class ServiceProcess(_Child):
    """``commerce --database URL serve --port 0 --threads N [--workers N] [--demo]``.

    ``settings`` are ``COMMERCE_*`` variables for the server. With ``demo``, the server loads
    the demo data set into ``COMMERCE_TENANT`` and makes an admin key, which ``demo_key`` reads
    from its banner: the only way to give data and a key to ``memory://``, which lives in the
    server's process.
    """

    def __init__(
        self,
        database_url: str,
        *,
        log: Path,
        threads: int = 4,
        workers: int = 1,
        demo: bool = False,
        settings: Mapping[str, str] | None = None,
        cpu_affinity: bool = False,
    ) -> None:
        argv = [*COMMERCE, "--database", database_url, "serve", "--host", LOOPBACK, "--port", "0"]
        argv += ["--threads", str(threads)]
        if workers > 1:
            argv += ["--workers", str(workers)]
        if cpu_affinity:
            argv.append("--cpu-affinity")
        if demo:
            argv.append("--demo")
        env = service_environment({"COMMERCE_LOG_FORMAT": "json", **(settings or {})})
        super().__init__(argv, env=env, log=log)

    @property
    def demo_key(self) -> str:
        for line in self.lines:
            found = BEARER.search(line)
            if found:
                return found.group(1)
        raise SetupFailed("the demo banner showed no API key (is COMMERCE_AUTH=apikeys?)")


def serve_supports_workers() -> bool:
    """Whether this version's ``commerce serve`` has ``--workers``."""
    out = subprocess.run(
        [*COMMERCE, "serve", "--help"],
        capture_output=True,
        text=True,
        check=False,
        env=service_environment({}),
    ).stdout
    return "--workers" in out


# -- the bare app -------------------------------------------------------------------------------

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def filler(size: int) -> bytes:
    """A JSON document of exactly ``size`` bytes (at least 8)."""
    size = max(size, 8)
    return b'{"x":"' + b"a" * (size - 8) + b'"}'


def bare_app(bodies: Mapping[str, bytes]) -> WsgiApp:
    """A WSGI app that reads the request body and answers ``bodies[method]`` with 200."""
    headers = {
        method: [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        for method, body in bodies.items()
    }

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = environ.get("CONTENT_LENGTH")
        if length:
            environ["wsgi.input"].read(int(length))
        method = environ["REQUEST_METHOD"]
        body = bodies.get(method)
        if body is None:
            start_response("405 Method Not Allowed", [("Content-Length", "0")])
            return [b""]
        start_response("200 OK", list(headers[method]))
        return [body]

    return app


def _reuse_port() -> None:
    """Every listening socket of waitress in this process also sets ``SO_REUSEPORT``, so that
    several processes accept on one port and the kernel spreads connections over them."""
    from waitress.server import TcpWSGIServer

    original = TcpWSGIServer.set_reuse_addr

    def set_reuse_addr(self: Any) -> None:
        original(self)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)

    TcpWSGIServer.set_reuse_addr = set_reuse_addr  # type: ignore[method-assign]


def bare_main(argv: Sequence[str]) -> int:
    """``python _servers.py bare``: the bare app on ``commerce serve``'s own server class
    (``GracefulServer``: its waitress options, channel class and loop) with default settings."""
    parser = argparse.ArgumentParser(prog="_servers.py bare")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--get-bytes", type=int, default=256)
    parser.add_argument("--post-bytes", type=int, default=256)
    parser.add_argument("--reuse-port", action="store_true")
    parser.add_argument("--cpu", type=int, default=0, help="pin to the N-th allowed CPU (1-based)")
    args = parser.parse_args(argv)
    if args.reuse_port:
        _reuse_port()
    if args.cpu:
        from commerce.entrypoints.cli.worker import pin_to_cpu

        pin_to_cpu(args.cpu)  # as `commerce serve --cpu-affinity` pins its process (or worker)

    from commerce.entrypoints.cli.serve import GracefulServer
    from commerce.entrypoints.config import Settings

    app = bare_app({"GET": filler(args.get_bytes), "POST": filler(args.post_bytes)})
    server = GracefulServer(
        app, host=LOOPBACK, port=args.port, threads=args.threads, settings=Settings()
    )
    host, port = server.listening[0]
    with server.stopped_by_signals():
        print(f"Serving on http://{host}:{port} (bare)", flush=True)
        server.serve_until_stopped()
    return 0


class BareProcess:
    """``workers`` processes of the bare app sharing one port (``SO_REUSEPORT`` when more
    than one), as ``commerce serve --workers`` shares its port."""

    def __init__(
        self,
        *,
        log: Path,
        threads: int,
        workers: int,
        get_bytes: int,
        post_bytes: int,
        cpu_affinity: bool = False,
    ) -> None:
        self.children: list[_Child] = []
        port = 0
        env = service_environment({})
        try:
            for number in range(1, workers + 1):
                argv = [sys.executable, str(HERE / "_servers.py"), "bare", "--port", str(port)]
                argv += ["--threads", str(threads)]
                if cpu_affinity:
                    argv += ["--cpu", str(number)]
                argv += ["--get-bytes", str(get_bytes), "--post-bytes", str(post_bytes)]
                if workers > 1:
                    argv.append("--reuse-port")
                child = _Child(argv, env=env, log=log)
                self.children.append(child)
                port = child.port
        except BaseException:
            self.stop()
            raise
        self.url = self.children[0].url

    @property
    def pid(self) -> int:
        return self.children[0].pid

    def stop(self) -> None:
        for child in self.children:
            child.stop()


# -- an in-process waitress server (observability_cost.py) ---------------------------------


class Served:
    """A waitress server in a thread of this process, on a free port, until ``close()``."""

    def __init__(self, app: Any, threads: int = 4) -> None:
        from waitress import wasyncore
        from waitress.server import create_server

        self._wasyncore = wasyncore
        self._map: dict[int, Any] = {}
        self._server = create_server(
            app, map=self._map, host=LOOPBACK, port=0, threads=threads, ident="bench"
        )
        self.port = int(self._server.socket.getsockname()[1])  # type: ignore[union-attr]
        self._stop = False
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop:
            self._wasyncore.loop(timeout=0.05, map=self._map, count=1)

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        self._wasyncore.close_all(self._map)


# -- wrk ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int
    output: str = field(repr=False)

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def parse_wrk(out: str) -> WrkResult:
    """The figures of ``wrk --latency``'s report."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rps is None:
        raise ValueError(f"no Requests/sec in wrk's output:\n{out}")
    percentiles = {
        int(p): _ms(v, u)
        for p, v, u in re.findall(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    }
    if 50 not in percentiles or 99 not in percentiles:
        raise ValueError(f"no latency distribution in wrk's output (--latency?):\n{out}")
    requests = re.search(r"(\d+) requests in", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    return WrkResult(
        requests_per_second=float(rps.group(1)),
        p50_ms=percentiles[50],
        p99_ms=percentiles[99],
        requests=int(requests.group(1)) if requests else 0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
        output=out,
    )


def find_wrk() -> str | None:
    return shutil.which("wrk")


def run_wrk(
    url: str,
    *,
    seconds: float,
    connections: int,
    threads: int = 1,
    headers: Sequence[str] = (),
    script: Path | None = None,
    timeout_s: int = 10,
    wrk: str = "wrk",
) -> WrkResult:
    """One ``wrk --latency`` run against ``url``."""
    argv = [wrk, f"-t{min(threads, connections)}", f"-c{connections}", f"-d{seconds:g}s"]
    argv += ["--latency", f"--timeout={timeout_s}s"]
    for header in headers:
        argv += ["-H", header]
    if script is not None:
        argv += ["-s", str(script)]
    argv.append(url)
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SetupFailed(f"wrk failed (exit {done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


# -- the API, as a client ------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    data: bytes

    def json(self) -> Any:
        return json.loads(self.data)


class Api:
    """A keep-alive HTTP/1.1 client of one server, with its API key."""

    def __init__(self, base_url: str, key: str | None = None, timeout: float = 60) -> None:
        parts = urllib.parse.urlsplit(base_url)
        self._host = parts.hostname or LOOPBACK
        self._port = parts.port or 80
        self._timeout = timeout
        self._headers = {"Accept": "application/json"}
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: Any = None) -> Reply:
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self._headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self._host, self._port, self._timeout)
            try:
                self._conn.request(method, path, body=data, headers=headers)
                response = self._conn.getresponse()
                payload = response.read()
            except (ConnectionError, http.client.HTTPException):
                # The server closed an idle keep-alive connection; one new try.
                self.close()
                if attempt == 2:
                    raise
                continue
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, payload)
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        reply = self.request(method, path, body)
        if reply.status != expect:
            raise SetupFailed(
                f"{method} {path}: {reply.status} {reply.data[:300].decode(errors='replace')}"
            )
        return reply.json()

    def pages(self, path: str) -> Iterator[list[dict[str, Any]]]:
        """Every page of a list route, following ``Link: <…>; rel="next"``."""
        target: str | None = path
        while target:
            reply = self.request("GET", target)
            if reply.status != 200:
                raise SetupFailed(f"GET {target}: {reply.status} {reply.data[:300]!r}")
            yield reply.json()
            target = next_link(reply.headers.get("link"))

    def all(self, path: str) -> list[dict[str, Any]]:
        return [row for page in self.pages(path) for row in page]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def next_link(header: str | None) -> str | None:
    """The path of the ``rel="next"`` target of a ``Link`` header, if any."""
    for part in (header or "").split(","):
        target, _, params = part.partition(";")
        if 'rel="next"' in params:
            link = urllib.parse.urlsplit(target.strip().strip("<>"))
            return f"{link.path}?{link.query}" if link.query else link.path
    return None


# -- data -------------------------------------------------------------------------------------


def cli(database_url: str, *argv: str) -> str:
    """Run one ``commerce`` verb in this process (as the console script would); its stdout."""
    from commerce.entrypoints.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["--database", database_url, *argv])
    if status != 0:
        raise SetupFailed(f"commerce {' '.join(argv)} exited {status}: {err.getvalue().strip()}")
    return out.getvalue()


@dataclass(frozen=True)
class Prepared:
    key: str
    seed_report: str
    """``commerce seed``'s summary line: counts, seconds, levels/s."""


def prepare_sql(
    database_url: str,
    tenant: str,
    *,
    chains: int,
    stores_per_chain: int,
    items: int,
    role: str = "writer",
) -> Prepared:
    """Migrate, create ``tenant``, seed it, and make a key, with the ``commerce`` verbs."""
    cli(database_url, "db", "upgrade")
    cli(database_url, "tenants", "create", tenant)
    report = cli(
        database_url,
        "seed",
        "--tenant",
        tenant,
        "--chains",
        str(chains),
        "--stores-per-chain",
        str(stores_per_chain),
        "--items",
        str(items),
    )
    key = cli(database_url, "keys", "create", "--tenant", tenant, "--role", role).strip()
    return Prepared(key=key, seed_report=report.strip())


class ScratchDatabase:
    """A PostgreSQL database made next to ``admin_url``'s, for one run, then dropped."""

    def __init__(self, admin_url: str, suffix: str) -> None:
        import sqlalchemy as sa

        self._sa = sa
        admin = sa.make_url(admin_url)
        self.name = f"{admin.database or 'postgres'}_{suffix}_{os.getpid()}"
        self.url = admin.set(database=self.name).render_as_string(hide_password=False)
        self._admin = sa.create_engine(admin, isolation_level="AUTOCOMMIT")

    def _run(self, statement: str) -> None:
        with self._admin.connect() as conn:
            conn.execute(self._sa.text(statement))

    def __enter__(self) -> str:
        try:
            self._run(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self._run(f'CREATE DATABASE "{self.name}"')
        except self._sa.exc.SQLAlchemyError as exc:
            self._admin.dispose()
            raise SetupFailed(
                f"cannot create the scratch database {self.name} through "
                f"{self._admin.url.render_as_string(hide_password=True)}: {exc.orig or exc}"
            ) from None
        return self.url

    def __exit__(self, *exc: object) -> None:
        try:
            self._run(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            self._admin.dispose()


# -- the data check ------------------------------------------------------------------------------


@dataclass
class LedgerCheck:
    """What ``check_ledger`` found."""

    stores: int = 0
    levels: int = 0
    entries: int = 0
    negative: list[dict[str, Any]] = field(default_factory=list)
    """Levels below zero."""
    mismatched: list[dict[str, Any]] = field(default_factory=list)
    """Levels whose quantity is not the sum of their ledger's deltas, or not the
    ``quantity_after`` of their newest entry; and ledgers with no level that do not sum to 0."""

    @property
    def consistent(self) -> bool:
        return self.levels > 0 and not self.negative and not self.mismatched

    def as_dict(self) -> dict[str, Any]:
        return {
            "stores": self.stores,
            "levels": self.levels,
            "entries": self.entries,
            "negative": self.negative[:20],
            "negative_count": len(self.negative),
            "mismatched": self.mismatched[:20],
            "mismatched_count": len(self.mismatched),
            "consistent": self.consistent,
        }


def store_ids(api: Api) -> list[int]:
    return [
        int(store["id"])
        for chain in api.all("/chain?limit=1000")
        for store in api.all(f"/chain/{chain['id']}/stores?limit=1000")
    ]


def check_ledger(api: Api, stores: Sequence[int] | None = None) -> LedgerCheck:
    """Every level of every store (of ``stores``, else of the key's tenant), over the HTTP
    API: none below zero, each the sum of its ledger entries' deltas and the
    ``quantity_after`` of its newest entry."""
    found = LedgerCheck()
    for store_id in store_ids(api) if stores is None else stores:
        found.stores += 1
        levels = {
            int(row["item_id"]): int(row["quantity"])
            for row in api.all(f"/stores/{store_id}/inventory?limit=1000")
        }
        sums: dict[int, int] = {}
        newest: dict[int, tuple[int, int]] = {}
        for page in api.pages(f"/stores/{store_id}/inventory/changes?limit=1000"):
            for entry in page:
                found.entries += 1
                item = int(entry["item_id"])
                sums[item] = sums.get(item, 0) + int(entry["delta"])
                if item not in newest or int(entry["id"]) > newest[item][0]:
                    newest[item] = (int(entry["id"]), int(entry["quantity_after"]))
        for item, quantity in levels.items():
            found.levels += 1
            where = {"store_id": store_id, "item_id": item, "quantity": quantity}
            if quantity < 0:
                found.negative.append(where)
            ledger_sum = sums.get(item, 0)
            last = newest.get(item, (0, 0))[1]
            if ledger_sum != quantity or last != quantity:
                found.mismatched.append({**where, "ledger_sum": ledger_sum, "last_after": last})
        for item, total in sums.items():
            if item not in levels and total != 0:
                found.mismatched.append(
                    {"store_id": store_id, "item_id": item, "quantity": None, "ledger_sum": total}
                )
    return found


# -- machine -------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import platform

    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str] = {}
    from importlib import metadata

    for name in ("waitress", "falcon", "SQLAlchemy", "psycopg", "locust"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    wrk = find_wrk()
    if wrk:
        banner = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
        versions["wrk"] = (banner.stdout or banner.stderr).split(" [")[0].removeprefix("wrk ")
    commit = subprocess.run(
        ["git", "-C", str(HERE.parent), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "commit": commit,
    }


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


if __name__ == "__main__":
    if sys.argv[1:2] == ["bare"]:
        raise SystemExit(bare_main(sys.argv[2:]))
    raise SystemExit("usage: python loadtests/_servers.py bare [--port N] [--threads N] ...")
