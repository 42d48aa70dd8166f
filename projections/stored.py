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
from array import array
from dataclasses import dataclass

from projections.codec import CorruptState, decode_owner, decode_state, encode_state, read_string, write_string
from projections.identity import Link
from projections.lead import LeadState
from schemas.events import MAX_ID_CHARS

LEAD_HEAD = struct.Struct("<Hqq")  # partition, applied through offset, duplicates; then the state
_PROGRESS = struct.Struct("<qqq")  # applied through offset, invalid records, identity messages applied through
_PROGRESS_V1 = struct.Struct("<qq")  # before identity: no identity messages
_PROGRESS_PREFIX = "\x00journey:progress:"


@dataclass(slots=True)
class StoredLead:
    """A stored owner: a lead, or an anonymous id (SPEC §9), with its identity section (what the
    live identity path keeps beside its facts: projections.identity, opaque here)."""

    partition: int
    through: int
    duplicates: int
    state: LeadState
    identity: bytes = b""

    def encode(self) -> bytes:
        return LEAD_HEAD.pack(self.partition, self.through, self.duplicates) + encode_state(self.state, self.identity)

    @classmethod
    def decode(cls, data: bytes) -> StoredLead:
        partition, through, duplicates = LEAD_HEAD.unpack_from(data)
        state, identity = decode_owner(data[LEAD_HEAD.size :])
        return cls(partition, through, duplicates, state, identity)


@dataclass(slots=True)
class Progress:
    """Per partition: the offset of journey.events applied through, the invalid records up to it,
    and the offset of the identity topic's partition applied through (SPEC §9's live path)."""

    through: int = -1
    invalid: int = 0
    identity_through: int = -1

    def encode(self) -> bytes:
        return _PROGRESS.pack(self.through, self.invalid, self.identity_through)

    @classmethod
    def decode(cls, data: bytes) -> Progress:
        if len(data) == _PROGRESS_V1.size:
            return cls(*_PROGRESS_V1.unpack(data))
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


# -- the identity sections of stored owners, and held anonymous ids (SPEC §9; projections.linking) ------

_LINK_AT = struct.Struct("<q")
_COUNT = struct.Struct("<I")
ANON_SECTION, LEAD_SECTION, HELD_ENTRY = 1, 2, 3


def _link(link: Link) -> bytes:
    return _LINK_AT.pack(link.occurred_at) + write_string(link.event_id) + write_string(link.lead_id)


def _read_link(data: bytes, at: int) -> tuple[Link, int]:
    (occurred_at,) = _LINK_AT.unpack_from(data, at)
    event_id, at = read_string(data, at + _LINK_AT.size)
    lead_id, at = read_string(data, at)
    if event_id is None or lead_id is None:
        raise struct.error("a link without its ids")
    return Link(occurred_at, event_id, lead_id), at


def _facts(state: LeadState) -> bytes:
    """A state's facts without its seen event ids (they stay with their owner)."""
    seen, state.seen = state.seen, array("q")
    try:
        data = encode_state(state)
    finally:
        state.seen = seen
    return _COUNT.pack(len(data)) + data


def _read_facts(data: bytes, at: int) -> tuple[LeadState, int]:
    (length,) = _COUNT.unpack_from(data, at)
    at += _COUNT.size
    if at + length > len(data):
        raise struct.error("facts past the end")
    return decode_state(data[at : at + length]), at + length


@dataclass(slots=True)
class AnonSection:
    """An anonymous id's section: its winning link (None: no lead has claimed it)."""

    winner: Link | None = None

    def encode(self) -> bytes:
        return b"" if self.winner is None else bytes([ANON_SECTION]) + _link(self.winner)


@dataclass(slots=True)
class Kept:
    """An anonymous id a lead keeps: its least link heard (naming this lead) and the join of its facts."""

    link: Link
    anonymous_id: str
    facts: LeadState


@dataclass(slots=True)
class LeadSection:
    """A lead's section: the anonymous ids it keeps (`kept`, least link first), and their facts merged
    (`joined`, whose `touch_owner` is the anonymous id of its first touch). The lead's record is the
    authority on what it keeps; `joined` is written first, so a view of the person reads only it."""

    kept: list[Kept]
    joined: LeadState | None = None

    def encode(self) -> bytes:
        if not self.kept:
            return b""
        joined = self.joined if self.joined is not None else LeadState()
        parts = [bytes([LEAD_SECTION]), _facts(joined), write_string(joined.touch_owner), _COUNT.pack(len(self.kept))]
        for entry in self.kept:
            parts += [_LINK_AT.pack(entry.link.occurred_at), write_string(entry.link.event_id), write_string(entry.anonymous_id), _facts(entry.facts)]
        return b"".join(parts)


def joined_facts(data: bytes) -> LeadState | None:
    """Only the merged facts of a lead's section (what its person view needs); None without kept ids."""
    if not data:
        return None
    try:
        if data[0] != LEAD_SECTION:
            raise struct.error("not a lead's section")
        joined, at = _read_facts(data, 1)
        joined.touch_owner, _ = read_string(data, at)
    except (struct.error, IndexError, CorruptState) as exc:
        raise CorruptState(f"a lead's identity section that cannot be read ({exc})") from None
    return joined


_PARTITION = struct.Struct("<H")


@dataclass(slots=True)
class Held:
    """What a lead holds of an anonymous id it has heard of: the least link heard for it (it belongs
    to this lead while the link's lead is this one), the join of every snapshot of its facts, and
    the partition it is kept in (the lead's)."""

    link: Link
    facts: LeadState
    partition: int

    def encode(self) -> bytes:
        return bytes([HELD_ENTRY]) + _PARTITION.pack(self.partition) + _link(self.link) + _facts(self.facts)

    @classmethod
    def decode(cls, data: bytes) -> Held:
        try:
            if data[:1] != bytes([HELD_ENTRY]):
                raise struct.error("not a held entry")
            (partition,) = _PARTITION.unpack_from(data, 1)
            link, at = _read_link(data, 1 + _PARTITION.size)
            facts, at = _read_facts(data, at)
        except (struct.error, IndexError) as exc:
            raise CorruptState(f"a held anonymous id that cannot be read ({exc})") from None
        if at != len(data):
            raise CorruptState("a held anonymous id with bytes after it")
        return cls(link, facts, partition)


def anon_section(data: bytes) -> AnonSection:
    if not data:
        return AnonSection()
    try:
        if data[0] != ANON_SECTION:
            raise struct.error("not an anonymous id's section")
        winner, at = _read_link(data, 1)
    except (struct.error, IndexError) as exc:
        raise CorruptState(f"an anonymous id's identity section that cannot be read ({exc})") from None
    if at != len(data):
        raise CorruptState("an anonymous id's identity section with bytes after it")
    return AnonSection(winner)


def lead_section(data: bytes, lead_id: str) -> LeadSection:
    if not data:
        return LeadSection([])
    try:
        if data[0] != LEAD_SECTION:
            raise struct.error("not a lead's section")
        joined, at = _read_facts(data, 1)
        joined.touch_owner, at = read_string(data, at)
        (count,) = _COUNT.unpack_from(data, at)
        at, kept = at + _COUNT.size, []
        for _ in range(count):
            (occurred_at,) = _LINK_AT.unpack_from(data, at)
            event_id, at = read_string(data, at + _LINK_AT.size)
            anonymous_id, at = read_string(data, at)
            facts, at = _read_facts(data, at)
            if event_id is None or anonymous_id is None:
                raise struct.error("a kept id without its link")
            kept.append(Kept(Link(occurred_at, event_id, lead_id), anonymous_id, facts))
    except (struct.error, IndexError, CorruptState) as exc:
        raise CorruptState(f"a lead's identity section that cannot be read ({exc})") from None
    if at != len(data):
        raise CorruptState("a lead's identity section with bytes after it")
    return LeadSection(kept, joined)
