"""Replay from a Kafka topic: every partition from its first offset to its end as it was at the start.

No group, no committed offsets: a replay never disturbs the live workers.
The end is the end offset read at the start. The embedded broker reports a
partition's end as its last record batch's first offset + 1, so there the
ends are corrected first (streams/kafka/tansu.py; docs/embedded-broker.md).
Synchronous (kafka-python): the records are handed to a synchronous fold.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError

from streams.kafka import tansu, topics
from streams.kafka.address import KafkaSource
from streams.kafka.errors import BrokerError

IDLE_POLLS = 6  # empty polls of 500 ms before the position may close a partition
PARTITION_ATTEMPTS = 25


def kafka_records(source: KafkaSource) -> Iterator[bytes]:
    """The values of the topic's records."""
    for message in kafka_messages(source):
        yield message.value or b""


def kafka_messages(source: KafkaSource) -> Iterator[ConsumerRecord]:
    """Records of the topic, partition by partition in offset order as fetched."""
    try:
        partition_ids, embedded = _partitions(source)
        consumer = KafkaConsumer(bootstrap_servers=source.bootstrap, group_id=None, enable_auto_commit=False, fetch_max_bytes=16 * 2**20)
    except KafkaError as exc:
        raise BrokerError(f"kafka://{source.bootstrap}/{source.topic}: {type(exc).__name__}: {exc}") from None
    try:
        yield from _read(consumer, source, partition_ids, embedded)
    except KafkaError as exc:
        raise BrokerError(f"kafka://{source.bootstrap}/{source.topic}: {type(exc).__name__}: {exc}") from None
    finally:
        consumer.close()


def _partitions(source: KafkaSource) -> tuple[list[int], bool]:
    """The topic's partitions, and whether the broker is the embedded one; an unknown topic is
    refused. Only listed topics are described: Tansu creates any topic asked about."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=source.bootstrap, request_timeout_ms=10_000, bootstrap_timeout_ms=topics.BOOTSTRAP_TIMEOUT_MS)
    except KafkaError:
        raise BrokerError(f"cannot reach the broker at {source.bootstrap}; is it running?") from None
    try:
        if source.topic not in admin.list_topics():
            raise BrokerError(f"kafka://{source.bootstrap}/{source.topic}: no such topic")
        embedded = tansu.is_embedded(admin.describe_cluster()["cluster_id"])
        for _ in range(PARTITION_ATTEMPTS):
            (described,) = admin.describe_topics([source.topic])
            if described["partitions"]:
                return sorted(p["partition_index"] for p in described["partitions"]), embedded
            time.sleep(0.2)  # a broker busy creating or moving the topic can list none for a moment
        raise BrokerError(f"kafka://{source.bootstrap}/{source.topic}: the broker lists no partitions for it")
    finally:
        admin.close()


def _read(consumer: KafkaConsumer, source: KafkaSource, partition_ids: list[int], embedded: bool) -> Iterator[ConsumerRecord]:
    partitions = [TopicPartition(source.topic, p) for p in partition_ids]
    ends = consumer.end_offsets(partitions)  # before assign(), as the end "as it was at the start"
    if embedded:
        ends = tansu.corrected_end_offsets_blocking(source.bootstrap, ends)
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    open_tps = {tp for tp in partitions if ends[tp] > 0}
    idle = 0
    while open_tps:
        batch = consumer.poll(timeout_ms=500, max_records=10_000)
        idle = 0 if batch else idle + 1
        for tp, messages in batch.items():
            yield from (m for m in messages if m.offset < ends[tp])
            # Done by the offsets received, not consumer.position(): the position moves
            # past records the fetcher has prefetched but not yet handed over.
            if messages and messages[-1].offset + 1 >= ends[tp]:
                open_tps.discard(tp)
                consumer.pause(tp)
        if idle >= IDLE_POLLS:
            # Long quiet, so no fetch is in flight: the position is trustworthy now, and it
            # passes the end even when the last offsets hold no data (transaction markers).
            for tp in list(open_tps):
                if consumer.position(tp) >= ends[tp]:
                    open_tps.discard(tp)
