"""The Dockerfile and .dockerignore, read: stages, instructions, and which files reach a build.

The Dockerfile is parsed with ``dockerfile-parse`` (continuation lines joined, comments
apart); ``.dockerignore`` is matched as Docker does it: the last pattern that matches a
path, or any folder above it, decides, and ``!`` lets a path back in.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from dockerfile_parse import DockerfileParser

from tests.deploy.service import ROOT

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)
    """(INSTRUCTION, value) in order; comments left out."""

    def values(self, instruction: str) -> list[str]:
        return [value for name, value in self.instructions if name == instruction]

    def last(self, instruction: str) -> str:
        found = self.values(instruction)
        assert found, f"stage {self.name or self.base} has no {instruction}"
        return found[-1]


@cache
def _parsed() -> tuple[dict[str, str], tuple[Stage, ...]]:
    parser = DockerfileParser(path=str(DOCKERFILE))
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for item in parser.structure:
        instruction, value = item["instruction"], item["value"]
        if instruction == "COMMENT":
            continue
        if instruction == "FROM":
            words = value.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=_expand(words[0], args), name=name))
        elif not stages and instruction == "ARG":
            key, _, default = value.partition("=")
            args[key.strip()] = default.strip()
        else:
            stages[-1].instructions.append((instruction, value))
    return args, tuple(stages)


def _expand(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], text)


def stages() -> tuple[Stage, ...]:
    return _parsed()[1]


def final_stage() -> Stage:
    return stages()[-1]


def final_stage_user() -> str:
    return final_stage().last("USER")


def exec_form(value: str) -> list[str]:
    """A ``CMD``/``HEALTHCHECK CMD`` in exec form (a JSON array), or an assertion error."""
    command = json.loads(value)
    assert isinstance(command, list), value
    assert all(isinstance(a, str) for a in command), value
    return command


def healthcheck() -> tuple[dict[str, str], list[str]]:
    """The final stage's HEALTHCHECK: its options and its command in exec form."""
    value = final_stage().last("HEALTHCHECK")
    options_part, separator, command = value.partition(" CMD ")
    assert separator, f"HEALTHCHECK without CMD: {value}"
    options = dict(option.removeprefix("--").split("=", 1) for option in shlex.split(options_part))
    return options, exec_form(command.strip())


def env() -> dict[str, str]:
    """The final stage's ENV, as the image's containers get it (beside the base image's)."""
    result: dict[str, str] = {}
    for value in final_stage().values("ENV"):
        for word in shlex.split(value):
            key, _, val = word.partition("=")
            result[key] = val
    return result


# -- .dockerignore -------------------------------------------------------------------------


def _rule(pattern: str) -> tuple[bool, re.Pattern[str]]:
    negate = pattern.startswith("!")
    pattern = pattern.removeprefix("!").strip().strip("/")
    regex = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif pattern[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif pattern[i] == "?":
            regex, i = regex + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            regex, i = regex + pattern[i : end + 1], end + 1
        else:
            regex, i = regex + re.escape(pattern[i]), i + 1
    return negate, re.compile(regex)


def ignore_rules(text: str | None = None) -> list[tuple[bool, re.Pattern[str]]]:
    text = DOCKERIGNORE.read_text(encoding="utf-8") if text is None else text
    lines = (line.strip() for line in text.splitlines())
    return [_rule(line) for line in lines if line and not line.startswith("#")]


def ignored(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether ``path`` (relative, with /) is left out of the build context."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for negate, regex in rules:
        if any(regex.fullmatch(candidate) for candidate in candidates):
            result = not negate
    return result


def context_files(paths: list[Path]) -> set[str]:
    """Which of ``paths`` (under the repository) a ``docker build .`` sends."""
    rules = ignore_rules()
    relative = (p.relative_to(ROOT).as_posix() for p in paths)
    return {p for p in relative if not ignored(p, rules)}
