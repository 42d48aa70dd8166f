"""Where replay reads records from: a JSONL file, stdin, or a Kafka topic."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator
from urllib.parse import urlsplit

from streams.errors import UserError

CHUNK_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class KafkaSource:
    bootstrap: str
    topic: str


Source = Path | KafkaSource | None  # None is stdin


def parse_source(text: str) -> Source:
    if text == "-":
        return None
    if text.startswith("kafka://"):
        parts = urlsplit(text)
        topic = parts.path.strip("/")
        if not parts.hostname or not parts.port or not topic:
            raise UserError(f"--input {text}: expected kafka://HOST:PORT/TOPIC")
        return KafkaSource(f"{parts.hostname}:{parts.port}", topic)
    path = Path(text)
    if not path.is_file():
        raise UserError(f"--input {text}: no such file")
    return path


def jsonl_records(stream: BinaryIO) -> Iterator[bytes]:
    """Each non-blank line, without its line ending, read in large chunks."""
    rest = b""
    while chunk := stream.read(CHUNK_BYTES):
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        yield from _records(lines)
    yield from _records([rest])


def _records(lines: list[bytes]) -> Iterator[bytes]:
    for line in lines:
        if line.endswith(b"\r"):
            line = line[:-1]
        if line and not line.isspace():
            yield line


def open_records(source: Path | None) -> Iterator[bytes]:
    if source is None:
        yield from jsonl_records(sys.stdin.buffer)
        return
    try:
        with source.open("rb") as stream:
            yield from jsonl_records(stream)
    except OSError as exc:
        raise UserError(f"{source}: cannot read: {exc.strerror or exc}") from None
