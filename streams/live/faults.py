"""Named faults in the worker, for the tests of the poison-record guard (streams/live/poison.py).

A poison record is a valid record the fold raises on: a bug, such as the C
fold's OverflowError on a lead's 256th currency (issue 28). The guard must
find such records whatever the bug, so a test needs bugs on demand:

- `JOURNEY_FAULT="fold=MARK"`: the C fold raises for a batch that holds a
  record whose event_id contains MARK, from inside `LiveProjection.process`
  and before anything is written, as that OverflowError did;
- `JOURNEY_FAULT="write=MARK"`: writing a lead whose id contains MARK raises,
  from inside `LiveProjection.process` after the fold: the leads before it
  are then written and counted in the partition's aggregates.

Both may be given, separated by a comma. Read once, when the worker starts.
Unset, as in any deployment, nothing is wrapped and nothing is checked.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from projections.partition import LeadTable

log = logging.getLogger("journey.worker")

POINTS = ("fold", "write")


class InjectedFault(RuntimeError):
    """The fault JOURNEY_FAULT asked for."""


@dataclass(frozen=True)
class Faults:
    fold: str | None = None  # the mark of event ids the fold raises on
    write: str | None = None  # the mark of lead ids whose write raises

    def wrap_fold(self, fold: Callable[..., Any]) -> Callable[..., Any]:
        """The C fold (`projections.stored_fold`), raising for a batch that holds a marked event id."""
        mark = self.fold
        if mark is None:
            return fold

        def faulty(records: Sequence[tuple[int, bytes]], *args: Any) -> Any:
            for _, value in records:
                if mark in _event_id(value):
                    raise InjectedFault(f"injected fault (JOURNEY_FAULT fold={mark}): the fold raises on this record")
            return fold(records, *args)

        return faulty

    def wrap_table(self, table: LeadTable) -> LeadTable:
        return table if self.write is None else _FaultyTable(table, self.write)


class _FaultyTable:
    """A lead table whose writes of marked lead ids raise."""

    def __init__(self, table: LeadTable, mark: str) -> None:
        self._table = table
        self._mark = mark

    def get(self, lead_id: str) -> bytes | None:
        return self._table.get(lead_id)

    def put(self, lead_id: str, value: bytes) -> None:
        if self._mark in lead_id:
            raise InjectedFault(f"injected fault (JOURNEY_FAULT write={self._mark}): writing this lead raises")
        self._table.put(lead_id, value)


def _event_id(value: bytes) -> str:
    try:
        found = orjson.loads(value).get("event_id")
    except (orjson.JSONDecodeError, AttributeError):
        return ""
    return found if isinstance(found, str) else ""


def read(text: str | None = None) -> Faults:
    """The faults JOURNEY_FAULT names (or `text`); a mistake in it is logged, never fatal."""
    text = os.environ.get("JOURNEY_FAULT", "") if text is None else text
    marks: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        point, _, mark = item.partition("=")
        if point not in POINTS or not mark:
            log.error("JOURNEY_FAULT: %r is not POINT=MARK with a point of %s; ignored", item, ", ".join(POINTS))
            continue
        marks[point] = mark
    if marks:
        log.warning("JOURNEY_FAULT: injecting faults %s (a test hook: never set it in a deployment)", marks)
    return Faults(**marks)
