"""Latency benchmark: at a steady 1,000 events/s, the delay from produce to /api/leads/{id}.

    python -m bench.latency [--rate 1000] [--seconds 20]

Every event is a new lead; one in `--sample` is watched: its lead is polled
every 10 ms until the worker answers 200.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
from aiokafka import AIOKafkaProducer

from bench.results_io import publish
from streams.kafka.produce import prepare
from streams.net import free_port
from streams.settings import Settings
from streams.tools.broker import EmbeddedBroker

ROOT = Path(__file__).resolve().parent.parent

JOURNEY = str(Path(sys.executable).with_name("journey"))


async def run(broker_url: str, port: int, rate: int, seconds: int, sample: int) -> list[float]:
    settings = Settings(broker=broker_url)
    prepare(settings)
    client = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, linger_ms=5)  # the event loop's producer: sends while watching
    await client.start()
    latencies: list[float] = []
    watchers: list[asyncio.Task[None]] = []
    async with aiohttp.ClientSession() as session:

        async def watch(lead: str, sent: float) -> None:
            while time.perf_counter() - sent < 30:
                async with session.get(f"http://127.0.0.1:{port}/api/leads/{lead}") as response:
                    if response.status == 200:
                        latencies.append(time.perf_counter() - sent)
                        return
                await asyncio.sleep(0.01)

        tick, n = 0.01, 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            due = int((time.perf_counter() - started) * rate)
            while n < due:
                lead = f"LAT-{n}"
                event = {"event_id": "e", "lead_id": lead, "type": "ad_seen", "occurred_at": "2026-09-01T10:00:00Z"}
                await client.send("journey.events", orjson.dumps(event), key=lead.encode())
                if n % sample == 0:
                    watchers.append(asyncio.create_task(watch(lead, time.perf_counter())))
                n += 1
            await asyncio.sleep(tick)
        await client.flush()
        await asyncio.gather(*watchers)
    await client.stop()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--sample", type=int, default=5, help="Watch one event in this many.")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "latency.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, EmbeddedBroker(free_port()) as broker:
        port = free_port()
        worker = subprocess.Popen([JOURNEY, "worker", "--broker", broker.url, "--web-port", str(port), "--data-dir", scratch], stderr=subprocess.DEVNULL, env={**os.environ, "JOURNEY_LOG_LEVEL": "error"})
        try:
            while True:
                try:
                    if json.loads(urllib_open(f"http://127.0.0.1:{port}/healthz"))["ready"]:
                        break
                except OSError:
                    pass
                time.sleep(0.2)
            latencies = asyncio.run(run(broker.url, port, args.rate, args.seconds, args.sample))
        finally:
            worker.kill()
    latencies.sort()
    result = {
        "rate_events_per_s": args.rate,
        "samples": len(latencies),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
        "max_ms": round(1000 * latencies[-1], 1),
    }
    publish(result, args.json)


def urllib_open(url: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read()


if __name__ == "__main__":
    main()
