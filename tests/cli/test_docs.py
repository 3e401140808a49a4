"""The README's two commands are the ones that work, and CI runs the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _first_screen_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_screen = readme.split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)\n```", first_screen, flags=re.S)


def test_the_readme_opens_with_exactly_two_commands() -> None:
    commands = _first_screen_commands()
    assert len(commands) == 2
    assert commands[0].endswith("commerce serve --demo")
    assert commands[1].endswith(".venv/bin/pytest")


def test_ci_runs_exactly_the_readme_test_command() -> None:
    test_command = _first_screen_commands()[1]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert any(line.startswith(test_command) for line in ci.splitlines()), test_command
