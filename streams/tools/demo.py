"""`journey demo`: the embedded broker, a worker and a steady stream of synthetic journeys.

Every process it starts is stopped when it stops (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from streams.kafka.produce import owner_key, prepare, producer
from streams.kafka.topics import EVENTS
from streams.net import free_port, port_open
from streams.settings import Settings
from streams.tools.broker import EmbeddedBroker
from streams.tools.synthetic import JourneyGenerator

DEMO_ANONYMOUS = 0.5  # half the demo's journeys start anonymous, as on a real site

JOURNEY = [sys.executable, "-m", "streams"]


def run_demo(web_port: int, rate: float, leads_per_round: int) -> None:
    broker_port = 9092 if not port_open("127.0.0.1", 9092) else free_port()
    with tempfile.TemporaryDirectory(prefix="journey-demo-") as scratch, EmbeddedBroker(broker_port, log=Path(scratch) / "broker.log") as broker:
        settings = Settings(broker=broker.url, web_port=web_port, data_dir=Path(scratch) / "worker")
        prepare(settings)
        worker = subprocess.Popen(
            [*JOURNEY, "worker", "--broker", broker.url, "--web-port", str(web_port), "--data-dir", str(settings.table_dir)],
            stdin=subprocess.DEVNULL,
            env={**os.environ, "JOURNEY_DEMO": "1"},  # ingest open without a token
        )
        try:
            _stop_on_sigterm()
            print(f"journey demo: broker {broker.url}", flush=True)
            print(f"journey demo: dashboard http://127.0.0.1:{web_port}/  (API: /api/report, /api/leads/D0-000001; metrics: /metrics)", flush=True)
            print(f"journey demo: sending about {rate:.0f} synthetic events/s; Ctrl-C stops everything", flush=True)
            _stream(settings, rate, leads_per_round, worker)
        except KeyboardInterrupt:
            pass
        finally:
            _stop(worker)
            print("journey demo: stopped", flush=True)


def synthetic_stream(leads_per_round: int) -> Iterator[bytes]:
    """Round after round of journeys of new leads, started in the last 30 days and cut at now:
    a journey's later steps would otherwise be dated weeks ahead, and every lead would look stale."""
    for round_no in itertools.count():
        now = datetime.now(UTC)
        yield from JourneyGenerator(leads_per_round, seed=round_no, days=30, start=now - timedelta(days=30), prefix=f"D{round_no}", until=now, anonymous=DEMO_ANONYMOUS).records()


def _stream(settings: Settings, rate: float, leads_per_round: int, worker: subprocess.Popen[bytes]) -> None:
    client = producer(settings.bootstrap)
    try:
        records = synthetic_stream(leads_per_round)
        tick = 0.1
        per_tick = max(1, int(rate * tick))
        while worker.poll() is None:
            began = time.monotonic()
            for record in itertools.islice(records, per_tick):
                client.send(EVENTS, record, key=owner_key(record))
            client.flush()
            time.sleep(max(0.0, tick - (time.monotonic() - began)))
        print(f"journey demo: the worker exited (code {worker.returncode})", file=sys.stderr, flush=True)
    finally:
        client.close(timeout=5)


def _stop_on_sigterm() -> None:
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
