"""Attribution from live workers (SPEC §4, §5): the golden attribution log through two workers,
in /api/report, /api/leads/{id} and /api/attribution, equal to the expected vectors."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import pytest

from tests.helpers import same_instants
from tests.integration.conftest import produce, report_when_counted, spec_report

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def rich(golden: Path) -> tuple[list[bytes], dict, list[dict]]:
    log = [line for line in (golden / "journey-rich.jsonl").read_bytes().split(b"\n") if line.strip()]
    report = json.loads((golden / "expected-rich-report.json").read_text())
    leads = [json.loads(line) for line in (golden / "expected-rich-leads.jsonl").read_text().splitlines() if line]
    return log, report, leads


@pytest.fixture(scope="module")
def workers(shared_broker, start_shared_worker, rich):
    """Two workers projecting the attribution log; the tests only read."""
    log, _, _ = rich
    produce(shared_broker, log)
    first, second = start_shared_worker("w1"), start_shared_worker("w2")
    report_when_counted(first, len(log))
    return first, second


class TestAttributionLive:
    def test_the_report_of_either_worker_equals_the_expected_report(self, workers, rich) -> None:
        _, expected, _ = rich
        for worker in workers:
            status, report = worker.get("/api/report")
            assert status == 200 and same_instants(spec_report(report), expected)

    def test_every_lead_has_its_first_touch_and_revenue_from_either_worker(self, workers, rich) -> None:
        _, _, leads = rich
        for i, lead in enumerate(leads):
            status, body = workers[i % 2].get("/api/leads/" + urllib.parse.quote(lead["lead_id"], safe=""))
            assert status == 200 and same_instants(body, lead), lead["lead_id"]

    @pytest.mark.parametrize("by", ["source", "channel", "campaign"])
    def test_the_breakdown_by_a_dimension_is_the_report_section_with_conversion(self, workers, rich, by: str) -> None:
        _, expected, _ = rich
        status, body = workers[1].get(f"/api/attribution?by={by}")
        assert status == 200 and body["by"] == by
        assert {value: {k: v for k, v in row.items() if k != "conversion"} for value, row in body["values"].items()} == expected["attribution"][by]
        for row in body["values"].values():
            assert row["conversion"] == round(row["funnel"]["action"] / row["funnel"]["attention"], 4)

    def test_another_dimension_is_a_json_400(self, workers) -> None:
        status, body = workers[0].get("/api/attribution?by=medium")
        assert status == 400 and "source, channel, campaign" in body["error"]
