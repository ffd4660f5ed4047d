"""The Kubernetes manifests, run: each overlay's pods as local processes, and the commander's steps.

Each overlay is rendered with ``kubectl kustomize``. Every worker Deployment becomes two replicas, each
a process started with exactly what its container would get: the image's entrypoint and environment
(from the Dockerfile), the container's command and arguments, its environment from the ConfigMap and
from a test Secret (whose keys are the ones the infra README's Secret table lists), and its volumes as
folders under a temporary directory (the Secret's items as files, each emptyDir fresh per pod); a path
in a setting is mapped to the folder of the mount it lies under. What stands in for the cluster: one
Temporal dev server for the in-cluster service name, one PostgreSQL ledger (the test Secret's URL), a
webhook receiver (its URL and secret), an OTLP collector for the prod overlay's collector, a port per
pod for the health port, and the venue simulator for "the internet" of the pods whose NetworkPolicy
allows it. The registered operators are a ``keyrevoke-operators`` ConfigMap made, as the platform
would, from the public half of a real OpenSSH key the test makes with ``ssh-keygen``. The commander's
steps are the lines of the infra README as written: ``kubectl exec`` run with the commander container's
environment, ``kubectl cp`` between the commander pod's volumes and a folder standing in for the
operator's laptop, and ``ssh-keygen -Y sign`` on the laptop with the operator's key.

An incident over every venue must end with every key confirmed, one venue replica killed mid-run
(and replaced, as its Deployment would) changing nothing. The test fails on a setting no container
can use (unknown to keyrevoke, or a path nothing is mounted at), on a Secret key the README and the
manifests disagree about, on any key, ledger, hook or operators file a pod makes in its own scratch
volume, and on a private key anywhere in the cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import hmac
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from commander.devserver import DevServerConfig, dev_server, free_port
from commander.sample import write_sample
from commander.simulate import simulator_for
from keyrevoke.crypto import KeyEncryptionKey, SecretBox
from keyrevoke.ledger import open_ledger
from keyrevoke.settings import Settings
from keyrevoke.states import KeyState
from keyrevoke.venues import SUPPORTED_VENUES
from tests.harness import until
from tests.infra_tools import executable
from tests.ledger_backends import postgres_schema
from tests.otlp_collector import Collector

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.usefixtures("clean_environment")]

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "infra" / "k8s"
INFRA_README = ROOT / "infra" / "README.md"
DOCKERFILE = ROOT / "Dockerfile"
OVERLAYS = {"dev": "keyrevoke-dev", "prod": "keyrevoke"}
REPLICAS = 2
KEYS = 24  # three per venue
MANUAL = ("kraken", "coinbase")
SECRET_NAME = "keyrevoke-secrets"
OPERATOR = "alice"
# Files a pod must never make for itself: keys, a ledger of its own, a hook file sink nobody reads, an
# operator key registered by itself alone (it would refuse every real operator's signature).
OWN_FILES = (
    "ledger.kek", "payload.key", "signing.key", "ledger.sqlite", "platform-hook.jsonl", "operator.key", "operators"
)  # fmt: skip
BIN = Path(sys.executable).parent
CLUSTER_HOST = re.compile(r"([a-z0-9-]+\.[a-z0-9-]+\.svc\.cluster\.local)(:\d+)?")


# --------------------------------------------------------------------------------------------------
# What each container gets


@dataclass
class Container:
    """One container of a rendered Deployment: the pieces a kubelet would assemble."""

    deployment: dict[str, Any]
    spec: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.deployment["metadata"]["name"])

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.deployment["spec"]["template"]["metadata"]["labels"])

    @property
    def pod_spec(self) -> dict[str, Any]:
        return dict(self.deployment["spec"]["template"]["spec"])


@dataclass
class Image:
    """The Dockerfile's final stage: entrypoint, default arguments, environment and working folder."""

    entrypoint: list[str]
    cmd: list[str]
    env: dict[str, str]
    workdir: str

    @classmethod
    def from_dockerfile(cls, path: Path) -> Image:
        text = path.read_text().replace("\\\n", " ")
        lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
        final = lines[max(i for i, line in enumerate(lines) if line.upper().startswith("FROM ")) :]
        image = cls([], [], {}, "/")
        for line in final:
            keyword, _, rest = line.partition(" ")
            keyword = keyword.upper()
            if keyword == "ENTRYPOINT":
                image.entrypoint = json.loads(rest)
            elif keyword == "CMD":
                image.cmd = json.loads(rest)
            elif keyword == "WORKDIR":
                image.workdir = rest.strip()
            elif keyword == "ENV":
                for word in shlex.split(rest):
                    name, _, value = word.partition("=")
                    image.env[name] = value
        return image


def render(kubectl: str, overlay: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"kubectl kustomize overlays/{overlay}: {result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def containers(docs: list[dict[str, Any]]) -> dict[str, Container]:
    found = {}
    for deployment in docs:
        if deployment["kind"] == "Deployment":
            (spec,) = deployment["spec"]["template"]["spec"]["containers"]
            found[deployment["metadata"]["name"]] = Container(deployment, spec)
    return found


def readme_secret_keys() -> set[str]:
    """The keys of the Secret table in the infra README's section 2."""
    section = INFRA_README.read_text().split("## 2. Secrets", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([^`]+)` \|", section, re.MULTILINE))


def secret_keys_used(container: Container) -> set[str]:
    used = set()
    for variable in container.spec.get("env", []):
        ref = variable.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert ref["name"] == SECRET_NAME, f"{container.name}: {variable['name']} from Secret {ref['name']}"
            used.add(ref["key"])
    for volume in container.pod_spec.get("volumes", []):
        secret = volume.get("secret")
        if secret:
            assert secret["secretName"] == SECRET_NAME, f"{container.name}: volume {volume['name']}"
            used |= {item["key"] for item in secret["items"]}
    return used


def readme_config_maps() -> dict[str, set[str]]:
    """The ConfigMaps the infra README has the platform create out of band, with their keys."""
    made: dict[str, set[str]] = {}
    for line in INFRA_README.read_text().splitlines():
        words = shlex.split(line, comments=True) if " create configmap " in line else []
        if words[3:5] == ["create", "configmap"]:
            keys = {w.split("=", 2)[1] for w in words if w.startswith("--from-file=")}
            made.setdefault(words[5], set()).update(keys)
    return made


def config_map_keys_mounted(container: Container) -> dict[str, set[str]]:
    mounted: dict[str, set[str]] = {}
    for volume in container.pod_spec.get("volumes", []):
        config_map = volume.get("configMap")
        if config_map:
            mounted.setdefault(config_map["name"], set()).update(item["key"] for item in config_map["items"])
    return mounted


@dataclass(frozen=True)
class Step:
    """One line of the README's commander block: ``kubectl ...``, ``VAR=$(kubectl ...)`` or a laptop command."""

    words: list[str]
    variable: str = ""

    @property
    def kubectl(self) -> bool:
        return self.words[0] == "kubectl"


ASSIGNMENT = re.compile(r"^([A-Z_]+)=\$\((kubectl .*)\)$")


def readme_commander_steps(namespace: str) -> list[Step]:
    """The commander section's lines of the infra README, split as a shell would, in ``namespace``."""
    section = INFRA_README.read_text().split("### The commander, in the cluster", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    steps = []
    for line in block.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        assigned = ASSIGNMENT.match(line)
        variable, command = (assigned.group(1), assigned.group(2)) if assigned else ("", line)
        words = shlex.split(command, comments=True)
        if words[0] == "kubectl":
            assert words[1:3] == ["-n", OVERLAYS["dev"]], f"infra README: {line}"
            words = [*words[:2], namespace, *words[3:]]
        else:
            assert words[0] == "ssh-keygen", f"infra README: a commander step the test does not know: {line}"
        steps.append(Step(words, variable))
    assert any(s.kubectl and s.words[3] == "exec" for s in steps), "the README's commander section has no exec step"
    return steps


# --------------------------------------------------------------------------------------------------
# The stand-in cluster


@dataclass
class Cluster:
    """Addresses of what the manifests reach, as the test runs them."""

    services: dict[str, str]  # in-cluster host[:port] -> 127.0.0.1:port
    secret: dict[str, str]
    venue_urls: dict[str, str]
    root: Path
    image: Image


@dataclass
class Pod:
    """One replica: its folders, environment and command line, and the process once started."""

    name: str
    container: Container
    mounts: dict[str, Path]  # mountPath -> local folder
    env: dict[str, str]
    argv: list[str]
    cwd: Path
    health_port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    scratch: list[Path] = field(default_factory=list)  # the emptyDir folders

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, env=self.env, cwd=self.cwd, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-15:]) if self.log.exists() else ""


def _mapped(value: str, mounts: dict[str, Path], cluster: Cluster, where: str) -> str:
    """A setting's value as this machine sees it: service names to local addresses, mount paths to folders."""
    for match in CLUSTER_HOST.finditer(value):
        address = match.group(0)
        assert address in cluster.services, f"{where}: reaches {address}, which the cluster here does not run"
        value = value.replace(address, cluster.services[address])
    return _in_pod(value, mounts, where) if value.startswith("/") else value


def _in_pod(path: str, mounts: dict[str, Path], where: str) -> str:
    """A path inside the pod, as the folder of the mount it lies under; a device stays as it is."""
    if path.startswith("/dev/"):
        return path
    for mount_path in sorted(mounts, key=len, reverse=True):
        if path == mount_path or path.startswith(mount_path.rstrip("/") + "/"):
            return str(mounts[mount_path]) + path[len(mount_path.rstrip("/")) :]
    pytest.fail(f"{where} names {path}, where nothing is mounted (the root filesystem is read-only)", pytrace=False)


def make_pod(container: Container, replica: str, cluster: Cluster, config_maps: dict[str, dict[str, str]]) -> Pod:
    name = f"{container.name}-{replica}"
    root = cluster.root / name
    volumes = {volume["name"]: volume for volume in container.pod_spec.get("volumes", [])}
    mounts: dict[str, Path] = {}
    scratch = []
    for mount in container.spec.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        folder = root / mount["mountPath"].lstrip("/")
        folder.mkdir(parents=True)
        if "emptyDir" in volume:
            scratch.append(folder)
        elif "secret" in volume:
            for item in volume["secret"]["items"]:
                assert item["key"] in cluster.secret, f"{name}: Secret key {item['key']} is not in the test Secret"
                path = folder / item["path"]
                path.write_text(cluster.secret[item["key"]])
                path.chmod(0o440)
        elif "configMap" in volume:
            data = config_maps.get(volume["configMap"]["name"])
            assert data is not None, f"{name}: volume {mount['name']}: no ConfigMap {volume['configMap']['name']}"
            for item in volume["configMap"]["items"]:
                assert item["key"] in data, f"{name}: ConfigMap key {item['key']} is not in the test ConfigMap"
                path = folder / item["path"]
                path.write_text(data[item["key"]])
                path.chmod(0o444)
        else:
            pytest.fail(f"{name}: volume {mount['name']} of a kind the test does not map", pytrace=False)
        mounts[mount["mountPath"]] = folder

    # The kubelet's order: the image's environment, then envFrom, then env (later wins).
    env: dict[str, str] = {}
    for key, value in cluster.image.env.items():
        if key != "PATH":
            env[key] = _mapped(value, mounts, cluster, f"{name}: image ENV {key}")
    for source in container.spec.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        assert ref in config_maps, f"{name}: envFrom ConfigMap {ref}, which is not rendered"
        for key, value in config_maps[ref].items():
            env[key] = _mapped(value, mounts, cluster, f"{name}: {key} (ConfigMap)")
    for variable in container.spec.get("env", []):
        key = variable["name"]
        if "value" in variable:
            env[key] = _mapped(variable["value"], mounts, cluster, f"{name}: {key}")
        else:
            ref = variable["valueFrom"]["secretKeyRef"]
            assert ref["key"] in cluster.secret, f"{name}: {key} from Secret key {ref['key']}, not in the test Secret"
            env[key] = _mapped(cluster.secret[ref["key"]], mounts, cluster, f"{name}: {key} (Secret)")

    # The pod's own network: its health port on a port of its own here.
    ports = [port["containerPort"] for port in container.spec.get("ports", [])]
    health_port = free_port()
    for key, value in env.items():
        if key.startswith("KEYREVOKE_") and value.isdigit() and int(value) in ports:
            env[key] = str(health_port)
    # "The internet": only pods whose NetworkPolicy lets them reach the exchanges get the simulator.
    if container.labels.get("keyrevoke.io/venue-egress") == "true":
        env["KEYREVOKE_VENUE_URLS"] = json.dumps(cluster.venue_urls)
    env["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"

    for key, value in env.items():
        if key.startswith("KEYREVOKE_"):
            setting = key.removeprefix("KEYREVOKE_").lower()
            assert setting in Settings.model_fields, f"{name}: {key} is set, but keyrevoke has no such setting"
            if key.endswith("_FILE"):
                assert Path(value).is_file(), f"{name}: {key} names a file that is not mounted in the pod"

    command = container.spec.get("command") or cluster.image.entrypoint
    args = container.spec.get("args") or ([] if container.spec.get("command") else cluster.image.cmd)
    argv = [*command, *args]
    if argv[0].endswith("tini") and argv[1] == "--":
        argv = argv[2:]  # tini only forwards signals; the process group stands in for it here
    argv[0] = shutil_which(argv[0])
    cwd = Path(_mapped(cluster.image.workdir, mounts, cluster, f"{name}: WORKDIR"))
    return Pod(name, container, mounts, env, argv, cwd, health_port, cluster.root / f"{name}.log", scratch=scratch)


def shutil_which(program: str) -> str:
    local = BIN / program
    return str(local) if local.is_file() else program


def exec_in(pod: Pod, words: list[str], workdir: Path) -> tuple[list[str], Path | None]:
    """A README line ``kubectl -n NS exec [-i] deploy/NAME -- CMD... [< FILE]`` as a local command line."""
    assert words[3] == "exec", f"not a kubectl exec step: {shlex.join(words)}"
    separator = words.index("--")
    stdin = None
    command = words[separator + 1 :]
    if "<" in command:
        at = command.index("<")
        stdin = workdir / command[at + 1]
        command = command[:at]
        assert "-i" in words[:separator], f"{shlex.join(words)}: stdin needs kubectl exec -i"
    # Paths in the pod (not its devices) are the pod's mounts here.
    argv = [_in_pod(word, pod.mounts, shlex.join(words)) if word.startswith("/") else word for word in command]
    argv[0] = shutil_which(argv[0])
    return argv, stdin


def pod_named(pod: Pod, step: Step) -> str:
    """``VAR=$(kubectl get pod -l SELECTOR -o jsonpath=...)``: the name of the pod the selector picks."""
    words = step.words
    assert words[3:5] == ["get", "pod"], f"infra README: {shlex.join(words)}"
    selector = dict(pair.split("=", 1) for pair in words[words.index("-l") + 1].split(","))
    assert selector.items() <= pod.container.labels.items(), f"{shlex.join(words)} does not pick {pod.name}"
    assert any(w.startswith("jsonpath={.items[0].metadata.name}") for w in words), shlex.join(words)
    return pod.name


def copy_between(pod: Pod, step: Step, laptop: Path, variables: dict[str, str]) -> None:
    """``kubectl -n NS cp [POD:]SRC [POD:]DST``: one side in the pod's volumes, the other on the laptop."""
    words = [re.sub(r"\$(\w+)", lambda m: variables[m.group(1)], word) for word in step.words]
    source, target = words[4:6]
    where = shlex.join(step.words)

    def side(spec: str) -> tuple[Path, bool]:
        pod_name, colon, path = spec.partition(":")
        if not colon:
            return laptop / spec, False
        assert pod_name == pod.name, f"{where}: copies with pod {pod_name}, not the commander's {pod.name}"
        return Path(_in_pod(path, pod.mounts, where)), True

    (src, _), (dst, into_pod) = side(source), side(target)
    assert src.exists(), f"{where}: {source} does not exist"
    if into_pod:
        # Only a writable volume takes a file: the root filesystem and the Secret and ConfigMaps are read-only.
        assert any(dst.is_relative_to(folder) for folder in pod.scratch), f"{where}: {target} is not writable"
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copyfile(src, dst)


def on_the_laptop(step: Step, laptop: Path) -> list[str]:
    """A command the operator runs on their own machine; ``~`` is the laptop's home."""
    return [str(laptop / word[2:]) if word.startswith("~/") else word for word in step.words]


# --------------------------------------------------------------------------------------------------
# The webhook the platform would run


@dataclass
class HookReceiver:
    secret: bytes
    requests: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("X-Keyrevoke-Signature", ""), expected):
            self.bad_signatures += 1
            return web.Response(status=401)
        self.requests.append(json.loads(body))
        return web.Response(status=204)


@contextlib.asynccontextmanager
async def hook_server(receiver: HookReceiver) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()


# --------------------------------------------------------------------------------------------------
# The test


@pytest.fixture(scope="module")
def kubectl() -> str:
    return executable("kubectl")


def test_every_config_map_and_secret_key_reaches_a_container(kubectl: str) -> None:
    """A ConfigMap no container reads, a Secret key the README lists that no pod receives, or one a pod
    needs that the README leaves out."""
    documented = readme_secret_keys()
    made_by_platform = readme_config_maps()
    assert "keyrevoke-operators" in made_by_platform, "the infra README does not say how to make the operators"
    for overlay in OVERLAYS:
        docs = render(kubectl, overlay)
        used: set[str] = set()
        read: set[str] = set()
        mounted: dict[str, set[str]] = {}
        for container in containers(docs).values():
            used |= secret_keys_used(container)
            read |= {source["configMapRef"]["name"] for source in container.spec.get("envFrom", [])}
            for name, keys in config_map_keys_mounted(container).items():
                mounted.setdefault(name, set()).update(keys)
        rendered = {doc["metadata"]["name"] for doc in docs if doc["kind"] == "ConfigMap"}
        read |= set(mounted)
        assert rendered <= read, f"overlays/{overlay}: no container reads ConfigMap {rendered - read}"
        assert used == documented, f"overlays/{overlay}: used but not in the README {used - documented}, " + (
            f"in the README but no pod receives it {documented - used}"
        )
        # A ConfigMap the cluster must already hold is one the README has the platform make, key for key.
        out_of_band = {name: keys for name, keys in mounted.items() if name not in rendered}
        assert out_of_band == made_by_platform, (
            f"overlays/{overlay}: ConfigMaps mounted {out_of_band}, made as the README says {made_by_platform}"
        )


@pytest.mark.parametrize("overlay", list(OVERLAYS))
async def test_the_manifests_run_an_incident_to_the_end(
    overlay: str, kubectl: str, tmp_path: Path, pg_session: Any, http: aiohttp.ClientSession
) -> None:
    """Two replicas of each worker Deployment and the README's commander steps, every control action
    signed on the operator's laptop with ssh-keygen: every key of every venue confirmed, a venue replica
    killed mid-run, every key frozen through the signed webhook, no pod with a key, ledger, hook or
    operators file of its own, no private key in the cluster."""
    docs = render(kubectl, overlay)
    namespace = OVERLAYS[overlay]
    config_maps = {doc["metadata"]["name"]: doc.get("data", {}) for doc in docs if doc["kind"] == "ConfigMap"}
    (settings_env,) = [data for data in config_maps.values() if "KEYREVOKE_TEMPORAL_ADDRESS" in data]
    # The operator's own key, on their laptop; the platform registers its public half in the cluster.
    laptop = tmp_path / "laptop"
    (laptop / ".ssh").mkdir(parents=True)
    operator_key = laptop / ".ssh" / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{OPERATOR}@laptop", "-f", str(operator_key)],
        check=True,
    )
    public = operator_key.with_suffix(".pub").read_text()
    config_maps["keyrevoke-operators"] = {"allowed_signers": f"{OPERATOR} {public}"}
    by_name = containers(docs)
    workers = {name: c for name, c in by_name.items() if c.labels.get("app.kubernetes.io/name") == "keyrevoke-worker"}
    assert workers, f"overlays/{overlay}: no worker Deployment"

    inventory, masters = write_sample(tmp_path / "sample", KEYS, venues=SUPPORTED_VENUES)
    keys_csv = tmp_path / "keys.csv"
    keys_csv.write_text(inventory.read_text())
    with open(inventory, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["venue"] for row in rows} == set(SUPPORTED_VENUES)

    simulator, _ = simulator_for(inventory, masters)
    await simulator.start()
    receiver = HookReceiver(b"test hook secret")
    temporal_service = settings_env["KEYREVOKE_TEMPORAL_ADDRESS"]
    temporal_namespace = settings_env["KEYREVOKE_TEMPORAL_NAMESPACE"]
    keys = {name: KeyEncryptionKey.generate() for name in ("ledger.kek", "payload.key", "signing.key")}
    pods: list[Pod] = []
    try:
        with postgres_schema(pg_session) as ledger_url, Collector() as collector:
            async with (
                hook_server(receiver) as hook_url,
                dev_server(
                    DevServerConfig(free_port(), namespaces=(temporal_namespace,), log_file=tmp_path / "temporal.log"),
                    Settings(state_dir=tmp_path / "dev-client", temporal_namespace=temporal_namespace),
                ) as client,
            ):
                dev_address = client.service_client.config.target_host
                services = {temporal_service: dev_address}
                otlp = settings_env.get("KEYREVOKE_OTEL_EXPORTER_OTLP_ENDPOINT", "")
                for match in CLUSTER_HOST.finditer(otlp):
                    services[match.group(0)] = f"127.0.0.1:{collector.port}"
                secret = {
                    "ledger-url": ledger_url,
                    **{name: key.to_text() + "\n" for name, key in keys.items()},
                    "masters.json": masters.read_text(),
                    "hook-url": hook_url,
                    "hook-secret": receiver.secret.decode(),
                }
                cluster = Cluster(
                    services, secret, simulator.venue_urls, tmp_path / "cluster", Image.from_dockerfile(DOCKERFILE)
                )

                for container in workers.values():
                    for replica in range(REPLICAS):
                        pods.append(make_pod(container, str(replica), cluster, config_maps))
                for pod in pods:
                    pod.start()
                for pod in pods:
                    await _ready(http, pod)
                _no_pod_made_its_own(pods)

                commander = by_name.get("keyrevoke-commander")
                assert commander is not None, f"overlays/{overlay}: no keyrevoke-commander Deployment"
                exec_pod = make_pod(commander, "0", cluster, config_maps)
                ledger = open_ledger(ledger_url, SecretBox(keys["ledger.kek"]))
                steps = readme_commander_steps(namespace)
                starts = {s.words[s.words.index("--id") + 1] for s in steps if "start" in s.words and "--id" in s.words}
                (incident,) = starts
                variables: dict[str, str] = {}
                signed: list[str] = []
                try:
                    for step in steps:
                        if step.variable:
                            variables[step.variable] = pod_named(exec_pod, step)
                            continue
                        if not step.kubectl:
                            laptop_argv = on_the_laptop(step, laptop)
                            subprocess.run(laptop_argv, cwd=laptop, check=True, capture_output=True, timeout=60)
                            continue
                        if step.words[3] == "cp":
                            copy_between(exec_pod, step, laptop, variables)
                            continue
                        argv, stdin = exec_in(exec_pod, step.words, tmp_path)
                        verb = argv[1:3]
                        if "--signature" in argv:
                            signed.append(argv[2])
                        if verb == ["incident", "confirm"] and "--signature" not in argv:
                            # The exchange's team deletes the keys, and then the commander writes the confirm.
                            venue = argv[argv.index("--venue") + 1]
                            await _exchange_revokes(ledger, simulator, incident, venue)
                        await _run(exec_pod, argv, stdin)
                        if verb == ["incident", "start"] and "--signature" in argv:
                            replacement = await _kill_a_venue_replica_mid_run(
                                ledger, incident, pods, cluster, config_maps, http
                            )
                            pods.append(replacement)
                    assert signed.count("start") == 1, "the README's start is not signed with --signature"
                    assert signed.count("confirm") == len(MANUAL), "each manual venue's confirm is signed"
                    counts = ledger.counts(incident)
                    assert counts == {
                        venue: {KeyState.CONFIRMED.value: sum(row["venue"] == venue for row in rows)}
                        for venue in SUPPORTED_VENUES
                    }, counts
                    # The event log names the registered operator whose key signed, not the pod's user.
                    actors = {event["actor"] for event in ledger.events(incident)}
                    assert any(OPERATOR in str(actor) for actor in actors), actors
                finally:
                    ledger.close()
                assert (laptop / "report" / "report.json").is_file(), "the README's steps bring no report out"
                frozen = {r["key_id"] for r in receiver.requests if r["action"] == "freeze"}
                assert frozen == {row["key_id"] for row in rows}, "every key is frozen through the platform hook"
                assert receiver.bad_signatures == 0
                _no_pod_made_its_own([*pods, exec_pod])
                _no_private_key_in(cluster.root)
                if otlp:
                    assert collector.spans, "the prod overlay's collector received no trace"
    except BaseException:
        for pod in pods:
            print(f"--- {pod.name}\n{pod.tail()}")
        raise
    finally:
        for pod in pods:
            pod.stop()
        await simulator.stop()


async def _ready(http: aiohttp.ClientSession, pod: Pod) -> None:
    """The pod's readiness probe, as the kubelet asks it, passes."""
    probe = pod.container.spec["readinessProbe"]["httpGet"]
    url = f"http://127.0.0.1:{pod.health_port}{probe['path']}"

    async def ready() -> bool:
        assert pod.process is not None
        assert pod.process.poll() is None, f"{pod.name} exited with {pod.process.returncode}:\n{pod.tail()}"
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as answer:
                return answer.status == 200
        return False

    await until(ready, 180)


def _no_private_key_in(root: Path) -> None:
    """The operators sign on their laptops: no private key is ever in a pod's volume (nor in a log)."""
    for path in root.rglob("*"):
        if path.is_file():
            assert b"PRIVATE KEY" not in path.read_bytes(), f"a private key in the cluster: {path.relative_to(root)}"


def _no_pod_made_its_own(pods: list[Pod]) -> None:
    for pod in pods:
        for folder in pod.scratch:
            made = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name in OWN_FILES)
            assert not made, f"{pod.name} made its own {', '.join(made)} in its scratch volume"


async def _run(pod: Pod, argv: list[str], stdin: Path | None) -> None:
    handle = stdin.open("rb") if stdin else subprocess.DEVNULL
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, env=pod.env, cwd=pod.cwd, stdin=handle, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        out, err = await asyncio.wait_for(process.communicate(), 600)
    finally:
        if stdin:
            handle.close()  # type: ignore[union-attr]
    assert process.returncode == 0, f"{shlex.join(argv[1:])} exited {process.returncode}:\n{out.decode()}{err.decode()}"


async def _exchange_revokes(ledger: Any, simulator: Any, incident: str, venue: str) -> None:
    """A manual venue: once its keys are escalated, the exchange's team deletes them (as the commander is told)."""

    def escalated() -> bool:
        return bool(ledger.counts(incident).get(venue, {}).get(KeyState.ESCALATED.value))

    await until(escalated, 300)
    simulator.revoke_by_exchange(venue)


async def _kill_a_venue_replica_mid_run(
    ledger: Any, incident: str, pods: list[Pod], cluster: Cluster, config_maps: dict[str, dict[str, str]], http: Any
) -> Pod:
    """Once keys are moving, SIGKILL a replica of the first venue group; its Deployment starts a new pod."""
    victim = next(p for p in pods if p.container.labels.get("keyrevoke.io/venue-egress") == "true")

    def moving() -> bool:
        return any(state != KeyState.PENDING.value for states in ledger.counts(incident).values() for state in states)

    await until(moving, 300)
    victim.stop(signal.SIGKILL)
    replacement = make_pod(victim.container, "replacement", cluster, config_maps)
    replacement.start()
    await _ready(http, replacement)
    return replacement
