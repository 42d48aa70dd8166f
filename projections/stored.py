"""What a live worker keeps in its lead table, as bytes: one home for that layout.

Per lead, a `StoredLead`: the partition it belongs to, the offset it is applied
through, its duplicate count and its folded state (`projections.codec`, which
upgrades older state versions). Per partition, a `Progress` under a key no lead
id can have.

The C batch fold (`_fold.c`, `fold_stored`) reads and writes this layout too;
it exports its own sizes of it (`_fold.STORED_HEAD`, `STATE_HEAD`,
`STATE_VERSION`) and tests/unit/test_live_fold.py holds them, and the bytes it
writes, to the ones here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from projections.codec import decode_state, encode_state
from projections.lead import LeadState
from schemas.events import MAX_ID_CHARS

LEAD_HEAD = struct.Struct("<Hqq")  # partition, applied through offset, duplicates; then the state
_PROGRESS = struct.Struct("<qq")  # applied through offset, invalid records
_PROGRESS_PREFIX = "\x00journey:progress:"


@dataclass(slots=True)
class StoredLead:
    partition: int
    through: int
    duplicates: int
    state: LeadState

    def encode(self) -> bytes:
        return LEAD_HEAD.pack(self.partition, self.through, self.duplicates) + encode_state(self.state)

    @classmethod
    def decode(cls, data: bytes) -> StoredLead:
        partition, through, duplicates = LEAD_HEAD.unpack_from(data)
        return cls(partition, through, duplicates, decode_state(data[LEAD_HEAD.size :]))


@dataclass(slots=True)
class Progress:
    """Per partition: the offset applied through, and the invalid records up to it."""

    through: int = -1
    invalid: int = 0

    def encode(self) -> bytes:
        return _PROGRESS.pack(self.through, self.invalid)

    @classmethod
    def decode(cls, data: bytes) -> Progress:
        return cls(*_PROGRESS.unpack(data))


def progress_key(partition: int) -> str:
    """Where a partition's Progress lives in the lead table: longer than any lead id can be.

    It shares the table, and so the changelog partition, with the leads it
    vouches for, and is written after them: a changelog cut anywhere (a worker
    killed before the producer sent everything) holds no progress past a lead
    write it lacks. In a table of its own it could land first and vouch for
    lead writes that never arrived."""
    return f"{_PROGRESS_PREFIX}{partition}:".ljust(MAX_ID_CHARS + 1, "\x00")


def progress_partition(key: str) -> int | None:
    """The partition of a progress key; None for a lead id."""
    if len(key) <= MAX_ID_CHARS or not key.startswith(_PROGRESS_PREFIX):
        return None
    return int(key[len(_PROGRESS_PREFIX) :].split(":", 1)[0])
