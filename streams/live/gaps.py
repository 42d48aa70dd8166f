"""Every offset of a partition, in order: the guard against records Faust skips.

faust-streaming can drop records fetched while tables recover and carry on
past them (faust-streaming/faust#596), and a crash at the wrong moment can
commit offsets past records never applied. The projection knows the offset
each partition is applied through, so a record beyond the next one is a gap:
unless the broker shows that it holds no records in it (transaction markers,
retention), the consumer is sent back to the first missing offset and later
records wait for it.

A seek can be overtaken: Faust's fetch loop may still be handing out records
it fetched before the seek, and each raises its read offset past the hole,
after which it drops the re-read records as already seen. So while later
records keep arriving for a partition with a hole, the guard asks the broker
again and seeks again, at most every RESEEK_SECONDS (each Faust seek resets
its read offset), until the records arrive or the broker shows none exist.
When the overtaking records were the partition's last ones, nothing arrives
any more to trigger that, so the worker also calls `reseek_waiting` on a
timer: a hole not filled RESEEK_SECONDS after its seek is sought again.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

log = logging.getLogger("journey.gaps")

Seek = Callable[[int, int], Awaitable[None]]
PROBE_MS = 10_000
RESEEK_SECONDS = 1.0


@dataclass
class _Hole:
    start: int  # the first missing offset, where the consumer was sent back to
    sought_at: float  # time.monotonic() of the last seek to it


class GapGuard:
    def __init__(self, bootstrap: str, topic: str, seek: Seek, reseek_after: float = RESEEK_SECONDS) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._seek = seek
        self._reseek_after = reseek_after
        self._holes: dict[int, _Hole] = {}
        self._probe: AIOKafkaConsumer | None = None
        self.seeks = 0

    async def contiguous(self, partition: int, next_offset: int, offsets: list[int]) -> int:
        """How many of these offsets (in order) may be applied now, given the next one expected."""
        hole = self._holes.get(partition)
        if hole is None and offsets and offsets[0] <= next_offset and offsets[-1] - offsets[0] == len(offsets) - 1:
            return len(offsets)  # the usual fetch: from where the partition stands, without a gap (offsets only rise)
        expected = next_offset
        for i, offset in enumerate(offsets):
            if offset <= expected:
                expected = max(expected, offset + 1)
                if hole is not None and offset >= hole.start:
                    self._holes.pop(partition, None)
                    hole = None
                continue
            if hole is not None and hole.start == expected and time.monotonic() - hole.sought_at < self._reseek_after:
                return i  # still waiting for the records the consumer was sent back to
            first = await self._first_offset_from(partition, expected)
            if first is not None and first >= offset:
                expected = offset + 1  # the broker has nothing in between: a real gap
                self._holes.pop(partition, None)
                hole = None
                continue
            if hole is not None and hole.start == expected:
                log.info("partition %d: records past offset %d still arrive; seeking to it again", partition, expected)
            else:
                log.warning("partition %d: offsets %d..%d were skipped; reading them again", partition, expected, offset - 1)
            await self._seek_back(partition, expected)
            return i
        return len(offsets)

    async def reseek_waiting(self) -> None:
        """Seek again to every hole not filled within reseek_after of its last seek."""
        now = time.monotonic()
        for partition, hole in list(self._holes.items()):
            if now - hole.sought_at < self._reseek_after:
                continue
            log.info("partition %d: offset %d has not arrived since the seek; seeking to it again", partition, hole.start)
            await self._seek_back(partition, hole.start)

    async def _seek_back(self, partition: int, start: int) -> None:
        """Send the consumer back to the first missing offset, and remember when."""
        self._holes[partition] = _Hole(start, time.monotonic())
        self.seeks += 1
        await self._seek(partition, start)

    def forget(self, partition: int) -> None:
        """The partition went to another worker, which guards its own offsets."""
        self._holes.pop(partition, None)

    async def _first_offset_from(self, partition: int, offset: int) -> int | None:
        """The first offset the broker holds at or after `offset`; None when it does not say in time.

        Not knowing means reading again, never skipping: a record applied twice changes nothing. So
        is a broker that cannot be asked (down, restarting): the probe is made again next time."""
        try:
            if self._probe is None:
                probe = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest")
                await probe.start()
                self._probe = probe
            tp = TopicPartition(self.topic, partition)
            self._probe.assign([tp])
            self._probe.seek(tp, offset)
            found = await self._probe.getmany(tp, timeout_ms=PROBE_MS, max_records=1)
        except KafkaError as exc:
            log.warning("partition %d: cannot ask the broker what it holds from offset %d (%s); reading from there again", partition, offset, type(exc).__name__)
            await self.close()
            return None
        records = found.get(tp, [])
        return records[0].offset if records else None

    async def close(self) -> None:
        probe, self._probe = self._probe, None
        if probe is not None:
            with contextlib.suppress(KafkaError):
                await probe.stop()
