"""Where replay reads records from: a JSONL file, stdin, or a Kafka topic."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, TypeVar
from urllib.parse import urlsplit

from streams.errors import JourneyError
from streams.kafka.address import KafkaSource

CHUNK_BYTES = 8 * 1024 * 1024
T = TypeVar("T")


class InputError(JourneyError):
    """A log or output file that cannot be read or written, or an --input that names nothing."""


Source = Path | KafkaSource | None  # None is stdin


def parse_source(text: str) -> Source:
    if text == "-":
        return None
    if text.startswith("kafka://"):
        parts = urlsplit(text)
        topic = parts.path.strip("/")
        if not parts.hostname or not parts.port or not topic:
            raise InputError(f"--input {text}: expected kafka://HOST:PORT/TOPIC")
        return KafkaSource(f"{parts.hostname}:{parts.port}", topic)
    path = Path(text)
    if not path.is_file():
        raise InputError(f"--input {text}: no such file")
    return path


def jsonl_records(stream: BinaryIO) -> Iterator[bytes]:
    """Each non-blank line, without its line ending, read in large chunks."""
    for lines in jsonl_chunks(stream):
        yield from lines


def jsonl_chunks(stream: BinaryIO) -> Iterator[list[bytes]]:
    """The records of `jsonl_records`, a list per chunk read: for loops that take them in bulk."""
    for chunk in line_chunks(stream):
        lines, _ = _records(bytes(chunk) + b"\n")  # the last chunk may lack its line ending
        yield lines


def numbered_chunks(stream: BinaryIO) -> Iterator[list[tuple[int, bytes]]]:
    """The records of `jsonl_chunks`, each with its line number: 1-based, counting every line of
    the stream as read, blank ones included (replay --rejects names records by it)."""
    seen = 0
    for chunk in line_chunks(stream):
        lines = bytes(chunk).split(b"\n")
        if not lines[-1]:
            lines.pop()  # the ending of the chunk's last line, not a line
        numbered = []
        for number, line in enumerate(lines, seen + 1):
            if line.endswith(b"\r"):
                line = line[:-1]
            if line and not line.isspace():
                numbered.append((number, line))
        seen += len(lines)
        yield numbered


def line_chunks(stream: BinaryIO) -> Iterator[memoryview]:
    """A stream in large chunks of whole lines (the last one may lack its line ending).

    Each chunk is a view of one reused buffer, valid until the next one is
    asked for: reading into the same memory spares a page fault per page.
    """
    buffer = bytearray(CHUNK_BYTES)
    view = memoryview(buffer)
    kept = 0  # bytes of an unfinished line, moved to the front of the buffer
    while True:
        if kept == len(buffer):  # a line longer than the buffer: a bigger one
            buffer = bytearray(2 * len(buffer))
            buffer[:kept] = view
            view = memoryview(buffer)
        read = stream.readinto(view[kept:])
        if not read:
            if kept:
                yield view[:kept]
            return
        filled = kept + read
        end = buffer.rfind(b"\n", 0, filled) + 1
        if end == 0:
            kept = filled
            continue
        yield view[:end]
        buffer[: filled - end] = bytes(view[end:filled])  # a copy: the two may overlap
        kept = filled - end


def _records(data: bytes) -> tuple[list[bytes], bytes]:
    """The complete lines of `data` (CRLF or LF, blank ones left out), and the unfinished rest."""
    lines = data.split(b"\n")
    rest = lines.pop()
    if b"\r" in data:
        lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    return [line for line in lines if line and not line.isspace()], rest


def record_chunks(path: Path) -> Iterator[list[bytes]]:
    """`jsonl_chunks` of a file, with a clear error when it cannot be read."""
    return _read(path, jsonl_chunks)


def text_chunks(path: Path) -> Iterator[memoryview]:
    """`line_chunks` of a file, with a clear error when it cannot be read."""
    return _read(path, line_chunks)


def _read(path: Path, chunks: Callable[[BinaryIO], Iterator[T]]) -> Iterator[T]:
    try:
        with path.open("rb") as stream:
            yield from chunks(stream)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None


def numbered_records(source: Path | None) -> Iterator[list[tuple[int, bytes]]]:
    """`numbered_chunks` of a file (with a clear error when it cannot be read) or of stdin (None)."""
    if source is None:
        return numbered_chunks(sys.stdin.buffer)
    return _read(source, numbered_chunks)


def open_records(source: Path | None) -> Iterator[bytes]:
    if source is None:
        yield from jsonl_records(sys.stdin.buffer)
        return
    for lines in record_chunks(source):
        yield from lines
