"""Issue 15's design measured without Faust: what a batch-native hot path costs per event.

    python -m bench.batch_native [--events 200000]

Not the worker: a measurement to start the issue from. On the embedded broker,
with the log `bench/live.py` uses, it reads `journey.events` (all 8 partitions,
no group) with aiokafka's `getmany` and, per fetched batch:
1. folds it with `LiveProjection.process` into a dict of the leads it touches
   (reads fall through to RocksDB);
2. produces one changelog record per touched lead and the batch's lead
   changes, and waits for the acknowledgements;
3. then writes the touched leads and the progress in one RocksDB `WriteBatch`
   (Kafka Streams' and Quix Streams' order: the changelog holds a write before
   the local store vouches for it).
It prints its rate beside the raw consumer's (`bench.live`) in the same run.
Group membership, rebalances, recovery and the crash guarantees are what the
issue adds on top.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from rocksdict import Rdict, WriteBatch

from bench.live import produced_log, raw_consumer_rate
from bench.results_io import publish
from projections import default_definitions
from streams.kafka import topics
from streams.live.projection import BatchResult, LiveProjection, Record
from streams.net import free_port
from streams.tools.broker import EmbeddedBroker

ROOT = Path(__file__).resolve().parent.parent
CHANGELOG = topics.changelog_topic("journey", topics.LEADS_TABLE)


class Touched(dict):
    """A batch's view of the lead table: reads fall through to the store, writes stay here."""

    def __init__(self, store: Rdict) -> None:
        super().__init__()
        self.store = store

    def get(self, lead_id: str) -> bytes | None:  # type: ignore[override]  # the LeadTable protocol, not dict.get
        found = dict.get(self, lead_id)
        return found if found is not None else self.store.get(lead_id)

    def put(self, lead_id: str, value: bytes) -> None:
        self[lead_id] = value


async def batch_native_rate(bootstrap: str, expected: int, store_dir: Path) -> float:
    store = Rdict(str(store_dir))
    projection = LiveProjection(default_definitions())
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, fetch_max_bytes=32 * 2**20, max_partition_fetch_bytes=8 * 2**20)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all", max_batch_size=1 << 20)
    await consumer.start()
    await producer.start()
    tps = [TopicPartition(topics.EVENTS, p) for p in range(8)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    seen, started = 0, None
    try:
        while seen < expected:
            batch = await consumer.getmany(timeout_ms=1000, max_records=20_000)
            if not batch:
                continue
            started = started or time.perf_counter()
            result, before, touched = BatchResult(), projection.cluster_watermark, Touched(store)
            for tp, messages in batch.items():
                projection.process(tp.partition, [Record(m.offset, m.value or b"") for m in messages], touched, result)
                seen += len(messages)
            projection.settle(result, before, touched)
            pending = [await producer.send(CHANGELOG, value, key=key.encode()) for key, value in touched.items()]
            pending += [await producer.send(topics.LEAD_CHANGES, orjson.dumps(change.as_json()), key=change.lead_id.encode()) for change in result.changes]
            await asyncio.gather(*pending)
            writes = WriteBatch()
            for key, value in touched.items():
                writes.put(key, value)
            store.write(writes)
    finally:
        await consumer.stop()
        await producer.stop()
        store.close()
    return seen / (time.perf_counter() - (started or time.perf_counter()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "batch_native.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, EmbeddedBroker(free_port()) as broker:
        records = produced_log(broker, args.events, Path(scratch))
        bootstrap = broker.url.removeprefix("kafka://")
        raw = asyncio.run(raw_consumer_rate(bootstrap, len(records)))
        native = asyncio.run(batch_native_rate(bootstrap, len(records), Path(scratch) / "store"))
    publish(
        {"events": len(records), "raw_consumer_events_per_s": round(raw), "batch_native_events_per_s": round(native), "batch_native_vs_raw_consumer": round(native / raw, 3)},
        args.json,
    )


if __name__ == "__main__":
    main()
