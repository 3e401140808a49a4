"""The command-line checkers the deploy tests run (hadolint, docker-compose), found beside this
interpreter (the test extra installs them into the virtual environment) or on ``PATH``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def runnable(name: str, version_flag: str, missing: str) -> str:
    """The path of ``name`` once it has answered ``version_flag``; the test is skipped with
    ``missing`` when it is not installed, or when it cannot run on this platform."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.skip(missing)
    try:
        subprocess.run([found, version_flag], capture_output=True, check=True)  # noqa: S603
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"{name} does not run on this platform: {error}")
    return found
