"""The load-test scripts are run as ``python loadtests/NAME.py``; their modules import each
other as siblings, so the tests put that folder on ``sys.path`` and load them by file."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

LOADTESTS = Path(__file__).resolve().parents[2] / "loadtests"
if str(LOADTESTS) not in sys.path:
    sys.path.insert(0, str(LOADTESTS))


def load(name: str) -> ModuleType:
    """``loadtests/<name>.py`` as a module of its own (``run`` is too common a name to import)."""
    spec = importlib.util.spec_from_file_location(f"loadtests_{name}", LOADTESTS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
