"""Checks of the deployment files in infra/ and of the Dockerfile.

Each kustomize overlay is rendered once with ``kubectl kustomize``; the rendered documents are
validated (built-in kinds with kubernetes-validate in strict mode, the KEDA and Prometheus Operator
custom resources against the hand-written schemas in infra/k8s/schemas), scanned once per session
with checkov (rendered manifests, Dockerfile, Helm values) and checked for the properties the
workers rely on: one Deployment per venue group, probes on the health port, a grace period longer
than the drain, non-root pods, no secret value in a manifest.

Tools: kubectl (infra/install-kubectl.sh) and checkov in its own virtualenv (infra/install-checkov.sh);
a missing one fails its tests with the command to run (tests/infra_tools.py). The Python packages
(PyYAML, kubernetes-validate, jsonschema) come with the dev extra.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml as pyyaml

from keyrevoke.venues import SUPPORTED_VENUES
from tests.infra_tools import executable
from workers.runner import parse_queues

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
K8S = INFRA / "k8s"
SCHEMAS = K8S / "schemas"
DOCKERFILE = ROOT / "Dockerfile"
HELM_VALUES = INFRA / "helm" / "temporal-values.yaml"

OVERLAYS = {"dev": "keyrevoke-dev", "prod": "keyrevoke"}
# Venue group -> the queues its Deployment serves (`keyrevoke worker --queues ...`).
GROUPS = {
    "control": ("control",),
    "cex-a": ("binance", "bybit", "okx"),
    "cex-b": ("kucoin", "gate", "mexc", "kraken", "coinbase"),
}
GROUP_LABEL = "keyrevoke.io/group"
WORKER = "keyrevoke-worker"
COMMANDER = "keyrevoke-commander"
# Oldest Kubernetes minor the manifests support; the newest schema kubernetes-validate ships is
# checked as well.
OLDEST_KUBERNETES = "1.30.0"
# The app's defaults when the settings leave these out.
DEFAULT_HTTP_PORT = 9464
DEFAULT_SHUTDOWN_SECONDS = 30
# Time between the end of the drain and SIGKILL, for the SDK to cancel what is left and exit.
GRACE_MARGIN_SECONDS = 10

def _run(args: list[str], *, timeout: float, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


# --------------------------------------------------------------------------------------------------
# Rendering, once per session


@pytest.fixture(scope="session")
def yaml() -> ModuleType:
    return pyyaml


@pytest.fixture(scope="session")
def kubectl() -> str:
    return executable("kubectl")


@pytest.fixture(scope="session")
def rendered_files(kubectl: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("rendered")
    files = {}
    for overlay in OVERLAYS:
        result = _run([kubectl, "kustomize", str(K8S / "overlays" / overlay)], timeout=120)
        assert result.returncode == 0, f"kubectl kustomize overlays/{overlay} failed:\n{result.stderr}"
        path = out / f"{overlay}.yaml"
        path.write_text(result.stdout)
        files[overlay] = path
    return files


@pytest.fixture(scope="session")
def rendered(rendered_files: dict[str, Path], yaml: ModuleType) -> dict[str, list[dict[str, Any]]]:
    return {
        overlay: [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
        for overlay, path in rendered_files.items()
    }


@pytest.fixture(params=list(OVERLAYS))
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def docs(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> list[dict[str, Any]]:
    return rendered[overlay]


def _of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def _name(doc: dict[str, Any]) -> str:
    return str(doc["metadata"]["name"])


def _deployments(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The worker Deployments by venue group."""
    by_group: dict[str, dict[str, Any]] = {}
    for deployment in _of_kind(docs, "Deployment"):
        if deployment["metadata"]["labels"].get("app.kubernetes.io/name") != WORKER:
            continue
        group = deployment["spec"]["template"]["metadata"]["labels"].get(GROUP_LABEL)
        assert group, f"Deployment {_name(deployment)} has no {GROUP_LABEL} label"
        assert group not in by_group, f"two Deployments for group {group}"
        by_group[group] = deployment
    return by_group


def _worker(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{_name(deployment)}: expected one container"
    return dict(containers[0])


def _environment(container: dict[str, Any], docs: list[dict[str, Any]]) -> dict[str, str]:
    """The container's plain environment: its ConfigMaps (envFrom), then its literal env values."""
    config_maps = {_name(doc): doc.get("data", {}) for doc in _of_kind(docs, "ConfigMap")}
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            name = source["configMapRef"]["name"]
            assert name in config_maps, f"envFrom names ConfigMap {name}, which is not rendered"
            environment.update(config_maps[name])
    for variable in container.get("env", []):
        if "value" in variable:
            environment[variable["name"]] = variable["value"]
    return environment


def _queues(container: dict[str, Any]) -> list[str]:
    args = container.get("args", [])
    assert args[:1] == ["worker"], f"not a worker command line: {args}"
    assert "--queues" in args, f"no --queues: {args}"
    return str(args[args.index("--queues") + 1]).split(",")


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, f"only matchLabels selectors are expected: {selector}"
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items())


# --------------------------------------------------------------------------------------------------
# Rendering and validation


def test_overlay_renders_into_its_namespace(docs: list[dict[str, Any]], overlay: str) -> None:
    assert docs, f"overlays/{overlay} rendered nothing"
    namespaces = _of_kind(docs, "Namespace")
    assert [_name(doc) for doc in namespaces] == [OVERLAYS[overlay]]
    labels = namespaces[0]["metadata"].get("labels", {})
    assert labels.get("pod-security.kubernetes.io/enforce") == "restricted"
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == OVERLAYS[overlay], f"{doc['kind']}/{_name(doc)}"


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, "latest"])
def test_manifests_validate(docs: list[dict[str, Any]], version: str) -> None:
    """Built-in kinds against Kubernetes' own schemas (strict: unknown fields are errors); custom
    resources, which kubernetes-validate has no schema for, against infra/k8s/schemas."""
    if version == "latest":
        version = kubernetes_validate.latest_version()
    errors = []
    for doc in docs:
        where = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(doc, version, strict=True)
            continue
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{where}: {error.message} at {'.'.join(map(str, error.path))}")
            continue
        except kubernetes_validate.SchemaNotFoundError:
            pass
        group_version = str(doc["apiVersion"]).replace("/", "_")
        schema_path = SCHEMAS / f"{group_version}_{doc['kind']}.json"
        if not schema_path.is_file():
            errors.append(f"{where}: custom resource with no schema; add {schema_path.relative_to(ROOT)}")
            continue
        validator = jsonschema.Draft202012Validator(json.loads(schema_path.read_text()))
        for error in validator.iter_errors(doc):
            errors.append(f"{where}: {error.message} at {'.'.join(map(str, error.absolute_path))}")
    assert not errors, "\n".join(errors)


def test_custom_resource_schemas_are_valid() -> None:
    schemas = sorted(SCHEMAS.glob("*.json"))
    assert schemas
    for path in schemas:
        jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text()))


# --------------------------------------------------------------------------------------------------
# Workers


def test_one_deployment_per_venue_group(docs: list[dict[str, Any]]) -> None:
    deployments = _deployments(docs)
    assert set(deployments) == set(GROUPS)
    served: list[str] = []
    for group, deployment in deployments.items():
        queues = _queues(_worker(deployment))
        assert tuple(queues) == GROUPS[group], f"group {group} serves {queues}"
        served += queues
        # the worker itself must accept every queue the manifest gives it, or the pod crash-loops
        assert parse_queues(",".join(queues)) == queues
    assert len(served) == len(set(served)), f"a queue is served by two groups: {served}"
    assert set(served) == {"control", *SUPPORTED_VENUES}, "every venue keyrevoke knows has a worker group"


def test_probes_use_the_health_endpoint(docs: list[dict[str, Any]]) -> None:
    for group, deployment in _deployments(docs).items():
        container = _worker(deployment)
        port = int(_environment(container, docs).get("KEYREVOKE_WORKER_HTTP_PORT", DEFAULT_HTTP_PORT))
        named_ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
        assert port in named_ports.values(), f"{group}: health port {port} is not a container port"
        expected = {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"}
        for probe, path in expected.items():
            if probe == "startupProbe" and probe not in container:
                continue
            assert probe in container, f"{group}: no {probe}"
            http_get = container[probe].get("httpGet")
            assert http_get, f"{group}: {probe} is not an HTTP probe"
            assert http_get["path"] == path, f"{group}: {probe} asks {http_get['path']}"
            probe_port = named_ports.get(http_get["port"], http_get["port"])
            assert probe_port == port, f"{group}: {probe} on port {http_get['port']}, health port is {port}"


def test_grace_period_outlasts_the_drain(docs: list[dict[str, Any]]) -> None:
    for group, deployment in _deployments(docs).items():
        environment = _environment(_worker(deployment), docs)
        shutdown = int(environment.get("KEYREVOKE_WORKER_SHUTDOWN_SECONDS", DEFAULT_SHUTDOWN_SECONDS))
        grace = deployment["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
        assert grace >= shutdown + GRACE_MARGIN_SECONDS, (
            f"{group}: terminationGracePeriodSeconds {grace} leaves no room after a {shutdown}s drain"
        )


def test_pods_run_restricted(docs: list[dict[str, Any]]) -> None:
    for group, deployment in _deployments(docs).items():
        pod = deployment["spec"]["template"]["spec"]
        container = _worker(deployment)
        pod_security = pod.get("securityContext", {})
        security = container.get("securityContext", {})
        assert pod_security.get("runAsNonRoot") is True, group
        assert pod_security.get("runAsUser", 0) >= 10000, f"{group}: run as a high, non-root uid"
        assert pod_security.get("seccompProfile", {}).get("type") == "RuntimeDefault", group
        assert security.get("allowPrivilegeEscalation") is False, group
        assert security.get("readOnlyRootFilesystem") is True, group
        assert security.get("privileged", False) is False, group
        assert security.get("capabilities", {}).get("drop") == ["ALL"], group
        assert not security.get("capabilities", {}).get("add"), group
        assert pod.get("automountServiceAccountToken") is False, group
        for host_namespace in ("hostNetwork", "hostPID", "hostIPC"):
            assert not pod.get(host_namespace), f"{group}: {host_namespace}"
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container.get("resources", {}).get(kind, {})), f"{group}: {kind}"
        mounts = {mount["mountPath"] for mount in container.get("volumeMounts", [])}
        state_dir = _environment(container, docs).get("KEYREVOKE_STATE_DIR")
        assert state_dir in mounts, f"{group}: the state directory must be a writable volume"
        assert "/tmp" in mounts, f"{group}: /tmp must be a writable volume"  # noqa: S108


SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|KEK|PASSPHRASE|API_KEY|PRIVATE", re.IGNORECASE)
CREDENTIALS_IN_URL = re.compile(r"://[^/\s:@]+:[^/\s@]+@")


def test_no_secret_value_in_the_manifests(docs: list[dict[str, Any]]) -> None:
    """The Secret is created in the cluster out of band: no manifest carries a secret value."""
    assert not _of_kind(docs, "Secret"), "a Secret is rendered: secrets must not live in the repository"
    for config_map in _of_kind(docs, "ConfigMap"):
        for key, value in config_map.get("data", {}).items():
            assert not (SECRET_NAME.search(key) and not key.endswith("_FILE")), f"secret-like setting {key}"
            assert not CREDENTIALS_IN_URL.search(value), f"{key} carries credentials in a URL"
            assert "PRIVATE KEY" not in value, key
    for group, deployment in _deployments(docs).items():
        container = _worker(deployment)
        for variable in container.get("env", []):
            name = variable["name"]
            if "value" in variable:
                assert not (SECRET_NAME.search(name) and not name.endswith("_FILE")), f"{group}: {name}"
                assert not CREDENTIALS_IN_URL.search(variable["value"]), f"{group}: {name}"
        ledger_url = next(v for v in container["env"] if v["name"] == "KEYREVOKE_LEDGER_URL")
        assert ledger_url["valueFrom"]["secretKeyRef"]["name"] == "keyrevoke-secrets", group


def test_each_group_mounts_only_the_secret_files_it_needs(docs: list[dict[str, Any]]) -> None:
    for group, deployment in _deployments(docs).items():
        container = _worker(deployment)
        environment = _environment(container, docs)
        volumes = {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]}
        secret_volumes = [v for v in volumes.values() if v.get("secret", {}).get("secretName") == "keyrevoke-secrets"]
        assert len(secret_volumes) == 1, group
        secret_volume = secret_volumes[0]
        mount = next(m for m in container["volumeMounts"] if m["name"] == secret_volume["name"])
        assert mount.get("readOnly") is True, group
        files = {f"{mount['mountPath']}/{item['path']}" for item in secret_volume["secret"]["items"]}
        assert environment["KEYREVOKE_LEDGER_KEK_FILE"] in files, group
        masters = environment.get("KEYREVOKE_MASTER_CREDENTIALS_FILE")
        if group == "control":
            # The control group calls no exchange and gets no master credentials.
            assert masters is None, group
            assert not [f for f in files if f.endswith("masters.json")], group
        else:
            assert masters in files, f"{group}: master credentials not mounted"


def _commander(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [d for d in _of_kind(docs, "Deployment") if _name(d) == COMMANDER]
    return deployment


def test_every_pod_gets_the_keys_it_needs_from_the_secret_and_makes_none(docs: list[dict[str, Any]]) -> None:
    """KEYREVOKE_EMBEDDED=false, and the ledger KEK, the payload key and the signing key mounted from the
    Secret in every pod (workers and commander), so no pod makes a key of its own."""
    pods = {**{group: d for group, d in _deployments(docs).items()}, "commander": _commander(docs)}
    for name, deployment in pods.items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        environment = _environment(container, docs)
        assert environment.get("KEYREVOKE_EMBEDDED") == "false", f"{name}: pods must not make keys of their own"
        (volume,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if "secret" in v]
        mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
        files = {f"{mount['mountPath']}/{item['path']}" for item in volume["secret"]["items"]}
        for setting in ("KEYREVOKE_LEDGER_KEK_FILE", "KEYREVOKE_PAYLOAD_KEY_FILE", "KEYREVOKE_SIGNING_KEY_FILE"):
            assert environment.get(setting) in files, f"{name}: {setting} is not a mounted Secret file"


def test_the_commander_pod_has_the_cli_and_no_exchange_access(docs: list[dict[str, Any]]) -> None:
    deployment = _commander(docs)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert deployment["spec"]["replicas"] == 1
    assert container["command"][-2:] == ["sleep", "infinity"], "the commander pod idles for kubectl exec"
    assert pod["automountServiceAccountToken"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert not _environment(container, docs).get("KEYREVOKE_MASTER_CREDENTIALS_FILE")
    (volume,) = [v for v in pod["volumes"] if "secret" in v]
    assert not [i for i in volume["secret"]["items"] if i["key"] == "masters.json"], "no master credentials"
    labels = pod and deployment["spec"]["template"]["metadata"]["labels"]
    covering = [p for p in _of_kind(docs, "NetworkPolicy") if _selects(p["spec"]["podSelector"], labels)]
    assert [p for p in covering if set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}]
    assert not [p for p in covering for rule in p["spec"].get("ingress", [])], "the commander pod takes no traffic"
    internet = [t for p in covering for r in p["spec"].get("egress", []) for t in r.get("to", []) if "ipBlock" in t]
    assert not internet, "the commander pod reaches no exchange"


def test_disruption_budget_and_network_policy_cover_every_group(docs: list[dict[str, Any]]) -> None:
    budgets = _of_kind(docs, "PodDisruptionBudget")
    policies = _of_kind(docs, "NetworkPolicy")
    for group, deployment in _deployments(docs).items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert [b for b in budgets if _selects(b["spec"]["selector"], labels)], f"{group}: no PodDisruptionBudget"
        covering = [p for p in policies if _selects(p["spec"]["podSelector"], labels)]
        kinds = {kind for policy in covering for kind in policy["spec"].get("policyTypes", [])}
        assert kinds == {"Ingress", "Egress"}, f"{group}: ingress and egress must both be restricted"
        internet = any(
            rule_to.get("ipBlock", {}).get("cidr") == "0.0.0.0/0"
            for policy in covering
            for rule in policy["spec"].get("egress", [])
            for rule_to in rule.get("to", [])
        )
        assert internet == (group != "control"), f"{group}: internet egress only for venue groups"


def test_every_group_autoscales(docs: list[dict[str, Any]], overlay: str) -> None:
    deployments = _deployments(docs)
    autoscalers: dict[str, list[dict[str, Any]]] = {}
    for hpa in _of_kind(docs, "HorizontalPodAutoscaler"):
        autoscalers.setdefault(hpa["spec"]["scaleTargetRef"]["name"], []).append(hpa)
    for scaled_object in _of_kind(docs, "ScaledObject"):
        autoscalers.setdefault(scaled_object["spec"]["scaleTargetRef"]["name"], []).append(scaled_object)
    assert set(autoscalers) == {_name(d) for d in deployments.values()}, "autoscalers and Deployments differ"
    for group, deployment in deployments.items():
        assert "replicas" not in deployment["spec"], f"{group}: the autoscaler owns replicas"
        (autoscaler,) = autoscalers[_name(deployment)]
        spec = autoscaler["spec"]
        if autoscaler["kind"] == "HorizontalPodAutoscaler":
            assert 1 <= spec["minReplicas"] <= spec["maxReplicas"], group
            assert spec["scaleTargetRef"]["kind"] == "Deployment", group
            continue
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"], group
        container = _worker(deployment)
        settings = _environment(container, docs)
        prefix = settings["KEYREVOKE_TASK_QUEUE_PREFIX"]
        expected = {
            f"{prefix}-control" if queue == "control" else f"{prefix}-venue-{queue}" for queue in _queues(container)
        }
        temporal = [t["metadata"] for t in spec["triggers"] if t["type"] == "temporal"]
        assert {t["taskQueue"] for t in temporal} == expected, f"{group}: scaler queues differ from --queues"
        for trigger in temporal:
            assert trigger["namespace"] == settings["KEYREVOKE_TEMPORAL_NAMESPACE"], group
            assert trigger.get("endpointFromEnv") in settings or trigger.get("endpoint") == settings.get(
                "KEYREVOKE_TEMPORAL_ADDRESS"
            ), f"{group}: the scaler must ask the workers' Temporal server"
        assert spec["scaleTargetRef"].get("envSourceContainerName", container["name"]) == container["name"]
    if overlay == "prod":
        assert _of_kind(docs, "ScaledObject"), "prod scales on task-queue backlog with KEDA"


def test_metrics_are_scraped(docs: list[dict[str, Any]], overlay: str) -> None:
    services = _of_kind(docs, "Service")
    for group, deployment in _deployments(docs).items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert [s for s in services if _selects({"matchLabels": s["spec"]["selector"]}, labels)], group
    monitors = _of_kind(docs, "ServiceMonitor")
    if overlay == "dev":
        assert not monitors
        return
    assert len(monitors) == 1
    (monitor,) = monitors
    selected = [s for s in services if _selects(monitor["spec"]["selector"], s["metadata"].get("labels", {}))]
    assert len(selected) == 1, "the ServiceMonitor must select the metrics Service"
    port_names = {port["name"] for port in selected[0]["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in port_names
        assert endpoint["path"] == "/metrics"


def test_dev_needs_no_operator(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """`kubectl apply -k infra/k8s/overlays/dev` must work on a bare cluster: built-in kinds only."""
    groups = {str(doc["apiVersion"]).rpartition("/")[0] for doc in rendered["dev"]}
    assert groups <= {"", "apps", "policy", "autoscaling", "networking.k8s.io"}, groups


def test_prod_pins_the_image_by_digest(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for group, deployment in _deployments(rendered["prod"]).items():
        container = _worker(deployment)
        assert re.fullmatch(r"[^@\s]+@sha256:[0-9a-f]{64}", container["image"]), f"{group}: {container['image']}"
        assert container.get("imagePullPolicy") == "Always", group


# --------------------------------------------------------------------------------------------------
# Dockerfile and Helm values


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_runs_non_root_with_signals_reaching_python() -> None:
    instructions = _dockerfile_instructions()
    final_stage = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM") :]
    users = [rest for keyword, rest in final_stage if keyword == "USER"]
    assert users, "the final stage must set USER"
    assert users[-1].split(":")[0] not in {"root", "0"}, users[-1]
    for keyword in ("ENTRYPOINT", "CMD"):
        values = [rest for k, rest in final_stage if k == keyword]
        assert values, f"no {keyword}"
        parsed = json.loads(values[-1])  # exec form: a JSON array, no shell in between
        assert isinstance(parsed, list), keyword
    entrypoint = json.loads([rest for k, rest in final_stage if k == "ENTRYPOINT"][-1])
    assert entrypoint[0].endswith("tini"), entrypoint
    assert "keyrevoke" in entrypoint, entrypoint
    for keyword, rest in instructions:
        if keyword in {"ENV", "ARG"}:
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", rest) or [rest.split()[0]]
            assert not [n for n in names if SECRET_NAME.search(n)], f"{keyword} {rest}: no secret in the image"
        assert keyword != "ADD", "COPY only: ADD can fetch remote content"


def test_dockerignore_lets_no_state_or_secret_in() -> None:
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert patterns[0] == "*", "the build context is an allow-list"
    for needed in ("**/.state", "**/*.sqlite", "**/*.kek", "**/masters*.json", "**/.env"):
        assert needed in patterns, needed


def test_temporal_helm_values(yaml: ModuleType) -> None:
    """Chart 1.x layout, credentials from an existing Secret, and the namespace the workers use."""
    values = yaml.safe_load(HELM_VALUES.read_text())
    removed = {"cassandra", "elasticsearch", "prometheus", "grafana", "mysql", "postgresql"}
    assert not removed & set(values), "chart 1.x has no database or monitoring sub-charts"
    persistence = values["server"]["config"]["persistence"]
    assert not {"default", "visibility"} & set(persistence), "stores live under datastores in chart 1.x"
    stores = persistence["datastores"]
    for role in ("defaultStore", "visibilityStore"):
        sql = stores[persistence[role]]["sql"]
        assert sql["pluginName"].startswith("postgres"), role
        assert sql.get("existingSecret"), f"{role}: the password comes from a Secret"
        assert "password" not in sql, f"{role}: no password in the values file"
    settings = dict(
        line.split("=", 1)
        for line in (K8S / "base" / "settings.env").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    namespaces = values["server"]["config"]["namespaces"]
    assert namespaces["create"] is True
    assert settings["KEYREVOKE_TEMPORAL_NAMESPACE"] in {n["name"] for n in namespaces["namespace"]}
    assert settings["KEYREVOKE_TEMPORAL_ADDRESS"].startswith("temporal-frontend.temporal.svc"), (
        "the README installs release `temporal` in namespace `temporal`"
    )


# --------------------------------------------------------------------------------------------------
# checkov, once per session


@pytest.fixture(scope="session")
def checkov_reports(rendered_files: dict[str, Path]) -> list[dict[str, Any]]:
    checkov = executable("checkov")
    files = [*rendered_files.values(), DOCKERFILE, HELM_VALUES]
    args = [checkov, "--framework", "kubernetes", "dockerfile", "secrets", "--skip-download", "--output", "json"]
    for path in files:
        args += ["--file", str(path)]
    result = _run(args, timeout=300)
    assert result.stdout.strip(), f"checkov printed no report (exit {result.returncode}):\n{result.stderr}"
    reports = json.loads(result.stdout)
    return reports if isinstance(reports, list) else [reports]


def test_checkov_finds_nothing_unexplained(checkov_reports: list[dict[str, Any]]) -> None:
    """No failed check; every skipped one carries its reason (checkov.io/skipN annotations)."""
    by_type = {report["check_type"]: report for report in checkov_reports}
    assert {"kubernetes", "dockerfile"} <= set(by_type), f"checkov scanned {sorted(by_type)}"
    assert by_type["kubernetes"]["summary"]["passed"] > 0
    assert by_type["dockerfile"]["summary"]["passed"] > 0
    problems = []
    for check_type, report in by_type.items():
        results = report["results"]
        problems += [f"{check_type}: parsing error in {path}" for path in results.get("parsing_errors", [])]
        for failed in results.get("failed_checks", []):
            problems.append(
                f"{check_type}: {failed['check_id']} {failed['check_name']} - {failed['resource']} "
                f"({failed['file_path']}:{failed['file_line_range']})"
            )
        for skipped in results.get("skipped_checks", []):
            reason = (skipped.get("check_result") or {}).get("suppress_comment") or ""
            if len(reason.strip()) < 20:
                problems.append(
                    f"{check_type}: {skipped['check_id']} skipped without a reason on {skipped['resource']}"
                )
    assert not problems, "\n".join(problems)


def _skips(reports: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    for report in reports:
        for skipped in report["results"].get("skipped_checks", []):
            yield skipped["check_id"], skipped["check_result"]["suppress_comment"]


INLINE_SKIP = re.compile(r"checkov:skip=([A-Z0-9_]+):?(.*)")


def test_checkov_skips_are_the_documented_ones(checkov_reports: list[dict[str, Any]]) -> None:
    """Only the suppressions infra/README.md explains; a new one must be explained there too.

    Inline `checkov:skip=ID:reason` comments count as well: checkov's secrets scanner honours them
    without listing them among its skipped checks."""
    skips = list(_skips(checkov_reports))
    for path in (DOCKERFILE, HELM_VALUES):
        skips += [(m.group(1), m.group(2).strip()) for m in INLINE_SKIP.finditer(path.read_text())]
    readme = (INFRA / "README.md").read_text()
    for check_id, reason in skips:
        assert len(reason) >= 20, f"{check_id} is skipped without a reason"
        assert check_id in readme, f"{check_id} is skipped but infra/README.md does not explain it"
