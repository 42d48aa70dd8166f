"""The deployment hangs together (issues 6 and 30). No Docker engine runs here, so what can be checked is:
the real validators accept the files (docker-compose's own parser, the Kubernetes API schemas, kustomize
as kubectl runs it), and what no validator knows: every mounted file exists, every setting passed is one
journey reads, the services and probes point where the workers listen, the pods meet the restricted Pod
Security profile, compose scales and keeps Kafka's log, and no secret value ships. (The image build:
test_image.py; Prometheus and the alert rules: test_prometheus.py.)"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from projections import parse_definitions
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = ROOT / "deploy" / "k8s"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
K8S = [doc for doc in yaml.safe_load_all((K8S_DIR / "journey.yaml").read_text()) if doc]
KUSTOMIZATION = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
SETTINGS = {f"JOURNEY_{name.upper()}" for name in Settings.model_fields}


def journey_services() -> dict[str, dict]:
    return {name: s for name, s in COMPOSE["services"].items() if "build" in s}


KUBERNETES_VERSION = "1.33.0"  # what the manifests are held to; kubernetes-validate knows each release's schemas
DOCKER_COMPOSE = shutil.which("docker-compose")
KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed: the kustomize output (kubectl kustomize) cannot be rendered here")


def kustomize(directory: Path) -> list[dict]:
    done = subprocess.run([KUBECTL, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> list[dict]:
    """What `kubectl apply -k deploy/k8s` applies."""
    if KUBECTL is None:
        pytest.skip("kubectl not installed: the kustomize output (kubectl kustomize) cannot be rendered here")
    return kustomize(K8S_DIR)


def only(docs: list[dict], kind: str) -> dict:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


def pod_specs(docs: list[dict]) -> Iterator[tuple[str, dict]]:
    for doc in docs:
        template = doc.get("spec", {}).get("template") or doc.get("spec", {}).get("jobTemplate", {}).get("spec", {}).get("template")
        if doc["kind"] == "Pod":
            yield f"Pod/{doc['metadata']['name']}", doc["spec"]
        elif template:
            yield f"{doc['kind']}/{doc['metadata']['name']}", template["spec"]


def worker_container(docs: list[dict]) -> dict:
    return only(docs, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]


def env_of(container: dict) -> dict[str, str | None]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


# -- the restricted Pod Security profile (Kubernetes' Pod Security Standards, v1.33) ---------------------

ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}


def restricted_violations(spec: dict) -> list[str]:
    """What keeps a pod out of a namespace enforcing `restricted`, plus what journey asks on top
    (uid/gid/fsGroup 10001, a read-only root filesystem). Empty when the pod is admitted."""
    found = []
    pod = spec.get("securityContext", {})
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(host) is True:
            found.append(f"pod {host}")
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            found.append(f"volume {volume['name']}: {kinds - ALLOWED_VOLUMES}")
    if pod.get("sysctls"):
        found.append("pod sysctls")
    if pod.get("fsGroup") != 10001:
        found.append("pod fsGroup is not 10001")
    containers = [(kind, c) for kind in ("initContainers", "containers", "ephemeralContainers") for c in spec.get(kind, [])]
    if not containers:
        found.append("no containers")
    for kind, container in containers:
        name = f"{kind}/{container['name']}"
        own = container.get("securityContext", {})

        def effective(field: str, own: dict = own) -> object:
            return own.get(field, pod.get(field))

        if own.get("privileged"):
            found.append(f"{name}: privileged")
        if own.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation is not false")
        capabilities = own.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []):
            found.append(f"{name}: capabilities do not drop ALL")
        if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            found.append(f"{name}: adds capabilities {capabilities['add']}")
        if effective("runAsNonRoot") is not True:
            found.append(f"{name}: runAsNonRoot is not true")
        if effective("runAsUser") != 10001 or effective("runAsGroup") != 10001:
            found.append(f"{name}: does not run as 10001:10001")
        if (effective("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccompProfile is not RuntimeDefault")
        if own.get("readOnlyRootFilesystem") is not True:
            found.append(f"{name}: root filesystem is writable")
        if own.get("procMount", "Default") != "Default":
            found.append(f"{name}: procMount")
        if any(port.get("hostPort") for port in container.get("ports", [])):
            found.append(f"{name}: hostPort")
    return found


class TestValidators:
    @pytest.mark.skipif(DOCKER_COMPOSE is None, reason="docker-compose not installed (make test installs Debian's where it can)")
    def test_docker_compose_accepts_the_compose_file_and_refuses_a_broken_one(self, tmp_path: Path) -> None:
        def config(path: Path) -> subprocess.CompletedProcess[str]:
            return subprocess.run([DOCKER_COMPOSE, "-f", str(path), "--project-directory", str(ROOT), "config", "-q"], capture_output=True, text=True, timeout=60)

        done = config(ROOT / "docker-compose.yml")
        assert done.returncode == 0, done.stderr
        broken = copy.deepcopy(COMPOSE)
        broken["services"]["topics"]["depends_on"]["kafka-typo"] = {"condition": "service_healthy"}
        (tmp_path / "broken.yml").write_text(yaml.safe_dump(broken))
        done = config(tmp_path / "broken.yml")
        assert done.returncode != 0 and "kafka-typo" in done.stderr
        broken = copy.deepcopy(COMPOSE)
        broken["services"]["worker"]["deploy"]["replicas"] = "two"
        (tmp_path / "broken.yml").write_text(yaml.safe_dump(broken))
        done = config(tmp_path / "broken.yml")
        assert done.returncode != 0 and "replicas" in done.stderr

    @pytest.mark.parametrize("index", range(len(K8S)), ids=[f"{doc['kind']}/{doc['metadata']['name']}" for doc in K8S])
    def test_every_kubernetes_resource_is_valid_against_the_api_schema_strictly(self, index: int) -> None:
        kubernetes_validate.validate(K8S[index], KUBERNETES_VERSION, strict=True)

    def test_every_resource_kustomize_renders_is_valid_strictly(self, rendered: list[dict]) -> None:
        assert {d["kind"] for d in rendered} == {d["kind"] for d in K8S} | {"ConfigMap"}
        for doc in rendered:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)

    def test_the_kubernetes_validator_refuses_a_broken_manifest(self) -> None:
        workers = only(K8S, "StatefulSet")
        broken = copy.deepcopy(workers)
        broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
        with pytest.raises(kubernetes_validate.ValidationError, match="not of type 'integer'"):
            kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
        broken = copy.deepcopy(workers)
        broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)

    @needs_kubectl
    def test_kustomize_refuses_a_broken_kustomization(self, tmp_path: Path) -> None:
        shutil.copytree(K8S_DIR, tmp_path / "k8s")
        kustomization = copy.deepcopy(KUSTOMIZATION)
        kustomization["configMapGenerator"][0]["files"].append("missing.yaml")
        (tmp_path / "k8s" / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
        done = subprocess.run([KUBECTL, "kustomize", str(tmp_path / "k8s")], capture_output=True, text=True, timeout=60)
        assert done.returncode != 0 and "missing.yaml" in done.stderr


class TestCompose:
    def test_every_mounted_file_exists(self) -> None:
        for name, service in COMPOSE["services"].items():
            for volume in service.get("volumes", []):
                source, _, target = volume.partition(":")
                if not target:
                    assert source.startswith("/"), f"{name}: anonymous volume {source} must be an absolute path"
                elif source.startswith("./"):
                    assert (ROOT / source).exists(), f"{name} mounts missing {source}"
                else:
                    assert source in COMPOSE["volumes"], f"{name} uses undeclared volume {source}"

    def test_journey_services_pass_only_settings_journey_reads(self) -> None:
        for name, service in journey_services().items():
            unknown = set(service["environment"]) - SETTINGS
            assert not unknown, f"{name} sets {unknown}, which journey does not read"
            Settings(**{k.removeprefix("JOURNEY_").lower(): v for k, v in service["environment"].items()})

    def test_one_worker_service_scales_without_fixed_ports_names_or_volumes(self) -> None:
        workers = {n: s for n, s in journey_services().items() if s["command"] == ["worker"]}
        assert list(workers) == ["worker"], "one worker service, scaled with --scale worker=N"
        worker = workers["worker"]
        env = worker["environment"]
        assert env["JOURNEY_WEB_HOST"] == "auto" and env["JOURNEY_WEB_BIND"] == "0.0.0.0"
        assert Settings(web_host=env["JOURNEY_WEB_HOST"]).web_host not in ("auto", "127.0.0.1")
        assert env["JOURNEY_BROKER"] == "kafka://kafka:9092"
        assert worker["ports"] == [f"127.0.0.1::{env['JOURNEY_WEB_PORT']}"], "the container port on a free host port, per replica"
        assert not {"container_name", "hostname"} & set(worker), "a fixed name cannot be given to several replicas"
        data = [v for v in worker["volumes"] if v.split(":")[-1] == env["JOURNEY_DATA_DIR"] or v == env["JOURNEY_DATA_DIR"]]
        assert data == [env["JOURNEY_DATA_DIR"]], "the data dir is an anonymous volume: one per container"
        assert worker["deploy"]["replicas"] == 2

    def test_the_worker_healthcheck_is_readiness_with_time_to_recover(self) -> None:
        check = COMPOSE["services"]["worker"]["healthcheck"]
        assert "/readyz" in " ".join(check["test"]) and check["start_period"] == "10m"

    def test_the_topics_step_runs_before_the_workers(self) -> None:
        assert COMPOSE["services"]["topics"]["command"] == ["topics"]
        for service in journey_services().values():
            if service["command"] == ["worker"]:
                assert service["depends_on"]["topics"]["condition"] == "service_completed_successfully"

    def test_kafka_is_single_node_kraft_with_the_internal_listener_workers_use(self) -> None:
        env = COMPOSE["services"]["kafka"]["environment"]
        assert COMPOSE["services"]["kafka"]["image"].startswith("apache/kafka:")
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller" and "kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 1

    def test_kafka_keeps_its_log_on_a_named_volume_across_down_and_up(self) -> None:
        kafka = COMPOSE["services"]["kafka"]
        env = kafka["environment"]
        # apache/kafka's default log dir is /tmp/kraft-combined-logs, in the container: it must be set
        mounts = dict(v.split(":")[:2][::-1] for v in kafka["volumes"])
        volume = mounts[env["KAFKA_LOG_DIRS"]]
        assert volume in COMPOSE["volumes"] and not volume.startswith((".", "/"))
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"]), "the formatted log dir must find the same cluster id at every start"

    def test_every_published_port_is_bound_to_localhost(self) -> None:
        for name, service in COMPOSE["services"].items():
            for port in service.get("ports", []):
                assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"

    def test_nothing_waits_for_a_worker_to_be_healthy(self) -> None:
        for name, service in COMPOSE["services"].items():
            assert "worker" not in service.get("depends_on", {}), f"{name} waits for the workers"

    def test_grafana_asks_for_a_login(self) -> None:
        env = COMPOSE["services"]["grafana"]["environment"]
        assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false" and env["GF_USERS_ALLOW_SIGN_UP"] == "false"
        assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD")

    def test_grafana_provisioning_points_at_prometheus_and_the_dashboard(self) -> None:
        source = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"][0]
        assert source["url"] == "http://prometheus:9090"
        provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/journey.yml").read_text())["providers"][0]
        mounts = dict(v.split(":")[:2][::-1] for v in COMPOSE["services"]["grafana"]["volumes"])
        assert any(target.startswith(provider["options"]["path"]) for target in mounts)
        dashboard = json.loads((ROOT / "deploy/grafana/dashboards/journey.json").read_text())
        assert all(p["datasource"]["uid"] == source["uid"] for p in dashboard["panels"])

    def test_the_mounted_definitions_are_valid(self) -> None:
        parse_definitions((ROOT / "deploy" / "definitions.yaml").read_text(), "deploy/definitions.yaml")

    def test_the_dockerfile_runs_journey_as_10001_and_checks_healthz(self) -> None:
        dockerfile = (ROOT / "Dockerfile").read_text()
        assert 'ENTRYPOINT ["journey"]' in dockerfile and "/healthz" in dockerfile
        assert "USER 10001:10001" in dockerfile, "numeric, so the kubelet can verify runAsNonRoot"
        for env in re.findall(r"(JOURNEY_\w+)=", dockerfile):
            assert env in SETTINGS


class TestKubernetes:
    def test_workers_are_a_statefulset_with_a_volume_per_pod(self) -> None:
        workers = only(K8S, "StatefulSet")
        container = worker_container(K8S)
        assert workers["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
        assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]
        env = env_of(container)
        assert set(env) - {"POD_NAME"} <= SETTINGS
        assert env["JOURNEY_DATA_DIR"] == "/data" and env["JOURNEY_WEB_PORT"] == str(container["ports"][0]["containerPort"])
        assert env["JOURNEY_WEB_HOST"] == f"$(POD_NAME).{workers['spec']['serviceName']}"
        assert env["JOURNEY_STANDBY_REPLICAS"] == "1"
        Settings(**{k.removeprefix("JOURNEY_").lower(): v for k, v in env.items() if k.startswith("JOURNEY_") and not k.endswith("_FILE")})

    def test_every_setting_any_pod_passes_is_one_journey_reads(self) -> None:
        for where, spec in pod_specs(K8S):
            for container in spec["containers"]:
                assert set(env_of(container)) - {"POD_NAME"} <= SETTINGS, where

    def test_probes_readiness_and_startup_on_readyz_liveness_on_healthz(self) -> None:
        container = worker_container(K8S)
        startup, readiness, liveness = (container[p] for p in ("startupProbe", "readinessProbe", "livenessProbe"))
        assert liveness["httpGet"] == {"path": "/healthz", "port": "http"}
        assert readiness["httpGet"] == {"path": "/readyz", "port": "http"} and startup["httpGet"] == {"path": "/readyz", "port": "http"}
        assert readiness != liveness and startup != liveness
        assert startup["failureThreshold"] * startup["periodSeconds"] >= 600, "a restore from the changelog takes minutes"
        assert container["ports"][0]["name"] == "http"

    def test_rocksdb_memory_fits_the_limit(self) -> None:
        """docs/operations.md (Sizing): RocksDB's shared cache and write buffers take at most half the memory
        limit, the rest is the Python heap; the request holds at least what RocksDB takes."""
        container = worker_container(K8S)
        env = env_of(container)
        rocksdb = int(env["JOURNEY_ROCKSDB_CACHE_MB"]) + int(env["JOURNEY_ROCKSDB_WRITE_BUFFER_MB"])

        def mib(quantity: str) -> int:
            number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()
            return int(number) * (1024 if unit == "Gi" else 1)

        assert rocksdb <= mib(container["resources"]["limits"]["memory"]) / 2
        assert rocksdb <= mib(container["resources"]["requests"]["memory"])

    def test_services_select_the_worker_pods(self) -> None:
        workers = only(K8S, "StatefulSet")
        labels = workers["spec"]["template"]["metadata"]["labels"]
        services = {s["metadata"]["name"]: s for s in K8S if s["kind"] == "Service"}
        headless = services[workers["spec"]["serviceName"]]["spec"]
        assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True
        for service in services.values():
            assert service["spec"]["selector"].items() <= labels.items()

    def test_a_pod_disruption_budget_selects_the_workers(self) -> None:
        budget = only(K8S, "PodDisruptionBudget")["spec"]
        workers = only(K8S, "StatefulSet")
        assert budget["selector"]["matchLabels"].items() <= workers["spec"]["template"]["metadata"]["labels"].items()
        assert budget.get("maxUnavailable") == 1 and workers["spec"]["replicas"] > 1

    def test_a_job_creates_the_topics(self) -> None:
        job = only(K8S, "Job")
        assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["topics"]
        assert job["spec"]["ttlSecondsAfterFinished"] > 0


class TestRestrictedProfile:
    @pytest.mark.parametrize("where", [w for w, _ in pod_specs(K8S)])
    def test_every_pod_meets_the_restricted_profile(self, where: str) -> None:
        spec = dict(pod_specs(K8S))[where]
        assert restricted_violations(spec) == []

    def test_every_rendered_pod_meets_it_too(self, rendered: list[dict]) -> None:
        specs = dict(pod_specs(rendered))
        assert len(specs) == 2
        for where, spec in specs.items():
            assert restricted_violations(spec) == [], where

    @pytest.mark.parametrize(
        ("change", "complaint"),
        [
            (lambda s: s["securityContext"].pop("runAsNonRoot"), "runAsNonRoot"),
            (lambda s: s["securityContext"].update(runAsUser=0), "10001"),
            (lambda s: s["securityContext"].pop("seccompProfile"), "seccompProfile"),
            (lambda s: s["securityContext"].pop("fsGroup"), "fsGroup"),
            (lambda s: s["containers"][0]["securityContext"].update(allowPrivilegeEscalation=True), "allowPrivilegeEscalation"),
            (lambda s: s["containers"][0]["securityContext"].pop("capabilities"), "drop ALL"),
            (lambda s: s["containers"][0]["securityContext"].update(readOnlyRootFilesystem=False), "root filesystem"),
            (lambda s: s["containers"][0]["securityContext"].update(capabilities={"drop": ["ALL"], "add": ["NET_ADMIN"]}), "adds capabilities"),
            (lambda s: s["volumes"].append({"name": "host", "hostPath": {"path": "/"}}), "hostPath"),
            (lambda s: s.update(hostNetwork=True), "hostNetwork"),
            (lambda s: s.setdefault("initContainers", []).append({"name": "init", "image": "busybox"}), "initContainers/init"),
        ],
        ids=["runAsNonRoot", "root", "seccomp", "fsGroup", "escalation", "capabilities", "writable-root", "add-cap", "hostPath", "hostNetwork", "init-container"],
    )
    def test_the_check_refuses_a_pod_that_breaks_the_profile(self, change, complaint: str) -> None:
        spec = copy.deepcopy(only(K8S, "StatefulSet")["spec"]["template"]["spec"])
        change(spec)
        assert any(complaint in v for v in restricted_violations(spec)), restricted_violations(spec)

    def test_a_scratch_volume_is_mounted_at_tmp_in_every_container(self) -> None:
        for where, spec in pod_specs(K8S):
            scratch = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
            for container in spec["containers"]:
                assert any(m["mountPath"] == "/tmp" and m["name"] in scratch for m in container["volumeMounts"]), where


class TestSecretsAndConfig:
    SECRET_WORDS = re.compile(r"TOKEN|PASSWORD|SECRET|KEY", re.I)

    def check_no_secret_values(self, docs: list[dict]) -> None:
        for doc in docs:
            if doc["kind"] == "Secret":
                assert not doc.get("data") and not doc.get("stringData"), f"Secret/{doc['metadata']['name']} ships values"
        for where, spec in pod_specs(docs):
            for container in spec["containers"]:
                for env in container.get("env", []):
                    if self.SECRET_WORDS.search(env["name"]):
                        assert env["name"].endswith("_FILE") and env["value"].startswith("/"), f"{where}: {env['name']} carries a secret, not a file"
                        assert "valueFrom" not in env, f"{where}: {env['name']} takes a secret into the environment"

    def test_no_secret_value_ships_and_tokens_are_files(self) -> None:
        self.check_no_secret_values(K8S)
        assert "change-me" not in (K8S_DIR / "journey.yaml").read_text()

    def test_the_check_refuses_a_shipped_secret_and_a_token_in_the_environment(self) -> None:
        with pytest.raises(AssertionError, match="ships values"):
            self.check_no_secret_values([*K8S, {"kind": "Secret", "metadata": {"name": "t"}, "stringData": {"ingest-token": "x"}}])
        broken = copy.deepcopy(K8S)
        env = worker_container(broken)["env"]
        env.append({"name": "JOURNEY_INGEST_TOKEN", "valueFrom": {"secretKeyRef": {"name": "journey-tokens", "key": "ingest-token"}}})
        with pytest.raises(AssertionError, match="JOURNEY_INGEST_TOKEN"):
            self.check_no_secret_values(broken)

    def test_every_token_file_is_in_the_mounted_secret(self) -> None:
        container = worker_container(K8S)
        spec = only(K8S, "StatefulSet")["spec"]["template"]["spec"]
        secrets = {v["name"]: v["secret"] for v in spec["volumes"] if "secret" in v}
        (mount,) = [m for m in container["volumeMounts"] if m["name"] in secrets]
        assert mount["readOnly"] is True and secrets[mount["name"]]["secretName"] == "journey-tokens"
        files = {k: v for k, v in env_of(container).items() if k.endswith("_TOKEN_FILE")}
        assert set(files) == {"JOURNEY_INGEST_TOKEN_FILE", "JOURNEY_READ_TOKEN_FILE", "JOURNEY_ADMIN_TOKEN_FILE"}
        for name, path in files.items():
            assert path == f"{mount['mountPath']}/{name.removeprefix('JOURNEY_').removesuffix('_TOKEN_FILE').lower()}-token"
        operations = (ROOT / "docs" / "operations.md").read_text()
        assert re.search(r"kubectl (-n \S+ )?create secret generic journey-tokens", operations)
        for key in ("ingest-token", "read-token", "admin-token"):
            assert f"--from-literal={key}=" in operations or f"--from-file={key}=" in operations

    def test_the_generated_configmap_holds_the_shipped_definitions_and_event_map(self) -> None:
        (generator,) = KUSTOMIZATION["configMapGenerator"]
        assert generator["name"] == "journey-definitions"
        for name in generator["files"]:
            assert (K8S_DIR / name).read_text() == (ROOT / "deploy" / name).read_text(), f"deploy/k8s/{name} differs from deploy/{name}"
        parse_definitions((K8S_DIR / "definitions.yaml").read_text(), "deploy/k8s/definitions.yaml")
        container = worker_container(K8S)
        env = env_of(container)
        spec = only(K8S, "StatefulSet")["spec"]["template"]["spec"]
        (volume,) = [v for v in spec["volumes"] if v.get("configMap", {}).get("name") == generator["name"]]
        mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
        assert env["JOURNEY_DEFINITIONS"] == f"{mount['mountPath']}/definitions.yaml"
        assert env["JOURNEY_SEGMENT_EVENTS"] == f"{mount['mountPath']}/segment-events.yaml"

    def test_a_changed_definition_rolls_the_workers(self, rendered: list[dict], tmp_path: Path) -> None:
        """The generated ConfigMap's name carries a hash of its content and the StatefulSet's pod template
        refers to it: a changed file is a changed pod template, which Kubernetes rolls out pod by pod."""
        config = only(rendered, "ConfigMap")["metadata"]["name"]
        assert re.fullmatch(r"journey-definitions-[a-z0-9]{10}", config)
        template = only(rendered, "StatefulSet")["spec"]["template"]
        assert any(v.get("configMap", {}).get("name") == config for v in template["spec"]["volumes"])
        shutil.copytree(K8S_DIR, tmp_path / "k8s")
        definitions = tmp_path / "k8s" / "definitions.yaml"
        definitions.write_text(definitions.read_text().replace("mql_min_content_reads: 2", "mql_min_content_reads: 3"))
        changed = kustomize(tmp_path / "k8s")
        assert only(changed, "ConfigMap")["metadata"]["name"] != config
        assert only(changed, "StatefulSet")["spec"]["template"] != template
        unchanged = kustomize(K8S_DIR)
        assert only(unchanged, "StatefulSet")["spec"]["template"] == template, "the same files, the same pods"

    def test_the_pods_name_the_image_kustomize_sets_and_pull_it_if_not_present(self) -> None:
        (image,) = KUSTOMIZATION["images"]
        for where, spec in pod_specs(K8S):
            for container in spec["containers"]:
                assert container["image"] == image["name"] and container["imagePullPolicy"] == "IfNotPresent", where

    def test_the_image_is_one_the_operator_sets_never_latest(self, rendered: list[dict]) -> None:
        (image,) = KUSTOMIZATION["images"]
        assert image["newTag"] and image["newTag"] != "latest"
        for where, spec in pod_specs(rendered):
            for container in spec["containers"]:
                assert container["image"] == f"{image['newName']}:{image['newTag']}" and container["imagePullPolicy"] == "IfNotPresent", where
