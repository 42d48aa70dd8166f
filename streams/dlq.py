"""`journey dlq`: what is in the dead-letter topic, by reason class, with samples."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable

from aiokafka import ConsumerRecord

SAMPLE_CHARS = 200


def summarize(messages: Iterable[ConsumerRecord], samples: int) -> dict[str, Any]:
    classes: dict[str, dict[str, Any]] = defaultdict(lambda: {"count": 0, "samples": []})
    total = 0
    for message in messages:
        total += 1
        headers = {key: value.decode(errors="replace") for key, value in message.headers or ()}
        entry = classes[headers.get("reason-class", "unknown")]
        entry["count"] += 1
        if len(entry["samples"]) < samples:
            entry["samples"].append(
                {
                    "reason": headers.get("reason", ""),
                    "record": (message.value or b"")[:SAMPLE_CHARS].decode(errors="replace"),
                    "size": int(headers.get("original-size", len(message.value or b""))),
                    "source": {k: headers.get(f"source-{k}") for k in ("topic", "partition", "offset")},
                }
            )
    ordered = dict(sorted(classes.items(), key=lambda item: -item[1]["count"]))
    return {"total": total, "by_class": ordered}


def render(summary: dict[str, Any]) -> str:
    lines = [f"journey.events.dlq: {summary['total']} records"]
    for kind, entry in summary["by_class"].items():
        lines.append(f"\n{entry['count']:>8}  {kind}")
        for sample in entry["samples"]:
            source = sample["source"]
            lines.append(f"          reason: {sample['reason']}")
            lines.append(f"          record: {sample['record']!r} ({sample['size']} bytes, {source['topic']}[{source['partition']}]@{source['offset']})")
    return "\n".join(lines) + "\n"
