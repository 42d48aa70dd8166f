"""The worker reads journey.events as (offset, value) tuples straight from aiokafka's fetcher
(streams/live/internals.py, 2), and every other topic as aiokafka's ConsumerRecords, as before.

Here aiokafka's own record batch builder and reader, no broker: the worker's
path through a broker is the integration and end-to-end tests' business.
"""

from __future__ import annotations

from aiokafka.consumer import fetcher as aiokafka_fetcher
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import ConsumerRecord, TopicPartition

from streams.live.internals import PartitionRecords, PlainRecords, plain_records


def fetched(topic: str, values: list[bytes | None], value_deserializer: object, *, base: int = 40, fetch_offset: int = 40) -> list[object]:
    """The records aiokafka's fetcher hands on for one fetched batch of `topic`."""
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0, producer_id=-1, producer_epoch=-1, base_sequence=-1, batch_size=2**20)
    for i, value in enumerate(values):
        assert builder.append(i, timestamp=None, key=b"lead-%d" % i, value=value, headers=[]) is not None
    data = bytearray(builder.build())
    data[0:8] = base.to_bytes(8, "big")  # the broker sets the batch's base offset
    records = aiokafka_fetcher.PartitionRecords(TopicPartition(topic, 3), MemoryRecords(bytes(data)), None, fetch_offset, None, value_deserializer, False, aiokafka_fetcher.READ_UNCOMMITTED)
    return list(records)


def test_plain_records_puts_the_subclass_where_aiokafkas_fetcher_looks_it_up() -> None:
    plain_records()
    assert aiokafka_fetcher.PartitionRecords is PartitionRecords


def test_the_marked_topic_comes_as_offsets_and_values_a_missing_value_as_empty_bytes() -> None:
    plain_records()
    assert fetched("journey.events", [b'{"a":1}', None, b"x"], PlainRecords(frozenset({"journey.events", "journey-identity"}))) == [(40, b'{"a":1}'), (41, b""), (42, b"x")]


def test_records_before_the_fetch_offset_are_skipped_as_aiokafka_skips_them() -> None:
    plain_records()
    assert fetched("journey.events", [b"a", b"b", b"c"], PlainRecords(frozenset({"journey.events", "journey-identity"})), fetch_offset=42) == [(42, b"c")]


def test_other_topics_of_the_same_consumer_and_other_consumers_get_consumer_records() -> None:
    plain_records()
    for topic, deserializer in [("journey-leads-changelog", PlainRecords(frozenset({"journey.events", "journey-identity"}))), ("journey.events", None)]:
        records = fetched(topic, [b"v", None], deserializer)
        assert all(type(r) is ConsumerRecord for r in records)
        assert [(r.topic, r.partition, r.offset, r.key, r.value) for r in records] == [(topic, 3, 40, b"lead-0", b"v"), (topic, 3, 41, b"lead-1", None)]
