"""Restart benchmark: how long a worker holding N leads takes to serve its complete report again,
after a clean stop (SIGINT) and after SIGKILL.

    python -m bench.restart [--leads 50000]

One worker folds a synthetic log of N leads (about 3.8 N events) on the
embedded broker and is stopped; the same data dir is started again, and the
time is measured from the start of the process until `/api/report` counts
every event. Then the same with SIGKILL instead of a clean stop. Issue 15
asks for the second within 1.2x the first.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.live import JOURNEY, produced_log
from bench.results_io import publish
from streams.net import free_port
from streams.tools.broker import EmbeddedBroker

ROOT = Path(__file__).resolve().parent.parent


def _report(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/report", timeout=30) as response:
            return json.loads(response.read())
    except OSError:
        return None


def until_complete(broker: str, data_dir: Path, events: int) -> tuple[subprocess.Popen[bytes], int, float, dict]:
    """Start a worker; seconds until its report counts every event."""
    port = free_port()
    started = time.perf_counter()
    worker = subprocess.Popen(
        [JOURNEY, "worker", "--broker", broker, "--web-port", str(port), "--data-dir", str(data_dir)],
        stderr=subprocess.DEVNULL,
        env={**os.environ, "JOURNEY_LOG_LEVEL": "error"},
    )
    while True:
        report = _report(port)
        if report is not None and sum(report["events"].values()) >= events:
            return worker, port, time.perf_counter() - started, report
        if worker.poll() is not None:
            raise SystemExit(f"the worker exited with {worker.returncode}")
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=50_000)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "restart.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, EmbeddedBroker(free_port()) as broker:
        records = produced_log(broker, int(args.leads * 3.8), Path(scratch))
        data = Path(scratch) / "w"
        worker, _, first, report = until_complete(broker.url, data, len(records))
        worker.send_signal(signal.SIGINT)
        worker.wait(60)
        worker, _, clean, after_clean = until_complete(broker.url, data, len(records))
        worker.send_signal(signal.SIGKILL)
        worker.wait(60)
        worker, _, killed, after_kill = until_complete(broker.url, data, len(records))
        worker.send_signal(signal.SIGINT)
        worker.wait(60)
    assert report == after_clean == after_kill, "a restart changed the report"
    publish(
        {
            "leads": report["leads"],
            "events": len(records),
            "first_run_s": round(first, 2),
            "after_clean_stop_s": round(clean, 2),
            "after_sigkill_s": round(killed, 2),
            "sigkill_vs_clean": round(killed / clean, 2),
        },
        args.json,
    )


if __name__ == "__main__":
    main()
