"""What the deployment files must agree with, read from the service itself, never copied.

- ``environment_names()``: every environment variable the service reads, collected from its
  source: the ``COMMERCE_*`` names ``Settings.from_env`` reads, the settings keys plugins
  read (``settings.get("jwt_issuer")`` is ``COMMERCE_JWT_ISSUER``; the SQL options are the
  fields of ``SqlOptions``), the ``OTEL_*`` and ``PROMETHEUS_*`` names read directly, and
  the standard ``OTEL_*`` variables of the OpenTelemetry SDK the tracing plugin builds on.
  A misspelt variable in a manifest is then a name that is not in the set.
- ``parse_command(argv)``: ``argv`` through the real ``commerce`` parser (a verb that does
  not exist, or an option it does not take, fails the test with the parser's own message).
- ``app_answers(path)``: the status the real app gives ``GET path``.
- ``container_settings(env)``: the settings a container with that environment would run
  with, every plugin's included, checked as the service checks them at start.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path

import falcon.testing
import opentelemetry.sdk.environment_variables as otel_sdk_variables

from commerce.adapters.storage.sql import SqlOptions
from commerce.adapters.telemetry.metrics import MetricsConfig
from commerce.adapters.telemetry.tracing import TracingConfig
from commerce.entrypoints.bootstrap import Runtime
from commerce.entrypoints.cli import build_parser
from commerce.entrypoints.cli.serve import drain_grace
from commerce.entrypoints.config import Settings
from commerce.entrypoints.http.app import get_app

ROOT = Path(__file__).resolve().parents[2]
SOURCE_FOLDERS = ("core", "adapters", "plugins", "entrypoints")

_ENV_NAME = re.compile(r"(?:COMMERCE|OTEL|PROMETHEUS)_[A-Z0-9_]*[A-Z0-9]")
_SETTING_KEY = re.compile(r"[a-z][a-z0-9_]*")
_SETTINGS_HOLDERS = frozenset({"settings", "extra"})


class _Reads(ast.NodeVisitor):
    """The environment names and settings keys one module reads."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.keys: set[str] = set()

    def visit_Constant(self, node: ast.Constant) -> None:
        # "COMMERCE_DATABASE_URL" in env.get(...), _whole(env, ...), MULTIPROC_ENV = ...
        if isinstance(node.value, str) and _ENV_NAME.fullmatch(node.value):
            self.names.add(node.value)

    def visit_Assign(self, node: ast.Assign) -> None:
        # DRAIN_GRACE_SETTING = "drain_grace_seconds": a key kept in a constant.
        value = node.value
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id.endswith("_SETTING"):
                    self.keys.add(value.value)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        # settings.get("metrics_port"), settings.extra.get(...), and a local accessor
        # named get (the jwt plugin's get("jwt_issuer")).
        reads = (
            isinstance(func, ast.Attribute)
            and func.attr == "get"
            and _holder_name(func.value) in _SETTINGS_HOLDERS
        ) or (isinstance(func, ast.Name) and func.id == "get")
        if reads and node.args:
            self._key(node.args[0])
        # helper(settings, "apikey_cache_seconds", ...): a key handed to a reader.
        after_settings = False
        for arg in node.args:
            if after_settings:
                self._key(arg)
            if _holder_name(arg) in _SETTINGS_HOLDERS:
                after_settings = True
        self.generic_visit(node)

    def _key(self, node: ast.expr) -> None:
        value = node.value if isinstance(node, ast.Constant) else None
        if isinstance(value, str) and _SETTING_KEY.fullmatch(value):
            self.keys.add(value)


def _holder_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def source_files() -> list[Path]:
    return sorted(p for folder in SOURCE_FOLDERS for p in (ROOT / folder).rglob("*.py"))


@cache
def environment_names() -> frozenset[str]:
    """Every environment variable the service reads (see the module's docstring)."""
    reads = _Reads()
    for path in source_files():
        reads.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    # SqlOptions reads settings.get(f"db_{name}") for each of its fields.
    keys = reads.keys | {f"db_{field.name}" for field in fields(SqlOptions)}
    commerce = {f"COMMERCE_{key.upper()}" for key in keys}
    # The SDK reads its standard variables itself (the OTLP exporter's endpoint, headers...).
    standard = {name for name in vars(otel_sdk_variables) if name.startswith("OTEL_")}
    return frozenset(reads.names | commerce | standard | _flag_overrides())


def _flag_overrides() -> set[str]:
    """``COMMERCE_FLAG_<NAME>``: one variable per known flag, named by the flags plugin."""
    try:
        from commerce.adapters.flags.provider import env_name
        from commerce.core.flags import KNOWN
    except ImportError:  # no flags plugin: no such variables
        return set()
    return {env_name(key) for key in KNOWN}


@cache
def interpreter_names() -> frozenset[str]:
    """The ``PYTHON*`` variables the interpreter reads, as ``python --help-env`` lists them."""
    listing = subprocess.run(
        [sys.executable, "--help-env"], capture_output=True, text=True, check=True
    ).stdout
    return frozenset(re.findall(r"^(PYTHON[A-Z0-9_]+)", listing, flags=re.MULTILINE))


class CommandRefused(AssertionError):
    """The real parser refused a command line."""


def parse_command(argv: Sequence[str]) -> argparse.Namespace:
    """``argv`` (``commerce`` first) as the real command line parses it."""
    assert argv, "an empty command"
    assert Path(argv[0]).name == "commerce", f"not a commerce command: {argv!r}"
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return build_parser().parse_args(list(argv[1:]))
    except SystemExit:
        raise CommandRefused(f"{' '.join(argv)}: {stderr.getvalue().strip()}") from None


@cache
def _app() -> falcon.App[falcon.Request, falcon.Response]:
    return get_app(Settings(database_url="memory://"))


def app_answers(path: str) -> int:
    """The status of ``GET path`` on the real app (memory storage, as configured by default)."""
    return falcon.testing.TestClient(_app()).simulate_get(path).status_code


@dataclass(frozen=True)
class ContainerSettings:
    settings: Settings
    sql: SqlOptions
    drain_grace: float
    metrics: MetricsConfig
    tracing: TracingConfig


def container_settings(env: Mapping[str, str]) -> ContainerSettings:
    """What a container whose environment is ``env`` runs with; the service's own checks
    raise ``Misconfigured`` for a value it would refuse at start."""
    settings = Settings.from_env(env)
    plugin = settings.plugin_settings()
    return ContainerSettings(
        settings=settings,
        sql=SqlOptions.from_settings(plugin),
        drain_grace=drain_grace(settings),
        metrics=MetricsConfig.from_settings(plugin, env),
        tracing=TracingConfig.from_settings(plugin, env),
    )


@contextlib.contextmanager
def runtime_for(env: Mapping[str, str]) -> Iterator[Runtime]:
    """The real runtime for ``env``, on memory storage (the URL is not a deployment's)."""
    settings = Settings.from_env({**env, "COMMERCE_DATABASE_URL": "memory://"})
    runtime = Runtime(settings)
    try:
        yield runtime
    finally:
        runtime.close()


def unknown_names(names: Iterator[str] | Sequence[str] | set[str]) -> list[str]:
    """The names among ``names`` the service does not read."""
    return sorted(set(names) - environment_names())
