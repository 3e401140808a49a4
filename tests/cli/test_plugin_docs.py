"""docs/plugins.md's example package works as the page says: loaded, listed, served, tested."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import falcon.testing
import pytest

from commerce.entrypoints.bootstrap import bootstrap
from commerce.entrypoints.cli import main
from commerce.entrypoints.config import Settings
from commerce.entrypoints.demo import start_demo
from commerce.entrypoints.http.app import create_app
from tests.cli.installed import Site

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")


def _files() -> dict[str, str]:
    """Each file of the example, by its path in the package: the block after its name."""
    blocks = re.findall(r"^`([\w/.-]+\.(?:py|toml))`:\n\n```\w+\n(.*?)^```$", PAGE, re.M | re.S)
    return dict(blocks)


def _block_after(words: str) -> str:
    """The first fenced block after ``words``, without its fences."""
    found = re.search(re.escape(words) + r".*?```\w*\n(.*?)^```$", PAGE, re.M | re.S)
    assert found, words
    return found.group(1)


@pytest.fixture
def example(site: Site) -> dict[str, str]:
    """The example package as ``pip install`` would leave it, with its own entry points."""
    files = _files()
    project = tomllib.loads(files["pyproject.toml"])["project"]
    site.install(
        project["name"],
        project["version"],
        {path: source for path, source in files.items() if path.startswith("commerce_example/")},
        project["entry-points"]["commerce"],
    )
    return files


def test_the_page_holds_every_file_of_the_example() -> None:
    assert set(_files()) == {
        "pyproject.toml",
        "commerce_example/__init__.py",
        "commerce_example/storage.py",
        "commerce_example/auth.py",
        "test_contract.py",
    }


def test_commerce_plugins_prints_what_the_page_says(
    example: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    promised = _block_after("prints, among the built-ins:")
    # One block per plugin, each as printed; the order of plugins is the installer's.
    for plugin in re.split(r"\n(?=\S)", promised.strip()):
        assert plugin + "\n" in out, plugin


def test_the_static_tokens_open_the_scratch_storage_as_the_curl_lines_say(
    example: dict[str, str],
) -> None:
    settings = Settings.from_env(
        {
            "COMMERCE_DATABASE_URL": "scratch://",
            "COMMERCE_AUTH": "static",
            "COMMERCE_STATIC_TOKENS": "st_demo123=demo:reader",
        }
    )
    runtime = bootstrap(settings)
    # What `serve --demo` on the page does first: the demo tenant exists, with its data.
    start_demo(runtime, with_key=False)
    client = falcon.testing.TestClient(create_app(runtime.storage, runtime.authenticators))
    known = client.simulate_get("/chain", headers={"Authorization": "Bearer st_demo123"})
    assert known.status_code == 200
    unknown = client.simulate_get("/chain", headers={"Authorization": "Bearer st_nope"})
    assert unknown.status_code == 401
    assert unknown.json["detail"] == "unknown static token"


def test_a_scratch_url_with_a_host_is_the_one_line_error_the_page_shows(
    example: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--database", "scratch://x", "serve", "--port", "0"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line == "commerce: error: scratch:// takes no host or path, got 'scratch://x'"
    assert f"# {line}" in PAGE


def test_the_examples_contract_tests_pass_on_scratch_storage(
    example: dict[str, str], site: Site, tmp_path: Path
) -> None:
    test_file = tmp_path / "commerce-example" / "test_contract.py"
    test_file.parent.mkdir()
    test_file.write_text(example["test_contract.py"], encoding="utf-8")
    # As the page says: from the checkout, whose ``tests`` package holds the suites; the
    # example package is found on the site folder, as if installed.
    result = subprocess.run(  # noqa: S603 -- our own interpreter on a file this test wrote
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
        cwd=ROOT,
        env={"PYTHONPATH": str(site.root), "PATH": ""},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"\d+ passed", result.stdout), result.stdout[-500:]
