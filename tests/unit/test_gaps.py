"""The offset-gap guard (streams/live/gaps.py) when the broker cannot be asked: it reads again, never skips, never raises."""

from __future__ import annotations

import asyncio

from streams.live.gaps import GapGuard
from streams.net import free_port


def test_a_gap_the_broker_cannot_be_asked_about_is_read_again() -> None:
    sought: list[tuple[int, int]] = []

    async def seek(partition: int, offset: int) -> None:
        sought.append((partition, offset))

    async def run() -> tuple[int, int]:
        guard = GapGuard(f"127.0.0.1:{free_port()}", "journey.events", seek)  # nothing listens there: a broker that is down
        try:
            applied = await guard.contiguous(3, 10, [10, 11, 14, 15])  # 12 and 13 missing
            again = await guard.contiguous(3, 12, [14])  # later, the broker still down: the hole is not skipped
            return applied, again
        finally:
            await guard.close()

    applied, again = asyncio.run(run())
    assert applied == 2 and again == 0
    assert sought[0] == (3, 12)
