"""SPEC §2 and §4, rule by rule, on small hand-made logs."""

from __future__ import annotations

import orjson

from projections import Projector, default_definitions, parse_definitions
from projections.definitions import DEFAULT_YAML
from tests.helpers import raw

DEFAULTS = default_definitions()


def project(*records: bytes, defs=DEFAULTS) -> tuple[dict, dict[str, dict]]:
    projector = Projector()
    projector.feed_all(records)
    leads = {lead["lead_id"]: lead for lead in projector.lead_records(defs)}
    return projector.report(defs), leads


def only_lead(*records: bytes, defs=DEFAULTS) -> dict:
    _, leads = project(*records, defs=defs)
    (lead,) = leads.values()
    return lead


def day(n: int, hour: int = 10) -> str:
    return f"2026-09-{n:02d}T{hour:02d}:00:00Z"


class TestEventCounting:
    def test_invalid_records_are_counted_and_change_nothing(self) -> None:
        report, leads = project(raw(eid="a"), b"not json", raw(eid="b", at="yesterday"))
        assert report["events"] == {"valid": 1, "invalid": 2, "duplicates": 0}
        assert leads["L1"]["events"] == 1

    def test_a_second_event_with_the_same_lead_and_event_id_is_a_duplicate(self) -> None:
        report, leads = project(raw(eid="a"), raw(eid="a"), raw(eid="a", kind="purchase"))
        assert report["events"] == {"valid": 1, "invalid": 0, "duplicates": 2}
        assert leads["L1"]["events"] == 1

    def test_the_first_of_two_events_with_one_id_wins(self) -> None:
        lead = only_lead(raw(eid="a", kind="content_read"), raw(eid="a", kind="purchase"))
        assert lead["stage"] == "research" and lead["qualification"] == "lead"

    def test_the_same_event_id_on_two_leads_is_two_events(self) -> None:
        report, _ = project(raw(lead="A", eid="a"), raw(lead="B", eid="a"))
        assert report["events"]["valid"] == 2 and report["leads"] == 2

    def test_the_watermark_is_the_latest_valid_event_time(self) -> None:
        report, _ = project(raw(eid="a", at=day(3)), raw(eid="b", at=day(1)), raw(eid="c", at="2027-01-01T00:00:00"))
        assert report["watermark"] == "2026-09-03T10:00:00.000000Z"

    def test_an_empty_log_has_no_watermark_and_every_name_at_zero(self) -> None:
        report, _ = project()
        assert report["watermark"] is None and report["leads"] == 0
        assert report["pipeline"] == dict.fromkeys(DEFAULTS.stages, 0)
        assert report["qualification"] == {"lead": 0, "mql": 0, "sal": 0, "sql": 0, "customer": 0}
        assert report["funnel"] == dict.fromkeys(DEFAULTS.steps, 0)
        assert report["funnel_daily"] == {} and report["cohorts_daily"] == {}


class TestStage:
    def test_stage_is_the_latest_ordered_stage_entered_even_if_it_came_first(self) -> None:
        lead = only_lead(raw(eid="a", kind="negotiation", at=day(1)), raw(eid="b", kind="ad_seen", at=day(5)))
        assert lead["stage"] == "negotiation"

    def test_stages_may_be_skipped(self) -> None:
        assert only_lead(raw(kind="purchase"))["stage"] == "purchase"

    def test_stage_entered_at_is_the_earliest_event_entering_that_stage(self) -> None:
        lead = only_lead(raw(eid="a", kind="contact_made", at=day(5)), raw(eid="b", kind="contact_made", at=day(2)), raw(eid="c", kind="ad_seen", at=day(1)))
        assert lead["stage_entered_at"] == "2026-09-02T10:00:00.000000Z"

    def test_a_stage_entered_by_several_types_takes_the_earliest_of_them(self) -> None:
        alt = parse_definitions(DEFAULT_YAML.replace("{name: explore,     events: [ad_seen]}", "{name: explore, events: [ad_seen, content_read]}").replace("    - {name: research,    events: [content_read]}\n", ""), "t")
        lead = only_lead(raw(eid="a", kind="ad_seen", at=day(4)), raw(eid="b", kind="content_read", at=day(2)), defs=alt)
        assert lead["stage"] == "explore" and lead["stage_entered_at"].startswith("2026-09-02")

    def test_a_lead_whose_types_are_in_no_stage_has_stage_null(self) -> None:
        defs = parse_definitions(DEFAULT_YAML.replace("    - {name: explore,     events: [ad_seen]}\n", ""), "t")
        lead = only_lead(raw(kind="ad_seen"), defs=defs)
        assert lead["stage"] is None and lead["stage_entered_at"] is None

    def test_pipeline_counts_leads_per_stage_with_every_stage_present(self) -> None:
        report, _ = project(raw(lead="A", kind="ad_seen"), raw(lead="B", kind="ad_seen"), raw(lead="C", kind="upsell"))
        assert report["pipeline"] == {"explore": 2, "research": 0, "contact": 0, "negotiation": 0, "purchase": 0, "upsell": 1}


class TestFunnel:
    def test_funnel_step_is_the_latest_step_reached_and_all_before_count_as_reached(self) -> None:
        report, leads = project(raw(kind="negotiation"))
        assert leads["L1"]["funnel_step"] == "desire"
        assert report["funnel"] == {"attention": 1, "interest": 1, "desire": 1, "action": 0}

    def test_reach_time_of_a_step_is_the_earliest_event_at_that_step_or_later(self) -> None:
        report, _ = project(raw(eid="a", kind="purchase", at=day(1)), raw(eid="b", kind="ad_seen", at=day(3)))
        daily = report["funnel_daily"]
        assert daily["2026-09-01"] == {"attention": 1, "interest": 1, "desire": 1, "action": 1}
        assert "2026-09-03" not in daily

    def test_funnel_daily_uses_the_utc_day(self) -> None:
        report, _ = project(raw(at="2026-09-02T01:00:00+02:00"))
        assert list(report["funnel_daily"]) == ["2026-09-01"]

    def test_funnel_daily_lists_every_step_of_a_listed_day(self) -> None:
        report, _ = project(raw(eid="a", kind="ad_seen", at=day(1)), raw(eid="b", kind="content_read", at=day(2)))
        assert report["funnel_daily"] == {
            "2026-09-01": {"attention": 1, "interest": 0, "desire": 0, "action": 0},
            "2026-09-02": {"attention": 0, "interest": 1, "desire": 0, "action": 0},
        }

    def test_cohorts_group_leads_by_first_step_reach_day_and_count_later_steps(self) -> None:
        report, _ = project(
            raw(lead="A", eid="a", kind="ad_seen", at=day(1)),
            raw(lead="A", eid="b", kind="purchase", at=day(9)),
            raw(lead="B", eid="a", kind="content_read", at=day(1, 23)),
            raw(lead="C", eid="a", kind="ad_seen", at=day(2)),
        )
        assert report["cohorts_daily"] == {
            "2026-09-01": {"attention": 2, "interest": 2, "desire": 1, "action": 1},
            "2026-09-02": {"attention": 1, "interest": 0, "desire": 0, "action": 0},
        }

    def test_a_type_in_no_step_moves_nothing_in_the_funnel(self) -> None:
        defs = parse_definitions(DEFAULT_YAML.replace("events: [purchase, upsell]", "events: [purchase]"), "t")
        report, leads = project(raw(kind="upsell"), defs=defs)
        assert leads["L1"]["funnel_step"] is None and report["funnel"]["attention"] == 0
        assert report["cohorts_daily"] == {}


class TestQualification:
    def test_any_purchase_or_upsell_makes_a_customer(self) -> None:
        assert only_lead(raw(kind="upsell"))["qualification"] == "customer"
        assert only_lead(raw(eid="a", kind="purchase"), raw(eid="b", kind="negotiation"))["qualification"] == "customer"

    def test_any_negotiation_makes_an_sql(self) -> None:
        assert only_lead(raw(kind="negotiation"))["qualification"] == "sql"

    def test_two_content_reads_make_an_mql(self) -> None:
        assert only_lead(raw(eid="a", kind="content_read"), raw(eid="b", kind="content_read"))["qualification"] == "mql"

    def test_one_content_read_is_still_a_lead(self) -> None:
        assert only_lead(raw(kind="content_read"))["qualification"] == "lead"

    def test_duplicate_content_reads_do_not_count_twice(self) -> None:
        assert only_lead(raw(eid="a", kind="content_read"), raw(eid="a", kind="content_read"))["qualification"] == "lead"

    def test_an_inbound_contact_makes_an_mql(self) -> None:
        assert only_lead(raw(kind="contact_made", inbound=True))["qualification"] == "mql"

    def test_an_outbound_contact_alone_is_not_mql_eligible(self) -> None:
        assert only_lead(raw(kind="contact_made", inbound=False))["qualification"] == "lead"

    def test_a_contact_without_inbound_counts_neither_way(self) -> None:
        assert only_lead(raw(eid="a", kind="content_read"), raw(eid="b", kind="contact_made"))["qualification"] == "lead"

    def test_an_eligible_lead_contacted_by_sales_is_sal(self) -> None:
        lead = only_lead(raw(eid="a", kind="contact_made", inbound=True), raw(eid="b", kind="contact_made", inbound=False))
        assert lead["qualification"] == "sal"

    def test_an_eligible_lead_stale_in_its_stage_for_the_threshold_is_sal(self) -> None:
        reads = (raw(eid="a", kind="content_read", at=day(1)), raw(eid="b", kind="content_read", at=day(2)))
        just_not = raw(lead="other", kind="ad_seen", at="2026-09-14T23:59:59Z")
        exactly = raw(lead="other", kind="ad_seen", at=day(15))
        _, leads = project(*reads, just_not)
        assert leads["L1"]["qualification"] == "mql"
        _, leads = project(*reads, exactly)
        assert leads["L1"]["qualification"] == "sal"

    def test_staleness_is_judged_against_the_watermark_not_the_wall_clock(self) -> None:
        lead = only_lead(raw(eid="a", kind="content_read", at="2020-01-01T00:00:00Z"), raw(eid="b", kind="content_read", at="2020-01-02T00:00:00Z"))
        assert lead["qualification"] == "mql"

    def test_a_lead_with_no_stage_is_never_stale(self) -> None:
        defs = parse_definitions(DEFAULT_YAML.replace("    - {name: research,    events: [content_read]}\n", ""), "t")
        _, leads = project(raw(eid="a", kind="content_read", at=day(1)), raw(eid="b", kind="content_read", at=day(1, 11)), raw(lead="x", at="2027-01-01T00:00:00Z"), defs=defs)
        assert leads["L1"]["stage"] is None and leads["L1"]["qualification"] == "mql"

    def test_the_mql_threshold_comes_from_the_definitions(self) -> None:
        defs = parse_definitions(DEFAULT_YAML.replace("mql_min_content_reads: 2", "mql_min_content_reads: 3"), "t")
        assert only_lead(raw(eid="a", kind="content_read"), raw(eid="b", kind="content_read"), defs=defs)["qualification"] == "lead"

    def test_qualification_counts_have_all_five_levels(self) -> None:
        report, _ = project(raw(kind="purchase"))
        assert report["qualification"] == {"lead": 0, "mql": 0, "sal": 0, "sql": 0, "customer": 1}


class TestLeadRecord:
    def test_a_lead_record_has_exactly_the_spec_fields(self) -> None:
        lead = only_lead(raw(eid="a", at=day(1)), raw(eid="b", kind="content_read", at=day(2)))
        assert lead == {
            "lead_id": "L1",
            "anonymous_ids": [],
            "stage": "research",
            "stage_entered_at": "2026-09-02T10:00:00.000000Z",
            "stages_entered_at": {"explore": "2026-09-01T10:00:00.000000Z", "research": "2026-09-02T10:00:00.000000Z"},
            "qualification": "lead",
            "funnel_step": "interest",
            "events": 2,
            "last_event_at": "2026-09-02T10:00:00.000000Z",
            "first_touch": None,
            "revenue": {},
        }
        orjson.dumps(lead)


class TestAttribution:
    """SPEC §4 attribution: the first touch by (occurred_at, event_id), revenue exact in hundredths."""

    def test_the_first_touch_is_the_earliest_event_carrying_a_touch_field(self) -> None:
        lead = only_lead(
            raw(eid="a", at=day(1)),  # no touch field: not a touch
            raw(eid="b", at=day(3), source="google", channel="search", campaign="c1"),
            raw(eid="c", at=day(2), channel="email"),
        )
        assert lead["first_touch"] == {"source": None, "channel": "email", "campaign": None}

    def test_a_tie_on_time_goes_to_the_least_event_id_by_code_point(self) -> None:
        lead = only_lead(raw(eid="b", at=day(2), source="late"), raw(eid="a", at=day(2), source="early"), raw(eid="B", at=day(2), source="upper"))
        assert lead["first_touch"]["source"] == "upper"  # "B" < "a" < "b" by code point

    def test_null_touch_fields_are_absent_and_an_empty_string_is_a_value(self) -> None:
        assert only_lead(raw(eid="a", source=None, channel=None, campaign=None))["first_touch"] is None
        assert only_lead(raw(eid="a", campaign=""))["first_touch"] == {"source": None, "channel": None, "campaign": ""}

    def test_revenue_sums_purchases_and_upsells_per_currency_in_exact_hundredths(self) -> None:
        lead = only_lead(
            raw(eid="a", kind="purchase", amount=0.1, currency="EUR"),
            raw(eid="b", kind="upsell", amount=0.2, currency="EUR"),
            raw(eid="c", kind="purchase", amount=5),
            raw(eid="d", kind="negotiation", amount=1000, currency="EUR"),  # not a purchase or upsell
            raw(eid="e", kind="purchase", currency="USD"),  # no amount: adds nothing, names nothing
        )
        assert lead["revenue"] == {"EUR": 0.3, "(none)": 5.0}

    def test_each_amount_is_rounded_half_even_as_a_double_times_100(self) -> None:
        # As doubles: 0.005 * 100 = 0.5 -> 0; 2.675 * 100 = 267.5 -> 268; 19.995 * 100 = 1999.5 -> 2000;
        # 0.125 * 100 = 12.5 -> 12; 0.135 * 100 = 13.5 -> 14. Half-way cases go to the even neighbour.
        amounts = [0.005, 2.675, 19.995, 0.125, 0.135, 10**12]
        lead = only_lead(*(raw(eid=f"e{i}", kind="purchase", amount=a, currency="EUR") for i, a in enumerate(amounts)))
        assert lead["revenue"] == {"EUR": (0 + 268 + 2000 + 12 + 14 + 10**14) / 100}

    def test_an_amount_of_zero_names_its_currency(self) -> None:
        report, leads = project(raw(eid="a", kind="purchase", amount=0, currency="GBP", channel="x"))
        assert leads["L1"]["revenue"] == {"GBP": 0.0}
        assert report["attribution"]["channel"]["x"]["revenue"] == {"GBP": 0.0}

    def test_the_breakdown_counts_leads_funnel_customers_and_revenue_per_first_touch_value(self) -> None:
        report, _ = project(
            raw(lead="A", eid="a1", at=day(1), channel="email", source="hubspot"),
            raw(lead="A", eid="a2", at=day(2), kind="purchase", amount=10, currency="EUR", channel="search"),
            raw(lead="B", eid="b1", at=day(1), kind="content_read", channel="email"),
            raw(lead="C", eid="c1", at=day(1)),
        )
        channel = report["attribution"]["channel"]
        assert channel == {
            "(none)": {"leads": 1, "funnel": {"attention": 1, "interest": 0, "desire": 0, "action": 0}, "customers": 0, "revenue": {}},
            "email": {"leads": 2, "funnel": {"attention": 2, "interest": 2, "desire": 1, "action": 1}, "customers": 1, "revenue": {"EUR": 10.0}},
        }
        assert set(report["attribution"]) == {"source", "channel", "campaign"}
        assert report["attribution"]["source"]["(none)"]["leads"] == 2 and report["attribution"]["campaign"] == {
            "(none)": {"leads": 3, "funnel": {"attention": 3, "interest": 2, "desire": 1, "action": 1}, "customers": 1, "revenue": {"EUR": 10.0}}
        }

    def test_an_empty_log_has_empty_dimensions(self) -> None:
        report, _ = project()
        assert report["attribution"] == {"source": {}, "channel": {}, "campaign": {}}
