"""The Grafana dashboard asks only for metrics a live worker exports (issue 6)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.integration.conftest import produce, report_when_counted

pytestmark = pytest.mark.timeout(240)
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards" / "journey.json"


def test_every_metric_in_the_grafana_dashboard_is_exported_by_a_worker(broker, start_worker, golden_log) -> None:
    produce(broker, golden_log)
    worker = start_worker()
    report_when_counted(worker, len(golden_log))
    exported = {line.split("{")[0].split(" ")[0] for line in worker.text("/metrics").splitlines() if line.startswith("journey_")}
    wanted = {name for panel in json.loads(DASHBOARD.read_text())["panels"] for target in panel["targets"] for name in re.findall(r"journey_\w+", target["expr"])}
    assert wanted and wanted <= exported, wanted - exported
    for label in ('journey_invalid_records_total{reason="occurred_at"}', 'journey_consumer_lag{partition="0"}', 'journey_events{result="invalid"} 36.0'):
        assert label in worker.text("/metrics")
