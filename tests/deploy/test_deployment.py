"""The deployment hangs together (issue 6). No Docker engine runs here, so what can be checked is:
the real validators accept the files (docker-compose's own parser, the Kubernetes API schemas),
and what no validator knows: every mounted file exists, every setting passed is one journey reads,
the services and probes point where the workers listen."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from projections import parse_definitions
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
K8S = [doc for doc in yaml.safe_load_all((ROOT / "deploy" / "k8s" / "journey.yaml").read_text()) if doc]
SETTINGS = {f"JOURNEY_{name.upper()}" for name in Settings.model_fields}


def journey_services() -> dict[str, dict]:
    return {name: s for name, s in COMPOSE["services"].items() if "build" in s}


KUBERNETES_VERSION = "1.33.0"  # what the manifests are held to; kubernetes-validate knows each release's schemas
DOCKER_COMPOSE = shutil.which("docker-compose")


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

    @pytest.mark.parametrize("index", range(len(K8S)), ids=[f"{doc['kind']}/{doc['metadata']['name']}" for doc in K8S])
    def test_every_kubernetes_resource_is_valid_against_the_api_schema_strictly(self, index: int) -> None:
        kubernetes_validate.validate(K8S[index], KUBERNETES_VERSION, strict=True)

    def test_the_kubernetes_validator_refuses_a_broken_manifest(self) -> None:
        (workers,) = [doc for doc in K8S if doc["kind"] == "StatefulSet"]
        broken = copy.deepcopy(workers)
        broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
        with pytest.raises(kubernetes_validate.ValidationError, match="not of type 'integer'"):
            kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
        broken = copy.deepcopy(workers)
        broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


class TestCompose:
    def test_every_mounted_file_exists(self) -> None:
        for name, service in COMPOSE["services"].items():
            for volume in service.get("volumes", []):
                source = volume.split(":")[0]
                if source.startswith("./"):
                    assert (ROOT / source).exists(), f"{name} mounts missing {source}"
                else:
                    assert source in COMPOSE["volumes"], f"{name} uses undeclared volume {source}"

    def test_journey_services_pass_only_settings_journey_reads(self) -> None:
        for name, service in journey_services().items():
            unknown = set(service["environment"]) - SETTINGS
            assert not unknown, f"{name} sets {unknown}, which journey does not read"
            Settings(**{k.removeprefix("JOURNEY_").lower(): v for k, v in service["environment"].items()})

    def test_workers_publish_their_web_port_and_advertise_their_own_name(self) -> None:
        workers = {n: s for n, s in journey_services().items() if s["command"] == ["worker"]}
        assert len(workers) == 2
        for name, service in workers.items():
            env = service["environment"]
            assert env["JOURNEY_WEB_HOST"] == name and env["JOURNEY_WEB_BIND"] == "0.0.0.0"
            assert any(port.endswith(f":{env['JOURNEY_WEB_PORT']}") for port in service["ports"])
            assert env["JOURNEY_BROKER"] == "kafka://kafka:9092"

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

    def test_prometheus_scrapes_each_worker_on_its_port(self) -> None:
        config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
        targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
        workers = {f"{n}:{s['environment']['JOURNEY_WEB_PORT']}" for n, s in journey_services().items() if s["command"] == ["worker"]}
        assert targets == workers

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

    def test_the_dockerfile_runs_journey_and_checks_healthz(self) -> None:
        dockerfile = (ROOT / "Dockerfile").read_text()
        assert 'ENTRYPOINT ["journey"]' in dockerfile and "/healthz" in dockerfile
        for env in re.findall(r"(JOURNEY_\w+)=", dockerfile):
            assert env in SETTINGS


class TestKubernetes:
    def kind(self, kind: str) -> list[dict]:
        return [doc for doc in K8S if doc["kind"] == kind]

    def test_workers_are_a_statefulset_with_a_volume_per_pod_and_probes_on_healthz(self) -> None:
        (workers,) = self.kind("StatefulSet")
        container = workers["spec"]["template"]["spec"]["containers"][0]
        assert workers["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
        assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert set(env) - {"POD_NAME"} <= SETTINGS
        assert env["JOURNEY_DATA_DIR"] == "/data" and env["JOURNEY_WEB_PORT"] == str(container["ports"][0]["containerPort"])
        assert env["JOURNEY_WEB_HOST"] == f"$(POD_NAME).{workers['spec']['serviceName']}"

    def test_services_select_the_worker_pods(self) -> None:
        (workers,) = self.kind("StatefulSet")
        labels = workers["spec"]["template"]["metadata"]["labels"]
        services = {s["metadata"]["name"]: s for s in self.kind("Service")}
        assert workers["spec"]["serviceName"] in services and services[workers["spec"]["serviceName"]]["spec"]["clusterIP"] == "None"
        for service in services.values():
            assert service["spec"]["selector"].items() <= labels.items()

    def test_the_definitions_configmap_is_valid_and_mounted_where_the_worker_reads_it(self) -> None:
        (config,) = self.kind("ConfigMap")
        parse_definitions(config["data"]["definitions.yaml"], "configmap")
        (workers,) = self.kind("StatefulSet")
        container = workers["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        mount = next(m for m in container["volumeMounts"] if m["name"] == "definitions")
        assert env["JOURNEY_DEFINITIONS"] == f"{mount['mountPath']}/definitions.yaml"

    def test_the_segment_event_map_is_the_shipped_one_and_read_where_mounted(self) -> None:
        (config,) = self.kind("ConfigMap")
        assert config["data"]["segment-events.yaml"] == (ROOT / "deploy" / "segment-events.yaml").read_text()
        (workers,) = self.kind("StatefulSet")
        container = workers["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        mount = next(m for m in container["volumeMounts"] if m["name"] == "definitions")
        assert env["JOURNEY_SEGMENT_EVENTS"] == f"{mount['mountPath']}/segment-events.yaml"

    def test_a_job_creates_the_topics(self) -> None:
        (job,) = self.kind("Job")
        assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["topics"]
