"""The architecture's rules are checked by the build: these tests prove the checks bite."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "adapters", "plugins", "entrypoints")

_LINT = (
    "from importlinter.cli import lint_imports; "
    "raise SystemExit(lint_imports(config_filename='pyproject.toml', no_cache=True))"
)


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - a fixed command on a tree the test made
        [sys.executable, "-c", _LINT],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": ""},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / "commerce" / package, ignore=shutil.ignore_patterns("*.pyc")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_import_contracts_hold_for_the_project_as_it_is(project_copy: Path) -> None:
    result = _lint_imports(project_copy)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "intruder",
    ["from commerce.adapters.storage import memory", "import falcon", "import commerce.plugins"],
)
def test_the_lint_step_fails_when_core_imports_an_outer_ring_or_a_framework(
    project_copy: Path, intruder: str
) -> None:
    target = project_copy / "commerce" / "core" / "usecases.py"
    target.write_text(target.read_text() + f"\n{intruder}\n")
    result = _lint_imports(project_copy)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout


def test_every_module_says_what_it_is_for_in_its_first_line() -> None:
    missing = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            docstring = ast.get_docstring(ast.parse(path.read_text()))
            if not docstring or not docstring.strip().splitlines()[0].strip():
                missing.append(str(path.relative_to(ROOT)))
    assert missing == []


PORTS = ("catalogue", "inventory", "idempotency", "api_keys")
WAYS_IN = (
    "entrypoints/http/resources.py",
    "entrypoints/cli/tenants.py",
    "entrypoints/cli/keys.py",
    "entrypoints/cli/seed.py",
    "entrypoints/demo.py",
)


def _port_calls(source: str) -> list[str]:
    """Every ``<anything>.<port>.<method>(...)`` call: a storage port used directly."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner = node.func.value
        if isinstance(owner, ast.Attribute) and owner.attr in PORTS:
            found.append(f"line {node.lineno}: .{owner.attr}.{node.func.attr}(...)")
    return found


def test_the_port_call_check_finds_a_direct_call() -> None:
    assert _port_calls("storage.catalogue.create_chain(t, new)\nuse(storage.catalogue)\n") == [
        "line 1: .catalogue.create_chain(...)"
    ]


@pytest.mark.parametrize("module", WAYS_IN)
def test_http_resources_cli_verbs_and_the_demo_reach_storage_only_through_use_cases(
    module: str,
) -> None:
    assert _port_calls((ROOT / module).read_text()) == []
