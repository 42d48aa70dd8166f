"""Across leads: the aggregates of SPEC §4, the replay report and the comparison of SPEC §5."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Iterable

from projections.definitions import NO_INDEX, Definitions
from projections.lead import QUALIFICATIONS, LeadView
from schemas.events import format_time

DAY_MICROS = 86_400_000_000
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
    """Counts over a set of leads; aggregates of disjoint sets of leads merge by adding."""

    stages: int
    steps: int
    leads: int = 0
    pipeline: list[int] = field(default_factory=list)
    qualification: list[int] = field(default_factory=list)
    funnel: list[int] = field(default_factory=list)
    funnel_daily: dict[int, list[int]] = field(default_factory=dict)
    cohorts_daily: dict[int, list[int]] = field(default_factory=dict)

    @classmethod
    def empty(cls, defs: Definitions) -> Aggregates:
        n_stages, n_steps = len(defs.stages), len(defs.steps)
        return cls(n_stages, n_steps, 0, [0] * n_stages, [0] * len(QUALIFICATIONS), [0] * n_steps)

    def add(self, lead: LeadView) -> None:
        self.leads += 1
        if lead.stage != NO_INDEX:
            self.pipeline[lead.stage] += 1
        self.qualification[lead.qualification] += 1
        if not lead.reach_at:
            return
        funnel, daily = self.funnel, self.funnel_daily
        for step, at in enumerate(lead.reach_at):
            funnel[step] += 1
            day = at // DAY_MICROS
            row = daily.get(day)
            if row is None:
                row = daily[day] = [0] * self.steps
            row[step] += 1
        cohort_day = lead.reach_at[0] // DAY_MICROS
        cohort = self.cohorts_daily.get(cohort_day)
        if cohort is None:
            cohort = self.cohorts_daily[cohort_day] = [0] * self.steps
        for step in range(len(lead.reach_at)):
            cohort[step] += 1

    def merge(self, other: Aggregates) -> None:
        self.leads += other.leads
        _add_into(self.pipeline, other.pipeline)
        _add_into(self.qualification, other.qualification)
        _add_into(self.funnel, other.funnel)
        for mine, theirs in ((self.funnel_daily, other.funnel_daily), (self.cohorts_daily, other.cohorts_daily)):
            for day, row in theirs.items():
                if day in mine:
                    _add_into(mine[day], row)
                else:
                    mine[day] = list(row)


def aggregate(leads: Iterable[LeadView], defs: Definitions) -> Aggregates:
    totals = Aggregates.empty(defs)
    for lead in leads:
        totals.add(lead)
    return totals


def build_report(defs: Definitions, counts: EventCounts, watermark: int | None, totals: Aggregates) -> dict[str, Any]:
    return {
        "events": counts.as_dict(),
        "watermark": None if watermark is None else format_time(watermark),
        "leads": totals.leads,
        "pipeline": dict(zip(defs.stages, totals.pipeline)),
        "qualification": dict(zip(QUALIFICATIONS, totals.qualification)),
        "funnel": dict(zip(defs.steps, totals.funnel)),
        "funnel_daily": _by_day(totals.funnel_daily, defs.steps),
        "cohorts_daily": _by_day(totals.cohorts_daily, defs.steps),
    }


def lead_record(lead: LeadView, defs: Definitions) -> dict[str, Any]:
    """One line of `--leads-out`, and the body of GET /api/leads/{lead_id}."""
    return {
        "lead_id": lead.lead_id,
        "stage": stage_name(lead, defs),
        "stage_entered_at": None if lead.stage_entered_at is None else format_time(lead.stage_entered_at),
        "qualification": QUALIFICATIONS[lead.qualification],
        "funnel_step": None if lead.funnel_step == NO_INDEX else defs.steps[lead.funnel_step],
        "events": lead.events,
        "last_event_at": format_time(lead.last_event_at),
    }


def stage_name(lead: LeadView, defs: Definitions) -> str | None:
    return None if lead.stage == NO_INDEX else defs.stages[lead.stage]


class Changes:
    """Which leads move between stages and qualification levels from one definitions to another."""

    def __init__(self) -> None:
        self.stages: Counter[str] = Counter()
        self.qualifications: Counter[str] = Counter()

    def add(self, old: LeadView, old_defs: Definitions, new: LeadView, new_defs: Definitions) -> None:
        old_stage = stage_name(old, old_defs) or "none"
        new_stage = stage_name(new, new_defs) or "none"
        if old_stage != new_stage:
            self.stages[f"{old_stage}->{new_stage}"] += 1
        if old.qualification != new.qualification:
            self.qualifications[f"{QUALIFICATIONS[old.qualification]}->{QUALIFICATIONS[new.qualification]}"] += 1

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
    return {day_name(day): dict(zip(steps, rows[day])) for day in sorted(rows)}


def _add_into(target: list[int], source: list[int]) -> None:
    for i, value in enumerate(source):
        target[i] += value
