"""Every record journey writes for another process to read survives its own decoder:
dead letters, lead changes, the lead table's values and the workers' partial reports."""

from __future__ import annotations

import orjson
import pytest
from aiokafka.producer.message_accumulator import BatchBuilder
from hypothesis import given, settings
from hypothesis import strategies as st

from projections import Aggregates, EventCounts, LeadState, build_report, default_definitions, record, view
from projections.changes import Cause, LeadChange, NewDefinitions
from projections.projector import ACCELERATED, lead_change_records
from projections.stored import Progress, StoredLead, progress_key, progress_partition
from schemas import Event, decode
from schemas.events import parse_time
from streams.kafka.deadletters import MAX_VALUE, DeadLetter, summarize
from streams.live import changes as wire
from streams.live.changes import change_records
from streams.live.partial import Partial, merge
from streams.tools.synthetic import JourneyGenerator

DEFAULTS = default_definitions()
texts = st.text(max_size=30)
offsets = st.integers(0, 2**62)
micros = st.integers(-(2**60), 2**60)


class _Message:
    def __init__(self, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        self.value, self.headers = value, headers


class TestDeadLetters:
    @settings(max_examples=100, deadline=None)
    @given(texts, texts, st.integers(0, 1000), offsets, st.binary(max_size=300))
    def test_a_dead_letter_reads_back_as_written(self, reason: str, topic: str, partition: int, offset: int, value: bytes) -> None:
        letter = DeadLetter.of(reason, topic, partition, offset, value)
        assert DeadLetter.decode(*letter.encode()) == letter

    def test_a_record_over_the_limit_is_kept_truncated_with_its_size_and_digest(self) -> None:
        big = b"x" * (MAX_VALUE + 10)
        value, headers = DeadLetter.of("record is too large", "journey.events", 3, 7, big).encode()
        assert len(value) == MAX_VALUE and dict(headers)["truncated"] == b"true"
        back = DeadLetter.decode(value, headers)
        assert back.original_size == len(big) and back.original_sha256 is not None

    def test_a_record_of_someone_else_is_summarized_not_refused(self) -> None:
        summary = summarize([_Message(b"{}", [])], samples=1)
        assert summary["by_class"]["unknown"]["count"] == 1


class TestLeadChanges:
    @settings(max_examples=100, deadline=None)
    @given(
        texts, st.none() | texts, st.none() | texts, st.none() | texts, texts,
        st.none() | st.builds(Cause, texts, texts) | st.builds(NewDefinitions, texts), st.integers(0, 2**52), st.integers(0, 2**31),
    )
    def test_a_change_reads_back_as_written(self, lead: str, old_stage: str | None, old_level: str | None, new_stage: str | None, new_level: str, cause: Cause | NewDefinitions | None, at: int, events: int) -> None:
        change = LeadChange(lead, old_stage, old_level, new_stage, new_level, cause, at, events)
        key, value = wire.encode(change)
        assert key == lead.encode() and wire.decode(value) == change
        if cause is None:
            expected = {"watermark": True}
        elif isinstance(cause, NewDefinitions):
            expected = {"definitions": cause.digest}
        else:
            expected = {"event_id": cause.event_id, "type": cause.type}
        assert orjson.loads(value)["cause"] == expected

    @settings(max_examples=1000, deadline=None)
    @given(
        st.text(min_size=1), st.none() | st.text(), st.none() | st.sampled_from(["lead", "mql"]) | st.text(), st.none() | st.text(), st.text(),
        st.none() | st.builds(Cause, st.text(), st.text()) | st.builds(NewDefinitions, st.text()),
        st.integers(parse_time("0001-01-01T00:00:00Z") - 10, parse_time("9999-12-31T23:59:59.999999Z") + 10), st.integers(0, 2**63 - 1),
    )
    def test_the_c_records_hold_the_bytes_encode_writes(self, lead: str, old_stage: str | None, old_level: str | None, new_stage: str | None, new_level: str, cause: Cause | NewDefinitions | None, at: int, events: int) -> None:
        # change_records writes in C (projections/_fold.c) what encode writes with orjson: any text, any time
        change = LeadChange(lead, old_stage, old_level, new_stage, new_level, cause, at, events)
        try:
            expected = [(*wire.encode(change), [])]
        except OverflowError:  # a time before year 1 or after 9999: refused both ways
            with pytest.raises(OverflowError):
                change_records([change])
            return
        assert change_records([change]) == expected
        assert change_records([change, change]) == expected * 2

    def test_the_c_records_are_the_ones_a_built_worker_sends_and_aiokafka_takes_them(self) -> None:
        assert ACCELERATED and lead_change_records is not None
        assert change_records([]) == []
        builder = BatchBuilder(2**20, 0)  # what BatchProducer appends to: its C half takes headers as a list only
        for key, value, headers in change_records([LeadChange("a", None, None, "Lead", "lead", Cause("e1", "ad_seen"), 0, 1)] * 3):
            assert builder.append(key=key, value=value, timestamp=None, headers=headers) is not None
        assert builder.record_count() == 3
        with pytest.raises(TypeError, match="lead_id must be str"):
            change_records([LeadChange(None, None, None, None, "lead", None, 0, 1)])  # type: ignore[arg-type]


class TestLeadTable:
    def test_every_lead_of_a_generated_log_reads_back_as_stored(self) -> None:
        states: dict[str, LeadState] = {}
        for event in map(decode, JourneyGenerator(40, seed=5, days=30).records()):
            if isinstance(event, Event):
                record(states.setdefault(event.lead_id, LeadState()), event)
        for i, state in enumerate(states.values()):
            stored = StoredLead(i % 8, i * 10, i % 3, state)
            assert StoredLead.decode(stored.encode()) == stored

    @given(offsets, st.integers(0, 2**40), st.integers(0, 4095))
    def test_progress_reads_back_under_a_key_no_lead_id_can_have(self, through: int, invalid: int, partition: int) -> None:
        assert Progress.decode(Progress(through, invalid).encode()) == Progress(through, invalid)
        assert progress_partition(progress_key(partition)) == partition
        assert len(progress_key(partition)) > 128


class TestPartials:
    def test_a_partial_reads_back_and_merges_into_the_report_of_its_leads(self) -> None:
        states: dict[str, LeadState] = {}
        counts = EventCounts()
        for event in map(decode, JourneyGenerator(60, seed=9, days=40).records()):
            if isinstance(event, Event):
                counts.valid += record(states.setdefault(event.lead_id, LeadState()), event)
        totals = Aggregates.empty(DEFAULTS)
        for lead_id, state in states.items():
            totals.add(view(lead_id, state, DEFAULTS))
        mark = max(state.last_at for state in states.values())
        assert totals.pending, "some leads wait to go stale: the case a merge must not count twice"
        partial = Partial([0, 1], counts, mark, totals, totals.qualification_at(mark))
        wire = orjson.loads(orjson.dumps(partial.encode()))
        back = Partial.decode(DEFAULTS, wire)
        assert back.encode() == partial.encode()
        expected = build_report(DEFAULTS, counts, mark, totals)
        assert merge(DEFAULTS, [back]) == expected
        assert merge(DEFAULTS, [partial]) == expected  # as made, before the wire: the same report
