"""An owner's state to bytes and back: the value a live worker keeps per lead (and per anonymous
id) in its table.

The first byte is the version of the layout. A worker reads every version it
has ever written: each has a reader that turns its bytes into fields, and
`UPCASTERS` upgrade those fields one version at a time to the current one
(like `schemas.decode.UPCASTERS` for events), so a worker upgraded in place
keeps its tables and its changelog. A version newer than this journey knows
is refused, never guessed at.

Version 3 (the current one), little-endian:
- the version byte; `first_at` per event type (7, `identified` last; _NONE: none), `last_at`
  (int64 each); `events`, `content_reads` (uint64); `contacts` (a byte); the count of seen
  event-id digests (uint32) and the digests (int64 each);
- `touch_at` (int64, _NONE: no touch), then, when there is a touch, `touch_id`, source, channel,
  campaign as strings (a uint32 UTF-8 length, _ABSENT for None, then the bytes);
- the revenue: a count (uint32), and per currency its name (a string) and its hundredths (int64);
- the owner's identity section (SPEC §9): a length (uint32) and that many bytes, which this
  codec carries and `projections.stored` reads.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable
from typing import Any

from projections.lead import LeadState

VERSION = 3
_NONE = -(2**63)  # stands for "no event of this type" in first_at, and "no touch" in touch_at
_HEAD_V1 = struct.Struct("<6qqIIBI")  # first_at x6, last_at, events, content_reads, contacts, seen count
# Version 2 adds, after the seen digests: touch_at, then (when there is a touch) touch_id, source,
# channel, campaign as strings; then the revenue: a count (uint16), and per currency its name and hundredths.
_TOUCH_AT = struct.Struct("<q")
_LENGTH = struct.Struct("<I")  # a string's UTF-8 length; _ABSENT for None
_ABSENT = 0xFFFFFFFF
_COUNT_V2 = struct.Struct("<H")
_COUNT = struct.Struct("<I")
_HUNDREDTHS = struct.Struct("<q")
_HEAD_V2 = struct.Struct("<B6qqIIBI")  # the version byte, then version 1's head
_HEAD_V3 = struct.Struct("<B7qqQQBI")  # version, first_at x7, last_at, events, content_reads (64-bit), contacts, seen count
_HEAD_END = HEAD_SIZE = _HEAD_V3.size  # what a current state starts with (projections/_fold.c: STATE_HEAD)
_NO_TOUCH = _TOUCH_AT.pack(_NONE)
_NO_REVENUE = _COUNT.pack(0)
_NO_IDENTITY = _LENGTH.pack(0)

Fields = dict[str, Any]


class CorruptState(ValueError):
    """Stored bytes that are not a lead state of a known version."""


def encode_state(state: LeadState, identity: bytes = b"") -> bytes:
    first = [_NONE if at is None else at for at in state.first_at]
    seen = state.seen
    head = _HEAD_V3.pack(VERSION, *first, state.last_at, state.events, state.content_reads, state.contacts, len(seen))
    touch = state.touch
    if touch is None or state.touch_at is None:
        parts = [head, seen.tobytes(), _NO_TOUCH]
    else:
        source, channel, campaign = touch
        parts = [head, seen.tobytes(), _TOUCH_AT.pack(state.touch_at), _string(state.touch_id), _string(source), _string(channel), _string(campaign)]
    revenue = state.revenue
    if not revenue:
        parts.append(_NO_REVENUE)
    else:
        parts.append(_COUNT.pack(len(revenue)))
        for currency, hundredths in revenue.items():
            parts += [_string(currency), _HUNDREDTHS.pack(hundredths)]
    parts.append(_LENGTH.pack(len(identity)) + identity if identity else _NO_IDENTITY)
    return b"".join(parts)


def write_string(text: str | None) -> bytes:
    """A string as every layout here writes it: its UTF-8 length (uint32; _ABSENT for None), then the bytes."""
    return _string(text)


def read_string(data: bytes, at: int) -> tuple[str | None, int]:
    """A string written by `write_string`, and where it ends; struct.error when it runs past the end."""
    return _read_string(data, at)


def _string(text: str | None) -> bytes:
    if text is None:
        return _LENGTH.pack(_ABSENT)
    data = text.encode("utf-8", "surrogatepass")  # JSON escapes can make lone surrogates
    return _LENGTH.pack(len(data)) + data


def decode_state(data: bytes) -> LeadState:
    return decode_owner(data)[0]


def decode_owner(data: bytes) -> tuple[LeadState, bytes]:
    """An owner's state and its identity section (b"" before version 3)."""
    if not data:
        raise CorruptState("an empty lead state")
    version = data[0]
    reader = _READERS.get(version)
    if reader is None:
        newer = " (written by a newer journey: upgrade this worker)" if version > VERSION else ""
        raise CorruptState(f"lead state version {version} is not one this journey reads{newer}")
    if version == VERSION:
        return _read_current(data)
    fields = reader(data)
    for step in range(version, VERSION):
        fields = UPCASTERS[step](fields)
    identity = fields.pop("identity")
    return _state(fields), identity


def _read_current(data: bytes) -> tuple[LeadState, bytes]:
    """The current version straight into a LeadState, without `_read_v3`'s fields dict: a worker
    decodes the stored state of every lead an event touches. Bytes it cannot read whole go to
    `_read_v3`, which says what is wrong with them."""
    try:
        _, f0, f1, f2, f3, f4, f5, f6, last_at, events, content_reads, contacts, n_seen = _HEAD_V3.unpack_from(data)
        at = _HEAD_END + 8 * n_seen
        (touch_at,) = _TOUCH_AT.unpack_from(data, at)
        state = LeadState.__new__(LeadState)
        state.first_at = [None if f == _NONE else f for f in (f0, f1, f2, f3, f4, f5, f6)]
        state.last_at, state.events, state.content_reads, state.contacts = last_at, events, content_reads, contacts
        state.seen = array("q", data[_HEAD_END:at])
        state.touch_owner = None
        at += 8
        if touch_at == _NONE:
            state.touch_at = state.touch_id = state.touch = None
        else:
            touch_id, at = _read_string(data, at)
            source, at = _read_string(data, at)
            channel, at = _read_string(data, at)
            campaign, at = _read_string(data, at)
            state.touch_at, state.touch_id, state.touch = touch_at, touch_id, (source, channel, campaign)
        (count,) = _COUNT.unpack_from(data, at)
        at += 4
        state.revenue = None
        if count:
            revenue = state.revenue = {}
            for _ in range(count):
                currency, at = _read_string(data, at)
                (revenue[currency],) = _HUNDREDTHS.unpack_from(data, at)
                at += 8
        (length,) = _LENGTH.unpack_from(data, at)
        at += 4
        identity = bytes(data[at : at + length])
        at += length
    except (struct.error, UnicodeDecodeError):
        at = -1
    if at != len(data):
        fields = _read_v3(data)  # raises CorruptState, saying why
        identity = fields.pop("identity")
        return _state(fields), identity
    return state, identity


def _read_v1(data: bytes) -> Fields:
    fields, end = _read_head(data, 1)
    if end != len(data):
        raise CorruptState(f"a version-1 lead state of {len(data)} bytes holds {len(data) - end} more than it lists")
    return fields


def _read_v2(data: bytes) -> Fields:
    fields, at = _read_head(data, 2)
    return _read_tail(data, at, 2, _COUNT_V2, fields)


def _read_v3(data: bytes) -> Fields:
    if len(data) < _HEAD_V3.size:
        raise CorruptState(f"not a version-3 lead state ({len(data)} bytes)")
    _, *first, last_at, events, content_reads, contacts, n_seen = _HEAD_V3.unpack_from(data)
    end = _HEAD_V3.size + 8 * n_seen
    if end > len(data):
        raise CorruptState(f"lead state lists {n_seen} event ids but holds {(len(data) - _HEAD_V3.size) // 8}")
    fields = {
        "first_at": [None if at == _NONE else at for at in first],
        "last_at": last_at, "events": events, "content_reads": content_reads, "contacts": contacts,
        "seen": array("q", data[_HEAD_V3.size : end]),
    }
    return _read_tail(data, end, 3, _COUNT, fields)


def _read_tail(data: bytes, at: int, version: int, count_struct: struct.Struct, fields: Fields) -> Fields:
    """What versions 2 and 3 hold after the seen digests: the first touch, the revenue, and (3) the identity section."""
    try:
        (touch_at,), at = _TOUCH_AT.unpack_from(data, at), at + _TOUCH_AT.size
        fields["touch_at"] = fields["touch_id"] = fields["touch"] = None
        if touch_at != _NONE:
            texts = []
            for _ in range(4):
                text, at = _read_string(data, at)
                texts.append(text)
            fields["touch_at"], fields["touch_id"], fields["touch"] = touch_at, texts[0], tuple(texts[1:])
        (count,), at = count_struct.unpack_from(data, at), at + count_struct.size
        revenue = {}
        for _ in range(count):
            currency, at = _read_string(data, at)
            (revenue[currency],), at = _HUNDREDTHS.unpack_from(data, at), at + _HUNDREDTHS.size
        if version >= 3:
            (length,), at = _LENGTH.unpack_from(data, at), at + _LENGTH.size
            if at + length > len(data):
                raise struct.error("an identity section past the end")
            fields["identity"], at = bytes(data[at : at + length]), at + length
    except (struct.error, UnicodeDecodeError) as exc:
        raise CorruptState(f"a version-{version} lead state that ends early or is not UTF-8 ({exc})") from None
    if at != len(data):
        raise CorruptState(f"a version-{version} lead state of {len(data)} bytes holds {len(data) - at} more than it lists")
    fields["revenue"] = revenue or None
    return fields


def _read_string(data: bytes, at: int) -> tuple[str | None, int]:
    (length,), at = _LENGTH.unpack_from(data, at), at + _LENGTH.size
    if length == _ABSENT:
        return None, at
    if at + length > len(data):
        raise struct.error("a string past the end")
    return data[at : at + length].decode("utf-8", "surrogatepass"), at + length


def upcast_v1_v2(fields: Fields) -> Fields:
    """Version 1 kept no touches and no revenue: a lead read from it has neither until newer
    events bring them (docs/upgrading.md: upgrading to attribution)."""
    return {**fields, "touch_at": None, "touch_id": None, "touch": None, "revenue": None}


def upcast_v2_v3(fields: Fields) -> Fields:
    """Version 2 knew six event types (no `identified`) and no identity section: a lead read from it
    has neither until newer events bring them."""
    return {**fields, "first_at": [*fields["first_at"], None], "identity": b""}


def _read_head(data: bytes, version: int) -> tuple[Fields, int]:
    """The fields of version 1, which versions 1 and 2 start with; and where they end."""
    if len(data) < 1 + _HEAD_V1.size:
        raise CorruptState(f"not a version-{version} lead state ({len(data)} bytes)")
    *first, last_at, events, content_reads, contacts, n_seen = _HEAD_V1.unpack_from(data, 1)
    end = 1 + _HEAD_V1.size + 8 * n_seen
    if end > len(data):
        raise CorruptState(f"lead state lists {n_seen} event ids but holds {(len(data) - 1 - _HEAD_V1.size) // 8}")
    seen = array("q")
    seen.frombytes(data[1 + _HEAD_V1.size : end])
    return {
        "first_at": [None if at == _NONE else at for at in first],
        "last_at": last_at,
        "events": events,
        "content_reads": content_reads,
        "contacts": contacts,
        "seen": seen,
    }, end


def _state(fields: Fields) -> LeadState:
    state = LeadState()
    for name, value in fields.items():
        setattr(state, name, value)
    return state


# The reader of each stored version, and the upcaster from version N to N + 1.
# A new layout adds `N + 1: _read_vN1`, moves VERSION on, and adds `N: upcast_vN_vN1`.
_READERS: dict[int, Callable[[bytes], Fields]] = {1: _read_v1, 2: _read_v2, 3: _read_v3}
UPCASTERS: dict[int, Callable[[Fields], Fields]] = {1: upcast_v1_v2, 2: upcast_v2_v3}
