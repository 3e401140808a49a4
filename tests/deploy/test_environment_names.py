"""The names the deployment files are checked against: collected from the source, complete
enough to know the service's real variables, strict enough to refuse a misspelt one."""

from __future__ import annotations

import ast

import pytest

from tests.deploy import service


@pytest.mark.parametrize(
    "name",
    [
        "COMMERCE_DATABASE_URL",  # Settings.from_env
        "COMMERCE_AUTH",
        "COMMERCE_DRAIN_GRACE_SECONDS",  # serve.py, through a *_SETTING constant
        "COMMERCE_DB_STATEMENT_TIMEOUT",  # SqlOptions' fields
        "COMMERCE_DB_DEADLINE",
        "COMMERCE_JWT_SECRET",  # the jwt plugin's settings.get(...)
        "COMMERCE_JWT_ISSUER",  # ... and its local get(...)
        "COMMERCE_APIKEY_CACHE_SECONDS",  # a helper given the settings and a key
        "COMMERCE_METRICS_PORT",
        "COMMERCE_METRICS",
        "PROMETHEUS_MULTIPROC_DIR",  # read directly
        "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_ENDPOINT",  # read by the OpenTelemetry SDK itself
    ],
)
def test_the_service_reads(name: str) -> None:
    assert name in service.environment_names()


@pytest.mark.parametrize(
    "name",
    [
        "COMMERCE_DATABASE_ULR",
        "COMMERCE_DB_STATEMENT_TIMEOUT_MS",
        "COMMERCE_JWT_SECRETS",
        "COMMERCE_DRAIN_SECONDS",
        "OTEL_TRACE_EXPORTER",
        "DATABASE_URL",
    ],
)
def test_the_service_does_not_read(name: str) -> None:
    assert service.unknown_names([name]) == [name]


def test_the_collector_finds_every_way_a_setting_is_read() -> None:
    reads = service._Reads()
    reads.visit(
        ast.parse(
            "A_SETTING = 'a_key'\n"
            "env.get('COMMERCE_B')\n"
            "settings.get('c_key', '')\n"
            "settings.extra.get('d_key')\n"
            "get('e_key')\n"
            "_switch(settings, 'f_key', default=True)\n"
            "other.get('not_a_setting')\n"
            "log('message', 'not_a_setting_either')\n"
        )
    )
    assert reads.names == {"COMMERCE_B"}
    assert reads.keys == {"a_key", "c_key", "d_key", "e_key", "f_key"}


def test_the_interpreter_variables_come_from_python_itself() -> None:
    names = service.interpreter_names()
    assert {"PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONPATH"} <= names
    assert "PYTHON_UNBUFFERED" not in names
