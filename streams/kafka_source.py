"""Replay from a Kafka topic: every partition from its first offset to its end as it was at the start.

No group, no committed offsets: a replay never disturbs the live workers.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from typing import Iterator

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from streams import topics
from streams.errors import UserError
from streams.sources import KafkaSource

_DONE = object()
QUIET_SECONDS = 3.0


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
        yield from item  # type: ignore[misc]
    thread.join()


async def _consume(source: KafkaSource, out: queue.Queue[object]) -> None:
    try:
        embedded = await _check_topic(source)
        consumer = AIOKafkaConsumer(bootstrap_servers=source.bootstrap, group_id=None, enable_auto_commit=False, fetch_max_bytes=16 * 2**20)
        await consumer.start()
        try:
            await _read(consumer, source.topic, embedded, out)
        finally:
            await consumer.stop()
    except KafkaError as exc:
        out.put(UserError(f"kafka://{source.bootstrap}/{source.topic}: {type(exc).__name__}: {exc}"))
    except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
        out.put(exc)
    finally:
        out.put(_DONE)


async def _check_topic(source: KafkaSource) -> bool:
    """True for the embedded broker. Only listed topics are touched: Tansu creates any topic asked about."""
    admin = AIOKafkaAdminClient(bootstrap_servers=source.bootstrap, request_timeout_ms=10_000)
    try:
        await admin.start()
    except KafkaError:
        raise UserError(f"cannot reach the broker at {source.bootstrap}; is it running?") from None
    try:
        if source.topic not in await admin.list_topics():
            raise UserError(f"kafka://{source.bootstrap}/{source.topic}: no such topic")
        return topics.is_embedded((await admin.describe_cluster())["cluster_id"])
    finally:
        await admin.close()


async def _read(consumer: AIOKafkaConsumer, topic: str, embedded: bool, out: queue.Queue[object]) -> None:
    started_ms = int(time.time() * 1000)
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    consumer.assign(partitions)
    ends = await consumer.end_offsets(partitions)
    await consumer.seek_to_beginning(*partitions)
    open_tps = {tp for tp in partitions if ends[tp] > 0}
    heard = {tp: time.monotonic() for tp in open_tps}
    while open_tps:
        batch = await consumer.getmany(*open_tps, timeout_ms=200, max_records=10_000)
        records: list[ConsumerRecord] = []
        for tp, messages in batch.items():
            heard[tp] = time.monotonic()
            for message in messages:
                if _past_the_end(message, ends[tp], embedded, started_ms):
                    open_tps.discard(tp)
                    break
                records.append(message)
        for tp in list(open_tps):
            if await consumer.position(tp) >= ends[tp] and (not embedded or time.monotonic() - heard[tp] > QUIET_SECONDS):
                open_tps.discard(tp)
        if records:
            out.put(records)


def _past_the_end(message: object, end: int, embedded: bool, started_ms: int) -> bool:
    """Whether a record was appended after the replay began.

    Kafka: its offset is at or past the end offset read at the start. The
    embedded broker's end offsets count record batches, not records (a lower
    bound on the real end), so there the record's timestamp decides, and a
    partition is done once past its reported end and quiet for QUIET_SECONDS.
    """
    if embedded:
        return message.timestamp > started_ms  # type: ignore[attr-defined]
    return message.offset >= end  # type: ignore[attr-defined]
