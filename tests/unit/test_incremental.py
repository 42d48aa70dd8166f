"""What a live worker relies on: lead states survive their table encoding, and
aggregates kept up to date lead by lead equal aggregates built from scratch."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections import Aggregates, LeadState, Projector, default_definitions, record, view
from projections.codec import CorruptState, decode_state, encode_state
from schemas import Event, decode
from streams.tools.synthetic import JourneyGenerator

DEFAULTS = default_definitions()
EVENTS = [e for e in map(decode, JourneyGenerator(60, seed=11, days=40).records()) if isinstance(e, Event)]


class TestStateCodec:
    def test_every_state_of_a_generated_log_survives_encoding(self) -> None:
        projector = Projector()
        for event in EVENTS:
            projector.apply(event)
        for state in projector.leads.values():
            assert decode_state(encode_state(state)) == state

    def test_an_empty_state_survives_encoding(self) -> None:
        assert decode_state(encode_state(LeadState())) == LeadState()

    @pytest.mark.parametrize("data", [b"", b"\x02" + bytes(60), b"\x01abc"])
    def test_bytes_that_are_not_a_state_are_refused(self, data: bytes) -> None:
        with pytest.raises(CorruptState):
            decode_state(data)


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
        assert live == projector.aggregate(DEFAULTS)
        assert live.qualification_at(projector.watermark) == projector.aggregate(DEFAULTS).qualification_at(projector.watermark)

    def test_merging_partitions_equals_the_whole(self) -> None:
        parts = [Projector(), Projector(), Projector()]
        whole = Projector()
        for event in EVENTS:
            parts[hash(event.lead_id) % 3].apply(event)
            whole.apply(event)
        merged = Aggregates.empty(DEFAULTS)
        for part in parts:
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
