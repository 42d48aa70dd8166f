"""The alert rules and the compose Prometheus (issue 30), checked by Prometheus' own promtool:
`check rules`, `check config` (which loads the rule files the config names) and `test rules`
(deploy/prometheus/alerts.test.yml), each also shown refusing a broken copy. Beside that,
what promtool cannot know: every alert has a runbook section and a unit test that fires it,
and compose mounts the rules where the config looks for them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RUNBOOK = ROOT / "docs" / "operations.md"
PROMTOOL = shutil.which("promtool")
RULES = [rule for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"] for rule in group["rules"]]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())

needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian's prometheus package; make test installs it where it can)")


def promtool(*args: str | Path, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd)


def copy_of_the_config(into: Path) -> Path:
    for name in ("prometheus.yml", "alerts.yml", "alerts.test.yml"):
        shutil.copy2(PROMETHEUS / name, into / name)
    return into


@needs_promtool
class TestPromtool:
    def test_promtool_accepts_the_rules_and_refuses_a_broken_copy(self, tmp_path: Path) -> None:
        done = promtool("check", "rules", "alerts.yml")
        assert done.returncode == 0 and f"SUCCESS: {len(RULES)} rules found" in done.stdout, done.stdout + done.stderr
        broken = (PROMETHEUS / "alerts.yml").read_text().replace('up{job="journey"} == 0', 'up{job="journey" == 0', 1)
        (tmp_path / "alerts.yml").write_text(broken)
        done = promtool("check", "rules", "alerts.yml", cwd=tmp_path)
        assert done.returncode != 0 and '"JourneyWorkerDown": could not parse expression' in done.stdout + done.stderr, done.stdout + done.stderr

    def test_promtool_accepts_the_config_and_its_rule_files_and_refuses_broken_ones(self, tmp_path: Path) -> None:
        done = promtool("check", "config", "prometheus.yml")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "SUCCESS: 1 rule files found" in done.stdout and f"SUCCESS: {len(RULES)} rules found" in done.stdout
        copy_of_the_config(tmp_path)
        (tmp_path / "alerts.yml").unlink()  # the rule file the config names is missing
        done = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
        assert done.returncode != 0 and "alerts.yml" in done.stdout + done.stderr
        copy_of_the_config(tmp_path)
        config = yaml.safe_load((tmp_path / "prometheus.yml").read_text())
        config["scrape_configs"][0]["dns_sd_configs"][0]["type"] = "AAAAA"
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        done = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
        assert done.returncode != 0 and "AAAAA" in done.stdout + done.stderr

    def test_the_rules_unit_tests_pass_and_fail_when_an_alert_is_changed(self, tmp_path: Path) -> None:
        done = promtool("test", "rules", "alerts.test.yml")
        assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr
        copy_of_the_config(tmp_path)
        rules = (tmp_path / "alerts.yml").read_text()
        (tmp_path / "alerts.yml").write_text(rules.replace("changes(process_start_time_seconds{job=\"journey\"}[30m]) > 1", "changes(process_start_time_seconds{job=\"journey\"}[30m]) > 2"))
        done = promtool("test", "rules", "alerts.test.yml", cwd=tmp_path)
        assert done.returncode != 0 and "JourneyWorkerRestarts" in done.stdout + done.stderr


class TestAlerts:
    def test_every_alert_has_a_severity_a_summary_and_a_runbook_section(self) -> None:
        headings = {re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-") for line in RUNBOOK.read_text().splitlines() if line.startswith("#")}
        for rule in RULES:
            assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]
            page, _, anchor = rule["annotations"]["runbook"].partition("#")
            assert page == "docs/operations.md" and anchor == rule["alert"].lower() and anchor in headings, rule["alert"]

    def test_every_alert_is_fired_by_a_unit_test(self) -> None:
        tests = yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())
        fired = {case["alertname"] for test in tests["tests"] for case in test["alert_rule_test"] if case["exp_alerts"]}
        quiet = {case["alertname"] for test in tests["tests"] for case in test["alert_rule_test"] if not case["exp_alerts"]}
        names = {rule["alert"] for rule in RULES}
        assert fired == names and quiet == names, (names - fired, names - quiet)

    def test_the_issues_alerts_are_there(self) -> None:
        expressions = " ".join(rule["expr"] for rule in RULES)
        for metric in ("up{", "journey_partitions_owned", "journey_consumer_lag", 'journey_records_processed_total{validity="invalid"}', "journey_batch_processing_seconds_bucket", "process_start_time_seconds"):
            assert metric in expressions


class TestComposePrometheus:
    def test_compose_mounts_the_rules_where_the_config_names_them(self) -> None:
        config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
        mounts = dict(v.split(":")[:2][::-1] for v in COMPOSE["services"]["prometheus"]["volumes"])
        assert mounts["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus/prometheus.yml"
        for rule_file in config["rule_files"]:
            assert mounts[f"/etc/prometheus/{rule_file}"] == f"./deploy/prometheus/{rule_file}"

    def test_workers_are_found_by_dns_so_every_replica_is_scraped(self) -> None:
        config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
        (job,) = config["scrape_configs"]
        assert job["job_name"] == "journey" and "static_configs" not in job  # the alert rules ask for job="journey"
        (discovery,) = job["dns_sd_configs"]
        worker = COMPOSE["services"]["worker"]
        assert discovery["names"] == ["worker"] and discovery["type"] == "A"
        assert discovery["port"] == int(worker["environment"]["JOURNEY_WEB_PORT"])

    def test_prometheus_does_not_wait_for_workers(self) -> None:
        assert "worker" not in COMPOSE["services"]["prometheus"].get("depends_on", {})
