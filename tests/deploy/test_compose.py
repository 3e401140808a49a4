"""docker-compose.yml: the seed's CockroachDB setup, the one-shots and the service, checked
against the service (commands through the real parser, variables against the names it
reads, ports and paths against what it serves), and validated by Docker Compose itself where
its binary is installed. The provisioning script runs for real, against SQLite."""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from sqlalchemy.engine import make_url

from commerce.adapters.storage.sql import AlembicSchemaManager
from commerce.adapters.telemetry.metrics import METRICS_PATH
from commerce.core.auth import Role
from commerce.entrypoints.bootstrap import Runtime
from commerce.entrypoints.cli.serve import DRAIN_SECONDS
from commerce.entrypoints.config import Settings
from commerce.plugins import get_plugin_manager
from commerce.plugins.registry import Registry
from tests.deploy import service
from tests.deploy.binaries import runnable

COMPOSE_FILE = service.ROOT / "docker-compose.yml"
CONFIGS = service.ROOT / "deploy" / "compose"
PROVISION = CONFIGS / "provision.sh"
COMMERCE_IMAGE_SERVICES = ("migrate", "commerce", "provision")
OPTIONAL = ("otel-collector", "prometheus")

Object = dict[str, Any]


def compose() -> Object:
    document: Object = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return document


def services() -> dict[str, Object]:
    found: dict[str, Object] = compose()["services"]
    return found


def interpolated(value: str) -> str:
    """``value`` as Compose would interpolate it with nothing set: each default."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def environment(name: str) -> dict[str, str]:
    return {k: interpolated(str(v)) for k, v in services()[name].get("environment", {}).items()}


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m)", duration)
    assert match, duration
    return int(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[match.group(2)]


def published(ports: list[str]) -> dict[int, int]:
    """container port -> host port."""
    pairs = (port.split(":") for port in ports)
    return {int(container): int(host) for host, container in pairs}


def test_cockroachdb_as_the_seed_ran_it() -> None:
    roach = services()["roach"]
    assert roach["image"].startswith("cockroachdb/cockroach:")
    assert shlex.split(roach["command"]) == ["start-single-node", "--insecure"]
    assert "roach:/cockroach/cockroach-data" in roach["volumes"]
    assert roach["networks"] == ["mynet"]
    assert published(roach["ports"]) == {26257: 26257, 8080: 8080}
    test = roach["healthcheck"]["test"]
    assert test[0] == "CMD"
    assert "--insecure" in test
    top = compose()
    assert top["volumes"]["roach"] == {"name": "roach"}
    assert top["networks"]["mynet"] == {"name": "mynet", "driver": "bridge"}


@pytest.mark.parametrize("name", COMMERCE_IMAGE_SERVICES)
def test_every_commerce_container_is_the_image_on_cockroachdb_read_only(name: str) -> None:
    spec = services()[name]
    assert spec["build"] == "."
    assert spec["image"] == "commerce:local"
    assert spec["read_only"] is True
    assert "/tmp" in spec["tmpfs"]  # noqa: S108 -- the container's /tmp
    assert spec["cap_drop"] == ["ALL"]
    assert spec["networks"] == ["mynet"]
    env = environment(name)
    assert service.unknown_names(env) == []
    running = service.container_settings(env)
    url = make_url(running.settings.database_url)
    assert url.drivername == "cockroachdb+psycopg"
    assert (url.host, url.port, url.query.get("sslmode")) == ("roach", 26257, "disable")
    assert 26257 in published(services()["roach"]["ports"])
    # A plugin of the service takes the URL (without connecting to it).
    Registry(get_plugin_manager()).backend_for(running.settings.database_url)


def test_the_schema_is_migrated_once_the_database_is_healthy() -> None:
    migrate = services()["migrate"]
    args = service.parse_command(migrate["command"])
    assert (args.verb, args.db_verb, args.sql) == ("db", "upgrade", False)
    assert migrate["depends_on"] == {"roach": {"condition": "service_healthy"}}
    assert migrate["restart"] == "no"
    assert service.container_settings(environment("migrate")).sql.statement_timeout == 0


def test_the_service_starts_after_the_migration_and_stops_within_its_grace() -> None:
    spec = services()["commerce"]
    args = service.parse_command(spec["command"])
    assert args.verb == "serve"
    assert args.host == "0.0.0.0"  # noqa: S104 -- what a container listens on
    assert args.port in published(spec["ports"])
    assert spec["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}

    test = spec["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    [url] = re.findall(r"'(http://[^']+)'", test[3])
    match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)(/\S+)", url)
    assert match
    assert int(match.group(1)) == args.port
    assert match.group(2) == "/healthz"
    assert service.app_answers(match.group(2)) == 200

    running = service.container_settings(environment("commerce"))
    stop = seconds(spec["stop_grace_period"])
    assert running.sql.call_deadline <= DRAIN_SECONDS
    assert stop > running.drain_grace + DRAIN_SECONDS + running.sql.call_deadline


def provision_commands() -> list[list[str]]:
    """Every ``commerce`` command line of the provisioning script, its variables filled in."""
    commands = []
    for line in PROVISION.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("#") or "commerce " not in line:
            continue
        words = shlex.split(line.replace('"$tenant"', "acme"), comments=True)
        for start in (i for i, word in enumerate(words) if word == "commerce"):
            command = []
            for word in words[start:]:
                if word in ("|", ">", "&&", "||", ";", "then"):
                    break
                command.append(word)
            commands.append(command)
    return commands


def test_the_provisioning_one_shot_uses_real_commerce_commands() -> None:
    spec = services()["provision"]
    assert spec["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    assert spec["command"][:2] == ["sh", "/etc/commerce/provision.sh"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in spec["volumes"]}
    assert (service.ROOT / mounts["/etc/commerce/provision.sh"]).resolve() == PROVISION
    # The key is written to a volume, the one folder the image lets the user write.
    keys_dir = spec["command"][3]
    assert mounts[keys_dir] == "keys"
    assert "keys" in compose()["volumes"]
    commands = provision_commands()
    for command in commands:
        service.parse_command(command)
    assert {" ".join(command[1:3]) for command in commands} == {
        "tenants list",
        "tenants create",
        "keys create",
    }
    [create] = [c for c in commands if c[1:3] == ["keys", "create"]]
    assert service.parse_command(create).role == Role.admin.name


def test_the_provisioning_script_makes_one_tenant_and_one_admin_key(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path}/commerce.db"
    # As in the container: the database URL, and `commerce` on the PATH.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMMERCE_")}
    env["COMMERCE_DATABASE_URL"] = database
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 -- our own script and command
            argv, env=env, capture_output=True, text=True, check=True, timeout=60
        )

    AlembicSchemaManager(database).upgrade()
    keys = tmp_path / "keys"
    keys.mkdir()
    first = run("sh", str(PROVISION), "acme", str(keys))
    key_file = keys / "acme-admin.key"
    token = key_file.read_text(encoding="utf-8").strip()
    assert token.startswith("cm_")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert token not in first.stdout + first.stderr

    again = run("sh", str(PROVISION), "acme", str(keys))
    assert "there already" in again.stdout
    assert key_file.read_text(encoding="utf-8").strip() == token

    runtime = Runtime(Settings(database_url=database))
    try:
        storage = runtime.storage
        assert [tenant.id for tenant in storage.catalogue.list_tenants()] == ["acme"]
        [key] = storage.api_keys.list_api_keys("acme")
        assert key.role is Role.admin
        # The key works: the service's API-key authenticator takes it as admin of acme.
        [authenticator] = runtime.authenticators
        principal = authenticator.authenticate(token)
    finally:
        runtime.close()
    assert principal is not None
    assert (principal.tenant, principal.role) == ("acme", Role.admin)


def test_the_collector_and_prometheus_are_optional_and_agree_with_the_service() -> None:
    spec = services()
    for name in OPTIONAL:
        assert spec[name]["profiles"] == ["observability"]
        for source in (v.split(":")[0] for v in spec[name].get("volumes", [])):
            assert (service.ROOT / source).is_file(), source
    for name in spec.keys() - set(OPTIONAL):
        assert "profiles" not in spec[name], name

    serve = service.parse_command(spec["commerce"]["command"])
    prometheus = yaml.safe_load((CONFIGS / "prometheus.yml").read_text(encoding="utf-8"))
    [job] = prometheus["scrape_configs"]
    assert job["metrics_path"] == METRICS_PATH
    assert job["static_configs"][0]["targets"] == [f"commerce:{serve.port}"]
    assert service.app_answers(METRICS_PATH) == 200

    collector = yaml.safe_load((CONFIGS / "otel-collector.yaml").read_text(encoding="utf-8"))
    receiver = collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    endpoint = urlsplit(environment("commerce")["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert endpoint.hostname == "otel-collector"
    assert endpoint.hostname in spec
    assert receiver.endswith(f":{endpoint.port}")
    assert "otlp" in collector["service"]["pipelines"]["traces"]["receivers"]
    assert environment("commerce")["OTEL_TRACES_EXPORTER"] == "none"
    assert service.container_settings(environment("commerce")).tracing.exporters == ()


def docker_compose() -> str:
    return runnable("docker-compose", "version", "the docker-compose binary is not installed here")


@pytest.mark.parametrize("profiles", [[], ["--profile", "observability"]], ids=["core", "all"])
def test_docker_compose_itself_accepts_the_file(profiles: list[str]) -> None:
    """`docker compose config` validates against the Compose specification; no engine needed."""
    result = subprocess.run(  # noqa: S603 -- Docker Compose, on the repository's file
        [docker_compose(), "-f", str(COMPOSE_FILE), *profiles, "config", "--services"],
        capture_output=True,
        text=True,
        cwd=service.ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    expected = {"roach", *COMMERCE_IMAGE_SERVICES} | (set(OPTIONAL) if profiles else set())
    assert set(result.stdout.split()) == expected
