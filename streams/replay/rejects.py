"""`journey replay --rejects FILE`: every invalid record of the log, one JSON line each, in log order.

    {"line": 12, "kind": "occurred_at", "reason": "occurred_at: ...", "record": "{\\"event_id\\": ...", "size": 83}

`line` is the record's line number in the file or stdin (1-based, every line
read counted, blank ones included); a `kafka://` input names `partition` and
`offset` instead, and is ordered by them. `kind` is the reason's class
(`schemas.Rejection.kind`, as `journey dlq` and journey_invalid_records count
them), `record` the first 1 KiB of the record as text (invalid UTF-8
replaced, a character the cut splits left out), `size` its whole size in bytes.

They are exactly the records the report counts as invalid, because the fold
itself finds them: both folds hand what their fast path does not take to
`schemas.decode.decode`, which makes every Rejection, and `Rejects.decode` is
that function, keeping what it rejects together with the place of the record
the fold is taking (`Rejects.track` notes it as the fold takes each record).
A replay without --rejects runs none of this.
"""

from __future__ import annotations

import codecs
import heapq
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from schemas.decode import Event, Rejection, decode
from streams.replay.sources import InputError

RECORD_BYTES = 1024
Place = Any  # a line number (int), or (partition, offset) of a Kafka record


class Rejects:
    """Keeps what the fold rejects: written at once when the records come in order, else held
    and written sorted by `finish`."""

    def __init__(self, out: BinaryIO, ordered: bool = True) -> None:
        self._out = out
        self._held: list[tuple[Place, bytes]] | None = None if ordered else []
        self._place: Place = None
        self.count = 0

    def track(self, placed: Iterable[tuple[Place, bytes]]) -> Iterator[bytes]:
        """The records for the fold, each one's place noted as the fold takes it (it decodes a
        record before it takes the next)."""
        for place, raw in placed:
            self._place = place
            yield raw

    def decode(self, raw: bytes) -> Event | Rejection:
        """`schemas.decode.decode`, keeping each rejection with the place of its record."""
        found = decode(raw)
        if type(found) is Rejection:
            self.count += 1
            line = entry(self._place, found, raw)
            if self._held is None:
                self._out.write(line)
            else:
                self._held.append((self._place, line))
        return found

    def finish(self) -> None:
        for _, line in sorted(self._held or ()):
            self._out.write(line)


def entry(place: Place, rejection: Rejection, raw: bytes) -> bytes:
    where = {"line": place} if isinstance(place, int) else {"partition": place[0], "offset": place[1]}
    text = record_text(raw)
    return orjson.dumps({**where, "kind": rejection.kind, "reason": rejection.reason, "record": text, "size": len(raw)}) + b"\n"


def record_text(raw: bytes) -> str:
    """The first RECORD_BYTES of a record as text: invalid UTF-8 replaced (U+FFFD), and a character
    the cut splits left out rather than replaced."""
    return codecs.getincrementaldecoder("utf-8")(errors="replace").decode(raw[:RECORD_BYTES], final=len(raw) <= RECORD_BYTES)


@contextmanager
def writing(path: Path) -> Iterator[BinaryIO]:
    """The rejects file, open for writing; a file that cannot be written is the user's to fix, said in one line."""
    try:
        with path.open("wb") as out:
            yield out
    except OSError as exc:
        raise InputError(f"--rejects {path}: cannot write: {exc.strerror or exc}") from None


def merge_parts(parts: list[Path], path: Path) -> int:
    """Parts of a parallel replay, each in line order, into one file in line order; how many lines."""
    files = [part.open("rb") for part in parts]
    count = 0
    try:
        keyed = [((orjson.loads(line)["line"], line) for line in f) for f in files]
        with writing(path) as out:
            for _, line in heapq.merge(*keyed):
                out.write(line)
                count += 1
    finally:
        for f in files:
            f.close()
    return count


def check_count(written: int, invalid: int) -> None:
    """The rejects file holds a line per invalid record the report counts; anything else is a bug."""
    if written != invalid:
        raise RuntimeError(f"the rejects file holds {written} records but the report counts {invalid} invalid")
