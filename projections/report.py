"""Across leads: the aggregates of SPEC §4, the replay report and the comparison of SPEC §5."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sortedcontainers import SortedList

from projections.attribution import Attribution
from projections.definitions import DAY_MICROS, NO_INDEX, Definitions
from projections.identity import NO_IDENTITY, IdentityCounts, anonymous_of
from projections.lead import CUSTOMER, MQL, QUALIFICATIONS, SAL, TOUCH_FIELDS, LeadView
from schemas.events import format_time

_EPOCH_DAY = date(1970, 1, 1)


@dataclass(slots=True)
class EventCounts:
    valid: int = 0
    invalid: int = 0
    duplicates: int = 0

    def merge(self, other: EventCounts) -> None:
        self.valid += other.valid
        self.invalid += other.invalid
        self.duplicates += other.duplicates

    def as_dict(self) -> dict[str, int]:
        return {"valid": self.valid, "invalid": self.invalid, "duplicates": self.duplicates}


@dataclass(slots=True)
class Aggregates:
    """Counts over a set of leads; aggregates of disjoint sets of leads merge by adding.

    Nothing here depends on the watermark: leads that will turn SAL once the
    watermark passes `stale_from` wait in `pending`, and `qualification_at`
    settles them. A live worker keeps one per partition and updates it by
    removing a lead's old view and adding its new one.
    """

    steps: int
    leads: int = 0
    pipeline: list[int] = field(default_factory=list)
    standing: list[int] = field(default_factory=list)  # per qualification level, pending leads excluded
    pending: SortedList = field(default_factory=SortedList)  # (stale_from, lead_id) of MQLs that may go stale
    funnel: list[int] = field(default_factory=list)
    funnel_daily: dict[int, list[int]] = field(default_factory=dict)
    cohorts_daily: dict[int, list[int]] = field(default_factory=dict)
    attribution: Attribution = field(default_factory=lambda: Attribution(0))

    @classmethod
    def empty(cls, defs: Definitions) -> Aggregates:
        n_steps = len(defs.steps)
        return cls(n_steps, 0, [0] * len(defs.stages), [0] * len(QUALIFICATIONS), SortedList(), [0] * n_steps, attribution=Attribution(n_steps))

    def add(self, lead: LeadView, sign: int = 1) -> None:
        """Count a lead in (sign 1) or, with its earlier view, out again (sign -1)."""
        self.leads += sign
        self._attribute(lead, sign)
        self._place(lead, sign)
        self._reach_times(lead.reach_at, sign)

    def replace(self, old: LeadView | None, new: LeadView) -> None:
        """A lead changed: count its old view out and its new one in.

        Most events change only part of a view (another content read moves
        neither the first touch nor the funnel), so each part is counted out and
        in only when it differs: the same totals as `add(old, -1); add(new)`."""
        if old is None:
            self.add(new)
            return
        if old.touch != new.touch or old.funnel_step != new.funnel_step or old.standing != new.standing or old.revenue != new.revenue:
            self.attribution.move(
                (old.touch, old.funnel_step, old.standing == CUSTOMER, old.revenue), (new.touch, new.funnel_step, new.standing == CUSTOMER, new.revenue)
            )
        if old.stage != new.stage or old.standing != new.standing or old.stale_from != new.stale_from:
            self._place(old, -1)
            self._place(new, 1)
        if old.reach_at != new.reach_at:
            self._move_reach(old.reach_at, new.reach_at)

    def _attribute(self, lead: LeadView, sign: int) -> None:
        self.attribution.add(lead.touch, lead.funnel_step, lead.standing == CUSTOMER, lead.revenue, sign)

    def _place(self, lead: LeadView, sign: int) -> None:
        if lead.stage != NO_INDEX:
            self.pipeline[lead.stage] += sign
        if lead.stale_from is None:
            self.standing[lead.standing] += sign
        elif sign > 0:
            self.pending.add((lead.stale_from, lead.lead_id))
        else:
            self.pending.remove((lead.stale_from, lead.lead_id))

    def _reach_times(self, reach_at: tuple[int, ...], sign: int) -> None:
        if not reach_at:
            return
        for step, at in enumerate(reach_at):
            self.funnel[step] += sign
            _count_day(self.funnel_daily, at // DAY_MICROS, range(step, step + 1), self.steps, sign)
        _count_day(self.cohorts_daily, reach_at[0] // DAY_MICROS, range(len(reach_at)), self.steps, sign)

    def _move_reach(self, old: tuple[int, ...], new: tuple[int, ...]) -> None:
        """`_reach_times(old, -1)` then `_reach_times(new, 1)`, touching only the steps and days that differ."""
        if not old or not new:
            self._reach_times(old, -1)
            self._reach_times(new, 1)
            return
        funnel, daily, width = self.funnel, self.funnel_daily, self.steps
        for step in range(max(len(old), len(new))):
            old_day = old[step] // DAY_MICROS if step < len(old) else None
            new_day = new[step] // DAY_MICROS if step < len(new) else None
            if old_day == new_day:
                continue
            if old_day is not None:
                funnel[step] -= 1
                _count_day(daily, old_day, range(step, step + 1), width, -1)
            if new_day is not None:
                funnel[step] += 1
                _count_day(daily, new_day, range(step, step + 1), width, 1)
        old_cohort, new_cohort = old[0] // DAY_MICROS, new[0] // DAY_MICROS
        if old_cohort != new_cohort:
            _count_day(self.cohorts_daily, old_cohort, range(len(old)), width, -1)
            _count_day(self.cohorts_daily, new_cohort, range(len(new)), width, 1)
        elif len(old) < len(new):
            _count_day(self.cohorts_daily, new_cohort, range(len(old), len(new)), width, 1)
        elif len(new) < len(old):
            _count_day(self.cohorts_daily, new_cohort, range(len(new), len(old)), width, -1)

    def qualification_at(self, watermark: int | None) -> list[int]:
        counts = list(self.standing)
        stale = 0 if watermark is None else self.pending.bisect_left((watermark + 1, ""))
        counts[MQL] += len(self.pending) - stale
        counts[SAL] += stale
        return counts

    def going_stale(self, after: int | None, upto: int) -> list[tuple[int, str]]:
        """(stale_from, lead_id) of the leads that turn SAL as the watermark moves from `after` to `upto`."""
        low = (after + 1, "") if after is not None else None
        return list(self.pending.irange(low, (upto + 1, ""), inclusive=(True, False)))

    def merge(self, other: Aggregates, pending: bool = True) -> None:
        """Add another's counts. Without `pending`, its MQLs that may go stale are left out
        (summing `qualification_at` per part is cheaper than merging them)."""
        self.leads += other.leads
        _add_into(self.pipeline, other.pipeline)
        _add_into(self.standing, other.standing)
        if pending:
            self.pending.update(other.pending)
        _add_into(self.funnel, other.funnel)
        self.attribution.merge(other.attribution)
        for mine, theirs in ((self.funnel_daily, other.funnel_daily), (self.cohorts_daily, other.cohorts_daily)):
            for day, row in theirs.items():
                if day in mine:
                    _add_into(mine[day], row)
                else:
                    mine[day] = list(row)


def _count_day(rows: dict[int, list[int]], day: int, steps: range, width: int, sign: int) -> None:
    row = rows.get(day)
    if row is None:
        row = rows[day] = [0] * width
    for step in steps:
        row[step] += sign
    if sign < 0 and not any(row):
        del rows[day]  # days with no reach are left out of the report


def aggregate(leads: Iterable[LeadView], defs: Definitions) -> Aggregates:
    totals = Aggregates.empty(defs)
    for lead in leads:
        totals.add(lead)
    return totals


def build_report(defs: Definitions, counts: EventCounts, watermark: int | None, totals: Aggregates, identity: IdentityCounts = NO_IDENTITY) -> dict[str, Any]:
    return {
        "events": counts.as_dict(),
        "watermark": None if watermark is None else format_time(watermark),
        "leads": totals.leads,
        "pipeline": dict(zip(defs.stages, totals.pipeline, strict=True)),
        "qualification": dict(zip(QUALIFICATIONS, totals.qualification_at(watermark), strict=True)),
        "funnel": dict(zip(defs.steps, totals.funnel, strict=True)),
        "funnel_daily": _by_day(totals.funnel_daily, defs.steps),
        "cohorts_daily": _by_day(totals.cohorts_daily, defs.steps),
        "attribution": totals.attribution.report(defs.steps),
        "identity": identity.as_dict(),
    }


def lead_record(lead: LeadView, defs: Definitions, watermark: int, anonymous_ids: Iterable[str] = ()) -> dict[str, Any]:
    """One line of `--leads-out`, and the body of GET /api/leads/{lead_id}: a person (SPEC §9),
    a lead with the anonymous ids that joined it (sorted), or an anonymous person."""
    anonymous_id = anonymous_of(lead.lead_id)
    return {
        "lead_id": lead.lead_id if anonymous_id is None else None,
        "anonymous_ids": sorted(anonymous_ids) if anonymous_id is None else [anonymous_id],
        "stage": stage_name(lead, defs),
        "stage_entered_at": None if lead.stage_entered_at is None else format_time(lead.stage_entered_at),
        "qualification": QUALIFICATIONS[lead.qualification(watermark)],
        "funnel_step": None if lead.funnel_step == NO_INDEX else defs.steps[lead.funnel_step],
        "events": lead.events,
        "last_event_at": format_time(lead.last_event_at),
        "first_touch": None if lead.touch is None else dict(zip(TOUCH_FIELDS, lead.touch, strict=True)),
        "revenue": {currency: hundredths / 100 for currency, hundredths in lead.revenue},
    }


def stage_name(lead: LeadView, defs: Definitions) -> str | None:
    return None if lead.stage == NO_INDEX else defs.stages[lead.stage]


class Changes:
    """Which leads move between stages and qualification levels from one definitions to another."""

    def __init__(self) -> None:
        self.stages: Counter[str] = Counter()
        self.qualifications: Counter[str] = Counter()

    def add(self, old: LeadView, old_defs: Definitions, new: LeadView, new_defs: Definitions, watermark: int) -> None:
        old_stage = stage_name(old, old_defs) or "none"
        new_stage = stage_name(new, new_defs) or "none"
        if old_stage != new_stage:
            self.stages[f"{old_stage}->{new_stage}"] += 1
        old_level, new_level = old.qualification(watermark), new.qualification(watermark)
        if old_level != new_level:
            self.qualifications[f"{QUALIFICATIONS[old_level]}->{QUALIFICATIONS[new_level]}"] += 1

    def merge(self, other: Changes) -> None:
        self.stages.update(other.stages)
        self.qualifications.update(other.qualifications)


def build_comparison(baseline: dict[str, Any], candidate: dict[str, Any], changes: Changes) -> dict[str, Any]:
    return {
        "baseline": baseline,
        "candidate": candidate,
        "stage_changes": dict(sorted(changes.stages.items())),
        "qualification_changes": dict(sorted(changes.qualifications.items())),
    }


def day_name(day: int) -> str:
    return (_EPOCH_DAY + timedelta(days=day)).isoformat()


def _by_day(rows: dict[int, list[int]], steps: tuple[str, ...]) -> dict[str, dict[str, int]]:
    return {day_name(day): dict(zip(steps, rows[day], strict=True)) for day in sorted(rows)}


def _add_into(target: list[int], source: list[int]) -> None:
    for i, value in enumerate(source):
        target[i] += value
