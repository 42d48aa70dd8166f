"""`make bench`: every benchmark, each figure beside its baseline from the same run, as a table and JSON.

    python -m bench.run [--events 1000000] [--live-events 200000] [--live-rounds 2] [--memory-leads 100000 1000000] [--worker-leads 100000 1000000]

Pieces run alone too: python -m bench.replay (or bench.live, bench.latency, bench.memory, bench.restart).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SHADOW_DEFINITIONS = HERE.parent / "tests" / "golden" / "alt-definitions.yaml"  # other stages, levels and window than the defaults


def run(script: str, *args: str, output: str) -> dict:
    module = "bench." + script.removesuffix(".py")
    subprocess.run([sys.executable, "-m", module, *args, "--json", str(RESULTS / output)], check=True, cwd=HERE.parent)
    return json.loads((RESULTS / output).read_text())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--live-events", type=int, default=200_000)
    parser.add_argument("--memory-leads", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--worker-leads", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--restart-leads", type=int, default=50_000)
    parser.add_argument("--live-rounds", type=int, default=2, help="runs of 1 worker and of 2, alternated; the best of each counts")
    args = parser.parse_args()

    replay = run("replay.py", "--events", str(args.events), output="replay.json")
    # One worker and two, alternated, the best run of each: the machine's speed drifts by up to
    # 2x within a minute, and the 2-worker figure is compared with the 1-worker one.
    # A shadow (SPEC §11) and anonymous journeys (SPEC §9) in the same rounds, so that their cost is
    # read against the plain worker of the same minutes.
    ones, twos, shadows, anonymous = [], [], [], []
    for round_ in range(args.live_rounds):
        flags = [] if round_ == 0 else ["--no-plain-agent"]
        ones.append(run("live.py", "--events", str(args.live_events), "--workers", "1", *flags, output=f"live-1-{round_}.json"))
        shadows.append(run("live.py", "--events", str(args.live_events), "--workers", "1", "--no-plain-agent", "--shadow", str(SHADOW_DEFINITIONS), output=f"live-shadow-{round_}.json"))
        anonymous.append(run("live.py", "--events", str(args.live_events), "--workers", "1", "--no-plain-agent", "--anonymous", "0.6", output=f"live-anonymous-{round_}.json"))
        twos.append(run("live.py", "--events", str(args.live_events), "--workers", "2", "--no-plain-agent", output=f"live-2-{round_}.json"))
    live1 = max(ones, key=lambda r: r["journey_vs_raw_consumer"])
    shadow = max(shadows, key=lambda r: r["journey_events_per_s"])
    anon = max(anonymous, key=lambda r: r["journey_events_per_s"])
    plain = ones[0]  # the only run with the plain Faust agent, against its own raw consumer
    live2 = max(twos, key=lambda r: r["journey_events_per_s"])
    best_one = max(r["journey_events_per_s"] for r in ones)
    latency = run("latency.py", "--sample", "100", output="latency.json")
    restart = run("restart.py", "--leads", str(args.restart_leads), output="restart.json")
    memory = run("memory.py", "--leads", *map(str, args.memory_leads), "--worker-leads", *map(str, args.worker_leads), output="memory.json")

    rows = [
        ("replay", f"{replay['replay_lines_per_s']:,} lines/s", f"stdlib json.loads loop {replay['stdlib_json_lines_per_s']:,}/s", f"{replay['replay_vs_stdlib_json']}x", ">= 2.0x"),
        ("live, 1 worker", f"{live1['journey_events_per_s']:,} events/s", f"raw aiokafka+orjson {live1['raw_consumer_events_per_s']:,}/s", f"{100 * live1['journey_vs_raw_consumer']:.1f}%", ">= 10%"),
        ("live, 1 worker, a shadow", f"{shadow['journey_events_per_s']:,} events/s", f"without {best_one:,}/s", f"{100 * shadow['journey_events_per_s'] / best_one:.1f}%", ""),
        ("state on disk, a shadow", f"{shadow['state_disk_mib']} MiB", f"without {live1['state_disk_mib']} MiB", "", "the same"),
        ("live, 1 worker, 60% anonymous", f"{anon['journey_events_per_s']:,} events/s", f"none anonymous {best_one:,}/s", f"{100 * anon['journey_events_per_s'] / best_one:.1f}%", ""),
        ("live, plain Faust agent", f"{plain['plain_faust_agent_events_per_s']:,} events/s", "the ceiling of any Faust agent", f"{100 * plain['plain_faust_agent_vs_raw_consumer']:.1f}%", ""),
        ("live, 2 workers", f"{live2['journey_events_per_s']:,} events/s", f"1 worker {best_one:,}/s", f"{live2['journey_events_per_s'] / best_one:.2f}x", ">= 1.8x"),
        ("latency at 1,000/s", f"p50 {latency['p50_ms']} ms", f"p99 {latency['p99_ms']} ms", "", "p99 <= 250 ms"),
        (f"restart, {restart['leads']:,} leads", f"after SIGKILL {restart['after_sigkill_s']} s", f"after a clean stop {restart['after_clean_stop_s']} s", f"{restart['sigkill_vs_clean']}x", "<= 1.2x"),
    ]
    rows += [(f"replay memory, {m['leads']:,} leads", f"{m['peak_rss_mib']} MiB", f"{m['events']:,} events", f"{m['bytes_per_lead']} B/lead", "<= 1024 B/lead") for m in memory["replay"]]
    rows += [(f"worker memory, {m['leads']:,} leads", f"{m['rss_mib']} MiB", f"idle {m['idle_rss_mib']} MiB, disk {m['disk_mib']} MiB", f"{m['bytes_per_lead']} B/lead", "") for m in memory["worker"]]
    widths = [max(len(str(row[i])) for row in rows) for i in range(5)]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    (RESULTS / "summary.json").write_text(json.dumps({"replay": replay, "live_1": live1, "live_2": live2, "live_shadow": shadow, "live_anonymous": anon, "live_rounds": {"1": ones, "2": twos, "shadow": shadows, "anonymous": anonymous}, "latency": latency, "restart": restart, "memory": memory}, indent=2) + "\n")


if __name__ == "__main__":
    main()
