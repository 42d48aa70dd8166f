"""`journey produce`: publish a JSONL log to journey.events as-is, one record per line."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from streams.kafka import topics
from streams.kafka.errors import BrokerError
from streams.kafka.tansu import is_embedded
from streams.settings import Settings

IN_FLIGHT = 2000


def lead_key(record: bytes) -> bytes | None:
    """The record key: the lead id when the record is readable enough to have one."""
    try:
        obj = orjson.loads(record)
    except orjson.JSONDecodeError:
        return None
    lead_id = obj.get("lead_id") if type(obj) is dict else None
    return lead_id.encode() if type(lead_id) is str else None


async def prepare(settings: Settings) -> bool:
    """Create every topic; True when the broker is the embedded one (see Profile)."""
    plan = topics.TopicPlan(settings.app_id, settings.partitions)
    cluster_id = await topics.ensure_topics(settings.bootstrap, plan.topics(), settings.replication_factor, plan.configs())
    return settings.broker_profile == "embedded" or (settings.broker_profile == "auto" and is_embedded(cluster_id))


def producer(settings: Settings) -> AIOKafkaProducer:
    """Batches as against Kafka, on the embedded broker too: readers correct its end offsets (streams/kafka/tansu.py)."""
    return AIOKafkaProducer(bootstrap_servers=settings.bootstrap, linger_ms=5, acks="all")


async def publish(settings: Settings, records: Iterable[bytes], topic: str = topics.EVENTS) -> int:
    await prepare(settings)
    client = producer(settings)
    try:
        await client.start()
    except KafkaError as exc:
        raise BrokerError(f"cannot reach the broker at {settings.bootstrap}: {exc}") from None
    sent = 0
    try:
        pending = []
        for record in records:
            pending.append(await client.send(topic, record, key=lead_key(record)))
            sent += 1
            if len(pending) >= IN_FLIGHT:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    except KafkaError as exc:
        raise BrokerError(f"publishing to {topic} failed after {sent} records: {exc}") from None
    finally:
        await client.stop()
    return sent
