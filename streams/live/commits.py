"""Committed offsets of journey.events (and of the identity topic, read beside it), for the tools
operators read lag with.

A worker's progress through the topics it reads lives in its lead table (streams/live/store.py),
written with the leads it vouches for; on assignment the worker seeks each partition to that
progress, whatever the group has committed. Kafka's tools (`kafka-consumer-groups`, kafka-ui,
Burrow, Kafka Exporter) know only committed offsets, so after each local write the partition's
next offset (progress + 1) is noted here and committed for the group, never before the write it
follows: a committed offset is never ahead of what the worker holds.

Commits run beside the batches, never inside one: `tick` (every `INTERVAL` seconds, on the app's
timer) commits, in one request, each owned partition whose noted offset moved since its last
commit; a revocation commits what is noted for the partitions going away. A commit that fails
(a rebalance, a broker away) is logged and tried again at the next tick: it only feeds the tools.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

log = logging.getLogger("journey.worker")

INTERVAL = 1.0  # seconds: at most one commit a second (for all partitions at once)
REVOCATION_TIMEOUT = 5.0  # seconds a revocation waits for its last commit

Key = tuple[str, int]  # (topic, partition)
Commit = Callable[[dict[Key, int]], Awaitable[None]]  # (topic, partition) -> next offset, committed for the group


class OffsetCommits:
    def __init__(self, commit: Commit) -> None:
        self._commit = commit
        self._noted: dict[Key, int] = {}
        self._committed: dict[Key, int] = {}

    def note(self, topic: str, partition: int, next_offset: int) -> None:
        """A partition's progress was written locally: `next_offset` may be committed."""
        self._noted[topic, partition] = next_offset

    async def tick(self) -> None:
        await self.commit_due(None)

    async def commit_due(self, partitions: Iterable[int] | None) -> None:
        wanted = None if partitions is None else set(partitions)
        due = {key: offset for key, offset in self._noted.items() if self._committed.get(key) != offset and (wanted is None or key[1] in wanted)}
        if not due:
            return
        try:
            await self._commit(due)
        except Exception as exc:  # noqa: BLE001 - a rebalance or the broker; lag tools wait for the next tick
            log.info("committing offsets %s failed (%s: %s); trying again", due, type(exc).__name__, exc)
            return
        self._committed.update(due)

    async def revoked(self, partitions: Iterable[int]) -> None:
        """Before the partitions go: their last noted offsets committed (bounded wait), then forgotten."""
        going = set(partitions)
        try:
            await asyncio.wait_for(self.commit_due(going), REVOCATION_TIMEOUT)
        except TimeoutError:
            log.info("committing the offsets of revoked partitions %s timed out; their next owner commits", sorted(going))
        for key in [key for key in self._noted if key[1] in going]:
            self._noted.pop(key, None)
            self._committed.pop(key, None)
