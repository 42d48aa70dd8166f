"""Capacity figures for docs/performance.md: what one worker costs per event and per lead.

    python -m bench.capacity [--leads 100000] [--backlog]

One worker on the embedded broker folds a synthetic log of N leads (about 3.8 N
events, the same log on any day). By default it runs while the log is produced,
so its fetches hold what has just arrived, as in a cluster that keeps up; with
--backlog the whole log is produced first and folded in full batches (8000
records), as after an outage or in `make bench`. A batch writes each lead it
touches once, so the backlog writes fewer changelog records and lead changes
per event. Measured: the worker's CPU per event (from /proc, so the producer
beside it does not count), its RSS when ready and when done, its data dir on
disk after a clean stop, and the bytes each topic holds per event (key +
value, without Kafka's record and batch overhead).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.results_io import publish
from streams.kafka.address import KafkaSource
from streams.kafka.reader import kafka_messages
from streams.net import free_port
from streams.tools.broker import EmbeddedBroker

ROOT = Path(__file__).resolve().parent.parent
JOURNEY = str(Path(sys.executable).with_name("journey"))
LOG_START = "2026-08-01"
TICKS = os.sysconf("SC_CLK_TCK")


def _get(port: int, path: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
            return json.loads(response.read())
    except OSError:
        return None


def _rss_mib(pid: int) -> float:
    line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _on_disk(path: Path) -> int:
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file())


def _topic(bootstrap: str, topic: str) -> dict[str, int]:
    records = size = 0
    latest: dict[bytes, int] = {}
    for message in kafka_messages(KafkaSource(bootstrap, topic)):
        length = len(message.key or b"") + len(message.value or b"")
        records += 1
        size += length
        latest[message.key or b""] = length
    return {"records": records, "bytes": size, "keys": len(latest), "bytes_latest_per_key": sum(latest.values())}


def _ready(worker: subprocess.Popen[bytes], port: int) -> subprocess.Popen[bytes]:
    while not (_get(port, "/healthz") or {}).get("ready"):
        if worker.poll() is not None:
            raise SystemExit(f"the worker exited with {worker.returncode}")
        time.sleep(0.2)
    return worker


def _stop(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGINT)
    worker.wait(timeout=60)


def measure(leads: int, backlog: bool, scratch: Path) -> dict[str, float]:
    log = scratch / "log.jsonl"
    with log.open("wb") as out:
        subprocess.run([JOURNEY, "generate", "--leads", str(leads), "--seed", "1", "--start", LOG_START], stdout=out, check=True)
    records = sum(1 for line in log.open("rb") if line.strip())
    with EmbeddedBroker(free_port()) as broker:
        port, data_dir = free_port(), scratch / "worker"
        command = [JOURNEY, "worker", "--broker", broker.url, "--web-port", str(port), "--data-dir", str(data_dir)]
        env = {**os.environ, "JOURNEY_LOG_LEVEL": "error"}
        worker = _ready(subprocess.Popen(command, stderr=subprocess.DEVNULL, env=env), port)
        try:
            idle_rss, started_cpu = _rss_mib(worker.pid), _cpu_s(worker.pid)
            if backlog:  # stopped while the log is produced, then started again on it
                _stop(worker)
                subprocess.run([JOURNEY, "produce", str(log), "--broker", broker.url], check=True, capture_output=True)
                worker = subprocess.Popen(command, stderr=subprocess.DEVNULL, env=env)  # its start costs what the first one's did
            else:
                subprocess.run([JOURNEY, "produce", str(log), "--broker", broker.url], check=True, capture_output=True)
            while True:
                report = _get(port, "/api/report")
                if report is not None and sum(report["events"].values()) >= records:
                    break
                time.sleep(0.5)
            rss, cpu = _rss_mib(worker.pid), _cpu_s(worker.pid) - started_cpu
        finally:
            _stop(worker)
        bootstrap = broker.url.removeprefix("kafka://")
        events = _topic(bootstrap, "journey.events")
        changelog = _topic(bootstrap, "journey-leads-changelog")
        changes = _topic(bootstrap, "journey.lead-changes")
    held = report["leads"]
    return {
        "mode": "backlog" if backlog else "live",
        "leads": held,
        "records": records,
        "worker_cpu_us_per_event": round(cpu * 1e6 / records, 1),
        "worker_rss_idle_mib": round(idle_rss, 1),
        "worker_rss_mib": round(rss, 1),
        "worker_rss_bytes_per_lead": round((rss - idle_rss) * 2**20 / held),
        "data_dir_bytes_per_lead": round(_on_disk(data_dir) / held),
        "events_topic_bytes_per_event": round(events["bytes"] / events["records"]),
        "changelog_bytes_per_event": round(changelog["bytes"] / records),
        "changelog_compacted_bytes_per_lead": round(changelog["bytes_latest_per_key"] / held),
        "lead_changes_bytes_per_event": round(changes["bytes"] / records),
        "lead_changes_per_event": round(changes["records"] / records, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--backlog", action="store_true", help="produce the whole log first, then fold it")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "capacity.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        publish(measure(args.leads, args.backlog, Path(scratch)), args.json)


if __name__ == "__main__":
    main()
