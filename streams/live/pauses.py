"""Named pauses in the worker, for the crash tests that must kill it at one exact point.

`JOURNEY_PAUSE="catch-up=30"` makes a worker wait 30 s after each partition it
catches up (SPEC §7, `JourneyApp._catch_up_changes`), so a test can SIGKILL
it with one partition caught up and the rest not. A timed kill cannot do that
since the catch-up is a few milliseconds a partition. Unset, as in any
deployment, a pause point costs a dict lookup.
"""

from __future__ import annotations

import asyncio
import logging
import os

log = logging.getLogger("journey.worker")

POINTS = ("catch-up",)


def _read(text: str) -> dict[str, float]:
    pauses: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        point, _, seconds = item.partition("=")
        try:
            pauses[point] = float(seconds)
        except ValueError:
            log.error("JOURNEY_PAUSE: %r is not POINT=SECONDS; not pausing there", item)
            continue
        if point not in POINTS:
            log.error("JOURNEY_PAUSE: no pause point %r (there are: %s)", point, ", ".join(POINTS))
    return pauses


async def pause(point: str) -> None:
    """Wait here as long as JOURNEY_PAUSE says for `point`; at once when it does not name it."""
    text = os.environ.get("JOURNEY_PAUSE")
    seconds = _read(text).get(point) if text else None
    if seconds:
        log.warning("pausing %.1f s at %s (JOURNEY_PAUSE)", seconds, point)
        await asyncio.sleep(seconds)
