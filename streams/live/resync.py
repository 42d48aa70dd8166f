"""Local state that no longer matches the broker, noticed before Faust recovers the tables.

A worker's data dir holds, per partition of the lead table, a RocksDB with the changelog offset
it reaches and the progress through journey.events it vouches for (streams/live/store.py). If
the broker lost what that state was built from (a Kafka cluster wiped or replaced, the embedded
broker restarted: it keeps nothing), Faust's recovery refuses the table at every start
(`ConsistencyError: The persisted offset ... is higher than the last offset in that topic`).

So, as Kafka Streams does when a changelog no longer matches a local store, `resync` runs at
start, before the worker joins its group:
- **another cluster** (its id differs from the one recorded in the data dir, `CLUSTER_FILE`,
  written when the worker first runs against a cluster): the whole table directory is wiped;
- **a partition the broker no longer backs** (its changelog offset at or past the end of its
  changelog partition, or its progress at or past the end of its partition of journey.events
  or of the identity topic): that partition's database is wiped.
It returns one line saying what it wiped and why (logged by the worker at WARNING); the wiped
partitions are then recovered and projected from what the broker has.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from rocksdict import AccessType, Options, Rdict

from projections.stored import Progress, progress_key
from streams.kafka import tansu, topics
from streams.kafka.errors import BrokerError

CLUSTER_FILE = "kafka-cluster-id"
TIMEOUT_MS = 10_000


@dataclass(frozen=True)
class LocalTables:
    """Where the lead table lives in a data dir, as Faust's RocksDB store lays it out."""

    data_dir: Path  # holds CLUSTER_FILE
    table_dir: Path  # Faust's table directory: every table's databases
    partition_path: Callable[[int], Path]  # the lead table's database of one partition
    offset_key: bytes  # where a database keeps the changelog offset it reaches
    changelog: str  # the lead table's changelog topic
    identity: str  # the identity topic, read beside journey.events
    partitions: int


@dataclass(frozen=True)
class Held:
    """What one partition's database vouches for."""

    changelog_offset: int | None  # the last changelog offset it holds
    through: dict[str, int]  # the last offset applied, per topic read (journey.events, identity); none before any


def resync(tables: LocalTables, bootstrap: str, embedded: bool) -> str | None:
    """Wipe local state the broker no longer backs; the one line saying so, or None when all matches."""
    cluster = cluster_id(bootstrap)
    recorded_file = tables.data_dir / CLUSTER_FILE
    recorded = recorded_file.read_text().strip() if recorded_file.exists() else None
    line = None
    if recorded is not None and cluster is not None and recorded != cluster:
        if tables.table_dir.exists():
            shutil.rmtree(tables.table_dir)
            line = f"the broker is another Kafka cluster (id {cluster}, this data dir was built on {recorded}): wiped the local tables in {tables.table_dir}; rebuilding from the broker"
    else:
        line = _resync_partitions(tables, bootstrap, embedded)
    if cluster is not None and cluster != recorded:
        tables.data_dir.mkdir(parents=True, exist_ok=True)
        recorded_file.write_text(cluster + "\n")
    return line


def _resync_partitions(tables: LocalTables, bootstrap: str, embedded: bool) -> str | None:
    held = {p: _held(tables, p) for p in range(tables.partitions) if tables.partition_path(p).exists()}
    held = {p: h for p, h in held.items() if h.changelog_offset is not None or h.through}
    if not held:
        return None
    ends = {topic: end_offsets(bootstrap, topic, tables.partitions, embedded) for topic in (tables.changelog, topics.EVENTS, tables.identity)}
    behind: dict[str, list[str]] = {topic: [] for topic in ends}  # topic -> "partition: held >= end"
    for partition, h in sorted(held.items()):
        offsets = {tables.changelog: h.changelog_offset, **h.through}
        topic = next((t for t, offset in offsets.items() if offset is not None and offset >= 0 and offset >= ends[t][partition]), None)
        if topic is not None:
            behind[topic].append(f"{partition}: {offsets[topic]} >= {ends[topic][partition]}")
    stale = [int(item.split(":")[0]) for items in behind.values() for item in items]
    if not stale:
        return None
    for partition in stale:
        shutil.rmtree(tables.partition_path(partition))
    why = "; ".join(f"offsets held at or past the end of {topic} ({', '.join(items)})" for topic, items in behind.items() if items)
    return (
        f"the broker no longer has what this data dir was built from (a reset or new broker?): wiped the local state of "
        f"partitions {', '.join(map(str, sorted(stale)))}, {why}; rebuilding them from the broker"
    )


def _held(tables: LocalTables, partition: int) -> Held:
    db = Rdict(str(tables.partition_path(partition)), options=Options(raw_mode=True), access_type=AccessType.read_only())
    try:
        offset = db.get(tables.offset_key)
        data = db.get(progress_key(partition).encode())
    finally:
        db.close()
    progress = None if data is None else Progress.decode(data)
    through = {} if progress is None else {topics.EVENTS: progress.through, tables.identity: progress.identity_through}
    return Held(None if offset is None else int(offset), through)


def cluster_id(bootstrap: str) -> str | None:
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_MS, bootstrap_timeout_ms=topics.BOOTSTRAP_TIMEOUT_MS)
    except KafkaError:
        raise BrokerError(f"cannot reach the broker at {bootstrap}; is it running?") from None
    try:
        return admin.describe_cluster().get("cluster_id")
    except KafkaError as exc:
        raise BrokerError(f"broker {bootstrap}: {type(exc).__name__}: {exc}") from None
    finally:
        admin.close()


def end_offsets(bootstrap: str, topic: str, partitions: int, embedded: bool) -> dict[int, int]:
    """A topic's end offsets, corrected for the embedded broker (streams/kafka/tansu.py)."""
    try:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_MS + 1000)
        try:
            ends = consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        finally:
            consumer.close()
        if embedded:
            ends = tansu.corrected_end_offsets_blocking(bootstrap, ends)
    except (KafkaError, TimeoutError) as exc:
        raise BrokerError(f"reading the end offsets of {topic} from {bootstrap}: {type(exc).__name__}: {exc}") from None
    return {tp.partition: end for tp, end in ends.items()}
