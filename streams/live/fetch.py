"""Whole fetched batches of journey.events, past Faust's per-message delivery.

Faust's fetch loop hands each record to the Conductor on its own: a message
object, two tasks raced in `wait_first`, a queue, the stream's iterator and
an ack, about 75 µs a record here (README: Performance). `BatchConsumer` is
Faust's aiokafka consumer with that loop replaced for one topic: each fetch
of it goes to a `BatchSink` whole, as aiokafka returned it. Every other
topic (the table changelogs Faust recovers from) still goes through Faust's
own path, record by record.

What stays Faust's: the group membership and the assignor (which also place
the table partitions and tell the web views where a lead lives), pausing and
resuming partitions around table recovery, flow control during rebalances,
and the fetch itself (`_wait_next_records`). What changes: journey.events
records are never acked to Faust, so Faust never commits their offsets; the
sink keeps its progress itself (in the lead table, beside the leads), and
`perform_seek`, called once the tables are recovered, puts each of its
partitions where that progress says.

The topic's records reach the sink as (offset, value) tuples, not as
aiokafka's ConsumerRecords: aiokafka's fetcher makes one of those a record
from eleven fields, in Python, and the worker reads two of them. The worker's
consumer carries a `PlainRecords` marker as its value deserializer, and
aiokafka's `PartitionRecords` is replaced by a subclass that, seeing the
marker, makes tuples for the topic (measured: 24.1 -> 20.7 µs of worker CPU
an event). Every other consumer, and every other topic, gets ConsumerRecords
as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from aiokafka.consumer import fetcher as aiokafka_fetcher
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer
from faust.types import TP


class BatchSink(Protocol):
    topic: str

    async def deliver(self, fetched: Mapping[TP, list[tuple[int, bytes]]]) -> None:
        """Apply one fetch of the topic's records: (offset, value) tuples per partition, a missing value as b""."""

    async def idle(self) -> None:
        """A fetch brought none of the topic's records."""

    def positions(self, assigned: set[TP]) -> dict[TP, int]:
        """Where each assigned partition of the topic continues: one past its progress."""


class PlainRecords:
    """A consumer's value deserializer that marks its fetcher's records of `topic` to come as
    (offset, value) tuples (`PartitionRecords`); values of other topics pass unchanged."""

    def __init__(self, topic: str) -> None:
        self.topic = topic

    def __call__(self, value: bytes | None) -> bytes | None:
        return value


def _plain(tp: Any, record: Any) -> tuple[int, bytes]:
    return record.offset, record.value or b""


class PartitionRecords(aiokafka_fetcher.PartitionRecords):  # type: ignore[misc]
    """aiokafka's records of one fetched partition, as (offset, value) for a PlainRecords topic."""

    def __init__(self, tp: Any, records: Any, aborted: Any, fetch_offset: int, key_deserializer: Any, value_deserializer: Any, *rest: Any) -> None:
        if isinstance(value_deserializer, PlainRecords):
            if tp.topic == value_deserializer.topic:
                self._consumer_record = _plain  # read by aiokafka's _unpack_records, a record at a time
            value_deserializer = None
        super().__init__(tp, records, aborted, fetch_offset, key_deserializer, value_deserializer, *rest)


def plain_records() -> None:
    """Let aiokafka's fetchers make PartitionRecords of the subclass above: unchanged wherever
    a consumer's value deserializer is not a PlainRecords (aiokafka has no hook for it)."""
    aiokafka_fetcher.PartitionRecords = PartitionRecords


class BatchConsumerThread(AIOKafkaConsumerThread):  # type: ignore[misc]
    """Faust's consumer thread, whose aiokafka consumer fetches the sink's topic as plain records."""

    consumer: BatchConsumer

    def _create_worker_consumer(self, transport: Any) -> Any:
        plain_records()
        consumer = super()._create_worker_consumer(transport)
        consumer._value_deserializer = PlainRecords(self.consumer.sink.topic)  # read when it starts, by its Fetcher
        return consumer


class BatchConsumer(Consumer):
    """Faust's aiokafka consumer, delivering one topic a fetch at a time (see the module doc)."""

    sink: BatchSink  # set by the app, in the subclass it hands Faust

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return BatchConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - runs in the worker
        sink = self.sink
        callback = self.callback
        to_message = self._to_message
        read_offset = self._read_offset
        buffered = self._buffered_partitions
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                records, active = await self._wait_next_records(1.0)
                await self.sleep(0)
                if not records or self.should_stop or not self.flow_active:
                    await sink.idle()
                    continue
                batch: dict[TP, list[tuple[int, bytes]]] = {}
                for tp, messages in records.items():
                    if active is not None and tp not in active and tp not in buffered:
                        continue
                    if tp.topic == sink.topic:
                        batch[tp] = messages
                        continue
                    for record in messages:  # Faust's own path: table recovery reads changelogs here
                        last = read_offset.get(tp)
                        if last is not None and record.offset < last:
                            continue
                        await self.wait_first(callback(to_message(tp, record)), self.suspend_flow.wait())
                        read_offset[tp] = record.offset
                await (sink.deliver(batch) if batch else sink.idle())
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise

    async def perform_seek(self) -> None:
        """After table recovery: Faust seeks to committed offsets, then the sink's topic goes to
        where its progress stands (Faust never commits that topic; see the module doc)."""
        await super().perform_seek()
        for tp, offset in self.sink.positions(self.assignment()).items():
            await self.seek(tp, offset)
