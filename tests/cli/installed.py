"""Install a plugin package for a test: its modules and an entry-point record on ``sys.path``.

What ``pip install`` leaves in site-packages, made by hand in a temporary folder: the
modules, and a ``.dist-info`` folder whose ``entry_points.txt`` names them in the
``commerce`` group. ``importlib.metadata``, and so ``get_plugin_manager()``, finds it there
exactly as it finds an installed package, without a build, a network or a virtualenv.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Site:
    """A folder put on ``sys.path`` for one test (the ``site`` fixture of ``conftest.py``)."""

    root: Path

    def install(
        self,
        name: str,
        version: str,
        files: Mapping[str, str],
        entry_points: Mapping[str, str],
    ) -> None:
        """``files``: path under the site -> source; ``entry_points``: plugin name -> module."""
        for path, source in files.items():
            target = self.root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(source, encoding="utf-8")
        info = self.root / f"{re.sub(r'[-_.]+', '_', name)}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
        )
        lines = [f"{plugin} = {module}" for plugin, module in entry_points.items()]
        (info / "entry_points.txt").write_text(
            "[commerce]\n" + "\n".join(lines) + "\n", encoding="utf-8"
        )
