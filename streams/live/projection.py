"""The live projection of one worker: what it stores per lead and per partition, and
the in-memory aggregates it derives from those tables for its own partitions.

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

from projections import QUALIFICATIONS, Aggregates, Definitions, EventCounts, LeadState, LeadView, decode_record, lead_record, record, stored_fold, view
from schemas import EVENT_TYPES, Event, Rejection
from streams.live.changes import Cause, LeadChange, NewDefinitions
from streams.live.partial import Partial
from streams.live.state import Progress, StoredLead, progress_key, progress_partition


class Record(NamedTuple):
    """A record of journey.events, as `process` reads it (any (offset, value) pair will do)."""

    offset: int
    value: bytes


class LastEvent(NamedTuple):
    """The last event a batch applied to a lead: what its lead change names as the cause."""

    event_id: str
    type: int
    occurred_at: int


class Invalid(NamedTuple):
    partition: int
    offset: int
    reason: str
    value: bytes


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


class LeadTable(Protocol):
    """What the projection needs of the lead table: get and put raw bytes by lead id."""

    def get(self, lead_id: str) -> bytes | None: ...
    def put(self, lead_id: str, value: bytes) -> None: ...  # also takes progress_key(partition)


@dataclass
class BatchResult:
    invalid: list[Invalid] = field(default_factory=list)
    moved: dict[str, tuple[LeadView | None, LeadView, Event | LastEvent]] = field(default_factory=dict)  # old view, new view, last event
    changes: list[LeadChange] = field(default_factory=list)


class LiveProjection:
    def __init__(self, defs: Definitions, *, compiled: bool = True) -> None:
        """`compiled`: fold batches in C where `projections._fold` is built (`stored_fold`); the
        Python fold below is the reference, and runs where it is not."""
        self.defs = defs
        self._fold = stored_fold(defs, _current, LastEvent) if compiled else None
        self.partitions: dict[int, PartitionState] = {}
        self.cluster_watermark: int | None = None  # the latest watermark known from any worker

    # -- rebuilding from the tables after a rebalance -------------------------------------

    def rebuild(self, entries: Iterable[tuple[Any, bytes]], active: set[int]) -> None:
        """Derive the aggregates of the `active` partitions from the lead table's entries."""
        parts = {p: PartitionState(Aggregates.empty(self.defs)) for p in active}
        for key, data in entries:
            lead_id = key.decode() if isinstance(key, bytes) else key
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

    def catch_up(self, entries: Iterable[tuple[Any, bytes]], spoken: dict[int, Definitions | None], watermark: int | None) -> dict[int, list[LeadChange]]:
        """SPEC §7, per partition of `spoken`: the changes that bring journey.lead-changes from the
        definitions it last spoke under for that partition to this worker's. Unknown definitions
        (None: a record that cannot be read) get every lead, as a first change.

        Both sides are judged at `watermark`, the latest the cluster has announced: the topic
        last spoke at it, or the changes of reaching it have yet to follow."""
        mark = watermark or 0
        cause = NewDefinitions(self.defs.digest)
        changes: dict[int, list[LeadChange]] = {partition: [] for partition in spoken}
        for key, data in entries:
            lead_id = key.decode() if isinstance(key, bytes) else key
            if progress_partition(lead_id) is not None:
                continue
            stored = StoredLead.decode(data)
            if stored.partition not in spoken:
                continue
            new = view(lead_id, stored.state, self.defs)
            new_said = _said(new, self.defs, mark)
            old_defs = spoken[stored.partition]
            old_said = (None, None) if old_defs is None else _said(view(lead_id, stored.state, old_defs), old_defs, mark)
            if old_defs is None or old_said != new_said:
                changes[stored.partition].append(LeadChange(lead_id, *old_said, *new_said, cause, mark, new.events))
        return changes

    # -- processing ------------------------------------------------------------------------

    def process(self, partition: int, records: Sequence[tuple[int, bytes]], table: LeadTable, result: BatchResult) -> None:
        """Apply one partition's records in offset order; writes each changed lead once, then
        the partition's progress (see `progress_key`: the order matters).

        Lead changes are left for `settle`, once every partition of the batch
        is applied and the watermark they are judged at is final.
        """
        part = self.partitions.get(partition)
        if part is None:
            part = self.partitions[partition] = PartitionState(Aggregates.empty(self.defs))
        if self._fold is not None:
            self._process_compiled(partition, part, records, table, result)
        else:
            self._process(partition, part, records, table, result)
        if records:
            part.progress.through = max(part.progress.through, records[-1][0])
            table.put(progress_key(partition), part.progress.encode())
        self._learn(part.watermark)

    def _process_compiled(self, partition: int, part: PartitionState, records: Sequence[tuple[int, bytes]], table: LeadTable, result: BatchResult) -> None:
        """`_process` in C: the records decoded, each touched lead read, folded and written as bytes."""
        progress = part.progress
        valid, duplicates, invalid, mark, leads = self._fold(records, table.get, partition, progress.through)  # type: ignore[misc]
        for offset, rejection, value in invalid:
            result.invalid.append(Invalid(partition, offset, rejection.reason, value))
        progress.invalid += len(invalid)
        counts = part.counts
        counts.invalid += len(invalid)
        counts.valid += valid
        counts.duplicates += duplicates
        if mark is not None:
            part.see(mark)
        put, replace, moved = table.put, part.replace, result.moved
        for lead_id, data, old_view, new_view, cause in leads:
            put(lead_id, data)
            if new_view is not None:
                replace(old_view, new_view)
                moved[lead_id] = (old_view, new_view, cause)

    def _process(self, partition: int, part: PartitionState, records: Sequence[tuple[int, bytes]], table: LeadTable, result: BatchResult) -> None:
        """The reference fold of a partition's records."""
        progress = part.progress
        touched: dict[str, tuple[StoredLead, LeadView | None, Event | None]] = {}
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
                entry = touched[decoded.lead_id] = self._load(partition, decoded.lead_id, table)
            stored, old_view, cause = entry
            if offset <= stored.through:
                continue  # delivered again: already in this lead's state
            stored.through = offset
            if record(stored.state, decoded):
                part.counts.valid += 1
                part.see(decoded.occurred_at)
                touched[decoded.lead_id] = (stored, old_view, decoded)
            else:
                stored.duplicates += 1
                part.counts.duplicates += 1
        for lead_id, (stored, old_view, cause) in touched.items():
            table.put(lead_id, stored.encode())
            if cause is not None:
                new_view = view(lead_id, stored.state, self.defs)
                part.replace(old_view, new_view)
                result.moved[lead_id] = (old_view, new_view, cause)

    def settle(self, result: BatchResult, before: int | None, table: LeadTable) -> None:
        """The lead changes of a whole batch: its leads' own, then those the watermark turned SAL."""
        for old_view, new_view, cause in result.moved.values():
            change = self._change(old_view, before, new_view, cause)
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

    def _load(self, partition: int, lead_id: str, table: LeadTable) -> tuple[StoredLead, LeadView | None, None]:
        data = table.get(lead_id)
        if data is None:
            return StoredLead(partition, -1, 0, LeadState()), None, None
        stored = StoredLead.decode(data)
        return stored, view(lead_id, stored.state, self.defs), None

    def _learn(self, watermark: int | None) -> bool:
        if watermark is None or (self.cluster_watermark is not None and watermark <= self.cluster_watermark):
            return False
        self.cluster_watermark = watermark
        return True

    def _change(self, old: LeadView | None, old_mark: int | None, new: LeadView, cause: Event | LastEvent) -> LeadChange | None:
        old_said = (None, None) if old is None else _said(old, self.defs, old_mark or 0)
        new_said = _said(new, self.defs, self.cluster_watermark or 0)
        if old is not None and old_said == new_said:
            return None
        return LeadChange(new.lead_id, *old_said, *new_said, Cause(cause.event_id, EVENT_TYPES[cause.type]), cause.occurred_at, new.events)

    def _stale_changes(self, before: int | None, exclude: dict[str, Any], table: LeadTable) -> list[LeadChange]:
        mark = self.cluster_watermark
        if mark is None or mark == before:
            return []
        changes = []
        for part in self.partitions.values():
            for stale_from, lead_id in part.aggregates.going_stale(before, mark):
                data = None if lead_id in exclude else table.get(lead_id)
                if data is None:
                    continue
                lead = view(lead_id, StoredLead.decode(data).state, self.defs)
                stage = _stage(lead, self.defs)
                changes.append(LeadChange(lead_id, stage, "mql", stage, "sal", None, stale_from, lead.events))
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

    def partial(self, watermark: int | None) -> Partial:
        """This worker's share of the report, qualification settled at the cluster's watermark."""
        totals, counts = self.totals()
        return Partial(sorted(self.partitions), counts, self.local_watermark(), totals, self.qualification_at(watermark))

    def stage_counts(self, watermark: int | None) -> list[dict[str, int]]:
        """Per stage: its leads, and those in it for at least sal_stale_after_days at the watermark."""
        limit = None if watermark is None else watermark - self.defs.sal_stale_after_micros
        counts = []
        for stage in range(len(self.defs.stages)):
            members = [part.stages.get(stage) for part in self.partitions.values()]
            members = [m for m in members if m]
            stale = 0 if limit is None else sum(m.bisect_left((limit + 1, "")) for m in members)
            counts.append({"leads": sum(len(m) for m in members), "stale": stale})
        return counts

    def stage_leads(self, stage: int, upto: int) -> list[tuple[int, str]]:
        """The first `upto` leads of a stage, longest in it first."""
        return list(itertools.islice(heapq.merge(*(p.stages.get(stage, ()) for p in self.partitions.values())), upto))

    def lead(self, lead_id: str, data: bytes, watermark: int) -> dict[str, Any]:
        stored = StoredLead.decode(data)
        return lead_record(view(lead_id, stored.state, self.defs), self.defs, watermark)


def _current(data: bytes) -> bytes:
    """A stored lead of any version at the current one (CorruptState when it is none): for the C fold."""
    return StoredLead.decode(data).encode()


def _stage(lead: LeadView, defs: Definitions) -> str | None:
    return None if lead.stage < 0 else defs.stages[lead.stage]


def _said(lead: LeadView, defs: Definitions, watermark: int) -> tuple[str | None, str]:
    """What a lead change says of a lead: its stage and its qualification at the watermark."""
    return _stage(lead, defs), QUALIFICATIONS[lead.qualification(watermark)]
