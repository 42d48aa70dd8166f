"""What journey does about the embedded broker's (Tansu 0.6.0) quirks. Used in the embedded profile only.

**End offsets.** Tansu answers ListOffsets ("where does this partition end")
with the first offset of the partition's last record batch + 1, so after a
producer sends 20 records in one batch it says 1. Its Fetch answers carry the
right high watermark, and a fetch at any offset inside a batch returns the
records from there on. So the true end of a partition is the high watermark of
a fetch at the reported end - 1: that offset is the last batch's first record
and always exists. `corrected_end_offsets` does this for replay's "read to the
end"; `correct_faust_end_offsets` makes Faust's table recovery use it.

**Fetch wait.** Tansu holds every fetch for the full fetch_max_wait_ms however
much data it has; `shorten_fetch_wait` lowers it on the consumer Faust makes.
"""

from __future__ import annotations

import asyncio
from typing import Any, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition

FETCH_WAIT_MS = 50
CORRECTION_TIMEOUT_S = 30.0


async def corrected_end_offsets(bootstrap: str, reported: Mapping[Any, int]) -> dict[Any, int]:
    """The true end offsets of partitions whose ListOffsets answers were `reported`.

    Keys may be aiokafka's or Faust's topic-partition tuples; they are returned as given.
    Never below the reported offset; an empty partition (reported 0) stays 0.
    """
    ends = dict(reported)
    pending = {TopicPartition(tp.topic, tp.partition): tp for tp, end in reported.items() if end > 0}
    if not pending:
        return ends
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=FETCH_WAIT_MS)
    await probe.start()
    try:
        probe.assign(list(pending))
        for tp, key in pending.items():
            probe.seek(tp, reported[key] - 1)
        async with asyncio.timeout(CORRECTION_TIMEOUT_S):
            while pending:
                await probe.getmany(*pending, timeout_ms=500, max_records=1)
                for tp in list(pending):
                    highwater = probe.highwater(tp)
                    if highwater is not None:
                        key = pending.pop(tp)
                        ends[key] = max(ends[key], highwater)
                        probe.pause(tp)
    finally:
        await probe.stop()
    return ends


def correct_faust_end_offsets(bootstrap: str) -> None:
    """Make Faust's consumer answer `highwaters()` (table recovery's "read the changelog to
    here") with corrected end offsets. Without it a restarted worker stops recovering at the
    last batch's first record, or refuses a RocksDB table whose persisted offset lies beyond."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread  # replay imports this module without Faust

    current = AIOKafkaConsumerThread._highwaters
    original = getattr(current, "journey_original", current)

    async def corrected_highwaters(self: Any, partitions: Any) -> Mapping[Any, int]:
        reported = await original(self, partitions)
        if self.consumer.in_transaction:
            return reported  # last stable offsets come from fetches: already right
        return await corrected_end_offsets(bootstrap, reported)

    corrected_highwaters.journey_original = original  # type: ignore[attr-defined]
    AIOKafkaConsumerThread._highwaters = corrected_highwaters  # type: ignore[method-assign]


def shorten_fetch_wait() -> None:
    """Tansu holds every fetch for the full fetch_max_wait_ms, however much data it has
    (measured: median 450 ms of latency at Faust's fixed 1500 ms, 3 ms at 100 ms).
    Faust offers no setting for it, so the embedded profile lowers it on the consumer
    Faust creates."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    create = AIOKafkaConsumerThread._create_worker_consumer
    if getattr(create, "journey_embedded", False):
        return

    def create_with_short_wait(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = FETCH_WAIT_MS  # read when the consumer starts
        return consumer

    create_with_short_wait.journey_embedded = True  # type: ignore[attr-defined]
    AIOKafkaConsumerThread._create_worker_consumer = create_with_short_wait  # type: ignore[method-assign]
