"""SPEC §9, rule by rule: links, winning links, kept ids, persons, and the report's identity counts."""

from __future__ import annotations

import random
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from projections import Projector, default_definitions, parse_definitions
from projections.definitions import DEFAULT_YAML
from tests.conftest import GOLDEN

DEFAULTS = default_definitions()
KEEP_TWO = parse_definitions(DEFAULT_YAML.replace("max_anonymous_ids: 100", "max_anonymous_ids: 2"), "keep two")


def event(eid: str, day: int, kind: str = "ad_seen", lead: str | None = None, anon: str | None = None, **extra: Any) -> bytes:
    fields = {"event_id": eid, "type": kind, "occurred_at": f"2026-09-{day:02d}T10:00:00Z", **extra}
    if lead is not None:
        fields["lead_id"] = lead
    if anon is not None:
        fields["anonymous_id"] = anon
    return orjson.dumps(fields)


def persons(*lines: bytes, defs=DEFAULTS) -> dict[Any, dict]:
    projector = Projector()
    projector.feed_all(lines)
    return {(line["lead_id"] or line["anonymous_ids"][0]): line for line in projector.lead_records(defs)}


def identity(*lines: bytes, defs=DEFAULTS) -> dict[str, int]:
    projector = Projector()
    projector.feed_all(lines)
    return projector.report(defs)["identity"]


class TestWinningLinks:
    def test_the_earliest_link_wins_whichever_comes_first_in_the_log(self) -> None:
        lines = [event("a", 1, anon="c"), event("l1", 5, "identified", lead="bob", anon="c"), event("l2", 4, "identified", lead="cat", anon="c")]
        for order in (lines, lines[::-1]):
            found = persons(*order)
            assert found["cat"]["anonymous_ids"] == ["c"] and found["bob"]["anonymous_ids"] == []
            assert found["cat"]["events"] == 2 and "c" not in found

    def test_a_tie_on_time_goes_to_the_least_event_id_then_the_least_lead_id(self) -> None:
        by_event = persons(event("x2", 4, "identified", lead="ann", anon="c"), event("x1", 4, "identified", lead="zed", anon="c"))
        assert by_event["zed"]["anonymous_ids"] == ["c"]
        by_lead = persons(event("x1", 4, "identified", lead="zed", anon="c"), event("x1", 4, "identified", lead="ann", anon="c"))
        assert by_lead["ann"]["anonymous_ids"] == ["c"] and by_lead["zed"]["anonymous_ids"] == []

    def test_any_event_with_both_ids_is_a_link_and_counts_for_its_lead(self) -> None:
        found = persons(event("a", 1, anon="c"), event("b", 2, "content_read", lead="ann", anon="c"))
        assert found["ann"]["anonymous_ids"] == ["c"] and found["ann"]["events"] == 2 and found["ann"]["stage"] == "research"

    def test_a_link_with_an_ignored_id_claims_nothing_and_still_counts_for_its_lead(self) -> None:
        found = persons(event("a", 1, anon="undefined"), event("p", 2, "purchase", lead="dan", anon="undefined", amount=10))
        assert found["dan"]["anonymous_ids"] == [] and found["dan"]["events"] == 1
        assert found["undefined"]["lead_id"] is None and found["undefined"]["events"] == 1  # a person of its own
        guest = persons(event("a", 1, anon="c"), event("b", 2, "identified", lead="guest", anon="c"))
        assert guest["guest"]["anonymous_ids"] == [] and guest["c"]["lead_id"] is None


class TestKeptIds:
    def test_a_lead_keeps_the_ids_of_its_least_links_and_the_others_stay_apart(self) -> None:
        lines = [event(f"a{i}", 1, anon=f"c{i}") for i in range(3)] + [event(f"l{i}", 5 - i, "identified", lead="bob", anon=f"c{i}") for i in range(3)]
        found = persons(*lines, defs=KEEP_TWO)
        assert found["bob"]["anonymous_ids"] == ["c1", "c2"]  # the links of days 4 and 3; c0's of day 5 is over the limit
        assert found["c0"]["lead_id"] is None and found["c0"]["events"] == 1
        assert identity(*lines, defs=KEEP_TWO) == {"anonymous_ids": 3, "joined": 2, "over_limit": 1}

    def test_an_id_that_joined_without_events_of_its_own_is_listed_and_counted(self) -> None:
        found = persons(event("l", 1, "identified", lead="eve", anon="c"))
        assert found["eve"]["anonymous_ids"] == ["c"] and found["eve"]["events"] == 1
        assert identity(event("l", 1, "identified", lead="eve", anon="c")) == {"anonymous_ids": 1, "joined": 1, "over_limit": 0}


class TestPersons:
    def test_duplicates_are_per_owner_so_one_event_id_under_two_ids_counts_twice(self) -> None:
        found = persons(event("f1", 9, anon="c", channel="search"), event("f2", 9, "identified", lead="fay", anon="c"), event("f1", 9, lead="fay", channel="email"))
        assert found["fay"]["events"] == 3

    def test_a_first_touch_tie_goes_to_the_lead_then_to_the_least_anonymous_id(self) -> None:
        lines = [event("t", 1, anon="c2", channel="two"), event("t", 1, anon="c1", channel="one"), event("k1", 2, "identified", lead="ann", anon="c1"),
                 event("k2", 2, "identified", lead="ann", anon="c2")]
        assert persons(*lines)["ann"]["first_touch"]["channel"] == "one"
        assert persons(*lines, event("t", 1, lead="ann", channel="own"))["ann"]["first_touch"]["channel"] == "own"

    def test_a_person_is_measured_over_every_owner_s_events(self) -> None:
        lines = [event("a", 1, anon="c", source="google"), event("r1", 2, "content_read", anon="c"), event("k", 3, "identified", lead="ann", anon="c"),
                 event("r2", 4, "content_read", lead="ann")]
        ann = persons(*lines)["ann"]
        assert (ann["stage"], ann["qualification"], ann["funnel_step"], ann["events"]) == ("research", "mql", "interest", 4)
        assert ann["first_touch"]["source"] == "google" and ann["stage_entered_at"].startswith("2026-09-02")

    def test_distinct_anonymous_ids_count_those_on_ignored_links_too(self) -> None:
        assert identity(event("a", 1, anon="c"), event("b", 2, lead="ann", anon="0")) == {"anonymous_ids": 2, "joined": 0, "over_limit": 0}


GOLDEN_IDENTITY = [line for line in (GOLDEN / "journey-identity.jsonl").read_bytes().split(b"\n") if line.strip()]


def snapshot(lines: list[bytes]) -> tuple[dict, list[dict]]:
    projector = Projector()
    projector.feed_all(lines)
    report = projector.report(DEFAULTS)
    report["events"].pop("duplicates")
    return report, list(projector.lead_records(DEFAULTS))


WHOLE = snapshot(GOLDEN_IDENTITY)


class TestAnyOrder:
    @settings(max_examples=15, deadline=None)
    @given(st.integers(0, 2**32), st.lists(st.integers(0, len(GOLDEN_IDENTITY) - 1), max_size=80))
    def test_any_order_and_redelivery_give_the_same_persons(self, seed: int, again: list[int]) -> None:
        lines = GOLDEN_IDENTITY + [GOLDEN_IDENTITY[i] for i in again]
        random.Random(seed).shuffle(lines)
        report, persons_ = snapshot(lines)
        report["events"]["invalid"] = WHOLE[0]["events"]["invalid"]  # an invalid record sent again counts again
        assert (report, persons_) == WHOLE


class TestChosenInC:
    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.tuples(st.sampled_from(["A1", "A2", "A3", "A4", "undefined", "L1"]), st.integers(0, 3), st.sampled_from(["e1", "e2", "é"]),
                              st.sampled_from(["L1", "L2", "L3", "guest"]), st.integers(0, 6)), max_size=40),
           st.sampled_from([0, 1, 2, 100]))
    def test_the_c_choice_of_who_joins_whom_is_the_reference_s(self, links: list[tuple[Any, ...]], keep: int) -> None:
        from projections import _fold
        from projections.identity import kept, winners

        defs = parse_definitions(DEFAULT_YAML.replace("max_anonymous_ids: 100", f"max_anonymous_ids: {keep}"), "t")
        reference = kept(winners(links, defs), defs)
        joined, over = _fold.choose(links, set(defs.ignored_ids), defs.max_anonymous_ids)
        assert {lead: sorted(ids) for lead, ids in joined.items()} == {lead: sorted(ids) for lead, ids in reference.joined.items()}
        assert over == sum(len(ids) for ids in reference.over_limit.values())
