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
from projections.definitions import DAY_MICROS
from projections.identity import IdentityCounts
from projections.lead import LeadView
from projections.report import Aggregates, EventCounts
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

    def replace(self, old: LeadView | None, new: LeadView) -> None:
        self.aggregates.replace(old, new)
        if old is not None and old.stage == new.stage and old.stage_entered_at == new.stage_entered_at:
            return  # still in the same place on the board
        if old is not None and old.stage >= 0:
            self.stages[old.stage].remove((old.stage_entered_at, old.lead_id))
        if new.stage >= 0:
            self.stages[new.stage].add((new.stage_entered_at, new.lead_id))

    def remove(self, old: LeadView) -> None:
        """A person counted here is counted here no more (it joined a lead, or left this partition's leads)."""
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


