"""One partition's share of a live worker's projection: what it counts, and what a batch of it produced.

Pure, like the rest of the core: `LeadTable` is whatever gets and puts raw bytes by key (the
worker's batch view of its RocksDB table, or a dict in the tests).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from sortedcontainers import SortedList

from projections.changes import Applied, LeadChange
from projections.definitions import DAY_MICROS, NO_INDEX, Definitions
from projections.identity import IdentityCounts
from projections.lead import QUALIFICATIONS, SAL, LeadState, LeadView, view
from projections.report import Aggregates, Changes, EventCounts
from projections.stored import Progress


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
    identity: IdentityTally = field(default_factory=lambda: IdentityTally())
    shadow: Shadow | None = None  # SPEC §11: the same persons under the shadow definitions, when there is one

    def replace(self, old: LeadView | None, new: LeadView, old_shadow: LeadView | None = None, new_shadow: LeadView | None = None) -> None:
        """A person's views before (None: not counted yet) and after; with a shadow, its views under
        the shadow definitions too (`shadow_view`)."""
        if self.shadow is not None:
            self.shadow.replace(old, new, old_shadow, new_shadow)  # type: ignore[arg-type]
        self.aggregates.replace(old, new)
        if old is not None and old.stage == new.stage and old.stage_entered_at == new.stage_entered_at:
            return  # still in the same place on the board
        if old is not None and old.stage >= 0:
            self.stages[old.stage].remove((old.stage_entered_at, old.lead_id))
        if new.stage >= 0:
            self.stages[new.stage].add((new.stage_entered_at, new.lead_id))

    def remove(self, old: LeadView, old_shadow: LeadView | None = None) -> None:
        """A person counted here is counted here no more (it joined a lead, or left this partition's leads)."""
        if self.shadow is not None:
            self.shadow.remove(old, old_shadow)  # type: ignore[arg-type]
        self.aggregates.add(old, -1)
        if old.stage >= 0:
            self.stages[old.stage].remove((old.stage_entered_at, old.lead_id))

    def waiting_days(self, watermark: int) -> list[dict[int, int]]:
        """Per stage, its persons by whole days waiting in it at the watermark (SPEC §10's `waiting_days`):
        from the board, which holds them by when they entered, a bisection per distinct day."""
        found: list[dict[int, int]] = []
        for stage in range(len(self.aggregates.velocity.entered)):
            members, days = self.stages.get(stage), {}
            end = 0 if members is None else len(members)
            while end:
                entered = members[end - 1][0]  # the latest left to count, and every one of its day
                day = (watermark - entered) // DAY_MICROS
                start = members.bisect_left((watermark - (day + 1) * DAY_MICROS + 1, ""))
                days[day] = end - start
                end = start
            found.append(days)
        return found

    def see(self, at: int) -> None:
        if self.watermark is None or at > self.watermark:
            self.watermark = at


class Shadow:
    """One partition's persons under SPEC §11's shadow definitions: a second set of counts over the
    same state. The candidate's aggregates and stage board (a `PartitionState` of its own), and
    who would move: each person's (stage, stage) under both definitions, and its (standing,
    stale_from) under both, judged at a watermark only when asked (`changes_at`), as a replay
    judges at the log's."""

    __slots__ = ("candidate", "current", "levels", "stages", "state")

    def __init__(self, current: Definitions, candidate: Definitions) -> None:
        self.current, self.candidate = current, candidate
        self.state = PartitionState(Aggregates.empty(candidate))
        self.stages: dict[tuple[int, int], int] = {}
        self.levels: dict[tuple[int, int | None, int, int | None], int] = {}

    def replace(self, old: LeadView | None, new: LeadView, old_shadow: LeadView | None, new_shadow: LeadView) -> None:
        self.state.replace(old_shadow, new_shadow)
        if old is not None:
            self._count(old, old_shadow, -1)  # type: ignore[arg-type]
        self._count(new, new_shadow, 1)

    def remove(self, old: LeadView, old_shadow: LeadView) -> None:
        self.state.remove(old_shadow)
        self._count(old, old_shadow, -1)

    def _count(self, view: LeadView, shadow: LeadView, sign: int) -> None:
        for pairs, key in ((self.stages, (view.stage, shadow.stage)), (self.levels, (view.standing, view.stale_from, shadow.standing, shadow.stale_from))):
            count = pairs.get(key, 0) + sign  # type: ignore[attr-defined]
            if count:
                pairs[key] = count  # type: ignore[index]
            else:
                del pairs[key]  # type: ignore[attr-defined]

    def changes_at(self, watermark: int | None, into: Changes) -> None:
        """Add who moves between stages and between qualification levels at `watermark` (None: an
        empty log, judged at 0 as replay judges it) to `into`: SPEC §5's comparison."""
        mark = watermark or 0
        current, candidate = self.current.stages, self.candidate.stages
        for (old, new), count in self.stages.items():
            before = "none" if old == NO_INDEX else current[old]
            after = "none" if new == NO_INDEX else candidate[new]
            if before != after:
                into.stages[f"{before}->{after}"] += count
        for (standing, stale_from, shadow_standing, shadow_stale_from), count in self.levels.items():
            before = SAL if stale_from is not None and mark >= stale_from else standing
            after = SAL if shadow_stale_from is not None and mark >= shadow_stale_from else shadow_standing
            if before != after:
                into.qualifications[f"{QUALIFICATIONS[before]}->{QUALIFICATIONS[after]}"] += count


def shadow_view(part: PartitionState, key: str, state: LeadState | None) -> LeadView | None:
    """A person's view under the partition's shadow definitions: None without a shadow, or without a state."""
    return None if part.shadow is None or state is None else view(key, state, part.shadow.candidate)


@dataclass
class IdentityTally:
    """The report's identity counts of one partition (SPEC §9): the anonymous ids it owns, and of its
    leads' anonymous ids, those that joined and those over the limit."""

    anonymous_ids: int = 0
    joined: int = 0
    over_limit: int = 0

    def counts(self) -> IdentityCounts:
        return IdentityCounts(self.anonymous_ids, self.joined, self.over_limit)


@dataclass
class BatchResult:
    invalid: list[Invalid] = field(default_factory=list)
    moved: dict[str, tuple[LeadView | None, LeadView, Applied]] = field(default_factory=dict)  # old view, new view, last event
    changes: list[LeadChange] = field(default_factory=list)
    messages: list[tuple[str, Any]] = field(default_factory=list)  # identity messages: (target owner, Claim or Facts)

    def move(self, key: str, old: LeadView | None, new: LeadView, cause: Applied) -> None:
        """A person this batch moved: its first view before the batch stays, its last view and cause win."""
        before = self.moved.get(key)
        self.moved[key] = (old if before is None else before[0], new, cause)


