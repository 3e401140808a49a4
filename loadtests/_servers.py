"""What the measuring scripts share: the servers they measure. The clients that drive them and
the data are in ``_measure.py`` (wrk, the machine) and ``_data.py`` (the API, data, checks).

- ``ServiceProcess``: ``commerce serve`` in a subprocess, on a free port, stopped by SIGTERM.
- ``BareProcess``: a bare WSGI app that answers a fixed body, served by the same waitress
  server class, options and thread count as ``commerce serve`` (``python _servers.py bare``).
- ``Served``: a waitress server in a thread of this process (``observability_cost.py``).

The scripts in this folder import it as a sibling module (``import _servers``): each is run as
``python loadtests/NAME.py``, which puts this folder first on ``sys.path``.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
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


def positive(raw: str) -> int:
    """An ``argparse`` type: a whole number of at least 1."""
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {raw!r}")
    return int(raw)


def add_service_options(p: argparse.ArgumentParser) -> None:
    """``--log-level``, ``--metrics`` and ``--set``: how a script configures the server it
    measures (``service_settings`` turns them into its environment)."""
    p.add_argument("--log-level", default="INFO", help="COMMERCE_LOG_LEVEL of the server (INFO)")
    p.add_argument("--metrics", choices=("on", "off"), default="on", help="COMMERCE_METRICS (on)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="another COMMERCE_* variable for the server (repeatable)",
    )


def service_settings(args: argparse.Namespace) -> dict[str, str]:
    """The server's ``COMMERCE_*`` settings from ``add_service_options``'s options, API keys on."""
    return {
        "COMMERCE_AUTH": "apikeys",
        "COMMERCE_LOG_LEVEL": args.log_level,
        "COMMERCE_METRICS": args.metrics,
        **dict(item.split("=", 1) for item in args.set),
    }


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


if __name__ == "__main__":
    if sys.argv[1:2] == ["bare"]:
        raise SystemExit(bare_main(sys.argv[2:]))
    raise SystemExit("usage: python loadtests/_servers.py bare [--port N] [--threads N] ...")
