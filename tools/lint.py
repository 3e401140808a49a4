"""The lint step, one command for every platform: ruff (lint and format), mypy, import-linter.

mypy cannot see through the editable install's import hook, so it checks ``build/typecheck``:
a tree of links in which ``commerce/core`` is the repository's ``core/`` (and so on), the
same names the package installs under. Where links cannot be made, the folders are copied.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "adapters", "plugins", "entrypoints")
TREE = ROOT / "build" / "typecheck" / "commerce"


def typecheck_tree() -> None:
    """``build/typecheck/commerce/<package>`` -> ``<package>/`` for each installed folder."""
    shutil.rmtree(TREE, ignore_errors=True)
    TREE.mkdir(parents=True)
    for package in PACKAGES:
        link = TREE / package
        try:
            os.symlink(Path("..", "..", "..", package), link, target_is_directory=True)
        except OSError:
            shutil.copytree(ROOT / package, link, ignore=shutil.ignore_patterns("__pycache__"))


def main() -> int:
    typecheck_tree()
    tool = Path(sys.executable).parent
    steps = [
        [str(tool / "ruff"), "check", "."],
        [str(tool / "ruff"), "format", "--check", "."],
        [sys.executable, "-m", "mypy"],
        [str(tool / "lint-imports")],
    ]
    failed = []
    for step in steps:
        print("::: " + " ".join(Path(step[0]).name if i == 0 else a for i, a in enumerate(step)))
        if subprocess.run(step, cwd=ROOT, check=False).returncode != 0:  # noqa: S603
            failed.append(step)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
