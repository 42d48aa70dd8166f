"""The public golden vectors (shared/golden): report, per-person output and comparison, through the
reference fold and replay's C one."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from projections import Projector, default_definitions, load_definitions
from projections.projector import CompactProjector
from tests.conftest import GOLDEN, golden_json
from tests.helpers import same_instants

KINDS = {"python": Projector, "compact": CompactProjector}  # the reference fold, and replay's C one
# Each golden log with its expected report and per-person lines under the default definitions.
LOGS = {
    "small": ("journey-small.jsonl", "expected-report.json", "expected-leads.jsonl"),
    "rich": ("journey-rich.jsonl", "expected-rich-report.json", "expected-rich-leads.jsonl"),
    "identity": ("journey-identity.jsonl", "expected-identity-report.json", "expected-identity-leads.jsonl"),
    "identity-examples": ("identity-examples.jsonl", "expected-identity-examples-report.json", "expected-identity-examples-leads.jsonl"),
}


def lines(name: str) -> list[bytes]:
    return [line for line in (GOLDEN / name).read_bytes().split(b"\n") if line.strip()]


class TestGoldenVectors:
    @pytest.fixture(params=sorted(KINDS))
    def folded(self, request: pytest.FixtureRequest) -> Callable[[str], Projector]:
        def fold(name: str) -> Projector:
            projector = KINDS[request.param]()
            projector.feed_all(lines(name))
            return projector

        return fold

    @pytest.mark.parametrize("log", sorted(LOGS))
    def test_the_report_equals_the_expected_report(self, folded, log: str) -> None:
        name, report, _ = LOGS[log]
        assert same_instants(folded(name).report(default_definitions()), golden_json(report))

    @pytest.mark.parametrize("log", sorted(LOGS))
    def test_every_person_equals_the_expected_line(self, folded, log: str) -> None:
        name, _, persons = LOGS[log]
        assert same_instants(list(folded(name).lead_records(default_definitions())), golden_json(persons))

    def test_comparison_with_alt_definitions_equals_expected(self, folded) -> None:
        baseline = load_definitions(GOLDEN / "default-definitions.yaml")
        candidate = load_definitions(GOLDEN / "alt-definitions.yaml")
        comparison = folded("journey-small.jsonl").comparison(baseline, candidate)
        assert same_instants(comparison, golden_json("expected-compare.json"))
