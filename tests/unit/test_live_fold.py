"""The live worker's C batch fold (`projections.stored_fold`) gives what its Python fold, the reference, gives.

Both run `LiveProjection.process` over the same batches of one partition, with
records delivered again, invalid records, duplicates and attribution fields,
and must leave the same stored bytes, counts, progress, views, aggregates,
stage board, dead letters and lead changes.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections import Definitions, default_definitions, parse_definitions
from projections.codec import CorruptState
from projections.definitions import DEFAULT_YAML
from projections.live import BatchResult, LiveProjection
from projections.projector import ACCELERATED
from projections.stored import LEAD_HEAD, StoredLead, progress_key
from schemas.events import UPSELL, parse_time
from tests.unit.test_catch_up import DictTable
from tests.unit.test_fold_accel import records
from tests.unit.test_view_reference import definitions

PARTITION = 3
# A lead stored by journey 0.1 (state layout version 1; see test_incremental): three events, e0 to e2.
V1_STATE = bytes.fromhex(
    "0100c854fb685a060000282c197d5a060000880337915a060000000000000000800000000000000080000000000000008000"
    "880337915a060003000000010000000103000000a07203fd72379f45efea503b02247e9fb4973ad4fb586611"
)


def batches(draw: st.DrawFn, count: int) -> list[tuple[int, int]]:
    """(start, end) offsets of successive fetches: each goes on from the last, or starts again earlier
    (a redelivery after a restart), as at-least-once delivery does."""
    spans, at = [], 0
    while at < count:
        start = max(0, at - draw(st.integers(0, 3))) if draw(st.integers(0, 3)) == 0 else at
        end = min(count, start + draw(st.integers(1, 25)))
        spans.append((start, end))
        at = max(at, end)
    return spans


def run(lines: list[bytes], spans: list[tuple[int, int]], defs: Definitions, compiled: bool, table: DictTable) -> tuple[LiveProjection, list[BatchResult]]:
    live = LiveProjection(defs, compiled=compiled)
    assert (live.compiled_fold is not None) == compiled
    live.rebuild(table.items(), {PARTITION})  # as a worker does on assignment
    results = []
    for start, end in spans:
        result = BatchResult()
        before = live.cluster_watermark
        live.process(PARTITION, list(enumerate(lines))[start:end], table, result)
        live.settle(result, before, table)
        results.append(result)
    return live, results


def same(lines: list[bytes], spans: list[tuple[int, int]], defs: Definitions, stored: dict[str, bytes]) -> None:
    c_table, py_table = DictTable(stored), DictTable(stored)
    c_live, c_results = run(lines, spans, defs, True, c_table)
    py_live, py_results = run(lines, spans, defs, False, py_table)
    assert c_table == py_table  # every stored lead and the progress, byte for byte
    assert list(c_table) == list(py_table)  # written in the same order
    assert set(c_live.partitions) == set(py_live.partitions)
    if not spans:
        return
    c_part, py_part = c_live.partitions[PARTITION], py_live.partitions[PARTITION]
    assert (c_part.counts, c_part.progress, c_part.watermark) == (py_part.counts, py_part.progress, py_part.watermark)
    assert c_part.aggregates == py_part.aggregates
    assert {stage: list(leads) for stage, leads in c_part.stages.items()} == {stage: list(leads) for stage, leads in py_part.stages.items()}
    for c_result, py_result in zip(c_results, py_results, strict=True):
        assert c_result.invalid == py_result.invalid
        assert c_result.changes == py_result.changes
        assert list(c_result.moved) == list(py_result.moved)
        for lead_id, (old, new, cause) in c_result.moved.items():
            py_old, py_new, py_cause = py_result.moved[lead_id]
            assert (old, new) == (py_old, py_new)
            assert (cause.event_id, cause.type, cause.occurred_at) == (py_cause.event_id, py_cause.type, py_cause.occurred_at)


pytestmark = pytest.mark.skipif(not ACCELERATED, reason="needs projections._fold; test_fold_accel fails when it is not built")


class TestStoredFold:
    @settings(max_examples=400, deadline=None)
    @given(st.data(), records, definitions())
    def test_batches_fold_as_the_reference_folds_them(self, data: st.DataObject, lines: list[bytes], defs: Definitions) -> None:
        same(lines, batches(data.draw, len(lines)), defs, {})

    @settings(max_examples=100, deadline=None)
    @given(st.data(), records, st.integers(-1, 5), st.integers(0, 3))
    def test_a_lead_stored_at_an_older_version_is_upgraded_as_the_reference_upgrades_it(
        self, data: st.DataObject, lines: list[bytes], through: int, duplicates: int
    ) -> None:
        stored = {"L1": LEAD_HEAD.pack(PARTITION, through, duplicates) + V1_STATE}
        same(lines, batches(data.draw, len(lines)), default_definitions(), stored)

    def test_a_lead_stored_as_bytes_of_no_known_version_is_refused_saying_why(self) -> None:
        line = b'{"event_id":"e","lead_id":"L1","type":"ad_seen","occurred_at":"2026-09-01T10:00:00Z"}'
        for data in (LEAD_HEAD.pack(PARTITION, -1, 0) + b"\x02" + bytes(40), LEAD_HEAD.pack(PARTITION, -1, 0) + b"\x09" + bytes(90)):
            for compiled in (True, False):
                with pytest.raises(CorruptState):
                    LiveProjection(default_definitions(), compiled=compiled).process(PARTITION, [(0, line)], DictTable({"L1": data}), BatchResult())

    def test_a_state_the_c_fold_writes_is_the_one_storedlead_reads(self) -> None:
        lines = [
            b'{"event_id":"e1","lead_id":"L","type":"purchase","occurred_at":"2026-09-01T10:00:00Z","amount":2.675,"currency":"EUR","source":"\xc3\xa9"}',
            b'{"event_id":"e2","lead_id":"L","type":"upsell","occurred_at":"2026-09-02T10:00:00Z","amount":1,"source":"g","channel":"c"}',
        ]
        table, result = DictTable(), BatchResult()
        LiveProjection(default_definitions()).process(PARTITION, list(enumerate(lines)), table, result)
        _, new, cause = result.moved["L"]
        assert new.revenue == (("(none)", 100), ("EUR", 268))  # by currency, whatever order they came in
        assert (cause.event_id, cause.type, cause.occurred_at) == ("e2", UPSELL, parse_time("2026-09-02T10:00:00Z"))
        stored = StoredLead.decode(table["L"])
        assert (stored.partition, stored.through, stored.duplicates) == (PARTITION, 1, 0)
        assert stored.state.revenue == {"EUR": 268, "(none)": 100}
        assert stored.state.touch == ("é", None, None)
        assert StoredLead.decode(table["L"]).encode() == table["L"]
        assert set(table) == {"L", progress_key(PARTITION)}

    def test_the_c_fold_reads_and_writes_the_layout_of_projections_stored(self) -> None:
        from projections import _fold, codec

        assert (LEAD_HEAD.size, codec.HEAD_SIZE, codec.VERSION) == (_fold.STORED_HEAD, _fold.STATE_HEAD, _fold.STATE_VERSION)

    def test_definitions_too_large_for_c_integers_fold_in_python(self) -> None:
        huge = parse_definitions(DEFAULT_YAML.replace("sal_stale_after_days: 14", "sal_stale_after_days: 1000000000000000"), "huge")
        assert LiveProjection(huge).compiled_fold is None
        assert LiveProjection(default_definitions()).compiled_fold is not None
