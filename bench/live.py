"""Live benchmark: a worker's events/s on the embedded broker vs a raw aiokafka consumer of the same topic.

    python -m bench.live [--events 200000] [--workers 1] [--no-plain-agent] [--anonymous 0.6] [--shadow FILE]

All read the same records from the same broker in the same run. The worker
rate is measured from the first record it has counted until /api/report
counts them all; the raw consumer reads every partition and parses each
record with orjson. A plain Faust agent that only counts its events, with the
worker's settings (bench/plain_agent.py), shows the ceiling of any Faust agent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.results_io import publish
from projections import load_definitions
from streams.kafka.definitions import SHADOW, record
from streams.net import free_port
from streams.tools.broker import EmbeddedBroker
from streams.tools.synthetic import JourneyGenerator

ROOT = Path(__file__).resolve().parent.parent

JOURNEY = str(Path(sys.executable).with_name("journey"))


def counted(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/report", timeout=30) as response:
            return sum(json.loads(response.read())["events"].values())
    except OSError:
        return -1


async def raw_consumer_rate(bootstrap: str, expected: int) -> float:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, fetch_max_bytes=32 * 2**20, max_partition_fetch_bytes=8 * 2**20)
    await consumer.start()
    tps = [TopicPartition("journey.events", p) for p in range(8)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    seen, started = 0, None
    while seen < expected:
        batch = await consumer.getmany(timeout_ms=1000, max_records=50_000)
        if started is None and batch:
            started = time.perf_counter()
        for messages in batch.values():
            for message in messages:
                try:  # noqa: SIM105 - the baseline loop: a context manager per record would slow it
                    orjson.loads(message.value)
                except orjson.JSONDecodeError:
                    pass
            seen += len(messages)
    elapsed = time.perf_counter() - (started or time.perf_counter())
    await consumer.stop()
    return seen / elapsed


def produced_log(broker: EmbeddedBroker, events: int, scratch: Path, anonymous: float = 0.0) -> list[bytes]:
    """The benchmarks' log (a seeded synthetic one, `events` records; with `anonymous`, that share of its
    journeys starts anonymous), produced to journey.events."""
    log = scratch / "log.jsonl"
    records = list(JourneyGenerator(int(events / 3.8), seed=1, anonymous=anonymous).records())[:events]
    log.write_bytes(b"\n".join(records) + b"\n")
    subprocess.run([JOURNEY, "produce", str(log), "--broker", broker.url], check=True)
    return records


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--no-plain-agent", dest="plain_agent", action="store_false", help="skip the plain Faust agent's run")
    parser.add_argument("--anonymous", type=float, default=0.0, help="share of journeys that start anonymous (SPEC §9), e.g. 0.6")
    parser.add_argument("--shadow", type=Path, help="a definitions file the cluster counts as its shadow (SPEC §11) beside the defaults")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "live.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch, EmbeddedBroker(free_port()) as broker:
        records = produced_log(broker, args.events, Path(scratch), args.anonymous)
        if args.shadow is not None:  # recorded before the workers start: they count it from their first batch
            asyncio.run(record(broker.url.removeprefix("kafka://"), (SHADOW, load_definitions(args.shadow))))
        raw = asyncio.run(raw_consumer_rate(broker.url.removeprefix("kafka://"), len(records)))

        ports = [free_port() for _ in range(args.workers)]
        workers = [
            subprocess.Popen([JOURNEY, "worker", "--broker", broker.url, "--web-port", str(p), "--data-dir", f"{scratch}/w{p}"], stderr=subprocess.DEVNULL, env={**os.environ, "JOURNEY_LOG_LEVEL": "error"})
            for p in ports
        ]
        try:
            first_at = first_count = None
            while True:
                n = counted(ports[0])
                now = time.perf_counter()
                if first_at is None and n > 0:
                    first_at, first_count = now, n
                if n >= len(records):
                    break
                time.sleep(0.2)
            live = (len(records) - first_count) / (now - first_at)
        finally:
            for worker in workers:
                worker.kill()
                worker.wait()
        disk = sum(f.stat().st_size for p in ports for f in Path(f"{scratch}/w{p}").rglob("*") if f.is_file())
        result = {
            "events": len(records),
            "anonymous": args.anonymous,
            "shadow": None if args.shadow is None else load_definitions(args.shadow).digest,
            "workers": args.workers,
            "raw_consumer_events_per_s": round(raw),
            "journey_events_per_s": round(live),
            "journey_vs_raw_consumer": round(live / raw, 3),
            "state_disk_mib": round(disk / 2**20, 1),  # the workers' data dirs (RocksDB), the same with a shadow or without
        }
        if args.plain_agent:
            plain = subprocess.run(
                [sys.executable, "-m", "bench.plain_agent", broker.url, str(len(records)), f"{scratch}/plain"],
                capture_output=True, text=True, timeout=1800, check=True,
            )
            plain_agent = int(plain.stdout.split()[-1])
            result |= {
                "plain_faust_agent_events_per_s": plain_agent,
                "plain_faust_agent_vs_raw_consumer": round(plain_agent / raw, 3),
                "journey_vs_plain_faust_agent": round(live / plain_agent, 3),
            }
    publish(result, args.json)


if __name__ == "__main__":
    main()
