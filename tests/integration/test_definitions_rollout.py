"""Definitions in a live cluster (SPEC §7): every worker names its definitions by digest, and
while workers disagree every answer that spans workers is a 503 naming them, never a mix."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from projections import default_definitions, load_definitions
from tests.e2e.test_dashboard import CHROMIUM, FLAGS
from tests.helpers import same_instants
from tests.integration.conftest import produce, report_when_counted, spec_report, wait_for

pytestmark = pytest.mark.timeout(300)
SPANNING = ["/api/report", "/api/stages", "/api/funnel", "/api/attribution"]


class TestRollingRestartToOtherDefinitions:
    def test_a_mixed_cluster_answers_503_naming_who_runs_what_then_the_new_report(self, broker, start_worker, golden_log, golden: Path, tmp_path: Path) -> None:
        alt_file = golden / "alt-definitions.yaml"
        old_digest, new_digest = default_definitions().digest, load_definitions(alt_file).digest
        produce(broker, golden_log)
        first = start_worker("first")
        report_when_counted(first, len(golden_log))
        second = start_worker("second", "--definitions", str(alt_file))
        assert first.get("/healthz")[1]["definitions"] == old_digest
        assert second.get("/healthz")[1]["definitions"] == new_digest

        def mixed() -> dict | None:
            status, body = first.get("/api/report")
            return body if status == 503 and "definitions" in body else None

        body = wait_for(mixed, 90, "the two workers to be in one group")
        assert body["definitions"] == {old_digest: [first.url], new_digest: [second.url]}
        assert old_digest in body["error"] and new_digest in body["error"]
        lead = json.loads(golden_log[0])["lead_id"]
        for worker, stage in ((first, "contact"), (second, "aware")):  # a stage of each worker's own definitions
            for path in [*SPANNING, f"/api/stages/{stage}/leads", f"/api/leads/{lead}"]:
                status, answer = worker.get(path)
                # never numbers from two definitions: a 503 naming both, or (a rebalance) a plain 503
                assert status == 503 and isinstance(answer.get("error"), str), (worker.url, path, status, answer)

        if CHROMIUM is not None:  # the dashboard says so in words (make test installs Chromium where it can)
            dom = subprocess.run(
                [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=8000", "--dump-dom", first.url + "/"],
                capture_output=True, timeout=90, text=True,
            ).stdout
            assert "the workers run different definitions" in dom and old_digest in dom, dom[:1500]

        first.stop()  # the rolling restart reaches the first worker too
        first = start_worker("first", "--definitions", str(alt_file))

        def agreed() -> dict | None:
            status, report = first.get("/api/report")
            return report if status == 200 and sum(report["events"].values()) == len(golden_log) else None

        report = wait_for(agreed, 90, "one report under the new definitions")
        expected = json.loads((golden / "expected-compare.json").read_text())["candidate"]  # replay under alt-definitions
        assert same_instants(spec_report(report, new_digest), expected)
        status, other = second.get("/api/report")
        assert status == 200 and same_instants(spec_report(other, new_digest), expected)
