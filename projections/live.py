"""The live projection of one worker: its lead table folded a batch at a time, and the
aggregates it derives from that table for the partitions it owns.

Pure: it reads and writes the lead table through `LeadTable` (get and put raw bytes) and
never talks to Kafka. The worker (streams/live) hands it each partition's records of a
fetch (journey.events, and the identity topic: projections.linking), writes what it put,
and publishes the lead changes and identity messages it decided.

Delivery is at-least-once, so every stored value carries the offset it has
applied up to. A record delivered again at or below that offset is skipped
whole, which keeps the event counts exact and not only the lead states.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from projections.changes import Applied, LeadChange, moved, redefined, went_stale
from projections.definitions import Definitions
from projections.identity import IdentityCounts, anon_key, anonymous_of
from projections.lead import QUALIFICATIONS, LeadState, LeadView, record, view
from projections.linking import Claim, Facts, Linker, Scan, claim_of, held_of, person_state, person_view
from projections.partition import BatchResult, IdentityTally, Invalid, LeadTable, PartitionState, Shadow, shadow_view
from projections.projector import decode_record, stored_fold
from projections.report import Aggregates, EventCounts
from projections.stored import Held, Progress, StoredLead, anon_section, lead_section, progress_key, progress_partition
from schemas.decode import Rejection
from schemas.events import MAX_ID_CHARS

Views = tuple[LeadView | None, LeadView, LeadView | None, LeadView | None]  # an owner's own, before and after, then under the shadow definitions


class Record(NamedTuple):
    """A record of journey.events, as `process` reads it (any (offset, value) pair will do)."""

    offset: int
    value: bytes


def _no_scan(prefix: str) -> Iterable[tuple[str, bytes]]:
    return ()


class LiveProjection:
    def __init__(self, defs: Definitions, *, compiled: bool = True, shadow: Definitions | None = None) -> None:
        """`compiled`: fold batches in C where `projections._fold` is built (`stored_fold`); the
        Python fold (`fold_reference`) is the reference, and runs where it is not. `shadow`: SPEC
        §11's candidate definitions, every person counted under them too (see `redefine`)."""
        self.defs = defs
        self.compiled = compiled
        self.shadow_defs = shadow
        self.compiled_fold = stored_fold(defs, _current, Applied, shadow) if compiled else None
        self.partitions: dict[int, PartitionState] = {}
        self.cluster_watermark: int | None = None  # the latest watermark known from any worker

    def redefine(self, defs: Definitions, shadow: Definitions | None, entries: Iterable[tuple[Any, bytes]]) -> None:
        """Other definitions, a shadow added, changed or dropped (SPEC §11): the partitions' counts are
        derived again from the lead table's entries under both. The lead state holds facts only, so
        nothing stored changes; the caller publishes what the change stream needs (`catch_up`)."""
        self.defs, self.shadow_defs = defs, shadow
        self.compiled_fold = stored_fold(defs, _current, Applied, shadow) if self.compiled else None
        self.rebuild(entries, set(self.partitions))

    # -- rebuilding from the tables after a rebalance -------------------------------------

    def rebuild(self, entries: Iterable[tuple[Any, bytes]], active: set[int]) -> None:
        """Derive the aggregates of the `active` partitions from the lead table's entries."""
        self.partitions = rebuilt(self.defs, entries, active, self.shadow_defs)
        for part in self.partitions.values():
            self._learn(part.watermark)

    def drop(self, partition: int) -> None:
        """The partition went to another worker: its share of the aggregates goes with it."""
        self.partitions.pop(partition, None)

    # -- processing ------------------------------------------------------------------------

    def process(self, partition: int, records: Sequence[tuple[int, bytes]], table: LeadTable, result: BatchResult, scan: Scan = _no_scan) -> None:
        """Apply one partition's records of journey.events in offset order; writes each changed
        owner once, then the partition's progress (see `progress_key`: the order matters).

        Lead changes are left for `settle`, once every partition of the batch
        is applied and the watermark they are judged at is final."""
        part = self._part(partition)
        if self.compiled_fold is not None:
            self._process_compiled(partition, part, records, table, result, scan)
        else:
            fold_reference(self.defs, partition, part, records, table, result, scan)
        if records:
            part.progress.through = max(part.progress.through, records[-1][0])
            table.put(progress_key(partition), part.progress.encode())
        self._learn(part.watermark)

    def link(self, partition: int, messages: Sequence[tuple[int, Claim | Facts]], table: LeadTable, result: BatchResult, scan: Scan = _no_scan) -> None:
        """Apply one partition's identity messages (projections.linking), in offset order, each once."""
        part = self._part(partition)
        linker = Linker(self.defs, partition, part, table, scan, result)
        through = part.progress.identity_through
        for offset, message in messages:
            if offset <= through:
                continue  # delivered again: applied already
            if isinstance(message, Claim):
                linker.claimed(message)
            else:
                linker.heard(message)
            through = offset
        if through != part.progress.identity_through:
            part.progress.identity_through = through
            table.put(progress_key(partition), part.progress.encode())

    def _part(self, partition: int) -> PartitionState:
        part = self.partitions.get(partition)
        if part is None:
            part = self.partitions[partition] = _partition_state(self.defs, self.shadow_defs)
        return part

    def _process_compiled(self, partition: int, part: PartitionState, records: Sequence[tuple[int, bytes]], table: LeadTable, result: BatchResult, scan: Scan) -> None:
        """`fold_reference` in C: the records decoded, each touched owner read, folded and written as bytes."""
        progress = part.progress
        valid, duplicates, invalid, mark, owners, links = self.compiled_fold(records, table.get, partition, progress.through)  # type: ignore[misc]
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
        linker = Linker(self.defs, partition, part, table, scan, result) if links or len(owners) else None
        for key, data, old_view, new_view, cause, identity, old_shadow, new_shadow in owners:
            if new_view is None:
                put(key, data)
            elif identity is None and (len(key) <= MAX_ID_CHARS or anonymous_of(key) is None):  # a lead without anonymous ids: the C views are its person's
                put(key, data)
                replace(old_view, new_view, old_shadow, new_shadow)
                moved_leads[key] = (old_view, new_view, cause)
            else:
                before = table.get(key)
                put(key, data)
                _owner_folded(self.defs, linker, key, before, data, (old_view, new_view, old_shadow, new_shadow), cause)  # type: ignore[arg-type]
        for anonymous_id, at, event_id, lead_id, kind in links:
            result.messages.append((anonymous_id, claim_of(lead_id, anonymous_id, Applied(event_id, kind, at), self.defs)))

    def settle(self, result: BatchResult, before: int | None, table: LeadTable) -> None:
        """The lead changes of a whole batch: its leads' own, then those the watermark turned SAL.
        Lead ids only: anonymous persons have none (SPEC §9)."""
        for key, (old_view, new_view, cause) in result.moved.items():
            if (
                old_view is not None and old_view.stage == new_view.stage and old_view.standing == new_view.standing
                and old_view.stale_from is None and new_view.stale_from is None
            ):
                continue  # the same stage and level at any watermark: most events change neither
            if len(key) <= MAX_ID_CHARS or anonymous_of(key) is None:
                change = moved(old_view, before, new_view, self.cluster_watermark, self.defs, cause)
                if change is not None:
                    result.changes.append(change)
        result.changes.extend(self._stale_changes(before, result.moved, table))

    def next_offset(self, partition: int) -> int:
        """The offset of journey.events this partition expects next: one past the offset applied through."""
        part = self.partitions.get(partition)
        return 0 if part is None else part.progress.through + 1

    def next_identity_offset(self, partition: int) -> int:
        """The offset of the identity topic this partition expects next."""
        part = self.partitions.get(partition)
        return 0 if part is None else part.progress.identity_through + 1

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
            for stale_from, key in part.aggregates.going_stale(before, mark):
                data = None if key in exclude or anonymous_of(key) is not None else table.get(key)
                if data is not None:
                    changes.append(went_stale(person_view(key, data, self.defs), self.defs, stale_from))
        return changes

    # -- reading ---------------------------------------------------------------------------

    def local_watermark(self) -> int | None:
        marks = [p.watermark for p in self.partitions.values() if p.watermark is not None]
        return max(marks) if marks else None

    def totals(self) -> tuple[Aggregates, EventCounts, IdentityCounts]:
        """The aggregates, event counts and identity counts of every partition this worker owns; for
        the qualification levels, which depend on the watermark, see `qualification_at`."""
        totals, counts = Aggregates.empty(self.defs), EventCounts()
        for part in self.partitions.values():
            totals.merge(part.aggregates, pending=False)
            counts.merge(part.counts)
        return totals, counts, _identity_counts(self.partitions.values())

    def waiting_days_at(self, watermark: int | None) -> list[dict[int, int]]:
        """Per stage, persons by whole days waiting in it at the watermark, in every partition this worker owns."""
        return _waiting_days(self.partitions.values(), len(self.defs.stages), watermark)

    def qualification_at(self, watermark: int | None) -> list[int]:
        """Persons per qualification level at the watermark, in every partition this worker owns."""
        levels = [0] * len(QUALIFICATIONS)
        for part in self.partitions.values():
            levels = [a + b for a, b in zip(levels, part.aggregates.qualification_at(watermark), strict=True)]
        return levels

    def stage_counts(self, watermark: int | None) -> list[dict[str, int]]:
        """Per stage: its persons, and those in it for at least sal_stale_after_days at the watermark."""
        limit = None if watermark is None else watermark - self.defs.sal_stale_after_micros
        counts = []
        for stage in range(len(self.defs.stages)):
            members = [m for m in (part.stages.get(stage) for part in self.partitions.values()) if m]
            stale = 0 if limit is None else sum(m.bisect_left((limit + 1, "")) for m in members)
            counts.append({"leads": sum(len(m) for m in members), "stale": stale})
        return counts

    def stage_leads(self, stage: int, upto: int) -> list[tuple[int, str]]:
        """The first `upto` persons of a stage, longest in it first (person keys: see projections.identity)."""
        return list(itertools.islice(heapq.merge(*(p.stages.get(stage, ()) for p in self.partitions.values())), upto))


def _waiting_days(parts: Iterable[PartitionState], stages: int, watermark: int | None) -> list[dict[int, int]]:
    found: list[dict[int, int]] = [{} for _ in range(stages)]
    for part in parts:
        for mine, theirs in zip(found, part.waiting_days(watermark) if watermark is not None else [], strict=False):
            for day, count in theirs.items():
                mine[day] = mine.get(day, 0) + count
    return found


def _identity_counts(parts: Iterable[PartitionState]) -> IdentityCounts:
    identity = IdentityTally()
    for part in parts:
        identity.anonymous_ids += part.identity.anonymous_ids
        identity.joined += part.identity.joined
        identity.over_limit += part.identity.over_limit
    return identity.counts()


def catch_up(defs: Definitions, entries: Iterable[tuple[Any, bytes]], published: dict[int, Definitions | None], watermark: int | None) -> dict[int, list[LeadChange]]:
    """SPEC §7, per partition of `published`: the changes that bring journey.lead-changes from the
    definitions it last published under for that partition to `defs`, this worker's. Unknown
    definitions (None: a record that cannot be read) get every lead, as a first change.

    Both sides are judged at `watermark`, the latest the cluster has announced: the topic
    last spoke at it, or the changes of reaching it have yet to follow. Lead ids only: an
    anonymous person has no changes (SPEC §9)."""
    mark = watermark or 0
    changes: dict[int, list[LeadChange]] = {partition: [] for partition in published}
    for key, data in _keyed(entries):
        if progress_partition(key) is not None or held_of(key) is not None or anonymous_of(key) is not None:
            continue
        stored = StoredLead.decode(data)
        if stored.partition not in published:
            continue
        state, old_defs = person_state(stored, key), published[stored.partition]
        old = None if old_defs is None else view(key, state, old_defs)
        change = redefined(old, old_defs, view(key, state, defs), defs, mark)
        if change is not None:
            changes[stored.partition].append(change)
    return changes


def _owner_folded(defs: Definitions, linker: Linker, key: str, before: bytes | None, data: bytes, views: Views, cause: Applied) -> None:
    """An owner whose events were applied and that identity concerns: an anonymous id, or a lead with
    anonymous ids (its person views hold their facts too). `views`: the owner's own, before and after,
    and the same under the shadow definitions (None without a shadow)."""
    stored = StoredLead.decode(data)
    if anonymous_of(key) is not None:
        linker.anonymous_folded(key, stored, views, cause)
        return
    part = linker.part
    old_state = None if before is None else person_state(StoredLead.decode(before), key)
    new_state = person_state(stored, key)
    person_old = None if old_state is None else view(key, old_state, defs)
    person_new = view(key, new_state, defs)
    part.replace(person_old, person_new, shadow_view(part, key, old_state), shadow_view(part, key, new_state))
    linker.result.move(key, person_old, person_new, cause)


def fold_reference(defs: Definitions, partition: int, part: PartitionState, records: Sequence[tuple[int, bytes]], table: LeadTable, result: BatchResult, scan: Scan = _no_scan) -> None:
    """The reference fold of a partition's records, in Python (the C fold is held to it)."""
    progress = part.progress
    touched: dict[str, tuple[StoredLead, bytes | None, LeadView | None, Applied | None, LeadView | None]] = {}
    claims = []
    for offset, value in records:
        decoded = decode_record(value)
        if type(decoded) is Rejection:
            if offset > progress.through:
                progress.invalid += 1
                part.counts.invalid += 1
                result.invalid.append(Invalid(partition, offset, decoded.reason, value))
            continue
        key = decoded.lead_id if decoded.lead_id is not None else anon_key(decoded.anonymous_id)  # type: ignore[arg-type]
        entry = touched.get(key)
        if entry is None:
            entry = touched[key] = _load(defs, partition, part, key, table)
        stored, before, old_view, cause, old_shadow = entry
        if offset <= stored.through:
            continue  # delivered again: already in this owner's state
        stored.through = offset
        if record(stored.state, decoded):
            part.counts.valid += 1
            part.see(decoded.occurred_at)
            applied = Applied(decoded.event_id, decoded.type, decoded.occurred_at)
            touched[key] = (stored, before, old_view, applied, old_shadow)
            if decoded.lead_id is not None and decoded.anonymous_id is not None:
                claims.append((decoded.anonymous_id, claim_of(decoded.lead_id, decoded.anonymous_id, applied, defs)))
        else:
            stored.duplicates += 1
            part.counts.duplicates += 1
    linker = Linker(defs, partition, part, table, scan, result)
    for key, (stored, before, old_view, cause, old_shadow) in touched.items():
        data = stored.encode()
        table.put(key, data)
        if cause is None:
            continue
        new_view, new_shadow = view(key, stored.state, defs), shadow_view(part, key, stored.state)
        if anonymous_of(key) is None and not stored.identity:  # a lead without anonymous ids, as the C fold takes it
            part.replace(old_view, new_view, old_shadow, new_shadow)
            result.moved[key] = (old_view, new_view, cause)
        else:
            _owner_folded(defs, linker, key, before, data, (old_view, new_view, old_shadow, new_shadow), cause)
    result.messages.extend(claims)


def _load(defs: Definitions, partition: int, part: PartitionState, key: str, table: LeadTable) -> tuple[StoredLead, bytes | None, LeadView | None, None, LeadView | None]:
    data = table.get(key)
    if data is None:
        return StoredLead(partition, -1, 0, LeadState()), None, None, None, None
    stored = StoredLead.decode(data)
    return stored, data, view(key, stored.state, defs), None, shadow_view(part, key, stored.state)


def rebuilt(defs: Definitions, entries: Iterable[tuple[Any, bytes]], active: set[int], shadow: Definitions | None = None) -> dict[int, PartitionState]:
    """The partitions' states derived from the lead table's entries: every owner's event counts, each
    person counted once, and the identity counts (SPEC §9; projections.linking counts the same); with
    a shadow, each person counted under it too."""
    parts = {p: _partition_state(defs, shadow) for p in active}
    for partition, key, state in persons(entries, parts):
        part = parts[partition]
        part.replace(None, view(key, state, defs), None, shadow_view(part, key, state))
    return parts


def _partition_state(defs: Definitions, shadow: Definitions | None) -> PartitionState:
    return PartitionState(Aggregates.empty(defs), shadow=None if shadow is None else Shadow(defs, shadow))


def persons(entries: Iterable[tuple[Any, bytes]], parts: dict[int, PartitionState]) -> Iterable[tuple[int, str, LeadState]]:
    """Every person of the lead table's entries in the partitions of `parts`, with its partition and
    key: each lead with its kept anonymous ids, each anonymous id that joined no lead, each id over
    its lead's limit. On the way, each partition's progress, event counts and identity counts go
    into `parts`: what a rebuild needs besides the persons' views."""
    kept: dict[str, set[str]] = {}
    candidates: list[tuple[int, str, str, LeadState]] = []  # held ids that belong to their lead: kept, or over the limit
    for key, data in _keyed(entries):
        if (partition := progress_partition(key)) is not None:
            if partition in parts:
                parts[partition].progress = Progress.decode(data)
                parts[partition].counts.invalid = parts[partition].progress.invalid
            continue
        if (held := held_of(key)) is not None:
            entry = Held.decode(data)
            if entry.partition in parts and entry.link.lead_id == held[0]:
                candidates.append((entry.partition, held[0], held[1], entry.facts))
            continue
        stored = StoredLead.decode(data)
        part = parts.get(stored.partition)
        if part is None:
            continue  # a standby copy of another worker's partition
        part.counts.valid += stored.state.events
        part.counts.duplicates += stored.duplicates
        if stored.state.events:
            part.see(stored.state.last_at)
        if anonymous_of(key) is not None:
            part.identity.anonymous_ids += 1
            if anon_section(stored.identity).winner is None and stored.state.events:
                yield stored.partition, key, stored.state
            continue
        section = lead_section(stored.identity, key)
        kept[key] = {entry.anonymous_id for entry in section.kept}
        part.identity.joined += len(section.kept)
        yield stored.partition, key, person_state(stored, key)
    for partition, lead_id, anonymous_id, facts in candidates:
        if anonymous_id not in kept.get(lead_id, ()):
            parts[partition].identity.over_limit += 1
            if facts.events:
                yield partition, anon_key(anonymous_id), facts


def _keyed(entries: Iterable[tuple[Any, bytes]]) -> Iterable[tuple[str, bytes]]:
    """The lead table's entries with str keys (the store gives bytes)."""
    for key, data in entries:
        yield (key.decode("utf-8", "surrogatepass") if isinstance(key, bytes) else key), data


def _current(data: bytes) -> bytes:
    """A stored owner of any version at the current one (CorruptState when it is none): for the C fold."""
    return StoredLead.decode(data).encode()
