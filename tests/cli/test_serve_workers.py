"""``commerce serve --workers 2`` as a real process: every worker answers, a dead worker is
replaced, SIGTERM drains them all, and ``/metrics`` adds them up.

Which worker answers a request is the kernel's choice; to know that each one does, the test
stops one worker (SIGSTOP) while it sends requests, so that only the other can answer them,
then the other way round.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import shutil
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from prometheus_client.parser import text_string_to_metric_families

from commerce.core.events import LogEvent
from commerce.entrypoints.bootstrap import Runtime
from commerce.entrypoints.cli import main
from commerce.entrypoints.cli.workers import Supervisor
from commerce.entrypoints.config import Settings
from commerce.entrypoints.demo import start_demo
from tests.cli.test_serve import WAIT, Server, serving

pytestmark = [
    pytest.mark.http,
    pytest.mark.skipif(
        not hasattr(os, "fork") or not Path("/proc/self/stat").exists(),
        reason="--workers forks (POSIX), and the test finds the workers in /proc (Linux)",
    ),
]

GRACE = "5"
"""Long enough for the probes below to be answered on a loaded machine before the port closes."""


@pytest.fixture(scope="module")
def demo_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite file, migrated and holding the demo data, for each test to copy: the demo
    then only makes its key, and the servers start in a fraction of the time."""
    path = tmp_path_factory.mktemp("demo") / "commerce.db"
    runtime = Runtime(Settings(database_url=f"sqlite:///{path}", demo=True))
    try:
        manager = runtime.schema_manager()
        assert manager is not None
        manager.upgrade()
        start_demo(runtime, with_key=False)
    finally:
        runtime.close()
    return path


@pytest.fixture
def database(tmp_path: Path, demo_database: Path) -> str:
    copy = tmp_path / "commerce.db"
    shutil.copyfile(demo_database, copy)
    return f"sqlite:///{copy}"


@contextlib.contextmanager
def workers(tmp_path: Path, database: str, *args: str, **settings: str) -> Iterator[Server]:
    """``serve --demo --workers 2`` on an SQLite file (the workers' shared database)."""
    with serving(tmp_path, "--workers", "2", *args, database=database, settings=settings) as server:
        _until(lambda: len(_children(server)) == 2, "two workers")
        yield server


def _children(server: Server) -> set[int]:
    """The pids of the server's worker processes (its children), from /proc."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the name: state, then the parent's pid. A zombie is no worker any more.
        if int(fields[1]) == server.process.pid and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"never: {what}")


def _cpus(pid: int) -> set[int]:
    """The CPUs process ``pid`` may run on (``Cpus_allowed_list``, such as ``0-1,3``)."""
    return _cpus_of(Path(f"/proc/{pid}/status"))


def _cpus_of(status: Path) -> set[int]:
    for line in status.read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            found: set[int] = set()
            for part in line.split(":", 1)[1].strip().split(","):
                low, _, high = part.partition("-")
                found.update(range(int(low), int(high or low) + 1))
            return found
    pytest.fail(f"no Cpus_allowed_list in {status}")


def _status(server: Server, path: str) -> int:
    request = urllib.request.Request(server.base + path, headers=server.headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:  # noqa: S310
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as refused:
        return refused.code


def _requests_to_chain(server: Server) -> float:
    """``commerce_http_requests_total`` for ``GET /chain 200``, as /metrics sums it up."""
    with urllib.request.urlopen(server.base + "/metrics", timeout=WAIT) as response:  # noqa: S310
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "commerce_http_requests_total" and sample.labels == {
                "method": "GET",
                "route": "/chain",
                "status": "200",
            }:
                return sample.value
    return 0.0


def test_each_worker_answers_and_metrics_add_every_worker_up(tmp_path: Path, database: str) -> None:
    with workers(tmp_path, database, COMMERCE_RATE_LIMIT="1000/second") as server:
        first, second = sorted(_children(server))
        sent = 0
        for stopped in (first, second):
            # Only the other worker can accept these connections.
            os.kill(stopped, signal.SIGSTOP)
            try:
                for _ in range(5):
                    assert _status(server, "/chain") == 200
                    sent += 1
            finally:
                os.kill(stopped, signal.SIGCONT)
        assert _requests_to_chain(server) == sent
        assert server.stop() == 0
        records = server.log_lines()
    events = [r["event_id"] for r in records]
    assert events.count("CM1007") == 2  # each worker started once
    # The in-process rate limit counts in each worker: the start says so.
    (per_process,) = [r for r in records if r["event_id"] == "CM2009"]
    assert per_process["workers"] == 2


def test_a_worker_killed_with_sigkill_is_replaced_and_the_service_keeps_answering(
    tmp_path: Path, database: str
) -> None:
    with workers(tmp_path, database, "--cpu-affinity") as server:
        before = _children(server)
        cpus = {pid: _cpus(pid) for pid in before}
        # Each worker on one CPU of its own (the same one, on a machine of one CPU).
        assert all(len(found) == 1 for found in cpus.values())
        assert len(set().union(*cpus.values())) == min(2, len(os.sched_getaffinity(0)))
        assert _status(server, "/chain") == 200
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        _until(
            lambda: len(_children(server) - {victim}) == 2, "a worker in place of the one killed"
        )
        (replacement,) = _children(server) - before
        assert _cpus(replacement) == cpus[victim]  # in the place of the one it replaces
        for _ in range(6):
            assert _status(server, "/chain") == 200
        assert _status(server, "/readyz") == 200
        assert server.stop() == 0
        records = server.log_lines()
    (exited,) = [r for r in records if r["event_id"] == "CM1008"]
    assert (exited["pid"], exited["signal"], exited["restart_in"]) == (victim, "SIGKILL", 0.0)
    assert len([r for r in records if r["event_id"] == "CM1007"]) == 3


def test_sigterm_drains_every_worker_and_readyz_is_503_meanwhile(
    tmp_path: Path, database: str
) -> None:
    with workers(tmp_path, database, COMMERCE_DRAIN_GRACE_SECONDS=GRACE) as server:
        body = json.dumps({"name": "Opened during the drain"}).encode()
        slow = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
        try:
            head = (
                "POST /chain HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                f"Authorization: Bearer {server.key}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            )
            slow.sendall(head.encode() + body[:5])
            time.sleep(0.2)  # a worker has read the head: the request is in progress

            server.process.send_signal(signal.SIGTERM)
            _until(lambda: _status(server, "/readyz") == 503, "/readyz 503 after SIGTERM")
            # Whichever worker answers, it is draining.
            assert [_status(server, "/readyz") for _ in range(4)] == [503] * 4
            assert _status(server, "/healthz") == 200

            _until(lambda: _refused(server), "the listening socket closed in every worker")
            assert server.process.poll() is None  # a worker still owes an answer
            slow.sendall(body[5:])
            answer = b""
            while chunk := slow.recv(65536):
                answer += chunk
        finally:
            slow.close()
        assert answer.startswith(b"HTTP/1.1 201"), answer[:200]
        assert server.process.wait(timeout=WAIT) == 0
        records = server.log_lines()
    assert [r["event_id"] for r in records].count("CM1004") == 2  # each worker drained
    stopped = records[-1]
    assert (stopped["event_id"], stopped["signal"], stopped["drained"]) == (
        "CM1003",
        "SIGTERM",
        True,
    )


def _refused(server: Server) -> bool:
    try:
        socket.create_connection(("127.0.0.1", server.port), timeout=WAIT).close()
    except ConnectionRefusedError:
        return True
    return False


def test_a_worker_that_cannot_start_stops_the_start_with_its_reason(
    tmp_path: Path, database: str
) -> None:
    missing = tmp_path / "missing-flags.yaml"
    with (
        pytest.raises(pytest.fail.Exception, match="COMMERCE_FLAGS_FILE"),
        workers(tmp_path, database, COMMERCE_FLAGS_FILE=str(missing)),
    ):
        pass


def test_workers_on_memory_storage_are_refused_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COMMERCE_DATABASE_URL", "memory://")
    assert main(["serve", "--port", "0", "--workers", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "memory://" in err
    assert "--workers" in err


def test_a_worker_that_keeps_dying_is_replaced_ever_more_slowly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A crash loop does not spin: the replacements of workers that die young wait 0, 0.5,
    1, 2… seconds; the plugins hear of every worker that ended."""

    def crash(worker: int, ready: int) -> NoReturn:
        os.write(ready, b"R")
        os._exit(1)

    ended: list[int] = []

    def exited(pid: int) -> None:
        ended.append(pid)
        if len(ended) == 4:
            os.kill(os.getpid(), signal.SIGTERM)  # the supervisor's own handler stops it

    supervisor = Supervisor(1, crash, exited)
    with caplog.at_level(logging.INFO, logger="commerce.serve"), supervisor.stopped_by_signals():
        supervisor.run([], stop_after=5.0, ready=lambda: None)
    delays = [r.restart_in for r in caplog.records if r.event is LogEvent.WORKER_EXITED]  # type: ignore[attr-defined]
    assert delays == [0.0, 0.5, 1.0, 2.0]
    assert len(set(ended)) == 4
    assert supervisor.signalled == signal.SIGTERM


def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path, database: str) -> None:
    with workers(tmp_path, database) as server:
        orphans = _children(server)
        server.process.kill()
        server.process.wait(timeout=WAIT)
        _until(lambda: not any(_running(pid) for pid in orphans), "no worker left running")


def _running(pid: int) -> bool:
    """Whether ``pid`` is a process that has not exited (a zombie has)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _sockets(pid: int) -> int:
    """How many sockets process ``pid`` holds open."""
    found = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            found += os.readlink(fd).startswith("socket:")
    return found


def test_keep_alive_connections_opened_at_once_spread_evenly_over_the_workers(
    tmp_path: Path, database: str
) -> None:
    with workers(tmp_path, database) as server:
        pids = sorted(_children(server))
        before = {pid: _sockets(pid) for pid in pids}
        connections = [
            http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT) for _ in range(8)
        ]
        try:
            for connection in connections:
                connection.connect()
            for connection in connections:  # each one accepted and answered, kept open
                connection.request("GET", "/healthz")
                assert connection.getresponse().read()
            held = [_sockets(pid) - before[pid] for pid in pids]
        finally:
            for connection in connections:
                connection.close()
    assert sum(held) == 8
    assert max(held) - min(held) <= 1, held


def test_cpu_affinity_runs_a_single_server_and_all_its_threads_on_one_cpu(
    tmp_path: Path,
) -> None:
    with serving(tmp_path, "--cpu-affinity") as server:
        assert _status(server, "/chain") == 200
        tasks = Path(f"/proc/{server.process.pid}/task").iterdir()
        cpus = [_cpus_of(task / "status") for task in tasks]
        assert len(cpus) > 4  # the loop, waitress's 4 threads, the log writer
        assert all(found == cpus[0] and len(found) == 1 for found in cpus)
        assert server.stop() == 0
