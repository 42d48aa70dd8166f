"""The dead-letter format of journey.events.dlq, both ways, and `journey dlq`'s summary of it.

A dead letter is the original record's bytes with headers saying why it was
refused and where it came from. A record over MAX_VALUE bytes is kept as its
first MAX_VALUE bytes, with its size and SHA-256 so it can still be found.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kafka.consumer.fetcher import ConsumerRecord

from schemas import Rejection

MAX_VALUE = 128 * 1024
SAMPLE_CHARS = 200
Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class DeadLetter:
    reason: str
    kind: str  # the reason's class (schemas.Rejection.kind), for counting
    topic: str
    partition: int
    offset: int
    value: bytes  # as kept: the first MAX_VALUE bytes of the original
    original_size: int
    original_sha256: str | None = None  # only when the value was truncated

    @classmethod
    def of(cls, reason: str, topic: str, partition: int, offset: int, original: bytes) -> DeadLetter:
        truncated = len(original) > MAX_VALUE
        digest = hashlib.sha256(original).hexdigest() if truncated else None
        return cls(reason, Rejection(reason).kind, topic, partition, offset, original[:MAX_VALUE], len(original), digest)

    def encode(self) -> tuple[bytes, Headers]:
        headers = [
            ("reason", self.reason.encode()),
            ("reason-class", self.kind.encode()),
            ("source-topic", self.topic.encode()),
            ("source-partition", str(self.partition).encode()),
            ("source-offset", str(self.offset).encode()),
        ]
        if self.original_sha256 is not None:
            headers += [
                ("truncated", b"true"),
                ("original-size", str(self.original_size).encode()),
                ("original-sha256", self.original_sha256.encode()),
            ]
        return self.value, headers

    @classmethod
    def decode(cls, value: bytes | None, headers: Iterable[tuple[str, bytes]] | None) -> DeadLetter:
        """Any record of the topic; what a foreign or damaged record lacks is left empty, never an error."""
        fields = {key: raw.decode(errors="replace") for key, raw in headers or ()}
        value = value or b""
        return cls(
            reason=fields.get("reason", ""),
            kind=fields.get("reason-class", "unknown"),
            topic=fields.get("source-topic", ""),
            partition=_number(fields.get("source-partition")),
            offset=_number(fields.get("source-offset")),
            value=value,
            original_size=_number(fields.get("original-size"), len(value)),
            original_sha256=fields.get("original-sha256") if fields.get("truncated") == "true" else None,
        )


def _number(text: str | None, default: int = -1) -> int:
    return int(text) if text is not None and text.lstrip("-").isdigit() else default


def summarize(messages: Iterable[ConsumerRecord], samples: int) -> dict[str, Any]:
    classes: dict[str, dict[str, Any]] = defaultdict(lambda: {"count": 0, "samples": []})
    total = 0
    for message in messages:
        total += 1
        letter = DeadLetter.decode(message.value, message.headers)
        entry = classes[letter.kind]
        entry["count"] += 1
        if len(entry["samples"]) < samples:
            entry["samples"].append(
                {
                    "reason": letter.reason,
                    "record": letter.value[:SAMPLE_CHARS].decode(errors="replace"),
                    "size": letter.original_size,
                    "source": {"topic": letter.topic or None, "partition": _text(letter.partition), "offset": _text(letter.offset)},
                }
            )
    ordered = dict(sorted(classes.items(), key=lambda item: -item[1]["count"]))
    return {"total": total, "by_class": ordered}


def _text(number: int) -> str | None:
    return None if number < 0 else str(number)


def render(summary: dict[str, Any]) -> str:
    lines = [f"journey.events.dlq: {summary['total']} records"]
    for kind, entry in summary["by_class"].items():
        lines.append(f"\n{entry['count']:>8}  {kind}")
        for sample in entry["samples"]:
            source = sample["source"]
            lines.append(f"          reason: {sample['reason']}")
            lines.append(f"          record: {sample['record']!r} ({sample['size']} bytes, {source['topic']}[{source['partition']}]@{source['offset']})")
    return "\n".join(lines) + "\n"
