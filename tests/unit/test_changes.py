"""Which lead changes journey.lead-changes gets (projections.changes): decided in the core, no Kafka."""

from __future__ import annotations

from projections import LeadState, default_definitions, parse_definitions, record, view
from projections.changes import Applied, Cause, LeadChange, NewDefinitions, moved, redefined, status, went_stale
from projections.definitions import DAY_MICROS, DEFAULT_YAML
from schemas import Event
from schemas.events import CONTENT_READ, PURCHASE, TYPE_INDEX

DEFS = default_definitions()
ALT = parse_definitions(DEFAULT_YAML.replace("mql_min_content_reads: 2", "mql_min_content_reads: 3"), "alt")
T0 = 1_788_000_000_000_000


def lead_after(*events: tuple[str, int, int]) -> tuple[LeadState, list]:
    state, views = LeadState(), []
    for event_id, kind, at in events:
        record(state, Event("L1", event_id, kind, at, None))
        views.append(view("L1", state, DEFS))
    return state, views


class TestMovedByEvents:
    def test_a_new_lead_gets_a_first_change_naming_the_event(self) -> None:
        _, (first,) = lead_after(("e1", CONTENT_READ, T0))
        change = moved(None, None, first, T0, DEFS, Applied("e1", CONTENT_READ, T0))
        assert change == LeadChange("L1", None, None, "research", "lead", Cause("e1", "content_read"), T0, 1)

    def test_an_event_that_changes_neither_stage_nor_qualification_gets_none(self) -> None:
        _, (_, second, third) = lead_after(("e1", CONTENT_READ, T0), ("e2", CONTENT_READ, T0 + 1), ("e3", CONTENT_READ, T0 + 2))
        assert moved(second, T0 + 1, third, T0 + 2, DEFS, Applied("e3", CONTENT_READ, T0 + 2)) is None

    def test_each_side_is_judged_at_its_own_watermark(self) -> None:
        _, (_, mql) = lead_after(("e1", CONTENT_READ, T0), ("e2", CONTENT_READ, T0 + 1))
        stale = T0 + 14 * DAY_MICROS
        assert status(mql, DEFS, T0 + 1) == ("research", "mql") and status(mql, DEFS, stale) == ("research", "sal")
        change = moved(mql, T0 + 1, mql, stale, DEFS, Applied("e9", CONTENT_READ, stale))
        assert change is not None and (change.old_qualification, change.new_qualification) == ("mql", "sal")

    def test_a_purchase_makes_a_customer(self) -> None:
        _, (before, after) = lead_after(("e1", CONTENT_READ, T0), ("e2", PURCHASE, T0 + 5))
        change = moved(before, T0, after, T0 + 5, DEFS, Applied("e2", PURCHASE, T0 + 5))
        assert change is not None and (change.old_stage, change.new_stage, change.new_qualification) == ("research", "purchase", "customer")


class TestWentStale:
    def test_an_mql_the_watermark_passed_says_mql_to_sal_with_the_watermark_as_cause(self) -> None:
        _, (_, mql) = lead_after(("e1", CONTENT_READ, T0), ("e2", CONTENT_READ, T0 + 1))
        assert mql.stale_from is not None
        assert went_stale(mql, DEFS, mql.stale_from) == LeadChange("L1", "research", "mql", "research", "sal", None, mql.stale_from, 2)


class TestRedefined:
    def test_a_lead_that_reads_the_same_under_both_definitions_gets_none(self) -> None:
        state, _ = lead_after(("e1", TYPE_INDEX["ad_seen"], T0))
        assert redefined(view("L1", state, DEFS), DEFS, view("L1", state, ALT), ALT, T0) is None

    def test_a_lead_that_reads_otherwise_gets_a_change_naming_the_new_definitions(self) -> None:
        state, _ = lead_after(("e1", CONTENT_READ, T0), ("e2", CONTENT_READ, T0 + 1))
        change = redefined(view("L1", state, DEFS), DEFS, view("L1", state, ALT), ALT, T0 + 1)
        assert change == LeadChange("L1", "research", "mql", "research", "lead", NewDefinitions(ALT.digest), T0 + 1, 2)

    def test_unknown_old_definitions_give_every_lead_a_first_change(self) -> None:
        state, _ = lead_after(("e1", TYPE_INDEX["ad_seen"], T0))
        change = redefined(None, None, view("L1", state, ALT), ALT, T0)
        assert change == LeadChange("L1", None, None, "explore", "lead", NewDefinitions(ALT.digest), T0, 1)
