"""The guard against a poison record: a valid record the fold raises on (a bug not found yet).

Unguarded, such a record ends the worker; restarted, it fetches the same
records from its saved progress and ends again, and the record's partitions
stop for good. So each partition's records of a batch are folded through
`PoisonGuard.fold`. When folding them raises (anything but cancellation and
shutdown, which are no Exception):

1. nothing of the failed attempt sticks: the leads it wrote are dropped, and
   when it may have changed the partition's aggregates and counts (it raised
   after the fold itself had returned, or in the Python fold), those are
   derived again from the lead table as it stood before the batch;
2. the records are folded again one at a time, each over its own overlay of
   the batch's leads, kept only when it folds;
3. a record that raises on its own goes to journey.events.dlq with reason kind
   `internal` and the error text, counts as invalid in the partition's
   progress and event counts, raises journey_poison_records_total and logs one
   line (its partition and offset, never a lead id); the rest fold as usual.

Counted once: the partition's progress moves past it, and a record at or below
the progress was judged before (a redelivery), so it is not counted again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from projections.live import LiveProjection
from projections.partition import BatchResult, Invalid
from projections.stored import progress_key
from streams.kafka import topics
from streams.live import faults
from streams.live.store import LeadBatch, PartitionView

log = logging.getLogger("journey.worker")

Record = tuple[int, bytes]
MAX_REASON_CHARS = 1000


class PoisonGuard:
    def __init__(self, projection: LiveProjection, counted: Callable[[], None]) -> None:
        """`counted`: one more poison record (journey_poison_records_total)."""
        self.projection = projection
        self.counted = counted
        self.faults = faults.read()
        self._in_fold = False  # set while the C fold runs: an exception that leaves it set came from inside it
        fold = projection.compiled_fold
        if fold is not None:  # the C fold: it writes nothing, so a failure inside it changed nothing
            projection.compiled_fold = self._tracked(self.faults.wrap_fold(fold))

    def _tracked(self, fold: Callable[..., Any]) -> Callable[..., Any]:
        def tracked(*args: Any) -> Any:
            self._in_fold = True
            found = fold(*args)
            self._in_fold = False
            return found

        return tracked

    def fold(self, partition: int, records: Sequence[Record], batch: LeadBatch, result: BatchResult) -> None:
        """`LiveProjection.process` of one partition's records into the batch, guarded."""
        view = batch.partition(partition)
        earlier, mark = dict(view.entries), self._watermark(partition)
        attempt = BatchResult()
        self._in_fold = False
        try:
            self.projection.process(partition, records, self.faults.wrap_table(view), attempt, view.scan)
        except Exception as exc:  # noqa: BLE001 - any bug; cancellation and shutdown are BaseExceptions and pass
            log.info("partition %d: folding %d records raised %s; folding them one at a time", partition, len(records), type(exc).__name__)
            view.entries.clear()  # in place: the view's reads hold this dict
            view.entries.update(earlier)
            if self._dirty():
                self._rebuild(partition, batch, view, mark)
            self._one_at_a_time(partition, records, batch, view, result)
            return
        _merge(result, attempt)

    def _one_at_a_time(self, partition: int, records: Sequence[Record], batch: LeadBatch, view: PartitionView, result: BatchResult) -> None:
        poisoned = 0
        for record in records:
            overlay, attempt, mark = _Overlay(view), BatchResult(), self._watermark(partition)
            self._in_fold = False
            try:
                self.projection.process(partition, [record], self.faults.wrap_table(overlay), attempt, overlay.scan)
            except Exception as exc:  # noqa: BLE001 - as in `fold`
                if self._dirty():
                    self._rebuild(partition, batch, view, mark)
                poisoned += self._poisoned(partition, record, exc, view, result)
                continue
            overlay.commit()
            _merge(result, attempt)
        if not poisoned:
            log.warning("partition %d: no record raised on its own; all %d are folded", partition, len(records))

    def _dirty(self) -> bool:
        """Whether the failed attempt may have changed the partition's aggregates and counts: unless it
        raised inside the C fold, which writes nothing (the Python fold counts as it goes)."""
        return not self._in_fold

    def _watermark(self, partition: int) -> int | None:
        part = self.projection.partitions.get(partition)
        return None if part is None else part.watermark

    def _rebuild(self, partition: int, batch: LeadBatch, view: PartitionView, mark: int | None) -> None:
        """The partition's aggregates and counts derived again from its leads: the local store's,
        then the pending batch's, then those of this batch kept so far; its watermark as it was
        before the attempt (a lead keeps no last event time before 1970, so the leads cannot say)."""
        entries = {_text(key): value for key, value in batch.store.items_of(partition)}
        entries.update(batch.pending_of(partition))
        entries.update(view.entries)
        scratch = LiveProjection(self.projection.defs, compiled=False, shadow=self.projection.shadow_defs)  # the shadow's counts too (SPEC §11)
        scratch.rebuild(entries.items(), {partition})
        self.projection.partitions[partition] = rebuilt = scratch.partitions[partition]
        rebuilt.watermark = mark

    def _poisoned(self, partition: int, record: Record, exc: Exception, view: PartitionView, result: BatchResult) -> int:
        """A record that raised on its own: dead-lettered and counted invalid, unless judged before."""
        offset, value = record
        part = self.projection.partitions[partition]
        if offset <= part.progress.through:
            log.debug("partition %d, offset %d: raised again (%s: %s), counted before", partition, offset, type(exc).__name__, exc)
            return 0
        part.progress.through = offset
        part.progress.invalid += 1
        part.counts.invalid += 1
        view.put(progress_key(partition), part.progress.encode())  # moved to the end: the progress stays the partition's last entry
        reason = f"internal: the fold raised {type(exc).__name__}: {exc}"[:MAX_REASON_CHARS]
        result.invalid.append(Invalid(partition, offset, reason, value))
        self.counted()
        log.error("partition %d, offset %d: the fold raised %s on this record; it goes to %s as internal and counts as invalid",
                  partition, offset, type(exc).__name__, topics.DLQ)
        log.debug("partition %d, offset %d: %s", partition, offset, reason)
        return 1


class _Overlay:
    """One record's writes over the batch's leads, kept (`commit`) only when its fold succeeds."""

    def __init__(self, view: PartitionView) -> None:
        self._view = view
        self.entries: dict[str, bytes] = {}

    def get(self, lead_id: str) -> bytes | None:
        found = self.entries.get(lead_id)
        return found if found is not None else self._view.get(lead_id)

    def put(self, lead_id: str, value: bytes) -> None:
        entries = self.entries
        entries.pop(lead_id, None)
        entries[lead_id] = value  # in the order of the last writes, as PartitionView.put keeps them

    def scan(self, prefix: str) -> list[tuple[str, bytes]]:
        """The entries whose keys start with `prefix` (a lead's held anonymous ids), this record's writes included."""
        found = dict(self._view.scan(prefix))
        found.update((key, value) for key, value in self.entries.items() if key.startswith(prefix))
        return sorted(found.items())

    def commit(self) -> None:
        """Into the batch, in the order written: a written entry moves to the end, so the
        partition's progress, written last, stays last."""
        for key, value in self.entries.items():
            self._view.put(key, value)


def _merge(result: BatchResult, attempt: BatchResult) -> None:
    """One attempt's dead letters, moved persons and identity messages into the batch's: a person
    moved twice keeps the view it had before the batch (`BatchResult.move`)."""
    result.invalid.extend(attempt.invalid)
    for key, (old, new, cause) in attempt.moved.items():
        result.move(key, old, new, cause)
    result.messages.extend(attempt.messages)


def _text(key: Any) -> str:
    return key.decode("utf-8", "surrogatepass") if isinstance(key, bytes) else key

