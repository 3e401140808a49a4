"""The measuring: one ``wrk`` run, parsed, and what the figures were measured on.

- ``run_wrk``: one run of ``wrk --latency``, parsed into a ``WrkResult``.
- ``machine``: CPUs, load average, versions and commit, for the header of a report.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _servers import HERE, SetupFailed

WRK_INSTALL = (
    "wrk is not installed: it generates the load. Debian/Ubuntu: `apt-get install -y wrk`; "
    "macOS: `brew install wrk`; elsewhere build it from https://github.com/wg/wrk."
)


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
