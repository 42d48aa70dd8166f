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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from faust.transport.drivers.aiokafka import Consumer
from faust.types import TP


class BatchSink(Protocol):
    topic: str

    async def deliver(self, fetched: Mapping[TP, list[Any]]) -> None:
        """Apply one fetch of the topic's records (aiokafka ConsumerRecords per partition)."""

    async def idle(self) -> None:
        """A fetch brought none of the topic's records."""

    def positions(self, assigned: set[TP]) -> dict[TP, int]:
        """Where each assigned partition of the topic continues: one past its progress."""


class BatchConsumer(Consumer):
    """Faust's aiokafka consumer, delivering one topic a fetch at a time (see the module doc)."""

    sink: BatchSink  # set by the app, in the subclass it hands Faust

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
                batch: dict[TP, list[Any]] = {}
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
