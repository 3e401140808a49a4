"""py-spy profiles of a running server, for ``bench.py --profile``."""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _servers import ServiceProcess, SetupFailed


class Profiler:
    """py-spy attached to a running server until ``stop()``, which makes it write its file."""

    def __init__(self, pid: int, out: Path, fmt: str, subprocesses: bool) -> None:
        py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which(
            "py-spy"
        )
        if py_spy is None:
            raise SetupFailed("py-spy is not installed: .venv/bin/pip install py-spy")
        argv = [py_spy, "record", "--pid", str(pid), "--rate", "250", "--nonblocking"]
        argv += ["--format", fmt, "-o", str(out)]
        if subprocesses:
            argv.append("--subprocesses")
        self.out = out
        self._process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        time.sleep(1.0)  # attached before the load starts
        if self._process.poll() is not None:
            raise SetupFailed(
                f"py-spy stopped: {self._process.stderr.read() if self._process.stderr else ''}"
            )

    def stop(self) -> Path:
        self._process.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        try:
            _, err = self._process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self._process.kill()
            raise SetupFailed("py-spy did not finish writing its profile") from None
        if not self.out.exists():
            raise SetupFailed(f"py-spy wrote no profile: {err.strip()[-500:]}")
        return self.out


def profile(
    args: argparse.Namespace, backend: str, service: ServiceProcess, measure: Any
) -> list[str]:
    out_dir = Path(args.profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = "svg" if args.profile_format == "flamegraph" else "speedscope.json"
    written = []
    for route in args.routes:
        for connections in args.connections:
            out = out_dir / f"profile-{backend}-{route}-c{connections}.{suffix}"
            profiler = Profiler(service.pid, out, args.profile_format, args.workers > 1)
            try:
                result = measure(route, connections, service.url, args.seconds)
            finally:
                path = profiler.stop()
            print(
                f"   profile {route} c={connections}: {path} "
                f"({result.requests_per_second:.1f} req/s while sampled)",
                flush=True,
            )
            written.append(str(path))
    return written
