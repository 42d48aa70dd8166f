"""Memory benchmark: resident memory of replay and of a worker, by number of leads.

    python -m bench.memory [--leads 100000 1000000] [--worker-leads 100000]

Replay memory must grow with leads, not events: the log of N leads has about
3.8 N events. Memory per lead is (peak RSS - RSS of an empty replay) / leads.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.replay import timed_child
from streams.net import free_port
from streams.tools.broker import EmbeddedBroker

ROOT = Path(__file__).resolve().parent.parent

JOURNEY = str(Path(sys.executable).with_name("journey"))
LOG_START = "2026-08-01"  # the same log on any day, so runs stay comparable


def replay_memory(leads: int, scratch: Path) -> dict[str, float]:
    log = ROOT / "bench" / "data" / f"memory-{leads}.jsonl"
    if not log.exists():
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            subprocess.run([JOURNEY, "generate", "--leads", str(leads), "--seed", "3", "--start", LOG_START], stdout=out, check=True)
    empty = scratch / "empty.jsonl"
    empty.write_bytes(b"")
    _, idle, _ = timed_child(JOURNEY, "replay", "--input", str(empty), "--format", "json", "--partitions", "1")
    _, peak, out = timed_child(JOURNEY, "replay", "--input", str(log), "--format", "json", "--partitions", "1")
    report = json.loads(out)
    return {"leads": report["leads"], "events": sum(report["events"].values()), "peak_rss_mib": round(peak / 2**20, 1), "bytes_per_lead": round((peak - idle) / report["leads"])}


def worker_memory(leads: int, scratch: Path) -> dict[str, float]:
    log = scratch / "one-event-per-lead.jsonl"
    log.write_bytes(b"".join(b'{"event_id":"e","lead_id":"M%d","type":"content_read","occurred_at":"2026-09-01T10:00:00Z"}\n' % i for i in range(leads)))
    with EmbeddedBroker(free_port()) as broker:
        subprocess.run([JOURNEY, "produce", str(log), "--broker", broker.url], check=True, capture_output=True)
        port = free_port()
        worker = subprocess.Popen([JOURNEY, "worker", "--broker", broker.url, "--web-port", str(port), "--data-dir", str(scratch / "w")], stderr=subprocess.DEVNULL, env={**os.environ, "JOURNEY_LOG_LEVEL": "error"})
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/report", timeout=30) as response:
                        if json.loads(response.read())["leads"] >= leads:
                            break
                except OSError:
                    pass
                time.sleep(1)
            rss_kib = int(next(line for line in Path(f"/proc/{worker.pid}/status").read_text().splitlines() if line.startswith("VmRSS")).split()[1])
        finally:
            worker.kill()
    return {"leads": leads, "rss_mib": round(rss_kib / 1024, 1), "bytes_per_lead": round(rss_kib * 1024 / leads)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--worker-leads", type=int, nargs="*", default=[100_000])
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "memory.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        result = {
            "replay": [replay_memory(n, Path(scratch)) for n in args.leads],
            "worker": [worker_memory(n, Path(scratch)) for n in args.worker_leads],
        }
    for kind, rows in result.items():
        for row in rows:
            print(kind, " ".join(f"{k}={v}" for k, v in row.items()))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
