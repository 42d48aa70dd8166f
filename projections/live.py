"""The live projection of one worker: its lead table folded a batch at a time, and the
aggregates it derives from that table for the partitions it owns.

Pure: it reads and writes the lead table through `LeadTable` (get and put raw
bytes) and never talks to Kafka. The worker (streams/live) hands it each
partition's records of a fetch, writes what it put, and publishes the lead
changes it decided.

Delivery is at-least-once, so every stored value carries the offset it has
applied up to. A record delivered again at or below that offset is skipped
whole, which keeps the event counts exact and not only the lead states.
"""

from __future__ import annotations

import heapq
import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from sortedcontainers import SortedList

from projections.changes import Applied, LeadChange, moved, redefined, went_stale
from projections.definitions import Definitions
from projections.lead import QUALIFICATIONS, LeadState, LeadView, record, view
from projections.projector import decode_record, stored_fold
from projections.report import Aggregates, EventCounts, lead_record
from projections.stored import Progress, StoredLead, progress_key, progress_partition
from schemas.decode import Rejection


class Record(NamedTuple):
    """A record of journey.events, as `process` reads it (any (offset, value) pair will do)."""

    offset: int
    value: bytes


class Invalid(NamedTuple):
    partition: int
    offset: int
    reason: str
    value: bytes


class LeadTable(Protocol):
    """What the projection needs of the lead table: get and put raw bytes by lead id."""

    def get(self, lead_id: str) -> bytes | None: ...
    def put(self, lead_id: str, value: bytes) -> None: ...  # also takes progress_key(partition)


@dataclass
class PartitionState:
    aggregates: Aggregates
    counts: EventCounts = field(default_factory=EventCounts)
    watermark: int | None = None
    progress: Progress = field(default_factory=Progress)
    # per stage, (stage_entered_at, lead_id) of its leads: longest in the stage first, for the board
    stages: dict[int, SortedList] = field(default_factory=lambda: defaultdict(SortedList))

    def replace(self, old: LeadView | None, new: LeadView) -> None:
        self.aggregates.replace(old, new)
        if old is not None and old.stage == new.stage and old.stage_entered_at == new.stage_entered_at:
            return  # still in the same place on the board
        if old is not None and old.stage >= 0:
            self.stages[old.stage].remove((old.stage_entered_at, old.lead_id))
        if new.stage >= 0:
            self.stages[new.stage].add((new.stage_entered_at, new.lead_id))

    def see(self, at: int) -> None:
        if self.watermark is None or at > self.watermark:
            self.watermark = at


@dataclass
class BatchResult:
    invalid: list[Invalid] = field(default_factory=list)
    moved: dict[str, tuple[LeadView | None, LeadView, Applied]] = field(default_factory=dict)  # old view, new view, last event
    changes: list[LeadChange] = field(default_factory=list)


class LiveProjection:
    def __init__(self, defs: Definitions, *, compiled: bool = True) -> None:
        """`compiled`: fold batches in C where `projections._fold` is built (`stored_fold`); the
        Python fold (`fold_reference`) is the reference, and runs where it is not."""
        self.defs = defs
        self.compiled_fold = stored_fold(defs, _current, Applied) if compiled else None
        self.partitions: dict[int, PartitionState] = {}
        self.cluster_watermark: int | None = None  # the latest watermark known from any worker

    # -- rebuilding from the tables after a rebalance -------------------------------------

    def rebuild(self, entries: Iterable[tuple[Any, bytes]], active: set[int]) -> None:
        """Derive the aggregates of the `active` partitions from the lead table's entries."""
        parts = {p: PartitionState(Aggregates.empty(self.defs)) for p in active}
        for lead_id, data in _keyed(entries):
            partition = progress_partition(lead_id)
            if partition is not None:
                if partition in parts:
                    parts[partition].progress = Progress.decode(data)
                    parts[partition].counts.invalid = parts[partition].progress.invalid
                continue
            stored = StoredLead.decode(data)
            part = parts.get(stored.partition)
            if part is None:
                continue  # a standby copy of another worker's partition
            part.replace(None, view(lead_id, stored.state, self.defs))
            part.counts.valid += stored.state.events
            part.counts.duplicates += stored.duplicates
            part.see(stored.state.last_at)
        self.partitions = parts
        for part in parts.values():
            self._learn(part.watermark)

    def drop(self, partition: int) -> None:
        """The partition went to another worker: its share of the aggregates goes with it."""
        self.partitions.pop(partition, None)

    def catch_up(self, entries: Iterable[tuple[Any, bytes]], published: dict[int, Definitions | None], watermark: int | None) -> dict[int, list[LeadChange]]:
        """SPEC §7, per partition of `published`: the changes that bring journey.lead-changes from the
        definitions it last published under for that partition to this worker's. Unknown
        definitions (None: a record that cannot be read) get every lead, as a first change.

        Both sides are judged at `watermark`, the latest the cluster has announced: the topic
        last spoke at it, or the changes of reaching it have yet to follow."""
        mark = watermark or 0
        changes: dict[int, list[LeadChange]] = {partition: [] for partition in published}
        for lead_id, data in _keyed(entries):
            if progress_partition(lead_id) is not None:
                continue
            stored = StoredLead.decode(data)
            if stored.partition not in published:
                continue
            old_defs = published[stored.partition]
            old = None if old_defs is None else view(lead_id, stored.state, old_defs)
            change = redefined(old, old_defs, view(lead_id, stored.state, self.defs), self.defs, mark)
            if change is not None:
                changes[stored.partition].append(change)
        return changes

    # -- processing ------------------------------------------------------------------------

    def process(self, partition: int, records: Sequence[Record], table: LeadTable, result: BatchResult) -> None:
        """Apply one partition's records in offset order; writes each changed lead once, then
        the partition's progress (see `progress_key`: the order matters).

        Lead changes are left for `settle`, once every partition of the batch
        is applied and the watermark they are judged at is final.
        """
        part = self.partitions.get(partition)
        if part is None:
            part = self.partitions[partition] = PartitionState(Aggregates.empty(self.defs))
        if self.compiled_fold is not None:
            self._process_compiled(partition, part, records, table, result)
        else:
            fold_reference(self.defs, partition, part, records, table, result)
        if records:
            part.progress.through = max(part.progress.through, records[-1][0])
            table.put(progress_key(partition), part.progress.encode())
        self._learn(part.watermark)

    def _process_compiled(self, partition: int, part: PartitionState, records: Sequence[Record], table: LeadTable, result: BatchResult) -> None:
        """`fold_reference` in C: the records decoded, each touched lead read, folded and written as bytes."""
        progress = part.progress
        valid, duplicates, invalid, mark, leads = self.compiled_fold(records, table.get, partition, progress.through)  # type: ignore[misc]
        for offset, rejection, value in invalid:
            result.invalid.append(Invalid(partition, offset, rejection.reason, value))
        progress.invalid += len(invalid)
        counts = part.counts
        counts.invalid += len(invalid)
        counts.valid += valid
        counts.duplicates += duplicates
        if mark is not None:
            part.see(mark)
        put, replace, moved_leads = table.put, part.replace, result.moved
        for lead_id, data, old_view, new_view, cause in leads:
            put(lead_id, data)
            if new_view is not None:
                replace(old_view, new_view)
                moved_leads[lead_id] = (old_view, new_view, cause)

    def settle(self, result: BatchResult, before: int | None, table: LeadTable) -> None:
        """The lead changes of a whole batch: its leads' own, then those the watermark turned SAL."""
        for old_view, new_view, cause in result.moved.values():
            change = moved(old_view, before, new_view, self.cluster_watermark, self.defs, cause)
            if change is not None:
                result.changes.append(change)
        result.changes.extend(self._stale_changes(before, result.moved, table))

    def next_offset(self, partition: int) -> int:
        """The offset this partition expects next: one past the offset applied through."""
        part = self.partitions.get(partition)
        return 0 if part is None else part.progress.through + 1

    def learn_watermark(self, watermark: int, table: LeadTable) -> list[LeadChange]:
        """Another worker reports a later watermark: the leads it turns SAL here."""
        before = self.cluster_watermark
        if not self._learn(watermark):
            return []
        return self._stale_changes(before, {}, table)

    def unlearn_watermark(self, before: int | None) -> None:
        """Back to the watermark before `learn_watermark`, whose changes could not be published."""
        self.cluster_watermark = before

    def _learn(self, watermark: int | None) -> bool:
        if watermark is None or (self.cluster_watermark is not None and watermark <= self.cluster_watermark):
            return False
        self.cluster_watermark = watermark
        return True

    def _stale_changes(self, before: int | None, exclude: dict[str, Any], table: LeadTable) -> list[LeadChange]:
        """The leads the watermark turned SAL since `before`; those in `exclude` (a batch's own moved
        leads, whose changes already judge them at the new watermark) are left out."""
        mark = self.cluster_watermark
        if mark is None or mark == before:
            return []
        changes = []
        for part in self.partitions.values():
            for stale_from, lead_id in part.aggregates.going_stale(before, mark):
                data = None if lead_id in exclude else table.get(lead_id)
                if data is not None:
                    changes.append(went_stale(view(lead_id, StoredLead.decode(data).state, self.defs), self.defs, stale_from))
        return changes

    # -- reading ---------------------------------------------------------------------------

    def local_watermark(self) -> int | None:
        marks = [p.watermark for p in self.partitions.values() if p.watermark is not None]
        return max(marks) if marks else None

    def totals(self) -> tuple[Aggregates, EventCounts]:
        """The aggregates and event counts of every partition this worker owns; for the
        qualification levels, which depend on the watermark, see `qualification_at`."""
        totals = Aggregates.empty(self.defs)
        counts = EventCounts()
        for part in self.partitions.values():
            totals.merge(part.aggregates, pending=False)
            counts.merge(part.counts)
        return totals, counts

    def qualification_at(self, watermark: int | None) -> list[int]:
        """Leads per qualification level at the watermark, in every partition this worker owns."""
        levels = [0] * len(QUALIFICATIONS)
        for part in self.partitions.values():
            levels = [a + b for a, b in zip(levels, part.aggregates.qualification_at(watermark), strict=True)]
        return levels

    def stage_counts(self, watermark: int | None) -> list[dict[str, int]]:
        """Per stage: its leads, and those in it for at least sal_stale_after_days at the watermark."""
        limit = None if watermark is None else watermark - self.defs.sal_stale_after_micros
        counts = []
        for stage in range(len(self.defs.stages)):
            members = [m for m in (part.stages.get(stage) for part in self.partitions.values()) if m]
            stale = 0 if limit is None else sum(m.bisect_left((limit + 1, "")) for m in members)
            counts.append({"leads": sum(len(m) for m in members), "stale": stale})
        return counts

    def stage_leads(self, stage: int, upto: int) -> list[tuple[int, str]]:
        """The first `upto` leads of a stage, longest in it first."""
        return list(itertools.islice(heapq.merge(*(p.stages.get(stage, ()) for p in self.partitions.values())), upto))

    def lead(self, lead_id: str, data: bytes, watermark: int) -> dict[str, Any]:
        stored = StoredLead.decode(data)
        return lead_record(view(lead_id, stored.state, self.defs), self.defs, watermark)


def fold_reference(defs: Definitions, partition: int, part: PartitionState, records: Sequence[Record], table: LeadTable, result: BatchResult) -> None:
    """The reference fold of a partition's records, in Python (the C fold is held to it)."""
    progress = part.progress
    touched: dict[str, tuple[StoredLead, LeadView | None, Applied | None]] = {}
    for offset, value in records:
        decoded = decode_record(value)
        if type(decoded) is Rejection:
            if offset > progress.through:
                progress.invalid += 1
                part.counts.invalid += 1
                result.invalid.append(Invalid(partition, offset, decoded.reason, value))
            continue
        entry = touched.get(decoded.lead_id)
        if entry is None:
            entry = touched[decoded.lead_id] = _load(defs, partition, decoded.lead_id, table)
        stored, old_view, cause = entry
        if offset <= stored.through:
            continue  # delivered again: already in this lead's state
        stored.through = offset
        if record(stored.state, decoded):
            part.counts.valid += 1
            part.see(decoded.occurred_at)
            touched[decoded.lead_id] = (stored, old_view, Applied(decoded.event_id, decoded.type, decoded.occurred_at))
        else:
            stored.duplicates += 1
            part.counts.duplicates += 1
    for lead_id, (stored, old_view, cause) in touched.items():
        table.put(lead_id, stored.encode())
        if cause is not None:
            new_view = view(lead_id, stored.state, defs)
            part.replace(old_view, new_view)
            result.moved[lead_id] = (old_view, new_view, cause)


def _load(defs: Definitions, partition: int, lead_id: str, table: LeadTable) -> tuple[StoredLead, LeadView | None, None]:
    data = table.get(lead_id)
    if data is None:
        return StoredLead(partition, -1, 0, LeadState()), None, None
    stored = StoredLead.decode(data)
    return stored, view(lead_id, stored.state, defs), None


def _keyed(entries: Iterable[tuple[Any, bytes]]) -> Iterable[tuple[str, bytes]]:
    """The lead table's entries with str keys (the store gives bytes)."""
    for key, data in entries:
        yield (key.decode() if isinstance(key, bytes) else key), data


def _current(data: bytes) -> bytes:
    """A stored lead of any version at the current one (CorruptState when it is none): for the C fold."""
    return StoredLead.decode(data).encode()
