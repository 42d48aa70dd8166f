"""`journey produce`: publish a JSONL log to journey.events as-is, one record per line.

Synchronous (kafka-python): a command that sends and waits has no use for an event loop.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaError

from streams.kafka import topics
from streams.kafka.errors import BrokerError
from streams.kafka.tansu import is_embedded
from streams.settings import Settings

IN_FLIGHT = 2000


def owner_key(record: bytes) -> bytes | None:
    """The record key: the event's owner (SPEC §2: its lead id, else its anonymous id) when the
    record is readable enough to have one."""
    try:
        obj = orjson.loads(record)
    except orjson.JSONDecodeError:
        return None
    if type(obj) is not dict:
        return None
    owner = obj.get("lead_id")
    if owner is None:
        owner = obj.get("anonymous_id")
    return owner.encode("utf-8", "surrogatepass") if type(owner) is str else None


def prepare(settings: Settings) -> bool:
    """Create every topic; True when the broker is the embedded one (see Profile)."""
    plan = topics.TopicPlan(settings.app_id, settings.partitions)
    cluster_id = topics.ensure_topics(settings.bootstrap, plan.topics(), settings.replication_factor, plan.configs())
    return settings.broker_profile == "embedded" or (settings.broker_profile == "auto" and is_embedded(cluster_id))


def producer(bootstrap: str) -> KafkaProducer:
    """Batches as against Kafka, on the embedded broker too: readers correct its end offsets
    (streams/kafka/tansu.py). Keys are hashed by Kafka's default partitioner (murmur2)."""
    try:
        return KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all", bootstrap_timeout_ms=topics.BOOTSTRAP_TIMEOUT_MS)
    except KafkaError as exc:
        raise BrokerError(f"cannot reach the broker at {bootstrap}: {exc}") from None


def publish(settings: Settings, records: Iterable[bytes], topic: str = topics.EVENTS) -> int:
    """Send every record, keyed by its owner; returns once the broker acknowledged them all."""
    prepare(settings)
    client = producer(settings.bootstrap)
    sent = 0
    try:
        pending = []
        for record in records:
            pending.append(client.send(topic, record, key=owner_key(record)))
            sent += 1
            if len(pending) >= IN_FLIGHT:
                _confirm(pending)
        _confirm(pending)
    except KafkaError as exc:
        raise BrokerError(f"publishing to {topic} failed after {sent} records: {exc}") from None
    finally:
        client.close(timeout=10)
    return sent


def _confirm(pending: list) -> None:
    for future in pending:
        future.get(timeout=60)
    pending.clear()
