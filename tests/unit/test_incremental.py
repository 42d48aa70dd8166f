"""What a live worker relies on: lead states survive their table encoding, and
aggregates kept up to date lead by lead equal aggregates built from scratch."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections import Aggregates, LeadState, Projector, codec, default_definitions, record, view
from projections.attribution import Attribution
from projections.codec import VERSION, CorruptState, decode_state, encode_state
from projections.lead import INBOUND_CONTACT, event_digest
from schemas import Event, decode
from streams.tools.synthetic import JourneyGenerator

DEFAULTS = default_definitions()
EVENTS = [e for e in map(decode, JourneyGenerator(60, seed=11, days=40).records()) if isinstance(e, Event)]


def _folded() -> dict[str, LeadState]:
    projector = Projector()
    for event in EVENTS:
        projector.apply(event)
    return projector.leads


class TestStateCodec:
    def test_every_state_of_a_generated_log_survives_encoding(self) -> None:
        projector = Projector()
        for event in EVENTS:
            projector.apply(event)
        for state in projector.leads.values():
            assert decode_state(encode_state(state)) == state

    def test_the_fast_reader_of_the_current_version_reads_what_the_reference_reader_reads(self) -> None:
        states = list(_folded().values())
        assert any(s.touch for s in states) and any(s.revenue for s in states)  # the layout's every part
        for state in states:
            data = encode_state(state)
            fields = codec._read_v3(data)
            assert codec._read_current(data) == (codec._state({k: v for k, v in fields.items() if k != "identity"}), fields["identity"]) == (state, b"")
            assert codec.decode_owner(encode_state(state, b"\x01identity")) == (state, b"\x01identity")

    def test_a_current_state_cut_short_or_with_bytes_after_it_is_refused(self) -> None:
        state = next(s for s in _folded().values() if s.touch and s.revenue)
        data = encode_state(state)
        for end in range(len(data)):
            with pytest.raises(CorruptState):
                decode_state(data[:end])
        with pytest.raises(CorruptState, match="more than it lists"):
            decode_state(data + b"\x00")

    def test_an_empty_state_survives_encoding(self) -> None:
        assert decode_state(encode_state(LeadState())) == LeadState()

    @pytest.mark.parametrize("data", [b"", b"\x00" + bytes(60), b"\x01abc"])
    def test_bytes_that_are_not_a_state_are_refused(self, data: bytes) -> None:
        with pytest.raises(CorruptState):
            decode_state(data)

    def test_a_version_1_record_reads_as_the_state_it_was_written_from(self) -> None:
        # Written by journey 0.1 (stored layout version 1) for ad_seen, content_read and an inbound
        # contact_made on three days: frozen here so that every later layout still reads it.
        v1 = bytes.fromhex(
            "0100c854fb685a060000282c197d5a060000880337915a060000000000000000800000000000000080000000000000008000"
            "880337915a060003000000010000000103000000a07203fd72379f45efea503b02247e9fb4973ad4fb586611"
        )
        state = decode_state(v1)
        day = 86_400_000_000
        first = 1_788_256_800_000_000
        assert state.first_at == [first, first + day, first + 2 * day, None, None, None, None]
        assert (state.last_at, state.events, state.content_reads, state.contacts) == (first + 2 * day, 3, 1, INBOUND_CONTACT)
        assert sorted(state.seen) == sorted(event_digest(f"e{i}") for i in range(3))
        assert (state.touch, state.revenue) == (None, None)  # version 1 kept neither: upgraded to none

    def test_a_version_2_record_reads_as_the_state_it_was_written_from(self) -> None:
        # Written by journey before identity (stored layout version 2): an ad and a purchase of 12.50 EUR
        # with a first touch, frozen here so that every later layout still reads it.
        v2 = bytes.fromhex(
            "0200c854fb685a060000000000000000800000000000000080000000000000008000282c197d5a0600000000000000008000282c197d5a"
            "060002000000000000000002000000efea503b02247e9fb4973ad4fb58661100c854fb685a060002000000653106000000676f6f676c65"
            "06000000736561726368ffffffff010003000000455552e204000000000000"
        )
        state, identity = codec.decode_owner(v2)
        day, first = 86_400_000_000, 1_788_256_800_000_000
        assert state.first_at == [first, None, None, None, first + day, None, None] and identity == b""  # no `identified` then
        assert (state.last_at, state.events, state.touch_at, state.touch_id, state.touch) == (first + day, 2, first, "e1", ("google", "search", None))
        assert state.revenue == {"EUR": 1250} and sorted(state.seen) == sorted(event_digest(f"e{i}") for i in (1, 2))

    def test_a_version_newer_than_this_journey_is_refused_saying_so(self) -> None:
        with pytest.raises(CorruptState, match="newer journey"):
            decode_state(bytes([VERSION + 1]) + bytes(80))


class TestIncrementalAggregates:
    @settings(max_examples=40, deadline=None)
    @given(st.randoms(use_true_random=False))
    def test_replacing_each_changed_lead_equals_aggregating_from_scratch(self, rng: random.Random) -> None:
        events = list(EVENTS)
        rng.shuffle(events)
        live = Aggregates.empty(DEFAULTS)
        states: dict[str, LeadState] = {}
        for event in events:
            state = states.get(event.lead_id)
            old = None if state is None else view(event.lead_id, state, DEFAULTS)
            state = states.setdefault(event.lead_id, LeadState())
            if record(state, event):
                live.replace(old, view(event.lead_id, state, DEFAULTS))
        projector = Projector()
        for event in EVENTS:
            projector.apply(event)
        whole = projector.aggregate(DEFAULTS)
        whole.velocity.waiting_days = [{} for _ in DEFAULTS.stages]  # settled at a watermark, which a live worker does when asked
        assert live == whole
        assert live.qualification_at(projector.watermark) == whole.qualification_at(projector.watermark)

    def test_merging_partitions_equals_the_whole(self) -> None:
        parts = [Projector(), Projector(), Projector()]
        whole = Projector()
        for event in EVENTS:
            parts[hash(event.lead_id) % 3].apply(event)
            whole.apply(event)
        merged = Aggregates.empty(DEFAULTS)
        for part in parts:
            part.watermark = whole.watermark  # days waiting are counted at the whole log's watermark, as parallel replay does
            merged.merge(part.aggregate(DEFAULTS))
        assert merged == whole.aggregate(DEFAULTS)

    def test_going_stale_lists_the_leads_a_watermark_move_turns_sal(self) -> None:
        projector = Projector()
        for event in EVENTS:
            projector.apply(event)
        totals = projector.aggregate(DEFAULTS)
        first, last = totals.pending[0][0], totals.pending[-1][0]
        everyone = totals.going_stale(None, last)
        assert len(everyone) == len(totals.pending)
        assert totals.going_stale(first, last) == everyone[1:]
        assert totals.going_stale(last, last + 10**12) == []
        assert everyone == list(totals.pending)


touches = st.none() | st.tuples(*[st.sampled_from([None, "(none)", "google", "mail"])] * 3)
lead_parts = st.tuples(
    touches, st.integers(-1, 3), st.booleans(), st.lists(st.tuples(st.sampled_from(["EUR", "USD", "(none)"]), st.integers(0, 10**6)), max_size=2, unique_by=lambda r: r[0]).map(tuple)
)


class TestAttributionMove:
    @settings(max_examples=400, deadline=None)
    @given(st.lists(lead_parts, max_size=3), lead_parts, lead_parts)
    def test_moving_a_lead_equals_counting_it_out_and_in_again(self, others: list, old: tuple, new: tuple) -> None:
        moved, counted = Attribution(4), Attribution(4)
        for parts in [*others, old]:
            moved.add(*parts)
            counted.add(*parts)
        moved.move(old, new)
        counted.add(*old, -1)
        counted.add(*new)
        assert moved == counted


DAY = 86_400_000_000
reach_times = st.lists(st.integers(0, 3 * DAY), max_size=4).map(lambda times: tuple(sorted(times)))


class TestReachMove:
    @settings(max_examples=400, deadline=None)
    @given(st.lists(reach_times, max_size=3), reach_times, reach_times)
    def test_moving_reach_times_equals_counting_them_out_and_in_again(self, others: list, old: tuple, new: tuple) -> None:
        moved, counted = Aggregates.empty(DEFAULTS), Aggregates.empty(DEFAULTS)
        for times in [*others, old]:
            moved._reach_times(times, 1)
            counted._reach_times(times, 1)
        moved._move_reach(old, new)
        counted._reach_times(old, -1)
        counted._reach_times(new, 1)
        assert moved == counted
