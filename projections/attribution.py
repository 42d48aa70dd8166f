"""Attribution (SPEC §4): the funnel, customers and revenue broken down by first touch.

For each dimension (source, channel, campaign) and each value of it among the
leads' first touches ("(none)" for null, and for leads with no touch): the
leads, per funnel step those that reached it, the customers, and their revenue
per currency. Like every aggregate here it is derived from lead views, counts
a lead in or out again, and merges by adding, so a live worker keeps it per
partition and replay builds it once. Revenue stays in exact integer hundredths
until the report writes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from projections.lead import TOUCH_FIELDS, Touch

DIMENSIONS = TOUCH_FIELDS  # the report's order: source, channel, campaign
NONE_VALUE = "(none)"


@dataclass(slots=True)
class Row:
    leads: int
    funnel: list[int]
    customers: int = 0
    # currency -> [hundredths, leads with revenue in it]: the count says when a currency is gone,
    # since a sum of 0.00 (an amount of 0) is still revenue named in that currency
    revenue: dict[str, list[int]] = field(default_factory=dict)


class Attribution:
    __slots__ = ("by", "steps")

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.by: tuple[dict[str, Row], ...] = tuple({} for _ in DIMENSIONS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Attribution):
            return NotImplemented
        return (self.steps, self.by) == (other.steps, other.by)

    def __repr__(self) -> str:
        return f"Attribution({self.by!r})"

    def add(self, touch: Touch | None, funnel_step: int, customer: bool, revenue: tuple[tuple[str, int], ...], sign: int = 1) -> None:
        """Count one lead in (sign 1) or out again (sign -1)."""
        self.add_leads(touch, funnel_step, customer, sign)
        for currency, hundredths in revenue:
            self.add_revenue(touch, currency, sign * hundredths, sign)

    def move(self, old: tuple[Touch | None, int, bool, tuple[tuple[str, int], ...]], new: tuple[Touch | None, int, bool, tuple[tuple[str, int], ...]]) -> None:
        """One lead's (touch, funnel_step, customer, revenue) changed from `old` to `new`: the same
        as `add(*old, -1)` then `add(*new)`, but where the first touch stays, only what changed
        moves within its rows."""
        old_touch, old_step, old_customer, old_revenue = old
        new_touch, new_step, new_customer, new_revenue = new
        values = values_of(new_touch)
        if old_touch != new_touch and values != values_of(old_touch):
            self.add(*old, -1)
            self.add(*new)
            return
        for rows, value in zip(self.by, values, strict=True):
            row = rows[value]  # the lead is counted in it, so it is there, and stays (it still counts the lead)
            if old_step != new_step:
                funnel = row.funnel
                for step in range(old_step + 1, new_step + 1):
                    funnel[step] += 1
                for step in range(new_step + 1, old_step + 1):
                    funnel[step] -= 1
            if old_customer != new_customer:
                row.customers += 1 if new_customer else -1
            if old_revenue != new_revenue:
                revenue = row.revenue
                for currency, hundredths in old_revenue:
                    slot = revenue[currency]
                    slot[0] -= hundredths
                    slot[1] -= 1
                    if slot[1] == 0:
                        del revenue[currency]
                for currency, hundredths in new_revenue:
                    slot = revenue.setdefault(currency, [0, 0])
                    slot[0] += hundredths
                    slot[1] += 1

    def add_leads(self, touch: Touch | None, funnel_step: int, customer: bool, count: int) -> None:
        """`count` leads of the same first touch, funnel step and customer status."""
        for rows, value in zip(self.by, values_of(touch), strict=True):
            row = self._row(rows, value)
            row.leads += count
            for step in range(funnel_step + 1):
                row.funnel[step] += count
            if customer:
                row.customers += count
            _drop_if_empty(rows, value, row)  # a lead counted out: its revenue may follow

    def add_revenue(self, touch: Touch | None, currency: str, hundredths: int, leads: int) -> None:
        """Revenue of `leads` leads of one first touch in one currency (counted in by add_leads)."""
        for rows, value in zip(self.by, values_of(touch), strict=True):
            row = self._row(rows, value)
            slot = row.revenue.setdefault(currency, [0, 0])
            slot[0] += hundredths
            slot[1] += leads
            if slot[1] == 0:
                del row.revenue[currency]
            _drop_if_empty(rows, value, row)

    def _row(self, rows: dict[str, Row], value: str) -> Row:
        row = rows.get(value)
        if row is None:
            row = rows[value] = Row(0, [0] * self.steps)
        return row

    def merge(self, other: Attribution) -> None:
        for mine, theirs in zip(self.by, other.by, strict=True):
            for value, row in theirs.items():
                into = mine.get(value)
                if into is None:
                    mine[value] = Row(row.leads, list(row.funnel), row.customers, {c: list(s) for c, s in row.revenue.items()})
                    continue
                into.leads += row.leads
                into.funnel = [a + b for a, b in zip(into.funnel, row.funnel, strict=True)]
                into.customers += row.customers
                for currency, (hundredths, leads) in row.revenue.items():
                    slot = into.revenue.setdefault(currency, [0, 0])
                    slot[0] += hundredths
                    slot[1] += leads

    def report(self, steps: tuple[str, ...]) -> dict[str, dict[str, Any]]:
        """The report's `attribution` section: per dimension, per value, sorted by value."""
        return {
            dimension: {
                value: {
                    "leads": row.leads,
                    "funnel": dict(zip(steps, row.funnel, strict=True)),
                    "customers": row.customers,
                    "revenue": {currency: hundredths / 100 for currency, (hundredths, _) in sorted(row.revenue.items())},
                }
                for value, row in sorted(rows.items())
            }
            for dimension, rows in zip(DIMENSIONS, self.by, strict=True)
        }

    def encode(self) -> list[dict[str, list[Any]]]:
        """Exact integers for the wire (a worker's partial): per dimension, value -> row."""
        return [{value: [row.leads, row.funnel, row.customers, row.revenue] for value, row in rows.items()} for rows in self.by]

    @classmethod
    def decode(cls, steps: int, data: list[dict[str, list[Any]]]) -> Attribution:
        found = cls(steps)
        for rows, wire in zip(found.by, data, strict=True):
            for value, (leads, funnel, customers, revenue) in wire.items():
                rows[value] = Row(leads, list(funnel), customers, {c: list(s) for c, s in revenue.items()})
        return found


def _drop_if_empty(rows: dict[str, Row], value: str, row: Row) -> None:
    """A value with no leads and no revenue left is gone from the breakdown."""
    if row.leads == 0 and not row.revenue:
        del rows[value]


def values_of(touch: Touch | None) -> tuple[str, str, str]:
    if touch is None:
        return _NO_VALUES
    source, channel, campaign = touch  # unpacked, not a generator: this runs for every lead a batch moves
    return (NONE_VALUE if source is None else source, NONE_VALUE if channel is None else channel, NONE_VALUE if campaign is None else campaign)


_NO_VALUES = (NONE_VALUE, NONE_VALUE, NONE_VALUE)
