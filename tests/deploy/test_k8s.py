"""deploy/k8s: every manifest is valid Kubernetes, and agrees with what the service really has.

Each kustomization is built (``kustomize.py``; compared with ``kubectl kustomize`` where
installed) and every object checked against the Kubernetes schemas in strict mode. Then the
Deployment and the migration Job are checked against the code: the command through the real
parser, the probe paths on the real app, every environment variable against the names the
service reads (``service.py``), the values through the service's own parsing, and the
stop's timings against ``DRAIN_SECONDS``, ``COMMERCE_DRAIN_GRACE_SECONDS`` and the storage
call deadline that ``SqlOptions`` derives from the ConfigMap.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from commerce.adapters.telemetry.metrics import METRICS_PATH
from commerce.entrypoints.cli.serve import DRAIN_SECONDS
from tests.deploy import kustomize, service
from tests.deploy.dockerfile import final_stage_user

K8S = service.ROOT / "deploy" / "k8s"
APP_BUILDS = ("base", "overlays/production")
MIGRATE_BUILDS = ("migrate", "overlays/production/migrate")
KUBERNETES_VERSION = "1.30"
"""The oldest Kubernetes the manifests are meant for; the schemas of that release apply."""

ENDPOINT_PROPAGATION_SECONDS = 5.0
"""How long a cluster takes to stop routing to a terminating pod: the endpoint change must
reach every node's kube-proxy and every ingress controller, typically within a few seconds.
The preStop pause must outlast it, so that no request arrives after the port closes."""

PRODUCTION_SECRET = {
    # Stand-ins with the shape of real values: the Secret itself is made outside the tree.
    "COMMERCE_DATABASE_URL": (
        "cockroachdb://commerce:pw@cockroachdb-public:26257/commerce?sslmode=verify-full"
    ),
    "COMMERCE_JWT_SECRET": "s" * 48,
}

Object = dict[str, Any]


def built(folder: str) -> list[Object]:
    return kustomize.build(K8S / folder)


def one(objects: list[Object], kind: str) -> Object:
    [found] = [o for o in objects if o["kind"] == kind]
    return found


def pod_spec(workload: Object) -> Object:
    spec: Object = workload["spec"]["template"]["spec"]
    return spec


def container_env(objects: list[Object], container: Object) -> dict[str, str]:
    """The environment ``container`` gets: its ConfigMaps, then its own entries (secrets
    from the build's Secret, or the production stand-ins when the build has none)."""
    config = {o["metadata"]["name"]: o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"}
    secrets = {
        o["metadata"]["name"]: o.get("stringData", {}) for o in objects if o["kind"] == "Secret"
    }
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(config[source["configMapRef"]["name"]])
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
            continue
        ref = entry["valueFrom"]["secretKeyRef"]
        values = secrets.get(ref["name"], PRODUCTION_SECRET)
        if ref["key"] in values:
            env[entry["name"]] = values[ref["key"]]
        else:
            assert ref.get("optional"), f"secret key {ref['key']} is missing and not optional"
    return env


def env_names(objects: list[Object], container: Object) -> set[str]:
    """Every variable name ``container`` is given, whatever its value's source."""
    config = {o["metadata"]["name"]: o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"}
    names = {entry["name"] for entry in container.get("env", [])}
    for source in container.get("envFrom", []):
        names.update(config[source["configMapRef"]["name"]])
    return names


_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|k|M|G)?$")
_UNITS = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def quantity(raw: str | int) -> float:
    match = _QUANTITY.match(str(raw))
    assert match, f"not a quantity: {raw!r}"
    return float(match.group(1)) * _UNITS[match.group(2)]


def pre_stop_seconds(container: Object) -> float:
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep", command
    assert len(command) == 2, command
    return float(command[1])


def deployment_problems(objects: list[Object]) -> list[str]:
    """What is wrong with the Deployment of a build, measured against the service."""
    problems: list[str] = []
    deployment = one(objects, "Deployment")
    pod = pod_spec(deployment)
    [container] = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}

    strategy = deployment["spec"]["strategy"]
    if strategy != {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}:
        problems.append(f"strategy {strategy}: a release must add a pod before it removes one")

    args = service.parse_command(container["command"])
    if args.verb != "serve" or args.host != "0.0.0.0":  # noqa: S104 -- what a pod listens on
        problems.append(f"{container['command']}: not `commerce serve --host 0.0.0.0`")
    if ports.get("http") != args.port:
        problems.append(f"containerPort http {ports.get('http')} is not --port {args.port}")

    for probe, path in (
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/healthz"),
        ("startupProbe", "/healthz"),
    ):
        get = container[probe]["httpGet"]
        if get["path"] != path:
            problems.append(f"{probe} asks {get['path']}, not {path}")
        if service.app_answers(get["path"]) != 200:
            problems.append(f"{probe}: the app does not answer {get['path']} with 200")
        if ports.get(get["port"]) != args.port:
            problems.append(f"{probe} port {get['port']} is not the port served")

    unknown = service.unknown_names(env_names(objects, container))
    if unknown:
        problems.append(f"variables the service does not read: {unknown}")
    env = container_env(objects, container)
    running = service.container_settings(env)
    if running.metrics.port is not None:
        if ports.get("metrics") != running.metrics.port:
            problems.append(f"COMMERCE_METRICS_PORT {running.metrics.port} is not a named port")
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        if annotations.get("prometheus.io/port") != str(running.metrics.port):
            problems.append("the prometheus.io/port annotation is not the metrics port")
        if annotations.get("prometheus.io/path") != METRICS_PATH:
            problems.append(f"the prometheus.io/path annotation is not {METRICS_PATH}")

    # The stop: pause, then the grace and the drain, all within the grace period.
    pause = pre_stop_seconds(container)
    slowest = running.sql.call_deadline
    period = pod["terminationGracePeriodSeconds"]
    if pause <= ENDPOINT_PROPAGATION_SECONDS:
        problems.append(f"preStop {pause:g} s is not longer than endpoint propagation")
    if not 0 < slowest <= DRAIN_SECONDS:
        problems.append(f"a storage call may take {slowest:g} s, the drain waits {DRAIN_SECONDS:g}")
    if period <= pause + running.drain_grace + DRAIN_SECONDS + slowest:
        problems.append(
            f"terminationGracePeriodSeconds {period} <= preStop {pause:g} + grace "
            f"{running.drain_grace:g} + drain {DRAIN_SECONDS:g} + slowest call {slowest:g}"
        )

    resources = container["resources"]
    for kind in ("cpu", "memory"):
        request, limit = resources["requests"].get(kind), resources["limits"].get(kind)
        if request is None or limit is None or quantity(limit) < quantity(request):
            problems.append(f"{kind}: request {request} and limit {limit}")
    problems.extend(security_problems(pod, container))
    return problems


def security_problems(pod: Object, container: Object) -> list[str]:
    problems = []
    context, own = pod.get("securityContext", {}), container.get("securityContext", {})
    if context.get("runAsNonRoot") is not True:
        problems.append("runAsNonRoot is not set")
    if str(context.get("runAsUser")) != final_stage_user().split(":")[0]:
        problems.append(f"runAsUser {context.get('runAsUser')} is not the image's USER")
    if own.get("readOnlyRootFilesystem") is not True:
        problems.append("the root file system is writable")
    if own.get("allowPrivilegeEscalation") is not False:
        problems.append("privilege escalation is allowed")
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    tmp = "/tmp"  # noqa: S108 -- the container's, not this machine's
    if "emptyDir" not in volumes.get(mounts.get(tmp, ""), {}):
        problems.append(f"{tmp} is not a writable emptyDir (waitress spools bodies there)")
    return problems


# -- every manifest ------------------------------------------------------------------------


@pytest.mark.parametrize("folder", [*APP_BUILDS, *MIGRATE_BUILDS])
def test_every_object_of_every_build_is_valid_kubernetes_in_strict_mode(folder: str) -> None:
    objects = built(folder)
    assert objects
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{folder}: {kustomize.identity(obj)}: {error.message}")


def test_strict_validation_catches_a_misspelt_field() -> None:
    deployment = copy.deepcopy(one(built("base"), "Deployment"))
    pod_spec(deployment)["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_every_manifest_file_is_used_by_a_kustomization() -> None:
    used: set[Path] = set()
    for folder in (p.parent for p in K8S.rglob(kustomize.KUSTOMIZATION)):
        used.add(folder / kustomize.KUSTOMIZATION)
        spec = kustomize.kustomization(folder)
        for entry in spec.get("resources", []):
            path = (folder / entry).resolve()
            assert path.exists(), f"{folder}: resource {entry} does not exist"
            used.add(path / kustomize.KUSTOMIZATION if path.is_dir() else path)
        for patch in spec.get("patches", []):
            path = (folder / patch["path"]).resolve()
            assert path.exists(), f"{folder}: patch {patch['path']} does not exist"
            used.add(path)
    files = {p.resolve() for p in K8S.rglob("*") if p.suffix in (".yaml", ".yml")}
    assert files - used == set()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed here")
@pytest.mark.parametrize("folder", [*APP_BUILDS, *MIGRATE_BUILDS])
def test_the_builds_are_what_kubectl_kustomize_makes(folder: str) -> None:
    kubectl = shutil.which("kubectl")
    assert kubectl is not None
    output = subprocess.run(  # noqa: S603 -- kubectl, on the repository's own files
        [kubectl, "kustomize", str(K8S / folder)], capture_output=True, text=True, check=True
    ).stdout
    real = [doc for doc in yaml.safe_load_all(output) if doc]

    def order(obj: Object) -> tuple[str, str]:
        return (obj["kind"], obj["metadata"]["name"])

    assert sorted(built(folder), key=order) == sorted(real, key=order)


# -- the Deployment and what goes with it --------------------------------------------------


@pytest.mark.parametrize("folder", APP_BUILDS)
def test_the_deployment_agrees_with_the_service(folder: str) -> None:
    assert deployment_problems(built(folder)) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda c, p: c["env"].append({"name": "COMMERCE_DATABASE_ULR", "value": "x"}),
            "COMMERCE_DATABASE_ULR",
        ),
        (lambda c, p: p.update(terminationGracePeriodSeconds=25), "terminationGracePeriodSeconds"),
        (lambda c, p: c["lifecycle"]["preStop"]["exec"].update(command=["sleep", "2"]), "preStop"),
        (lambda c, p: c["readinessProbe"]["httpGet"].update(path="/ready"), "/ready"),
        (lambda c, p: c["command"].append("--no-such-option"), "unrecognized arguments"),
        (lambda c, p: c["ports"][0].update(containerPort=8080), "containerPort http"),
        (lambda c, p: c["securityContext"].pop("readOnlyRootFilesystem"), "writable"),
    ],
    ids=[
        "misspelt-variable",
        "short-grace-period",
        "short-pause",
        "probe-path",
        "option",
        "port",
        "writable-root",
    ],
)
def test_the_checks_find_a_deployment_that_disagrees(change: Any, expected: str) -> None:
    objects = copy.deepcopy(built("overlays/production"))
    pod = pod_spec(one(objects, "Deployment"))
    change(pod["containers"][0], pod)
    try:
        problems = deployment_problems(objects)
    except service.CommandRefused as refused:
        problems = [str(refused)]
    assert any(expected in problem for problem in problems), problems


def test_a_statement_timeout_past_the_drain_is_a_problem() -> None:
    objects = copy.deepcopy(built("overlays/production"))
    one(objects, "ConfigMap")["data"]["COMMERCE_DB_STATEMENT_TIMEOUT"] = "30"
    assert any("drain waits" in p for p in deployment_problems(objects))


@pytest.mark.parametrize("folder", APP_BUILDS)
def test_the_configured_authenticators_start(folder: str) -> None:
    """COMMERCE_AUTH and the JWT settings of the ConfigMap make working authenticators."""
    objects = built(folder)
    [container] = pod_spec(one(objects, "Deployment"))["containers"]
    env = container_env(objects, container)
    with service.runtime_for(env) as runtime:
        assert len(runtime.authenticators) == len(runtime.settings.auth) >= 1


@pytest.mark.parametrize("folder", APP_BUILDS)
def test_service_budget_and_autoscaler_point_at_the_pods(folder: str) -> None:
    objects = built(folder)
    deployment = one(objects, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    [container] = pod_spec(deployment)["containers"]
    port_names = {p["name"] for p in container["ports"]}

    svc = one(objects, "Service")
    assert svc["spec"]["selector"].items() <= labels.items()
    assert {p["targetPort"] for p in svc["spec"]["ports"]} <= port_names

    budget = one(objects, "PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()

    scaler = one(objects, "HorizontalPodAutoscaler")
    target = scaler["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    # The autoscaler owns the count: an apply must not reset it.
    assert "replicas" not in deployment["spec"]
    # A voluntary disruption (a node drain) may take a pod while another keeps serving.
    assert scaler["spec"]["minReplicas"] >= 2
    assert budget["spec"]["maxUnavailable"] < scaler["spec"]["minReplicas"]


def test_the_base_has_a_stand_in_secret_and_production_never_applies_one() -> None:
    base = built("base")
    secret = one(base, "Secret")
    # The stand-in holds no JWT secret: with jwt in COMMERCE_AUTH the service would refuse it.
    assert secret["stringData"]["COMMERCE_JWT_SECRET"] == ""
    assert service.unknown_names(secret["stringData"]) == []
    assert [o for o in built("overlays/production") if o["kind"] == "Secret"] == []


def test_production_settings_differ_from_the_base_where_production_needs_it() -> None:
    base, production = built("base"), built("overlays/production")
    [base_container] = pod_spec(one(base, "Deployment"))["containers"]
    [container] = pod_spec(one(production, "Deployment"))["containers"]
    running = service.container_settings(container_env(production, container))
    assert "jwt" in running.settings.auth
    assert running.tracing.exporters == ("otlp",)
    assert one(production, "HorizontalPodAutoscaler")["spec"]["minReplicas"] >= 3
    assert container["image"].startswith("registry.example.com/commerce:")
    assert base_container["image"] == "commerce"
    assert all(o["metadata"].get("namespace") == "commerce" for o in production)


# -- the migration Job ---------------------------------------------------------------------


@pytest.mark.parametrize("folder", MIGRATE_BUILDS)
def test_the_migration_job_runs_db_upgrade_with_settings_the_service_reads(folder: str) -> None:
    job = one(built(folder), "Job")
    pod = pod_spec(job)
    [container] = pod["containers"]
    args = service.parse_command(container["command"])
    assert (args.verb, args.db_verb, args.sql) == ("db", "upgrade", False)
    assert pod["restartPolicy"] == "Never"
    assert job["spec"]["activeDeadlineSeconds"] > 0
    assert service.unknown_names({e["name"] for e in container["env"]}) == []
    running = service.container_settings(container_env([], container))
    # A backfill is not cut off by the serving pods' statement timeout.
    assert running.sql.statement_timeout == 0
    assert security_problems(pod, container) == []


def test_production_migrates_with_the_image_it_rolls_out() -> None:
    [app] = pod_spec(one(built("overlays/production"), "Deployment"))["containers"]
    [job] = pod_spec(one(built("overlays/production/migrate"), "Job"))["containers"]
    assert job["image"] == app["image"]
    migrate = one(built("overlays/production/migrate"), "Job")
    assert migrate["metadata"]["namespace"] == "commerce"


def test_the_job_and_the_deployment_read_the_database_url_from_the_same_secret() -> None:
    def refs(container: Object) -> set[tuple[str, str]]:
        return {
            (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
            for e in container.get("env", [])
            if "valueFrom" in e and e["name"] == "COMMERCE_DATABASE_URL"
        }

    [app] = pod_spec(one(built("base"), "Deployment"))["containers"]
    [job] = pod_spec(one(built("migrate"), "Job"))["containers"]
    assert refs(app) == refs(job) == {("commerce", "COMMERCE_DATABASE_URL")}
