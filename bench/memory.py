"""Memory benchmark: resident memory of replay and of a worker, by number of leads.

    python -m bench.memory [--leads 100000 1000000] [--worker-leads 100000 1000000]

Replay memory must grow with leads, not events: the log of N leads has about
3.8 N events. Memory per lead is (peak RSS - RSS of an empty replay) / leads.
A worker's is (RSS with N leads applied and written - RSS of the ready, empty worker) / N,
measured from outside (/proc), with the table's size on disk (docs/operations.md: Sizing).
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
    """A worker's RSS idle, then with `leads` leads (one event each) applied and written locally, and
    the table's size on disk; RocksDB at its defaults (JOURNEY_ROCKSDB_CACHE_MB, _WRITE_BUFFER_MB)."""
    log = scratch / f"one-event-per-lead-{leads}.jsonl"
    log.write_bytes(b"".join(b'{"event_id":"e","lead_id":"M%d","type":"content_read","occurred_at":"2026-09-01T10:00:00Z"}\n' % i for i in range(leads)))
    data = scratch / f"w-{leads}"
    with EmbeddedBroker(free_port()) as broker:
        port = free_port()
        worker = subprocess.Popen([JOURNEY, "worker", "--broker", broker.url, "--web-port", str(port), "--data-dir", str(data)], stderr=subprocess.DEVNULL, env={**os.environ, "JOURNEY_LOG_LEVEL": "error"})
        try:
            _wait(lambda: _get(port, "/readyz") is not None)
            idle_kib = _status(worker.pid, "VmRSS")
            subprocess.run([JOURNEY, "produce", str(log), "--broker", broker.url], check=True, capture_output=True)
            _wait(lambda: (_get(port, "/api/report") or {}).get("leads", 0) >= leads)
            _wait(lambda: _caught_up(port))
            time.sleep(3)  # settled: the last batch written, the memtables filled
            rss_kib, peak_kib = _status(worker.pid, "VmRSS"), _status(worker.pid, "VmHWM")
            rocksdb = _rocksdb_gauges(port)
        finally:
            worker.kill()
            worker.wait()
    disk = sum(f.stat().st_size for f in data.rglob("*") if f.is_file())
    return {
        "leads": leads, "idle_rss_mib": round(idle_kib / 1024, 1), "rss_mib": round(rss_kib / 1024, 1), "peak_rss_mib": round(peak_kib / 1024, 1),
        "bytes_per_lead": round((rss_kib - idle_kib) * 1024 / leads), "rocksdb_mib": round(rocksdb / 2**20, 1),
        "disk_mib": round(disk / 2**20, 1), "disk_bytes_per_lead": round(disk / leads),
    }


def _get(port: int, path: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
            return json.loads(response.read())
    except OSError:  # not listening yet, or 503 (HTTPError is an OSError)
        return None


def _wait(condition, timeout: float = 3600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the worker did not get there in time")
        time.sleep(1)


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        return response.read().decode()


def _gauge(text: str, name: str) -> float:
    return next(float(line.split()[1]) for line in text.splitlines() if line.startswith(name + " "))


def _rocksdb_gauges(port: int) -> float:
    """Bytes in the shared block cache and memtables."""
    text = _metrics(port)
    return _gauge(text, "journey_rocksdb_block_cache_usage_bytes") + _gauge(text, "journey_rocksdb_write_buffer_usage_bytes")


def _caught_up(port: int) -> bool:
    """No partition lags (every record applied, and so the batch before written locally)."""
    text = _metrics(port)
    lags = [float(line.split()[1]) for line in text.splitlines() if line.startswith("journey_consumer_lag{")]
    return bool(lags) and not any(lags)


def _status(pid: int, field: str) -> int:
    """A /proc/PID/status figure in KiB."""
    return int(next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith(field)).split()[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--worker-leads", type=int, nargs="*", default=[100_000, 1_000_000])
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
