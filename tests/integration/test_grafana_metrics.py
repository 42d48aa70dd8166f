"""The Grafana dashboard and the alert rules ask only for metrics a live worker exports (issues 6 and 30)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import produce, report_when_counted

pytestmark = pytest.mark.timeout(240)
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "journey.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
METRIC = re.compile(r"\b(?:journey|process|python)_[a-z_]+")
# Metrics the rules use that a worker does not export yet: none (a labelled counter has no sample before its
# first count, so the test sends the ingest requests that make journey_ingest_requests_total's).
NOT_YET_WIRED: set[str] = set()


def exported_names(metrics: str) -> set[str]:
    return {line.split("{")[0].split(" ")[0] for line in metrics.splitlines() if line and not line.startswith("#")}


def test_every_metric_in_the_grafana_dashboard_and_the_alert_rules_is_exported_by_a_worker(broker, start_worker, golden_log) -> None:
    produce(broker, golden_log)
    worker = start_worker()
    report_when_counted(worker, len(golden_log))
    assert worker.request("POST", "/api/events", b"{}", "application/json")[0] in (401, 403)  # no ingest token set
    assert worker.request("GET", "/api/ingest/segment")[0] == 405
    metrics = worker.text("/metrics")
    exported = exported_names(metrics)
    dashboard = {name for panel in json.loads(DASHBOARD.read_text())["panels"] for target in panel["targets"] for name in METRIC.findall(target["expr"])}
    assert dashboard and dashboard <= exported, dashboard - exported
    rules = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    alerted = {name for rule in rules for name in METRIC.findall(rule["expr"])}
    assert alerted and alerted <= exported | NOT_YET_WIRED, alerted - exported - NOT_YET_WIRED
    for sample in (
        'journey_invalid_records_total{reason="occurred_at"}',
        'journey_consumer_lag{partition="0"}',
        'journey_events{result="invalid"} 36.0',
        'journey_records_processed_total{validity="invalid"} 36.0',
        "journey_watermark_timestamp_seconds ",
        "journey_rebalances_total 1.0",
        "journey_topic_partitions 8.0",
        'journey_ingest_requests_total{endpoint="/api/ingest/segment",status="405"} 1.0',
        "process_resident_memory_bytes ",
        "process_start_time_seconds ",
    ):
        assert sample in metrics, sample
    assert "journey_watermark_seconds " not in metrics and 'journey_records_processed_total{result=' not in metrics
