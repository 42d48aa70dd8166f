"""The public golden vectors (shared/golden): report, per-lead output and comparison."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from projections import Projector, default_definitions, load_definitions
from projections.projector import CompactProjector
from tests.helpers import same_instants

KINDS = {"python": Projector, "compact": CompactProjector}  # the reference fold, and replay's C one


class TestGoldenVectors:
    @pytest.fixture(params=sorted(KINDS))
    def golden_projector(self, request: pytest.FixtureRequest) -> Callable[[list[bytes]], Projector]:
        def folded(log: list[bytes]) -> Projector:
            projector = KINDS[request.param]()
            projector.feed_all(log)
            return projector

        return folded

    def test_report_equals_expected_report(self, golden_projector, golden_log: list[bytes], expected_report: dict) -> None:
        report = golden_projector(golden_log).report(default_definitions())
        assert same_instants(report, expected_report)

    def test_every_lead_equals_expected_leads(self, golden_projector, golden_log: list[bytes], expected_leads: list[dict]) -> None:
        defs = default_definitions()
        leads = list(golden_projector(golden_log).lead_records(defs))
        assert same_instants(leads, expected_leads)

    def test_the_attribution_log_gives_the_expected_report_and_leads(self, golden_projector, golden: Path) -> None:
        log = [line for line in (golden / "journey-rich.jsonl").read_bytes().split(b"\n") if line.strip()]
        projector = golden_projector(log)
        defs = default_definitions()
        assert same_instants(projector.report(defs), json.loads((golden / "expected-rich-report.json").read_text()))
        expected = [json.loads(line) for line in (golden / "expected-rich-leads.jsonl").read_text().splitlines() if line]
        assert same_instants(list(projector.lead_records(defs)), expected)

    def test_comparison_with_alt_definitions_equals_expected(self, golden_projector, golden: Path, golden_log: list[bytes]) -> None:
        baseline = load_definitions(golden / "default-definitions.yaml")
        candidate = load_definitions(golden / "alt-definitions.yaml")
        comparison = golden_projector(golden_log).comparison(baseline, candidate)
        assert same_instants(comparison, json.loads((golden / "expected-compare.json").read_text()))
