"""The installed package has one name: ``commerce.*``, never a bare ``core`` or ``plugins``."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("core", "adapters", "plugins", "entrypoints")


def _pyproject() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def test_every_folder_with_an_init_is_listed_as_a_commerce_package() -> None:
    setuptools = _pyproject()["tool"]["setuptools"]  # type: ignore[index]
    on_disk = {
        "commerce." + ".".join(init.parent.relative_to(ROOT).parts)
        for folder in FOLDERS
        for init in (ROOT / folder).rglob("__init__.py")
    }
    assert set(setuptools["packages"]) == on_disk
    assert setuptools["package-dir"] == {f"commerce.{f}": f for f in FOLDERS}


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - the test's own interpreter and code
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_the_installed_package_is_commerce_and_nothing_called_core(tmp_path: Path) -> None:
    # Outside the checkout, so that the current directory cannot supply the folders.
    assert (
        _python("import commerce.core.models, commerce.entrypoints.cli", tmp_path).returncode == 0
    )
    for bare in FOLDERS:
        result = _python(f"import {bare}", tmp_path)
        assert result.returncode != 0
        assert "ModuleNotFoundError" in result.stderr


def test_entry_points_and_console_script_name_commerce_modules() -> None:
    project = _pyproject()["project"]
    assert project["scripts"] == {"commerce": "commerce.entrypoints.cli:main"}  # type: ignore[index]
    for module in project["entry-points"]["commerce"].values():  # type: ignore[index]
        assert module.startswith("commerce.adapters.")
