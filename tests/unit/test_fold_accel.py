"""Replay's C code (projections/_fold.c) gives exactly what the Python code, the reference, gives.

It is held to the reference on the RFC 3339 time check, the fold of records
into lead states, the aggregates of those states for any definitions, and the
routing of lines to replay processes. The golden vectors run through both
projectors too (test_golden.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections import Definitions, Projector, parse_definitions
from projections.definitions import DAY_MICROS, DEFAULT_YAML, NO_INDEX
from projections.lead import INBOUND_CONTACT, OUTBOUND_CONTACT, QUALIFICATIONS
from projections.projector import ACCELERATED, CompactProjector, _fold, decode_record
from projections.projector import format_time as fast_format_time
from projections.routing import kafka_partition
from schemas import events
from schemas.decode import Event, decode
from schemas.events import EVENT_TYPES, parse_time
from schemas.events import format_time as schemas_format_time
from streams.replay import sources
from streams.replay.parallel import _mine, owner_of, partition_of
from tests.unit.test_decode_properties import raw_records
from tests.unit.test_partitioning import objects
from tests.unit.test_view_reference import definitions


def test_the_c_fold_is_built() -> None:
    # setup.py builds it wherever a C compiler is; CI has one, so a missing build is a failure here.
    assert ACCELERATED, "projections._fold is not built: is there a C compiler? (make clean && make install)"


def test_the_constants_the_c_fold_hard_codes_are_those_of_schemas_and_projections() -> None:
    assert _fold.EVENT_TYPES == EVENT_TYPES
    assert (_fold.CONTENT_READ, _fold.CONTACT_MADE, _fold.NEGOTIATION, _fold.PURCHASE, _fold.UPSELL) == (
        events.CONTENT_READ, events.CONTACT_MADE, events.NEGOTIATION, events.PURCHASE, events.UPSELL,
    )
    assert _fold.QUALIFICATIONS == QUALIFICATIONS
    assert (_fold.INBOUND_CONTACT, _fold.OUTBOUND_CONTACT) == (INBOUND_CONTACT, OUTBOUND_CONTACT)
    assert (_fold.DAY_MICROS, _fold.NO_INDEX) == (DAY_MICROS, NO_INDEX)


# ---- the time check ----

digit = st.integers(0, 9).map(str)


def mostly(valid: list[str], edges: list[str]) -> st.SearchStrategy[str]:
    """A valid value four times out of five, an edge case (often invalid) otherwise."""
    return st.one_of(st.sampled_from(valid), st.sampled_from(valid), st.sampled_from(valid), st.sampled_from(valid), st.sampled_from(edges))


@st.composite
def near_times(draw: st.DrawFn) -> str:
    """RFC 3339 shaped text, mostly valid, with edge cases in each field and sometimes one character changed."""
    year = draw(mostly(["0001", "1900", "1970", "2000", "2024", "2026", "9999"], ["0000", "99", "20266", "２０２６"]))
    month = draw(mostly(["01", "02", "09", "12"], ["00", "13", "1", "99"]))
    day = draw(mostly(["01", "15", "28", "29", "30", "31"], ["00", "32", "1"]))
    hour = draw(mostly(["00", "09", "23"], ["24", "99", "1"]))
    minute, second = (draw(mostly(["00", "30", "59"], ["60", "99", "5"])) for _ in range(2))
    fraction = draw(mostly(["", ".5", ".123456", ".1234567", ".123456789"], [".", ".1234567891", ",5", ".５"]))
    offset = draw(mostly(["Z", "+00:00", "-00:00", "+05:30", "-23:59"], ["z", "", "+24:00", "-00:60", "+00:99", "+01", "+0100", "+1:00", "+23:60"]))
    separator = draw(mostly(["T"], ["t", " ", "_"]))
    text = f"{year}-{month}-{day}{separator}{hour}:{minute}:{second}{fraction}{offset}"
    if draw(st.integers(0, 4)) == 0:
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from("0123456789-:T+.Z \u0660é")) + text[at + 1 :]
    return text


def reference_time(text: str) -> int | None:
    try:
        return parse_time(text)
    except ValueError:
        return None


def c_time(text: str) -> int | None:
    try:
        return _fold.parse_time(text)
    except ValueError:
        return None


class TestTimeCheck:
    @settings(max_examples=1000, deadline=None)  # near_times() draws the edges; each example costs the pydantic reference ~9 ms
    @given(near_times() | st.text(max_size=40))
    def test_it_accepts_what_the_contract_accepts_at_the_same_instant(self, text: str) -> None:
        assert c_time(text) == reference_time(text)

    @pytest.mark.parametrize(
        "text",
        ["2026-09-01t10:00:00Z", "2026-09-01T10:00:00z", "2026-09-01 10:00:00Z", "2024-02-29T23:59:59.999999Z", "2023-02-29T00:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59", "1969-12-31T23:59:59.5Z", "2026-09-01T10:00:00.123456789+05:30"],
    )
    def test_edges_of_the_calendar(self, text: str) -> None:
        assert c_time(text) == reference_time(text)


def formatted(format_time: Callable[[int], str], micros: int) -> str | None:
    try:
        return format_time(micros)
    except OverflowError:
        return None


class TestTimeFormat:
    FIRST, LAST = parse_time("0001-01-01T00:00:00Z"), parse_time("9999-12-31T23:59:59.999999Z")

    @settings(max_examples=2000, deadline=None)
    @given(st.integers(FIRST - 10**12, LAST + 10**12) | st.sampled_from([FIRST, LAST, FIRST - 1, LAST + 1, 0, -1, 2**63, -(2**63) - 1]))
    def test_the_c_format_writes_what_the_reference_writes_and_refuses_what_it_refuses(self, micros: int) -> None:
        assert fast_format_time is not schemas_format_time
        assert formatted(fast_format_time, micros) == formatted(schemas_format_time, micros)


class TestLiveDecoder:
    @settings(max_examples=500, deadline=None)
    @given(raw_records() | st.builds(lambda text: orjson.dumps({"event_id": "e", "lead_id": "L", "type": "ad_seen", "occurred_at": text}), near_times()))
    def test_the_decoder_with_the_c_time_reader_decodes_as_the_reference(self, raw: bytes) -> None:
        assert decode_record is not decode
        assert decode_record(raw) == decode(raw)


# ---- the fold and the aggregates ----

def _owned(event: dict) -> dict:
    if event.get("lead_id") is None and event.get("anonymous_id") is None and event.get("type") != "ad_seen":
        event["lead_id"] = "L1"  # mostly owned; an ad_seen with neither id stays, invalid
    return event


pool_events = st.fixed_dictionaries(
    {
        "event_id": st.integers(0, 11).map(lambda i: f"e{i}") | st.just("é"),  # up to 13 per lead: past the 4 kept inline
        "type": st.sampled_from(EVENT_TYPES),
        "occurred_at": st.sampled_from(
            ["2026-09-01T10:00:00Z", "2026-09-02T10:00:00.5+02:00", "2026-08-01T00:00:00Z", "1969-12-31T23:59:59.5Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-09-01T10:00:00", "2026-02-30T00:00:00Z"]
        ),
    },
    optional={
        # SPEC §9: anonymous events, links (any type with both ids), shared devices (one id, several leads),
        # ignored ids, an anonymous id spelled like a lead id, a null lead id beside an anonymous id
        "lead_id": st.sampled_from(["L1", "L2", "\u2028", "guest"]) | st.none(),
        "anonymous_id": st.sampled_from(["A1", "A2", "A3", "L1", "undefined", ""]),
        "inbound": st.booleans() | st.none() | st.just(1),
        "schema_version": st.sampled_from([1, 2, None, "1"]),
        # attribution: touches that tie on time, null and empty values, and amounts at half-way cases
        "source": st.sampled_from(["google", "", None, "é"]),
        "channel": st.sampled_from(["email", "search", None]),
        "campaign": st.sampled_from(["c1", "c2", None, 3]),
        "currency": st.sampled_from(["EUR", "USD", None, ""]),
        "amount": st.sampled_from([0, 0.005, 0.015, 2.675, 19.995, 0.125, 1.005, 10**12, 10**12 + 1, 1e12, -1, "5"]) | st.floats(0, 1e12) | st.integers(0, 10**12),
    },
).map(_owned).map(orjson.dumps)
junk = st.sampled_from([b"", b"not json", b"[]", b"{}", b"\xff\xfe", b"x" * (64 * 1024 + 1), b'{"lead_id":"L1"}'])
records = st.lists(pool_events | raw_records() | junk, max_size=60)


def folded(lines: list[bytes], compact: bool, cut: int = 0) -> Projector:
    projector = CompactProjector() if compact else Projector()
    projector.feed_all(iter(lines[:cut]))  # any iterable; a second call carries on
    projector.feed_all(lines[cut:])
    return projector


class TestCompactProjector:
    @settings(max_examples=500, deadline=None)
    @given(records, st.integers(0, 60), definitions())
    def test_states_counts_watermark_and_aggregates_equal_the_reference(self, lines: list[bytes], cut: int, defs: Definitions) -> None:
        compact, reference = folded(lines, True, cut), folded(lines, False, cut)
        assert compact.counts == reference.counts
        assert compact.watermark == reference.watermark
        assert compact.leads == reference.leads  # every owner's state, before persons are made of them
        assert list(compact.leads) == list(reference.leads)  # the same order: first seen first
        assert compact.links == reference.links
        assert compact.aggregate(defs) == reference.aggregate(defs)

    @settings(max_examples=500, deadline=None)
    @given(records, st.integers(0, 60), definitions())
    def test_persons_their_reports_and_lines_equal_the_reference(self, lines: list[bytes], cut: int, defs: Definitions) -> None:
        # SPEC §9 in C (links gathered by the fold, anonymous ids absorbed into the leads they join) as in Python
        compact, reference = folded(lines, True, cut), folded(lines, False, cut)
        assert compact.report(defs) == reference.report(defs)
        assert list(compact.lead_records(defs)) == list(reference.lead_records(defs))

    def test_a_stage_of_several_types_is_entered_at_its_earliest_event(self) -> None:
        defs = parse_definitions(
            "pipeline:\n  stages:\n    - {name: early, events: [ad_seen, content_read]}\n"
            "funnel:\n  steps:\n    - {name: all, events: [ad_seen]}\n"
            "qualification:\n  mql_min_content_reads: 2\n  sal_stale_after_days: 3\n",
            "grouped",
        )
        lines = [
            orjson.dumps({"event_id": f"e{i}", "lead_id": "L", "type": kind, "occurred_at": f"2026-09-{day:02d}T00:00:00Z"})
            for i, (kind, day) in enumerate([("ad_seen", 10), ("content_read", 2), ("content_read", 1)])
        ]
        compact, reference = folded(lines, True), folded(lines, False)
        assert compact.aggregate(defs) == reference.aggregate(defs)
        assert list(compact.aggregate(defs).pending) == [(parse_time("2026-09-04T00:00:00Z"), "L")]  # MQL from day 1, stale 3 days on

    def test_states_read_midway_are_read_again_after_more_records(self, golden_log: list[bytes]) -> None:
        compact = CompactProjector()
        compact.feed_all(golden_log[:50])
        assert len(compact.leads) > 0
        compact.feed_all(golden_log[50:])
        assert compact.leads == folded(golden_log, False).leads

    def test_definitions_too_large_for_c_integers_are_aggregated_in_python(self, golden_log: list[bytes]) -> None:
        defs = parse_definitions(DEFAULT_YAML.replace("sal_stale_after_days: 14", "sal_stale_after_days: 1000000000000000"), "huge")
        assert folded(golden_log, True).aggregate(defs) == folded(golden_log, False).aggregate(defs)

    def test_it_takes_whole_logs_only(self) -> None:
        with pytest.raises(TypeError, match="whole logs"):
            CompactProjector().apply(Event("L", "e", 0, 0, None))

    def test_an_error_while_reading_records_is_raised_not_swallowed(self) -> None:
        def failing() -> Iterator[bytes]:
            yield b'{"event_id":"e","lead_id":"L","type":"ad_seen","occurred_at":"2026-09-01T10:00:00Z"}'
            raise OSError("disk gone")

        with pytest.raises(OSError, match="disk gone"):
            CompactProjector().feed_all(failing())


# ---- routing ----

lines_to_route = st.lists(objects.map(orjson.dumps) | raw_records() | junk | st.sampled_from([b"  ", b"\t", b'{"properties":{"lead_id":"x"}}', b'{"lead_id":"a","lead_id":"b"}', b'{"lead_id":"x"']), max_size=30)


class TestRouting:
    @settings(max_examples=500, deadline=None)
    @given(lines_to_route, st.integers(1, 5), st.sampled_from([b"\n", b"\r\n"]), st.booleans())
    def test_every_record_goes_to_one_partition_in_log_order(self, lines: list[bytes], partitions: int, ending: bytes, last_ending: bool) -> None:
        data = ending.join(lines) + (ending if last_ending else b"")
        expected, _ = sources._records(data + b"\n")
        routed = [_fold.route(data, partitions, index, owner_of) for index in range(partitions)]
        assert sorted(line for part in routed for line in part) == sorted(expected)
        for part in routed:  # each partition keeps log order
            remaining = iter(expected)
            assert all(any(line == other for other in remaining) for line in part)
        for index, part in enumerate(routed):
            for line in part:
                # Line by line, a record with a lead id goes where the Python reference sends it.
                # A record without one is invalid wherever it is counted: the C fast path reads
                # bytes, not JSON, so it may count a broken line elsewhere than partition 0.
                if type(owner_of(line)) is str:
                    assert partition_of(line, partitions) == index, line

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=40), st.integers(1, 64))
    def test_the_c_partition_of_a_key_is_the_python_one(self, key: bytes, partitions: int) -> None:
        assert _fold.partition(key, partitions) == kafka_partition(key, partitions)

    def test_a_partitioned_read_of_a_file_is_the_same_in_c_and_python(self, golden: Path) -> None:
        path = golden / "journey-small.jsonl"

        def replayed(accelerated: bool) -> list[dict]:
            parts = []
            for index in range(3):
                projector = Projector()
                for chunk in _mine(path, index, 3, accelerated=accelerated):
                    projector.feed_all(chunk)
                parts.append(projector.leads)
            return parts

        c_parts, python_parts = replayed(True), replayed(False)
        assert all(c_parts) and c_parts == python_parts  # the same leads in each partition, not only overall


class TestTextChunks:
    @settings(max_examples=100, deadline=None)
    @given(st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=20), st.booleans(), st.integers(4, 40))
    def test_chunks_are_whole_lines_and_add_up_to_the_file(self, lines: list[bytes], last_ending: bool, size: int) -> None:
        import tempfile

        content = b"\n".join(lines) + (b"\n" if last_ending else b"")
        with tempfile.NamedTemporaryFile() as file:
            file.write(content)
            file.flush()
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(sources, "CHUNK_BYTES", size)
                chunks = [bytes(chunk) for chunk in sources.text_chunks(Path(file.name))]
        assert b"".join(chunks) == content
        assert all(chunk.endswith(b"\n") for chunk in chunks[:-1])
        assert all(chunk for chunk in chunks)
