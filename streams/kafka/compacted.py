"""Read a small one-partition compacted topic whole: each key's latest value, as of its end now.

For topics that hold a few records per partition of journey.events (the
definitions journey.lead-changes last spoke under, the workers' watermarks),
read at a rebalance. On the embedded broker the end is corrected first
(streams/kafka/tansu.py).
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from streams.kafka import tansu
from streams.kafka.errors import BrokerError

READ_TIMEOUT_S = 60.0


async def end_offset(consumer: AIOKafkaConsumer, tp: TopicPartition, bootstrap: str, embedded: bool) -> int:
    """Where the partition ends now, as the broker says (on the embedded one, corrected)."""
    ends = await consumer.end_offsets([tp])
    if embedded:
        ends = await tansu.corrected_end_offsets(bootstrap, ends)
    return ends[tp]


async def latest_values(bootstrap: str, topic: str, embedded: bool) -> dict[bytes, bytes]:
    """Each key's latest value in partition 0 of `topic`; a tombstone (no value) removes its key."""
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=tansu.FETCH_WAIT_MS)
    try:
        await consumer.start()
        end = await end_offset(consumer, tp, bootstrap, embedded)
        latest: dict[bytes, bytes] = {}
        if end == 0:
            return latest
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        async with asyncio.timeout(READ_TIMEOUT_S):
            while True:
                messages = (await consumer.getmany(tp, timeout_ms=200)).get(tp, [])
                for message in messages:
                    if message.offset < end and message.key is not None:
                        if message.value is None:
                            latest.pop(message.key, None)
                        else:
                            latest[message.key] = message.value
                # Done by the offsets received; when none come, by the position, which then
                # passes offsets compaction removed or that hold no data.
                if (messages and messages[-1].offset + 1 >= end) or (not messages and await consumer.position(tp) >= end):
                    return latest
    except (KafkaError, TimeoutError) as exc:
        raise BrokerError(f"reading {topic} from {bootstrap}: {type(exc).__name__}: {exc}") from None
    finally:
        await consumer.stop()
