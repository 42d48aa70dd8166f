"""Replay benchmark: `journey replay` against a loop that only parses each line with stdlib json.

Both run in the same session on the same generated log, alternated `--rounds`
times, and the best time of each counts: the ratio is what matters, and on a
shared machine one run of each is noise (its speed drifts by up to 2x within a
minute). The ratio of each round is kept beside it.

    python -m bench.replay [--events 1000000] [--rounds 3] [--json bench/results/replay.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.results_io import publish

HERE = Path(__file__).parent

JOURNEY = Path(sys.executable).with_name("journey")
EVENTS_PER_LEAD = 3.8  # what `journey generate` produces on average
LOG_START = "2026-08-01"  # the same log on any day, so runs stay comparable


def generated_log(events: int, anonymous: float = 0.0) -> Path:
    """The benchmark's log; with `anonymous`, that share of its journeys starts anonymous (SPEC §9)."""
    leads = int(events / EVENTS_PER_LEAD)
    path = HERE / "data" / (f"journeys-{leads}.jsonl" if not anonymous else f"journeys-{leads}-anonymous-{anonymous}.jsonl")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            command = [str(JOURNEY), "generate", "--leads", str(leads), "--seed", "1", "--start", LOG_START, "--anonymous", str(anonymous)]
            subprocess.run(command, stdout=out, check=True)
    return path


def stdlib_json_loop(path: Path) -> tuple[float, int]:
    started = time.perf_counter()
    lines = 0
    with path.open("rb") as log:
        for line in log:
            if line.strip():
                try:  # noqa: SIM105 - the baseline loop: a context manager per line would slow it
                    json.loads(line)
                except ValueError:
                    pass
                lines += 1
    return time.perf_counter() - started, lines


def timed_child(*args: str) -> tuple[float, int, bytes]:
    """Wall seconds and peak RSS (bytes) of one command, run as a child of a fresh helper."""
    probe = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "out = subprocess.run(sys.argv[1:], capture_output=True, check=True).stdout\n"
        "sys.stderr.write(f'{time.perf_counter() - t} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}\\n')\n"
        "sys.stdout.buffer.write(out)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, check=True)
    seconds, rss_kib = done.stderr.split()[-2:]
    return float(seconds), int(rss_kib) * 1024, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path, default=HERE / "results" / "replay.json")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each, alternated; the best of each counts")
    parser.add_argument("--anonymous", type=float, default=0.0, help="share of journeys that start anonymous (SPEC §9), e.g. 0.6")
    args = parser.parse_args()

    log = generated_log(args.events, args.anonymous)
    # Alternated, best of each: this machine's speed drifts by up to 2x within a minute, and
    # one run of each can land the baseline in a fast moment and replay in a slow one.
    baselines, replays = [], []
    for _ in range(args.rounds):
        baseline_s, lines = stdlib_json_loop(log)
        replay_s, replay_rss, out = timed_child(str(JOURNEY), "replay", "--input", str(log), "--format", "json")
        baselines.append(baseline_s)
        replays.append(replay_s)
    baseline_s, replay_s = min(baselines), min(replays)
    report = json.loads(out)
    empty = HERE / "data" / "empty.jsonl"
    empty.write_bytes(b"")
    _, idle_rss, _ = timed_child(str(JOURNEY), "replay", "--input", str(empty), "--format", "json")

    result = {
        "lines": lines,
        "anonymous": args.anonymous,
        "leads": report["leads"],
        "cpus": os.cpu_count(),
        "stdlib_json_lines_per_s": round(lines / baseline_s),
        "replay_lines_per_s": round(lines / replay_s),
        "replay_vs_stdlib_json": round(baseline_s / replay_s, 2),
        "rounds": args.rounds,
        "replay_vs_stdlib_json_per_round": [round(b / r, 2) for b, r in zip(baselines, replays, strict=True)],
        "replay_seconds": round(replay_s, 2),
        "replay_peak_rss_mib": round(replay_rss / 2**20, 1),
        "replay_bytes_per_lead": round((replay_rss - idle_rss) / max(report["leads"], 1)),
    }
    publish(result, args.json)



if __name__ == "__main__":
    main()
