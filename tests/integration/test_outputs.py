"""What a worker publishes besides its tables: dead letters, lead changes (issue 3)."""

from __future__ import annotations

import itertools
from collections import defaultdict

import orjson
import pytest

from schemas import Rejection, decode
from streams.kafka import topics
from tests.integration.conftest import produce, read_topic, report_when_counted

pytestmark = pytest.mark.timeout(240)


class TestDeadLetters:
    def test_every_invalid_record_is_in_the_dlq_with_its_reason_and_bytes(self, broker, start_worker, golden_log) -> None:
        produce(broker, golden_log)
        report_when_counted(start_worker(), len(golden_log))
        letters = read_topic(broker.url.removeprefix("kafka://"), topics.DLQ, 1)
        expected = sorted((record, decode(record).reason) for record in golden_log if isinstance(decode(record), Rejection))
        found = sorted((m.value, dict(m.headers)["reason"].decode()) for m in letters)
        assert len(found) == 36 and found == expected
        headers = dict(letters[0].headers)
        assert headers["source-topic"] == b"journey.events"
        assert headers["source-partition"].isdigit() and headers["source-offset"].isdigit()


class TestLeadChanges:
    def test_following_the_changes_of_each_lead_ends_at_its_expected_stage_and_level(
        self, broker, start_worker, golden_log, expected_leads
    ) -> None:
        produce(broker, golden_log)
        report_when_counted(start_worker(), len(golden_log))
        changes = [orjson.loads(m.value) for m in read_topic(broker.url.removeprefix("kafka://"), topics.LEAD_CHANGES, 8)]
        by_lead: dict[str, list[dict]] = defaultdict(list)
        for change in changes:
            by_lead[change["lead_id"]].append(change)
        assert set(by_lead) == {lead["lead_id"] for lead in expected_leads}
        for lead in expected_leads:
            chain = by_lead[lead["lead_id"]]
            assert chain[0]["old"] == {"stage": None, "qualification": None}
            for before, after in itertools.pairwise(chain):
                assert after["old"] == before["new"]  # each change starts where the last one ended
            assert chain[-1]["new"] == {"stage": lead["stage"], "qualification": lead["qualification"]}, chain

    def test_a_lead_turning_sal_by_staleness_is_published_with_the_watermark_as_cause(self, broker, start_worker) -> None:
        def event(lead: str, eid: str, kind: str, at: str) -> bytes:
            return orjson.dumps({"event_id": eid, "lead_id": lead, "type": kind, "occurred_at": at})

        produce(broker, [event("A", "1", "content_read", "2026-09-01T00:00:00Z"), event("A", "2", "content_read", "2026-09-02T00:00:00Z")])
        worker = start_worker()
        report_when_counted(worker, 2)
        produce(broker, [event("B", "1", "ad_seen", "2026-09-20T00:00:00Z")])  # moves the watermark 18 days on
        report_when_counted(worker, 3)
        changes = [orjson.loads(m.value) for m in read_topic(broker.url.removeprefix("kafka://"), topics.LEAD_CHANGES, 8)]
        of_a = [c for c in changes if c["lead_id"] == "A"]
        # Changes are coalesced per batch: both reads arrive together, so A goes from nothing to MQL at once.
        assert [(c["old"]["qualification"], c["new"]["qualification"]) for c in of_a] == [(None, "mql"), ("mql", "sal")]
        assert of_a[-1]["cause"] == {"watermark": True}
        assert of_a[-1]["occurred_at"] == "2026-09-15T00:00:00.000000Z"  # research entered 09-01, + 14 days


class TestDlqCommand:
    def test_journey_dlq_counts_dead_letters_by_reason_class_with_samples(self, broker, start_worker, golden_log) -> None:
        import json
        import subprocess

        from tests.integration.conftest import JOURNEY

        produce(broker, golden_log)
        report_when_counted(start_worker(), len(golden_log))
        done = subprocess.run([JOURNEY, "dlq", "--broker", broker.url, "--format", "json", "--samples", "2"], capture_output=True, timeout=60)
        summary = json.loads(done.stdout)
        assert summary["total"] == 36
        counts = {kind: entry["count"] for kind, entry in summary["by_class"].items()}
        assert counts == {"occurred_at": 9, "type": 6, "lead_id": 4, "not_object": 4, "not_json": 3, "event_id": 3, "too_large": 3, "amount": 3, "inbound": 1}
        assert all(len(entry["samples"]) <= 2 for entry in summary["by_class"].values())
        large = summary["by_class"]["too_large"]["samples"][0]
        assert large["size"] > 65536 and large["source"]["topic"] == "journey.events"
        text = subprocess.run([JOURNEY, "dlq", "--broker", broker.url], capture_output=True, timeout=60).stdout.decode()
        assert text.startswith("journey.events.dlq: 36 records") and "occurred_at" in text


class TestPrivacy:
    def test_lead_ids_appear_in_no_log_line_above_debug_and_no_metric(self, broker, start_worker, golden_log, tmp_path) -> None:
        produce(broker, golden_log)
        worker = start_worker("private", env={"JOURNEY_LOG_LEVEL": "info"})
        report_when_counted(worker, len(golden_log))
        for lead in ("L11-000002", "L11-000100", "not-a-lead@example.com"):
            worker.get(f"/api/leads/{lead}")
        worker.get("/api/report")
        log = (tmp_path / "private.log").read_text(errors="replace")
        assert "INFO" in log  # the log is on, at info
        assert "L11-" not in log and "example.com" not in log
        assert "L11-" not in worker.text("/metrics")
