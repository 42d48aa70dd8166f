"""Live processing on the embedded broker equals `journey replay` of the same log (issue 3)."""

from __future__ import annotations

import random
import signal
from pathlib import Path
from urllib.parse import quote

import pytest

from projections import default_definitions
from projections.stored import progress_key
from tests.helpers import same_instants
from tests.integration.conftest import produce, report_when_counted, spec_report

pytestmark = pytest.mark.timeout(240)


def leads_match(worker, expected_leads: list[dict]) -> None:
    for lead in expected_leads:
        status, body = worker.get(f"/api/leads/{lead['lead_id']}")
        assert status == 200 and same_instants(body, lead), (lead, body)


class TestOneWorker:
    def test_report_and_every_lead_equal_the_golden_files(self, broker, start_worker, golden_log, expected_report, expected_leads) -> None:
        produce(broker, golden_log)
        worker = start_worker()
        assert same_instants(report_when_counted(worker, len(golden_log)), expected_report)
        leads_match(worker, expected_leads)

    def test_an_unknown_lead_is_a_404_with_a_json_error(self, broker, start_worker, golden_log) -> None:
        produce(broker, golden_log[:10])
        worker = start_worker()
        report_when_counted(worker, 10)
        status, body = worker.get("/api/leads/no-such-lead")
        assert status == 404 and body["error"] == "unknown lead"
        # a partition's progress shares the lead table under a key no lead id can have
        hidden = quote(progress_key(0), safe="")
        status, body = worker.get(f"/api/leads/{hidden}")
        assert status == 404 and body["error"] == "unknown lead"

    def test_events_produced_while_the_worker_runs_are_projected(self, broker, start_worker, golden_log, expected_report) -> None:
        worker = start_worker()
        produce(broker, golden_log[:800])
        report_when_counted(worker, 800)
        produce(broker, golden_log[800:])
        assert same_instants(report_when_counted(worker, len(golden_log)), expected_report)

    def test_health_and_prometheus_metrics_without_lead_ids(self, broker, start_worker, golden_log) -> None:
        produce(broker, golden_log)
        worker = start_worker()
        report_when_counted(worker, len(golden_log))
        assert worker.get("/healthz") == (200, {"status": "ok", "ready": True, "partitions": list(range(8)), "definitions": default_definitions().digest, "shadow": None})
        metrics = worker.text("/metrics")
        assert 'journey_events{result="valid"} 1605.0' in metrics
        assert 'journey_leads_by_stage{stage="explore"} 136.0' in metrics
        assert "L11-" not in metrics


class TestTwoWorkers:
    def test_both_answer_the_report_and_every_lead(self, broker, start_worker, golden_log, expected_report, expected_leads) -> None:
        first = start_worker("w1")
        second = start_worker("w2")
        produce(broker, golden_log)
        for worker in (first, second):
            assert same_instants(report_when_counted(worker, len(golden_log)), expected_report)
        owned = [set(w.get("/healthz")[1]["partitions"]) for w in (first, second)]
        assert owned[0] and owned[1] and owned[0].isdisjoint(owned[1])
        leads_match(first, expected_leads[::2])
        leads_match(second, expected_leads[1::2])


class TestArrivalOrder:
    def test_a_shuffled_log_gives_the_same_report(self, broker, start_worker, golden_log, expected_report) -> None:
        shuffled = list(golden_log)
        random.Random(5).shuffle(shuffled)
        produce(broker, shuffled)
        assert same_instants(report_when_counted(start_worker(), len(golden_log)), expected_report)

    def test_every_record_sent_twice_changes_only_the_duplicate_count(self, broker, start_worker, golden_log, expected_report) -> None:
        produce(broker, golden_log + golden_log)
        report = report_when_counted(start_worker(), 2 * len(golden_log))
        valid = expected_report["events"]["valid"]
        dup = expected_report["events"]["duplicates"]
        expected = {**expected_report, "events": {"valid": valid, "invalid": 72, "duplicates": 2 * dup + valid}}
        assert same_instants(report, expected)


class TestRestart:
    @pytest.mark.parametrize("fresh_data_dir", [False, True], ids=["same data dir", "fresh data dir"])
    def test_a_restarted_worker_reports_the_same_and_counts_nothing_twice(
        self, broker, start_worker, golden_log, expected_report, tmp_path: Path, fresh_data_dir: bool
    ) -> None:
        produce(broker, golden_log[:1000])
        worker = start_worker("w1")
        report_when_counted(worker, 1000)
        worker.stop(signal.SIGINT)
        produce(broker, golden_log[1000:])
        again = start_worker("w2" if fresh_data_dir else "w1", data_dir=tmp_path / ("w2" if fresh_data_dir else "w1"))
        assert same_instants(report_when_counted(again, len(golden_log)), expected_report)
        assert same_instants(spec_report(again.get("/api/report")[1]), expected_report)
