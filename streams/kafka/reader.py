"""Replay from a Kafka topic: every partition from its first offset to its end as it was at the start.

No group, no committed offsets: a replay never disturbs the live workers.
The end is the end offset read at the start. The embedded broker reports a
partition's end as its last record batch's first offset + 1, so there the
ends are corrected first (streams/kafka/tansu.py; README: the embedded broker).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator
from typing import cast

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from streams.kafka import tansu
from streams.kafka.address import KafkaSource
from streams.kafka.errors import BrokerError

_DONE = object()
IDLE_POLLS = 6  # empty polls of 500 ms before the position may close a partition
PARTITION_ATTEMPTS = 25


def kafka_records(source: KafkaSource) -> Iterator[bytes]:
    """The values of the topic's records."""
    for message in kafka_messages(source):
        yield message.value or b""


def kafka_messages(source: KafkaSource) -> Iterator[ConsumerRecord]:
    """Records of the topic; the consumer runs on its own thread and event loop."""
    found: queue.Queue[object] = queue.Queue(maxsize=64)
    thread = threading.Thread(target=lambda: asyncio.run(_consume(source, found)), daemon=True)
    thread.start()
    while (item := found.get()) is not _DONE:
        if isinstance(item, BaseException):
            raise item
        yield from cast(list[ConsumerRecord], item)
    thread.join()


async def _consume(source: KafkaSource, out: queue.Queue[object]) -> None:
    try:
        partition_ids, embedded = await _partitions(source)
        consumer = AIOKafkaConsumer(bootstrap_servers=source.bootstrap, group_id=None, enable_auto_commit=False, fetch_max_bytes=16 * 2**20)
        await consumer.start()
        try:
            await _read(consumer, source, partition_ids, embedded, out)
        finally:
            await consumer.stop()
    except KafkaError as exc:
        out.put(BrokerError(f"kafka://{source.bootstrap}/{source.topic}: {type(exc).__name__}: {exc}"))
    except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
        out.put(exc)
    finally:
        out.put(_DONE)


async def _partitions(source: KafkaSource) -> tuple[list[int], bool]:
    """The topic's partitions, and whether the broker is the embedded one; an unknown topic is
    refused. Only listed topics are described: Tansu creates any topic asked about."""
    admin = AIOKafkaAdminClient(bootstrap_servers=source.bootstrap, request_timeout_ms=10_000)
    try:
        await admin.start()
    except KafkaError:
        raise BrokerError(f"cannot reach the broker at {source.bootstrap}; is it running?") from None
    try:
        if source.topic not in await admin.list_topics():
            raise BrokerError(f"kafka://{source.bootstrap}/{source.topic}: no such topic")
        embedded = tansu.is_embedded((await admin.describe_cluster())["cluster_id"])
        for _ in range(PARTITION_ATTEMPTS):
            (described,) = await admin.describe_topics([source.topic])
            if described["partitions"]:
                return sorted(p["partition"] for p in described["partitions"]), embedded
            await asyncio.sleep(0.2)  # a broker busy creating or moving the topic can list none for a moment
        raise BrokerError(f"kafka://{source.bootstrap}/{source.topic}: the broker lists no partitions for it")
    finally:
        await admin.close()


async def _read(consumer: AIOKafkaConsumer, source: KafkaSource, partition_ids: list[int], embedded: bool, out: queue.Queue[object]) -> None:
    partitions = [TopicPartition(source.topic, p) for p in partition_ids]
    ends = await consumer.end_offsets(partitions)  # before assign(), as the end "as it was at the start"
    if embedded:
        ends = await tansu.corrected_end_offsets(source.bootstrap, ends)
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    open_tps = {tp for tp in partitions if ends[tp] > 0}
    idle = 0
    while open_tps:
        batch = await consumer.getmany(*open_tps, timeout_ms=500, max_records=10_000)
        idle = 0 if batch else idle + 1
        records = []
        for tp, messages in batch.items():
            records.extend(m for m in messages if m.offset < ends[tp])
            # Done by the offsets received, not consumer.position(): the position moves
            # past records the fetcher has prefetched but not yet handed over.
            if messages and messages[-1].offset + 1 >= ends[tp]:
                open_tps.discard(tp)
        if idle >= IDLE_POLLS:
            # Long quiet, so no fetch is in flight: the position is trustworthy now, and it
            # passes the end even when the last offsets hold no data (transaction markers).
            for tp in list(open_tps):
                if await consumer.position(tp) >= ends[tp]:
                    open_tps.discard(tp)
        if records:
            out.put(records)
