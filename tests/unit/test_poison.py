"""The poison-record guard (streams/live/poison.py): a record the fold raises on is dead-lettered
and counted invalid, once, and everything else ends exactly as if that record had been invalid.

The faults are JOURNEY_FAULT's (streams/live/faults.py), raised from inside
`LiveProjection.process` as a bug would be: inside the C fold, before anything
is written (`fold=`), and while a batch's leads are written, after part of them
are counted in the aggregates (`write=`). The lead table is a real Faust table
in memory, written a batch after it was folded, as the pipeline writes it.
"""

from __future__ import annotations

import logging

import faust
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections import Definitions, default_definitions
from projections.live import LiveProjection
from projections.partition import BatchResult
from projections.projector import ACCELERATED
from projections.stored import progress_key
from schemas import Rejection
from schemas.decode import decode
from streams.live import faults
from streams.live.poison import PoisonGuard
from streams.live.store import LeadBatch, LeadStore
from tests.unit.test_catch_up import DictTable
from tests.unit.test_fold_accel import records as any_records
from tests.unit.test_live_fold import batches

P = 5
JUNK = b"not json"  # what a poison record counts as: an invalid record at its offset


def event(i: int, lead: str, kind: str = "content_read", **extra: object) -> bytes:
    return orjson.dumps({"event_id": f"e{i}", "lead_id": lead, "type": kind, "occurred_at": f"2026-09-{1 + i % 20:02d}T10:00:00Z", **extra})


class Worker:
    """A pipeline's bookkeeping without Kafka: each batch folded through the guard over the
    store and the batch before it (pending), which is written to the store after the next one."""

    def __init__(self, defs: Definitions, compiled: bool = True) -> None:
        app = faust.App("poison-test", store="memory://", autodiscover=False)
        self.store = LeadStore(app.Table("leads", partitions=8, default=None, key_type=bytes, value_type=bytes))
        self.projection = LiveProjection(defs, compiled=compiled)
        self.projection.rebuild([], {P})
        self.poisoned = 0
        self.guard = PoisonGuard(self.projection, self._count)
        self.pending: dict[int, dict[str, bytes]] | None = None

    def _count(self) -> None:
        self.poisoned += 1

    def deliver(self, records: list[tuple[int, bytes]]) -> BatchResult:
        batch, result = LeadBatch(self.store, None if self.pending is None else [self.pending]), BatchResult()
        before = self.projection.cluster_watermark
        self.guard.fold(P, records, batch, result)
        self.projection.settle(result, before, batch)
        entries = batch.partition(P).entries
        assert not entries or list(entries)[-1] == progress_key(P)  # sent last: it vouches for the leads before it
        self.flush()
        self.pending = {P: dict(entries)}
        return result

    def flush(self) -> None:
        if self.pending:
            self.store.write(P, self.pending[P], 0)
        self.pending = None

    def table(self) -> dict[str, bytes]:
        self.flush()
        return {key.decode(): value for key, value in self.store.items_of(P)}


def reference(lines: list[bytes], spans: list[tuple[int, int]], defs: Definitions) -> tuple[LiveProjection, DictTable, list[BatchResult]]:
    """The same batches through the plain fold, each poison record replaced by an invalid one."""
    live, table = LiveProjection(defs), DictTable()
    live.rebuild([], {P})
    results = []
    for start, end in spans:
        result = BatchResult()
        before = live.cluster_watermark
        live.process(P, list(enumerate(lines))[start:end], table, result)
        live.settle(result, before, table)
        results.append(result)
    return live, table, results


def guarded(lines: list[bytes], spans: list[tuple[int, int]], defs: Definitions, compiled: bool = True) -> tuple[Worker, list[BatchResult]]:
    worker = Worker(defs, compiled)
    return worker, [worker.deliver(list(enumerate(lines))[start:end]) for start, end in spans]


def alike(lines: list[bytes], poison: set[int], spans: list[tuple[int, int]], defs: Definitions, compiled: bool = True) -> Worker:
    """The guarded worker ends as the reference over the log with the poison records made invalid."""
    worker, results = guarded(lines, spans, defs, compiled)
    ref, ref_table, ref_results = reference([JUNK if i in poison else line for i, line in enumerate(lines)], spans, defs)
    assert worker.table() == ref_table  # every lead and the progress, byte for byte
    part, ref_part = worker.projection.partitions[P], ref.partitions[P]
    assert (part.counts, part.progress, part.watermark) == (ref_part.counts, ref_part.progress, ref_part.watermark)
    assert part.aggregates == ref_part.aggregates
    assert part.identity == ref_part.identity
    assert {stage: list(leads) for stage, leads in part.stages.items() if leads} == {stage: list(leads) for stage, leads in ref_part.stages.items() if leads}
    assert worker.projection.cluster_watermark == ref.cluster_watermark
    for result, ref_result in zip(results, ref_results, strict=True):
        assert [(bad.offset, bad.value) for bad in result.invalid] == [(bad.offset, lines[bad.offset] if bad.offset in poison else bad.value) for bad in ref_result.invalid]
        assert all(Rejection(bad.reason).kind == "internal" for bad in result.invalid if bad.offset in poison)
        assert {change.lead_id: change for change in result.changes} == {change.lead_id: change for change in ref_result.changes}
        assert result.messages == ref_result.messages  # identity claims (SPEC §9), in the order they were made
    return worker


pytestmark = pytest.mark.skipif(not ACCELERATED, reason="needs projections._fold; test_fold_accel fails when it is not built")


class TestAFoldFault:
    def test_the_record_goes_to_the_dlq_counted_invalid_and_the_rest_folds(self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
        monkeypatch.setenv("JOURNEY_FAULT", "fold=POISON")
        lines = [event(i, f"lead-{i % 3}") for i in range(10)]
        lines[4] = lines[4].replace(b'"e4"', b'"e4-POISON"')
        with caplog.at_level(logging.INFO, logger="journey.worker"):
            worker = alike(lines, {4}, [(0, 10)], default_definitions())
        assert worker.poisoned == 1
        said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "JOURNEY_FAULT" not in r.getMessage()]
        assert said == [f"partition {P}, offset 4: the fold raised InjectedFault on this record; it goes to journey.events.dlq as internal and counts as invalid"]
        assert not [r for r in caplog.records if r.levelno > logging.DEBUG and "lead-" in r.getMessage()]  # no lead id above DEBUG

    def test_redelivered_it_is_not_counted_again(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("JOURNEY_FAULT", "fold=POISON")
        lines = [event(i, "L") for i in range(10)]
        for i in (2, 7):
            lines[i] = lines[i].replace(f'"e{i}"'.encode(), f'"e{i}-POISON"'.encode())
        worker = alike(lines, {2, 7}, [(0, 5), (0, 8), (3, 10), (0, 10)], default_definitions())
        assert worker.projection.partitions[P].counts.invalid == 2

    def test_a_worker_that_lost_the_batch_finds_and_counts_it_once(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("JOURNEY_FAULT", "fold=POISON")
        lines = [event(i, f"L{i % 2}") for i in range(6)]
        lines[3] = lines[3].replace(b'"e3"', b'"e3POISON"')
        worker = Worker(default_definitions())
        worker.deliver(list(enumerate(lines)))  # folded and sent, never written locally: the worker is killed
        again = Worker(default_definitions())
        again.deliver(list(enumerate(lines)))
        assert again.projection.partitions[P].counts.invalid == 1 and again.poisoned == 1


class TestARealBound:
    def test_revenue_past_what_a_person_can_hold_goes_to_the_dlq_with_its_reason(self) -> None:
        """No injected fault: 10^12 (SPEC's largest amount) bought 92,234 times by one lead passes int64
        hundredths (docs/spec-notes.md); each record that would is poison, the rest of the partition folds."""
        lines = [event(i, "L", kind="purchase", amount=10**12, currency="EUR") for i in range(92_236)] + [event(92_236, "M")]
        worker = alike(lines, {92_233, 92_234, 92_235}, [(0, 92_230), (92_230, 92_237)], default_definitions())
        assert worker.poisoned == 3


class TestAWriteFault:
    """Raised after the fold, while the batch's leads are written: those before it are already
    counted in the partition's aggregates, which are derived again from the table."""

    @pytest.mark.parametrize("compiled", [True, False])
    def test_every_record_of_the_lead_is_poison_and_nothing_of_the_attempt_sticks(self, monkeypatch: pytest.MonkeyPatch, compiled: bool) -> None:
        monkeypatch.setenv("JOURNEY_FAULT", "write=POISON")
        leads = ["A", "B", "xPOISONx", "C"]
        lines = [event(i, leads[i % 4], kind=("content_read", "ad_seen", "purchase")[i % 3], amount=2.5, source=f"s{i % 2}") for i in range(24)]
        worker = alike(lines, {i for i in range(24) if i % 4 == 2}, [(0, 9), (5, 17), (17, 24)], default_definitions(), compiled)
        assert worker.poisoned == 6

    def test_a_partition_of_events_before_1970_keeps_its_watermark(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Derived again from its leads, the partition's watermark would be 1970: a lead keeps no last
        event time before it (LeadState.last_at starts at 0). The guard keeps the one it had."""
        monkeypatch.setenv("JOURNEY_FAULT", "write=POISON")
        lines = [orjson.dumps({"event_id": "e", "lead_id": lead, "type": "ad_seen", "occurred_at": "1969-12-31T23:59:59.5Z"}) for lead in ("L1", "xPOISON")]
        worker = alike(lines, {1}, [(0, 2)], default_definitions())
        assert worker.projection.partitions[P].watermark == -500_000


marked = st.lists(st.booleans(), min_size=60, max_size=60)


class TestProperties:
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data(), any_records, marked, st.sampled_from(["fold", "write"]))
    def test_any_log_with_any_poison_ends_as_if_the_poison_were_invalid(self, data: st.DataObject, lines: list[bytes], marks: list[bool], point: str) -> None:
        """Poison marked on event ids (fold) or lead ids (write) of valid records, in batches that
        redeliver: the same leads, counts, aggregates, dead letters and lead changes as the
        reference fold over the log with those records invalid."""
        lines = [_mark(line, point) if mark else line for line, mark in zip(lines, marks, strict=False)]
        poison = {i for i, line in enumerate(lines) if _poisoned(line, point)}
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("JOURNEY_FAULT", f"{point}=POISON")
            alike(lines, poison, batches(data.draw, len(lines)), default_definitions())


def _mark(line: bytes, point: str) -> bytes:
    """The record with POISON in its event id (fold) or its owner (write: the lead id, else the
    anonymous id, SPEC §2), when it has that string field."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return line
    if not isinstance(record, dict):
        return line
    field = "event_id" if point == "fold" else "lead_id" if isinstance(record.get("lead_id"), str) else "anonymous_id"
    if not isinstance(record.get(field), str) or len(record[field]) > 100:
        return line
    return orjson.dumps({**record, field: record[field] + "POISON"})


def _poisoned(line: bytes, point: str) -> bool:
    """Whether the guard must dead-letter it: valid, and marked where the fault looks."""
    event = decode(line)
    if isinstance(event, Rejection):
        return False
    owner = event.lead_id if event.lead_id is not None else event.anonymous_id
    return "POISON" in (event.event_id if point == "fold" else owner or "")


def test_a_mistake_in_the_fault_hook_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="journey.worker"):
        assert faults.read("fold") == faults.Faults() and faults.read("spill=X") == faults.Faults()
    assert "is not POINT=MARK" in caplog.text
    assert faults.read("fold=A, write=B") == faults.Faults(fold="A", write="B")
