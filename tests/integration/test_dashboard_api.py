"""The endpoints the dashboard needs (issue 6): stages with stale counts, leads of a stage, the funnel of a range."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from projections import Projector, default_definitions
from tests.integration.conftest import produce, report_when_counted

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def golden_worker(shared_broker, start_shared_worker, golden_log):
    """Two workers projecting the golden log, shared by the module: its tests only read."""
    produce(shared_broker, golden_log)
    first, second = start_shared_worker("w1"), start_shared_worker("w2")
    report_when_counted(first, len(golden_log))
    return first, second


class TestDashboardApi:
    def test_stages_count_every_lead_and_those_stale_in_their_stage(self, golden_worker, golden_log, expected_report) -> None:
        first, second = golden_worker
        projector = Projector()
        projector.feed_all(golden_log)
        defs = default_definitions()
        mark = datetime.fromisoformat(expected_report["watermark"].replace("Z", "+00:00"))
        stale: dict[str, int] = dict.fromkeys(defs.stages, 0)
        for lead in projector.lead_records(defs):
            entered = datetime.fromisoformat(lead["stage_entered_at"].replace("Z", "+00:00"))
            if mark - entered >= timedelta(days=14):
                stale[lead["stage"]] += 1
        for worker in (first, second):
            status, body = worker.get("/api/stages")
            assert status == 200
            assert {row["stage"]: row["leads"] for row in body["stages"]} == expected_report["pipeline"]
            assert {row["stage"]: row["stale"] for row in body["stages"]} == stale

    def test_leads_of_a_stage_page_through_all_of_them_longest_in_the_stage_first(self, golden_worker, expected_leads) -> None:
        first, _ = golden_worker
        seen = []
        for offset in range(0, 100, 30):
            status, page = first.get(f"/api/stages/contact/leads?offset={offset}&limit=30")
            assert status == 200 and page["total"] == 76
            seen.extend(page["leads"])
        in_contact = sorted((lead["stage_entered_at"], lead["lead_id"]) for lead in expected_leads if lead["stage"] == "contact")
        assert [(lead["stage_entered_at"], lead["lead_id"]) for lead in seen] == in_contact

    @pytest.mark.parametrize("path,status", [("/api/stages/nope/leads", 404), ("/api/stages/contact/leads?limit=0", 400), ("/api/stages/contact/leads?offset=-1", 400), ("/api/funnel?from=yesterday", 400)])
    def test_bad_requests_are_json_errors(self, golden_worker, path: str, status: int) -> None:
        got, body = golden_worker[0].get(path)
        assert got == status and body["error"]

    def test_the_funnel_of_a_range_sums_its_days(self, golden_worker, expected_report) -> None:
        status, body = golden_worker[1].get("/api/funnel?from=2026-09-01&to=2026-09-30")
        days = [d for d in expected_report["funnel_daily"] if "2026-09-01" <= d <= "2026-09-30"]
        expected = {step: sum(expected_report["funnel_daily"][d][step] for d in days) for step in expected_report["funnel"]}
        assert status == 200 and body["funnel"] == expected and body["days"] == len(days)
        assert body["overall"] == round(expected["action"] / expected["attention"], 4)
        assert golden_worker[1].get("/api/funnel")[1]["funnel"] == {s: sum(r[s] for r in expected_report["funnel_daily"].values()) for s in expected_report["funnel"]}
